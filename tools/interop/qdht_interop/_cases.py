"""The cases: each tied to a numbered section of ``protocol-spec/`` by its ID.

An ID is ``<area>/<section>/<n>``; the areas map to spec files as in
:data:`AREAS`.  A case is an async function of a :class:`Context` and a
:class:`Notes` it writes its observations to; it raises
:class:`~qdht_interop._grades.CaseFailed` when a MUST is broken and
:class:`~qdht_interop._grades.CaseUnimplemented` when the target lacks an
optional feature; :meth:`Notes.non_strict` marks a broken SHOULD.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Final

import attrs
import trio
from qdht_lint.engine import Linter

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.dht import make_immutable, sign_mutable, sign_set_entry
from qdht.errors import HandshakeError, LookupFailedError, RPCError
from qdht.identity import Identity
from qdht.node import Node
from qdht.wire import (
    MAX_VALUE_SIZE,
    Chunk,
    Contact,
    ErrorCode,
    ErrorMessage,
    FindNode,
    FindValue,
    GetChunk,
    Nodes,
    Notified,
    Notify,
    Ping,
    Pong,
    Store,
    Stored,
    Value,
    Watch,
    Watching,
    dumps_canonical,
    encode,
    immutable_key,
    loads_canonical,
    new_rid,
)
from qdht_interop._grades import INFORMATIONAL, NON_STRICT, CaseFailed, CaseUnimplemented
from qdht_interop._handshake import cookie_from, first_fragments, learn_static, parse
from qdht_interop._model import InteropModel
from qdht_interop._probe import Probe, Undecodable
from qdht_interop._target import TargetProcess, printable

__all__ = ["AREAS", "CASES", "Case", "Context", "Notes"]

#: Case ID area → the spec file its section numbers refer to.
AREAS: Final = {
    "conv": "00-conventions.md",
    "dht": "02-dht-rpc.md",
    "hs": "04-handshake.md",
    "tr": "05-transport.md",
    "boot": "06-bootstrap.md",
    "rec": "07-records.md",
    "watch": "08-watch.md",
    "model": "13-models.md",
    "mix": "10-mixnet.md",
}
#: Seconds a request waits for its answer (a first handshake included).
ANSWER_TIMEOUT: Final = 5.0
#: Seconds of silence that count as "dropped" where a case must wait for nothing.
SILENCE: Final = 1.0


@attrs.define
class Context:
    """What every case can use."""

    target: Contact
    difficulty: int
    linter: Linter
    #: The target process when the harness started it (None with --target).
    process: TargetProcess | None = None
    #: Whether the target speaks the stdin control interface.
    control: bool = False
    #: The harness's own qdht network (Python nodes), empty when not started.
    network: list[Node] = attrs.Factory(list)
    #: The model the target was asked to publish (``QDHT_MODEL_FILE``); None with --target.
    model: InteropModel | None = None

    async def identity(self) -> Identity:
        """A fresh client identity at the network's difficulty (minted off the event loop)."""
        return await trio.to_thread.run_sync(Identity.generate, self.difficulty)

    @asynccontextmanager
    async def probe(self, notes: Notes, *, established: bool = True) -> AsyncIterator[Probe]:
        """A running probe (by default handshaken); its lint findings go to ``notes``."""
        probe = Probe(await self.identity(), self.target, self.linter)
        async with trio.open_nursery() as nursery:
            await nursery.start(probe.run)
            try:
                if established:
                    result = await probe.handshake(ANSWER_TIMEOUT)
                    if result is None or not probe.established:
                        reason = getattr(result, "reason", "no answer")
                        raise CaseFailed(f"handshake with the target failed ({reason})")
                yield probe
            finally:
                notes.lint(probe)
                nursery.cancel_scope.cancel()


@attrs.define
class Notes:
    """What a case saw: details for the report, and the softer grades."""

    details: list[str] = attrs.Factory(list)
    grades: list[str] = attrs.Factory(list)
    #: Datagrams and application messages received from the target (all linted).
    linted: int = 0

    def note(self, text: str) -> None:
        self.details.append(text)

    def non_strict(self, text: str) -> None:
        self.grades.append(NON_STRICT)
        self.details.append(f"SHOULD broken: {text}")

    def informational(self, text: str) -> None:
        self.grades.append(INFORMATIONAL)
        self.details.append(text)

    def lint(self, probe: Probe) -> None:
        self.linted += len(probe.messages) + probe.datagrams_linted
        for verdict, text in probe.findings:
            self.details.append(f"lint: {text}")
            self.grades.append("FAILED" if verdict != NON_STRICT else NON_STRICT)


CaseFn = Callable[[Context, Notes], Awaitable[None]]


@attrs.frozen
class Case:
    id: str
    title: str
    fn: CaseFn = attrs.field(repr=False)
    #: Seconds before the case is FAILED as hung.
    timeout: float = 20.0
    #: Needs the harness's Python network.
    network: bool = False

    @property
    def spec(self) -> str:
        area, section, _ = self.id.split("/")
        return f"{AREAS[area]} §{section}"


CASES: list[Case] = []


def case(
    case_id: str, title: str, *, timeout: float = 20.0, network: bool = False
) -> Callable[[CaseFn], CaseFn]:
    def register(fn: CaseFn) -> CaseFn:
        CASES.append(Case(case_id, title, fn, timeout, network))
        return fn

    return register


# ----------------------------------------------------------------- helpers


def describe(message: Any) -> str:
    if message is None:
        return "nothing"
    if isinstance(message, Undecodable):
        return str(message)
    if isinstance(message, ErrorMessage):
        return f"error code {message.code} ({printable(message.message, 80)!r})"
    return str(getattr(message, "TYPE", type(message).__name__))


async def expect_alive(probe: Probe, after: str) -> None:
    """PING the target on the probe's session; CaseFailed if it does not answer."""
    answer = await probe.request(Ping(new_rid(), ro=True), ANSWER_TIMEOUT)
    if not isinstance(answer, Pong):
        raise CaseFailed(f"the target answered PING with {describe(answer)} after {after}")


async def expect_alive_fresh(ctx: Context, notes: Notes, after: str) -> None:
    """PING the target from a new identity (new handshake): the target still serves."""
    async with ctx.probe(notes) as probe:
        await expect_alive(probe, after)


def quiet_for(probe: Probe, rid: bytes) -> Callable[[], bool]:
    return lambda: bool(probe.responses(rid))


#: Lifetime the harness gives the records it stores (well inside any max_ttl).
RECORD_TTL: Final = 3600


def expiry() -> int:
    """The ``exp`` of the records the harness stores: an hour from now."""
    return int(time.time()) + RECORD_TTL


def immutable(value: bytes) -> Any:
    """An immutable record of ``value`` (07-records.md §5.1)."""
    return make_immutable(value, expiry())


def store_value(rid: bytes, value: bytes) -> Store:
    """A read-only STORE of the immutable record of ``value`` under its own key."""
    return Store.of(rid, immutable(value), ro=True)


def value_bytes(answer: Any) -> bytes | None:
    """The value a VALUE answer carries in its single record (None if none)."""
    record = getattr(answer, "record", None)
    value = getattr(record, "value", None)
    return value if isinstance(value, bytes) else None


def expect_error(answer: Any, code: ErrorCode, what: str) -> None:
    """CaseFailed unless ``answer`` is an ERROR with ``code``."""
    if not isinstance(answer, ErrorMessage):
        raise CaseFailed(f"{what} was answered with {describe(answer)}, expected {code.name}")
    if answer.error_code is not code:
        raise CaseFailed(f"{what} was answered {describe(answer)}, expected {code.name} ({code})")


def _refused_storage(answer: Any) -> None:
    if isinstance(answer, ErrorMessage) and answer.error_code in (
        ErrorCode.NOT_SERVING,
        ErrorCode.STORAGE_FULL,
        ErrorCode.RATE_LIMITED,
    ):
        raise CaseUnimplemented(f"the target refused to store: {describe(answer)}")


# ------------------------------------------------------------------- cases


@case("hs/6/1", "pqXX handshake completes and proves the pinned node ID")
async def hs_pqxx(ctx: Context, notes: Notes) -> None:
    async with ctx.probe(notes, established=False) as probe:
        result = await probe.handshake(ANSWER_TIMEOUT)
        if result is None:
            raise CaseFailed("no handshake answer within the handshake timeout")
        if not probe.established:
            raise CaseFailed(f"handshake failed: {getattr(result, 'reason', result)}")
        event = probe.established[0]
        if event.node_id != ctx.target.node_id:
            raise CaseFailed("the session is with another node ID than the pinned one")
        notes.note(f"pattern {event.pattern}, {len(probe.datagrams_in)} datagrams received")
        await expect_alive(probe, "the handshake")


@case("hs/2.2/1", "after a session, a new handshake with the known static key uses pqIK")
async def hs_pqik(ctx: Context, notes: Notes) -> None:
    async with ctx.probe(notes) as probe:
        # Closing forgets the keys but keeps the target's verified static key,
        # so the next message starts a pqIK handshake (04 §2.2).
        probe.endpoint.close(ctx.target.node_id, trio.current_time())
        await probe.flush()
        probe.established.clear()
        await expect_alive(probe, "a pqIK handshake")
        patterns = [e.pattern for e in probe.established]
        if not patterns:
            raise CaseFailed("no second session was established")
        if patterns[0] != "pqIK":
            raise CaseFailed(f"harness: the second handshake used {patterns[0]}, not pqIK")
        notes.note("closed the pqXX session; the pqIK handshake completed and PING works")


@case("hs/5.1/1", "a handshake for another node ID gets no session (and SHOULD get silence)")
async def hs_wrong_id(ctx: Context, notes: Notes) -> None:
    pinned = attrs.evolve(ctx.target, node_id=os.urandom(32))
    probe = Probe(await ctx.identity(), pinned, ctx.linter)
    async with trio.open_nursery() as nursery:
        await nursery.start(probe.run)
        probe.endpoint.connect(probe.addr, pinned.node_id, trio.current_time())
        await probe.flush()
        await trio.sleep(SILENCE * 1.5)
        nursery.cancel_scope.cancel()
    if probe.established:
        raise CaseFailed("a session was established under a node ID the target does not own")
    if probe.datagrams_in:
        notes.non_strict(
            f"answered {len(probe.datagrams_in)} datagram(s) to a handshake with a wrong "
            "mac1 (04 §5.1: drop before any other work)"
        )
    else:
        notes.note("silent, as 04 §5.1 asks")
    await expect_alive_fresh(ctx, notes, "a handshake for another node ID")


@case("dht/2/1", "PING is answered with PONG carrying the same rid")
async def dht_ping(ctx: Context, notes: Notes) -> None:
    async with ctx.probe(notes) as probe:
        rid = new_rid()
        answer = await probe.request(Ping(rid, ro=True), ANSWER_TIMEOUT)
        if not isinstance(answer, Pong):
            raise CaseFailed(f"PING answered with {describe(answer)}")
        notes.note("PONG with the request's rid")


@case("dht/3/1", "FIND_NODE is answered with NODES (at most 32 contacts)")
async def dht_find_node(ctx: Context, notes: Notes) -> None:
    async with ctx.probe(notes) as probe:
        answer = await probe.request(FindNode(new_rid(), os.urandom(32), ro=True), ANSWER_TIMEOUT)
        if not isinstance(answer, Nodes):
            raise CaseFailed(f"FIND_NODE answered with {describe(answer)}")
        if any(c.node_id == probe.endpoint.node_id for c in answer.nodes):
            raise CaseFailed("NODES lists the read-only requester itself (02 §1.2)")
        notes.note(f"NODES with {len(answer.nodes)} contact(s)")


@case("dht/4.3/1", "STORE is answered with STORED, and FIND_VALUE then returns the value")
async def dht_store_find_value(ctx: Context, notes: Notes) -> None:
    value = b"qdht-interop " + os.urandom(24)
    key = immutable_key(value)
    async with ctx.probe(notes) as probe:
        answer = await probe.request(store_value(new_rid(), value), ANSWER_TIMEOUT)
        _refused_storage(answer)
        if not isinstance(answer, Stored):
            raise CaseFailed(f"STORE answered with {describe(answer)}")
        answer = await probe.request(FindValue(new_rid(), key, ro=True), ANSWER_TIMEOUT)
        if not isinstance(answer, Value):
            raise CaseFailed(f"FIND_VALUE of a stored key answered with {describe(answer)}")
        if getattr(answer.record, "TYPE", None) != "immutable" or value_bytes(answer) != value:
            raise CaseFailed("VALUE carries another record than the immutable one stored")
        notes.note("STORED, then VALUE with the stored immutable record")


@case("dht/4.2/1", "FIND_VALUE of an unknown key is answered with NODES")
async def dht_find_value_unknown(ctx: Context, notes: Notes) -> None:
    async with ctx.probe(notes) as probe:
        answer = await probe.request(FindValue(new_rid(), os.urandom(32), ro=True), ANSWER_TIMEOUT)
        if not isinstance(answer, Nodes):
            raise CaseFailed(f"FIND_VALUE of an unknown key answered with {describe(answer)}")
        notes.note(f"NODES with {len(answer.nodes)} contact(s)")


@case("dht/4.3/2", "STORE whose key does not match the value: ERROR invalid-value, nothing stored")
async def dht_store_invalid_value(ctx: Context, notes: Notes) -> None:
    value = os.urandom(40)
    key = os.urandom(32)
    async with ctx.probe(notes) as probe:
        answer = await probe.request(
            Store(new_rid(), key, immutable(value), ro=True), ANSWER_TIMEOUT
        )
        if isinstance(answer, Stored):
            raise CaseFailed("a STORE with a mismatched key was answered STORED")
        if isinstance(answer, ErrorMessage):
            if answer.error_code is not ErrorCode.INVALID_VALUE:
                raise CaseFailed(f"answered {describe(answer)}, expected invalid-value (6)")
        elif answer is None:
            raise CaseFailed("no answer: 02 §4.3 says the receiver answers invalid-value")
        else:
            raise CaseFailed(f"answered {describe(answer)}")
        found = await probe.request(FindValue(new_rid(), key, ro=True), ANSWER_TIMEOUT)
        if isinstance(found, Value):
            raise CaseFailed("the mismatched value was stored anyway")
        notes.note("ERROR invalid-value, and FIND_VALUE does not return it")


@case("dht/5/1", "an unknown request type gets ERROR unknown-request or is dropped")
async def dht_unknown_request(ctx: Context, notes: Notes) -> None:
    rid = new_rid()
    payload = dumps_canonical({"type": "qdht-interop-frobnicate", "rid": rid})
    async with ctx.probe(notes) as probe:
        answer = await probe.request_payload(payload, rid, SILENCE * 2)
        if answer is None:
            notes.note("dropped silently (allowed)")
        elif isinstance(answer, ErrorMessage):
            if answer.error_code is ErrorCode.UNKNOWN_REQUEST:
                notes.note("ERROR unknown-request with the request's rid")
            elif answer.error_code is ErrorCode.BAD_REQUEST:
                notes.non_strict("answered bad-request; 02 §5 names unknown-request (2)")
            else:
                raise CaseFailed(f"answered {describe(answer)}")
        else:
            raise CaseFailed(f"an unknown request type was answered with {describe(answer)}")
        await expect_alive(probe, "an unknown request type")


@case("dht/5/2", "a response type sent as a request gets ERROR bad-request or is dropped")
async def dht_response_as_request(ctx: Context, notes: Notes) -> None:
    rid = new_rid()
    async with ctx.probe(notes) as probe:
        answer = await probe.request_payload(encode(Pong(rid)), rid, SILENCE * 2)
        if answer is None:
            notes.note("dropped silently (allowed)")
        elif isinstance(answer, ErrorMessage):
            if answer.error_code is not ErrorCode.BAD_REQUEST:
                notes.non_strict(f"answered {describe(answer)}; 02 §5 names bad-request (1)")
            else:
                notes.note("ERROR bad-request")
        else:
            raise CaseFailed(f"a PONG sent as a request was answered with {describe(answer)}")
        await expect_alive(probe, "a response sent as a request")


@case("conv/4/1", "malformed messages inside a session are rejected whole; the target lives")
async def conv_malformed(ctx: Context, notes: Notes) -> None:
    rid = new_rid()
    bad = [
        ("not CBOR", b"\xff\xfe\xfd"),
        ("trailing bytes", encode(Ping(rid, ro=True)) + b"\x00"),
        ("not a map", dumps_canonical([1, 2, 3])),
        ("missing rid", dumps_canonical({"type": "ping"})),
        ("rid of 7 bytes", dumps_canonical({"type": "ping", "rid": rid[:7]})),
        ("unknown field", dumps_canonical({"type": "ping", "rid": rid, "x": 1})),
        ("ro: false", dumps_canonical({"type": "ping", "rid": rid, "ro": False})),
    ]
    async with ctx.probe(notes) as probe:
        for _, payload in bad:
            await probe.send_payload(payload)
        await expect_alive(probe, "malformed messages")
        answered = [r.message for r in probe.responses(rid)]
        if any(not isinstance(m, ErrorMessage) for m in answered):
            raise CaseFailed(
                "an invalid PING (sharing its rid with the others) was acted on: "
                + ", ".join(describe(m) for m in answered)
            )
        codes = {m.code for m in answered}
        notes.note(
            f"{len(bad)} malformed messages ({', '.join(n for n, _ in bad)}): "
            + (f"answered ERROR codes {sorted(codes)}" if answered else "all dropped")
        )


@case("tr/8/1", "garbage and truncated datagrams are dropped; the target lives")
async def tr_garbage(ctx: Context, notes: Notes) -> None:
    async with ctx.probe(notes) as probe:
        hs = [d for d in probe.sent if d[:1] in (b"\xa8", b"\xa9")]
        garbage = [
            b"",
            b"\x00",
            os.urandom(200),
            dumps_canonical({"type": "ping", "rid": new_rid()}),
            dumps_canonical({"rid": 1, "n": 0, "ct": b""}),
            probe.sent[-1][: len(probe.sent[-1]) // 2],
        ]
        if hs:
            garbage.append(hs[0][:-1])
        for data in garbage:
            await probe.send_raw(data)
        await expect_alive(probe, f"{len(garbage)} garbage datagrams")
        await expect_alive_fresh(ctx, notes, "garbage datagrams")
        notes.note(f"{len(garbage)} garbage datagrams dropped, sessions old and new still work")


@case("tr/2/1", "a replayed data packet is dropped (no second answer)")
async def tr_replay(ctx: Context, notes: Notes) -> None:
    async with ctx.probe(notes) as probe:
        rid = new_rid()
        probe.endpoint.send_message(
            ctx.target.node_id, encode(Ping(rid, ro=True)), trio.current_time()
        )
        packets = probe.take()
        if len(packets) != 1:
            raise CaseFailed(f"harness: expected one data packet, got {len(packets)}")
        await probe.send_raw(packets[0])
        if not await probe.wait_for(quiet_for(probe, rid), ANSWER_TIMEOUT):
            raise CaseFailed("the PING itself was not answered")
        for _ in range(3):
            await probe.send_raw(packets[0])
        await expect_alive(probe, "replayed packets")
        if len(probe.responses(rid)) > 1:
            raise CaseFailed(
                f"a replayed PING was answered {len(probe.responses(rid)) - 1} time(s)"
            )
        notes.note("3 replays dropped; the session still works")


@case("tr/2/2", "a packet with a tampered tag is dropped and does not move the replay window")
async def tr_tamper(ctx: Context, notes: Notes) -> None:
    async with ctx.probe(notes) as probe:
        rid = new_rid()
        probe.endpoint.send_message(
            ctx.target.node_id, encode(Ping(rid, ro=True)), trio.current_time()
        )
        (packet,) = probe.take()
        # Flip the last bit of the tag (the end of `ct`), nothing else: the
        # packet stays well-formed and only the AEAD check can refuse it.
        fields = loads_canonical(packet)
        ct = fields["ct"]
        tampered = dumps_canonical({**fields, "ct": ct[:-1] + bytes([ct[-1] ^ 0x01])})
        await probe.send_raw(tampered)
        if await probe.wait_for(quiet_for(probe, rid), SILENCE):
            raise CaseFailed("a PING with a tampered tag was answered")
        await probe.send_raw(packet)
        if not await probe.wait_for(quiet_for(probe, rid), ANSWER_TIMEOUT):
            raise CaseFailed(
                "the untampered packet was refused after its tampered copy "
                "(05 §2: the window moves only after the tag verifies)"
            )
        notes.note("tampered copy dropped, the genuine packet then accepted")


@case("tr/4/1", "fragments arriving out of order are reassembled")
async def tr_fragments_reordered(ctx: Context, notes: Notes) -> None:
    value = os.urandom(5000)
    async with ctx.probe(notes) as probe:
        rid = new_rid()
        probe.endpoint.send_message(
            ctx.target.node_id, encode(store_value(rid, value)), trio.current_time()
        )
        packets = probe.take()
        if len(packets) < 2:
            raise CaseFailed(f"harness: expected several fragments, got {len(packets)}")
        for data in reversed(packets):
            await probe.send_raw(data)
        if not await probe.wait_for(quiet_for(probe, rid), ANSWER_TIMEOUT):
            raise CaseFailed(f"no answer to a STORE sent as {len(packets)} fragments in reverse")
        answer = probe.responses(rid)[0].message
        if not isinstance(answer, Stored):
            raise CaseFailed(f"the reassembled STORE was answered with {describe(answer)}")
        notes.note(f"{len(packets)} fragments in reverse order: STORED")


@case("tr/7/1", "a datagram over datagram_size (1200 bytes) is dropped")
async def tr_oversize_datagram(ctx: Context, notes: Notes) -> None:
    async with ctx.probe(notes) as probe:
        rid = new_rid()
        # A genuine, authenticated packet that is only wrong by its size: the
        # harness seals one ~1290-byte packet itself (05 §2) with the session's
        # keys and a counter the session has not used.
        keys = probe.keys[-1]
        n = max(probe.sent_counters(keys.peer_index), default=0) + 100
        packet = probe.seal_message(encode(store_value(rid, os.urandom(1150))), n)
        if len(packet) <= 1200:
            raise CaseFailed(f"harness: the packet is only {len(packet)} bytes")
        await probe.send_raw(packet)
        if await probe.wait_for(quiet_for(probe, rid), SILENCE):
            raise CaseFailed(f"a {len(packet)}-byte datagram was accepted (05 §2, §7)")
        await expect_alive(probe, "an oversize datagram")
        notes.note(f"a {len(packet)}-byte datagram was dropped, the session still works")


@case("dht/6/1", "a STORE with a value over 65536 bytes is refused")
async def dht_oversize_value(ctx: Context, notes: Notes) -> None:
    value = b"\x00" * (MAX_VALUE_SIZE + 1)
    key = immutable_key(value)
    rid = new_rid()
    record = {"type": "immutable", "value": value, "exp": int(time.time()) + RECORD_TTL}
    payload = dumps_canonical(
        {"type": "store", "rid": rid, "key": key, "record": record, "ro": True}
    )
    async with ctx.probe(notes) as probe:
        answer = await probe.request_payload(payload, rid, SILENCE * 3)
        if isinstance(answer, Stored):
            raise CaseFailed("a value over 65536 bytes was answered STORED")
        if answer is None:
            notes.note("dropped silently (allowed)")
        elif isinstance(answer, ErrorMessage):
            if answer.error_code not in (ErrorCode.TOO_LARGE, ErrorCode.BAD_REQUEST):
                notes.non_strict(f"answered {describe(answer)}; expected too-large or bad-request")
            else:
                notes.note(f"answered {describe(answer)}")
        else:
            raise CaseFailed(f"answered {describe(answer)}")
        found = await probe.request(FindValue(new_rid(), key, ro=True), ANSWER_TIMEOUT)
        if isinstance(found, Value):
            raise CaseFailed("the oversize value was stored anyway")
        await expect_alive(probe, "an oversize STORE")


# ------------------------------------------------------- more handshakes


@asynccontextmanager
async def pqik_probe(ctx: Context, notes: Notes) -> AsyncIterator[Probe]:
    """A probe of a fresh identity whose first contact with the target is pqIK.

    The harness first learns the target's static key by reading its answer to
    a pqXX message 1 of another identity (as a node that verified the
    target's certificate would know it), then opens with pqIK (04 §2.2).
    """
    scout = Probe(await ctx.identity(), ctx.target, ctx.linter)
    async with trio.open_nursery() as nursery:
        await nursery.start(scout.run)
        try:
            static = await learn_static(scout, await ctx.identity(), ctx.difficulty, ANSWER_TIMEOUT)
        except HandshakeError as exc:
            raise CaseFailed(f"harness could not learn the static key: {exc}") from None
        finally:
            notes.lint(scout)
            nursery.cancel_scope.cancel()
    async with ctx.probe(notes, established=False) as probe:
        rid = new_rid()
        probe.endpoint.send_message(
            ctx.target.node_id,
            encode(Ping(rid, ro=True)),
            trio.current_time(),
            addr=probe.addr,
            responder_static=static,
        )
        await probe.flush()
        await probe.wait_for(lambda: bool(probe.established or probe.failed), ANSWER_TIMEOUT)
        if not probe.established:
            reason = probe.failed[0].reason if probe.failed else "no answer"
            raise CaseFailed(f"the pqIK first contact failed ({reason})")
        if probe.established[0].pattern != "pqIK":
            raise CaseFailed(f"harness: the handshake used {probe.established[0].pattern}")
        if not await probe.wait_for(quiet_for(probe, rid), ANSWER_TIMEOUT):
            raise CaseFailed("the PING queued behind the pqIK handshake was not answered")
        yield probe


@case("hs/2.2/2", "pqIK as the first contact of an identity that knows the static key")
async def hs_pqik_first_contact(ctx: Context, notes: Notes) -> None:
    async with pqik_probe(ctx, notes) as probe:
        await expect_alive(probe, "a pqIK first contact")
        notes.note("a fresh identity opened with pqIK (2 messages); PING works over it")


@case("hs/7/1", "a replayed pqIK message 1 does not replace the working keys")
async def hs_pqik_replay(ctx: Context, notes: Notes) -> None:
    async with pqik_probe(ctx, notes) as probe:
        first = [d for d in probe.sent if (f := parse(d)) and f.get("kind") == 5]
        if not first:
            raise CaseFailed("harness: no pqIK message 1 was sent")
        before = len(probe.datagrams_in)
        for _ in range(2):
            for data in first:
                await probe.send_raw(data)
        await trio.sleep(SILENCE)
        answers = [
            f
            for d in probe.datagrams_in[before:]
            if (f := parse(d)) and f.get("type") == "hs" and f.get("kind") == 6
        ]
        # The replay may be answered (04 §7: the responder installs new keys
        # but MUST NOT use them before a packet confirms them); the session
        # in use MUST go on working.
        await expect_alive(probe, "a replayed pqIK message 1")
        notes.note(
            f"pqIK message 1 replayed twice ({len(answers)} message-2 fragments in answer); "
            "the confirmed session still works"
        )


@case("hs/5.3/1", "a replayed pqXX message 1 costs the target no state; the session lives")
async def hs_pqxx_replay(ctx: Context, notes: Notes) -> None:
    async with ctx.probe(notes) as probe:
        first = [d for d in probe.sent if (f := parse(d)) and f.get("kind") == 1]
        if not first:
            raise CaseFailed("harness: no pqXX message 1 was sent")
        sent = sum(len(d) for d in first)
        before = len(probe.datagrams_in)
        for _ in range(3):
            for data in first:
                await probe.send_raw(data)
        await trio.sleep(SILENCE)
        answers = [d for d in probe.datagrams_in[before:] if (f := parse(d)) and f.get("kind") == 2]
        answered = sum(len(d) for d in answers)
        await expect_alive(probe, "a replayed pqXX message 1")
        # 04 §5.4: before the address is validated, at most 3x the bytes received.
        if answered > 3 * 3 * sent:
            raise CaseFailed(
                f"{answered} bytes answered {3 * sent} bytes of replays: over 3x (04 §5.4)"
            )
        notes.note(
            f"message 1 replayed 3 times: {len(answers)} fragments ({answered} bytes) in "
            f"answer to {3 * sent} bytes; the session still works"
        )


#: First-message fragments 0 sent in one burst to push a target under load.
FLOOD: Final = 120


@case("hs/5.2/1", "under load a first message gets a cookie, and mac2 then gets a session")
async def hs_cookie_under_load(ctx: Context, notes: Notes) -> None:
    async with ctx.probe(notes, established=False) as probe:
        target = ctx.target.node_id
        sent: dict[int, bytes] = {}
        # Fragments 0 of pqXX message 1 with valid mac1 and random bodies: the
        # responder counts them (04 §5.2) but never gets a whole message.
        for _ in range(FLOOD):
            sid = int.from_bytes(os.urandom(4), "big") or 1
            frag = first_fragments(1, sid, os.urandom(1216), target)[0]
            sent[sid] = frag
            await probe.send_raw(frag)
        await trio.sleep(SILENCE)
        cookies = [f for d in probe.datagrams_in if (f := parse(d)) and f.get("type") == "cookie"]
        if not cookies:
            notes.non_strict(
                f"{FLOOD} first-message fragments in a burst got no cookie reply: an "
                "initiator under load only times out (04 §5.2 answers fragment 0 with a "
                "cookie; the target may count load differently, and §5.5's limits are local)"
            )
            return
        opened = 0
        for reply in cookies:
            rid = reply.get("rid")
            answered = parse(sent[rid]) if isinstance(rid, int) and rid in sent else None
            mac1 = answered.get("mac1") if answered else None
            if isinstance(mac1, bytes) and cookie_from(reply, target, mac1) is not None:
                opened += 1
        if opened < len(cookies):
            raise CaseFailed(
                f"{len(cookies) - opened} of {len(cookies)} cookie replies do not open "
                "with the mac1 of the fragment they answer (04 §5.2)"
            )
        # A real initiator now: its endpoint answers a cookie with mac2 itself.
        result = await probe.handshake(ANSWER_TIMEOUT * 2)
        if not probe.established:
            raise CaseFailed(
                f"no session right after the flood ({getattr(result, 'reason', 'no answer')})"
            )
        await expect_alive(probe, "a handshake under load")
        notes.note(
            f"{len(cookies)} cookie replies to {FLOOD} fragments, all open; a handshake "
            "then completed"
        )


@case("tr/2/3", "a packet below the replay window is dropped; the session lives")
async def tr_out_of_window(ctx: Context, notes: Notes) -> None:
    async with ctx.probe(notes) as probe:
        keys = probe.keys[-1]
        base = max(probe.sent_counters(keys.peer_index), default=0) + 5000
        # Move the target's window up with a genuine packet of a high counter ...
        rid = new_rid()
        await probe.send_raw(probe.seal_message(encode(Ping(rid, ro=True)), base))
        if not await probe.wait_for(quiet_for(probe, rid), ANSWER_TIMEOUT):
            raise CaseFailed("a PING with a counter 5000 ahead was not answered (05 §2)")
        # ... then send a never-used counter 3000 below it (window >= 2048).
        old = new_rid()
        await probe.send_raw(probe.seal_message(encode(Ping(old, ro=True)), base - 3000))
        if await probe.wait_for(quiet_for(probe, old), SILENCE):
            raise CaseFailed("a PING 3000 counters below the highest was answered (05 §2)")
        alive = new_rid()
        await probe.send_raw(probe.seal_message(encode(Ping(alive, ro=True)), base + 1))
        if not await probe.wait_for(quiet_for(probe, alive), ANSWER_TIMEOUT):
            raise CaseFailed("the session stopped working after an out-of-window packet")
        notes.note("counter n+5000 accepted, n+2000 (out of window) dropped, n+5001 accepted")


# ------------------------------------------------------- records (07 §8)


@asynccontextmanager
async def holder(ctx: Context, notes: Notes) -> AsyncIterator[tuple[Probe, Identity]]:
    """A probe and the identity it signs records with (its own)."""
    identity = await ctx.identity()
    probe = Probe(identity, ctx.target, ctx.linter)
    async with trio.open_nursery() as nursery:
        await nursery.start(probe.run)
        try:
            result = await probe.handshake(ANSWER_TIMEOUT)
            if not probe.established:
                reason = getattr(result, "reason", "no answer")
                raise CaseFailed(f"handshake with the target failed ({reason})")
            yield probe, identity
        finally:
            notes.lint(probe)
            nursery.cancel_scope.cancel()


def mutable(identity: Identity, seq: int, value: bytes, *, pk: bool = True) -> Any:
    return sign_mutable(
        identity.mldsa,
        salt=b"qdht-interop",
        seq=seq,
        value=value,
        expires=expiry(),
        include_public_key=pk,
    )


@case("rec/8/1", "a mutable record without pk: ERROR owner-key-unknown (9)")
async def rec_owner_key_unknown(ctx: Context, notes: Notes) -> None:
    async with holder(ctx, notes) as (probe, identity):
        answer = await probe.request(
            Store.of(new_rid(), mutable(identity, 1, b"no pk", pk=False), ro=True),
            ANSWER_TIMEOUT,
        )
        _refused_storage(answer)
        expect_error(answer, ErrorCode.OWNER_KEY_UNKNOWN, "a STORE of a record without pk")
        answer = await probe.request(
            Store.of(new_rid(), mutable(identity, 1, b"with pk"), ro=True), ANSWER_TIMEOUT
        )
        if not isinstance(answer, Stored):
            raise CaseFailed(f"the same STORE with pk was answered {describe(answer)}")
        notes.note("without pk: owner-key-unknown; again with pk: STORED")


@case("rec/8/2", "a lower seq than held: ERROR stale (10), the newer record stays")
async def rec_stale(ctx: Context, notes: Notes) -> None:
    async with holder(ctx, notes) as (probe, identity):
        newer = mutable(identity, 5, b"seq 5")
        answer = await probe.request(Store.of(new_rid(), newer, ro=True), ANSWER_TIMEOUT)
        _refused_storage(answer)
        if not isinstance(answer, Stored):
            raise CaseFailed(f"a valid mutable record was answered {describe(answer)}")
        answer = await probe.request(
            Store.of(new_rid(), mutable(identity, 4, b"seq 4"), ro=True), ANSWER_TIMEOUT
        )
        expect_error(answer, ErrorCode.STALE, "a STORE of seq 4 over seq 5")
        found = await probe.request(FindValue(new_rid(), newer.key(), ro=True), ANSWER_TIMEOUT)
        if value_bytes(found) != b"seq 5":
            raise CaseFailed(f"FIND_VALUE then answered {describe(found)}, not seq 5")
        if getattr(getattr(found, "record", None), "public_key", None) is None:
            raise CaseFailed("the VALUE's signed record has no pk (02 §4.2: holders send pk)")
        notes.note("seq 4 over seq 5: stale; FIND_VALUE returns seq 5 with pk")


@case("rec/8/3", "a wrong cas: ERROR cas-mismatch (11); the right cas: STORED")
async def rec_cas(ctx: Context, notes: Notes) -> None:
    async with holder(ctx, notes) as (probe, identity):
        first = mutable(identity, 1, b"seq 1")
        answer = await probe.request(Store.of(new_rid(), first, ro=True), ANSWER_TIMEOUT)
        _refused_storage(answer)
        if not isinstance(answer, Stored):
            raise CaseFailed(f"a valid mutable record was answered {describe(answer)}")
        second = mutable(identity, 2, b"seq 2")
        answer = await probe.request(Store.of(new_rid(), second, cas=7, ro=True), ANSWER_TIMEOUT)
        expect_error(answer, ErrorCode.CAS_MISMATCH, "a STORE with cas 7 over seq 1")
        answer = await probe.request(Store.of(new_rid(), second, cas=1, ro=True), ANSWER_TIMEOUT)
        if not isinstance(answer, Stored):
            raise CaseFailed(f"a STORE with the right cas was answered {describe(answer)}")
        found = await probe.request(FindValue(new_rid(), second.key(), ro=True), ANSWER_TIMEOUT)
        if value_bytes(found) != b"seq 2":
            raise CaseFailed(f"FIND_VALUE then answered {describe(found)}, not seq 2")
        notes.note("cas 7: cas-mismatch; cas 1: STORED; FIND_VALUE returns seq 2")


@case("rec/8/4", "a record with a bad signature: ERROR invalid-value (6), nothing stored")
async def rec_bad_signature(ctx: Context, notes: Notes) -> None:
    async with holder(ctx, notes) as (probe, identity):
        good = mutable(identity, 1, b"signed")
        forged = attrs.evolve(good, value=b"forged")
        answer = await probe.request(Store.of(new_rid(), forged, ro=True), ANSWER_TIMEOUT)
        _refused_storage(answer)
        expect_error(answer, ErrorCode.INVALID_VALUE, "a STORE of a record with a bad signature")
        found = await probe.request(FindValue(new_rid(), good.key(), ro=True), ANSWER_TIMEOUT)
        if isinstance(found, Value):
            raise CaseFailed("the forged record was stored anyway")
        notes.note("bad signature: invalid-value; FIND_VALUE answers NODES")


@case("rec/8/5", "set entries of two publishers: VALUE carries both in records")
async def rec_set(ctx: Context, notes: Notes) -> None:
    topic = b"qdht-interop " + os.urandom(8)
    async with holder(ctx, notes) as (probe, identity):
        other = await ctx.identity()
        entries = [
            sign_set_entry(who.mldsa, topic=topic, seq=1, value=name, expires=expiry())
            for who, name in ((identity, b"first"), (other, b"second"))
        ]
        for entry in entries:
            answer = await probe.request(Store.of(new_rid(), entry, ro=True), ANSWER_TIMEOUT)
            _refused_storage(answer)
            if not isinstance(answer, Stored):
                raise CaseFailed(f"a set entry was answered {describe(answer)}")
        found = await probe.request(FindValue(new_rid(), entries[0].key(), ro=True), ANSWER_TIMEOUT)
        if not isinstance(found, Value) or not found.records:
            raise CaseFailed(f"FIND_VALUE of the set answered {describe(found)}")
        values = sorted(e.value for e in found.records)
        if values != [b"first", b"second"]:
            raise CaseFailed(f"VALUE records hold {values}, not both entries")
        notes.note("two publishers' entries stored; VALUE carries both in records")


@case("dht/4.2/4", "a set too big for one VALUE says more, and is read page by page with have")
async def rec_set_pages(ctx: Context, notes: Notes) -> None:
    topic = b"qdht-interop pages " + os.urandom(8)
    # 12 publishers with 4000-byte values: about 9.4 KB each with pk, 7 fit a VALUE.
    entries = [
        sign_set_entry(
            MLDSAPrivateKey.from_seed(os.urandom(32)),
            topic=topic,
            seq=1,
            value=bytes([i]) * 4000,
            expires=expiry(),
        )
        for i in range(12)
    ]
    key = entries[0].key()
    async with holder(ctx, notes) as (probe, _identity):
        for entry in entries:
            answer = await probe.request(Store.of(new_rid(), entry, ro=True), ANSWER_TIMEOUT)
            _refused_storage(answer)
            if not isinstance(answer, Stored):
                raise CaseFailed(f"a set entry was answered {describe(answer)}")
        read: dict[bytes, bytes] = {}
        pages = 0
        while pages < len(entries):
            have = tuple(sorted(read))
            ask = FindValue(new_rid(), key, have=have, ro=True)
            found = await probe.request(ask, ANSWER_TIMEOUT)
            if isinstance(found, Nodes) and have:
                break  # nothing further
            if not isinstance(found, Value) or not found.records:
                raise CaseFailed(f"page {pages + 1} of the set answered {describe(found)}")
            again = [e for e in found.records if e.owner in read]
            if again:
                raise CaseFailed(f"page {pages + 1} repeats {len(again)} entries listed in have")
            read.update((e.owner, e.value) for e in found.records)
            pages += 1
            if not found.more:
                break
        if sorted(read.values()) != sorted(e.value for e in entries):
            # An answer without more must have held every entry (02 §4.2).
            raise CaseFailed(f"the pages hold {len(read)} of the {len(entries)} entries")
        notes.note(f"{len(entries)} entries of 4000 bytes read in {pages} pages")


# --------------------------------------------------------- watching (08)


def _notifies(probe: Probe) -> list[Notify]:
    return [r.message for r in probe.messages if isinstance(r.message, Notify)]


async def _next_notify(probe: Probe, seen: int, *, stop: bool = False) -> Notify | None:
    """The target's next NOTIFY after the first ``seen``, answered NOTIFIED (with ``stop``)."""
    if not await probe.wait_for(lambda: len(_notifies(probe)) > seen, ANSWER_TIMEOUT):
        return None
    notify = _notifies(probe)[seen]
    await probe.send_payload(encode(Notified(notify.rid, stop=stop)))
    return notify


async def _store_ok(probe: Probe, record: Any, what: str) -> None:
    """STORE ``record``; CaseFailed unless STORED (UNIMPLEMENTED if storage is refused)."""
    answer = await probe.request(Store.of(new_rid(), record, ro=True), ANSWER_TIMEOUT)
    _refused_storage(answer)
    if not isinstance(answer, Stored):
        raise CaseFailed(f"{what} was answered {describe(answer)}")


async def _subscribe(
    probe: Probe, key: bytes, ttl: int, notes: Notes, *, since: int | None = None
) -> None:
    """WATCH ``key``; CaseFailed unless WATCHING grants 1..``ttl`` seconds."""
    answer = await probe.request(Watch(new_rid(), key, ttl, since=since, ro=True), ANSWER_TIMEOUT)
    if isinstance(answer, ErrorMessage) and answer.error_code is ErrorCode.UNKNOWN_REQUEST:
        raise CaseUnimplemented("the target does not serve watch (unknown-request)")
    _refused_storage(answer)
    if not isinstance(answer, Watching) or not 0 < answer.ttl <= ttl:
        raise CaseFailed(f"WATCH with ttl {ttl} was answered {describe(answer)}")
    notes.note(f"WATCH ttl {ttl}: WATCHING ttl {answer.ttl}")


def _carries(notify: Notify | None, seq: int) -> bool:
    record = None if notify is None else notify.record
    return getattr(record, "seq", None) == seq and getattr(record, "public_key", None) is not None


@case("watch/3.2/1", "WATCH catches up, a STORE is notified with pk, and unwatch ends it")
async def watch_notify(ctx: Context, notes: Notes) -> None:
    async with holder(ctx, notes) as (probe, identity):
        first = mutable(identity, 1, b"watched 1")
        await _store_ok(probe, first, "a valid mutable record")
        await _subscribe(probe, first.key(), 60, notes)
        notify = await _next_notify(probe, 0)
        if not _carries(notify, 1):
            raise CaseFailed(f"the catch-up (08 §3.2) was {describe(notify)}, not seq 1 with pk")
        await _store_ok(probe, mutable(identity, 2, b"watched 2"), "a newer record")
        notify = await _next_notify(probe, 1)
        if not _carries(notify, 2):
            raise CaseFailed(f"the STORE was notified as {describe(notify)}, not seq 2 with pk")
        answer = await probe.request(Watch(new_rid(), first.key(), 0, ro=True), ANSWER_TIMEOUT)
        if not isinstance(answer, Watching) or answer.ttl != 0:
            raise CaseFailed(f"an unwatch (ttl 0) was answered {describe(answer)}")
        await probe.request(
            Store.of(new_rid(), mutable(identity, 3, b"watched 3"), ro=True), ANSWER_TIMEOUT
        )
        if await probe.wait_for(lambda: len(_notifies(probe)) > 2, SILENCE):
            raise CaseFailed("a NOTIFY came after the unwatch")
        notes.note("catch-up seq 1, then seq 2, both with pk; nothing after ttl 0")


@case("watch/4.3/1", "NOTIFIED with stop ends the subscription; since skips what the watcher has")
async def watch_stop(ctx: Context, notes: Notes) -> None:
    async with holder(ctx, notes) as (probe, identity):
        first = mutable(identity, 4, b"since 4")
        await _store_ok(probe, first, "a valid mutable record")
        # since = the held seq: nothing to catch up (08 §3.2)
        await _subscribe(probe, first.key(), 60, notes, since=4)
        if await probe.wait_for(lambda: bool(_notifies(probe)), SILENCE):
            raise CaseFailed("a NOTIFY of seq 4 came though since was 4")
        await _store_ok(probe, mutable(identity, 5, b"since 5"), "a newer record")
        notify = await _next_notify(probe, 0, stop=True)
        if not _carries(notify, 5):
            raise CaseFailed(f"the STORE was notified as {describe(notify)}, not seq 5 with pk")
        await probe.request(
            Store.of(new_rid(), mutable(identity, 6, b"since 6"), ro=True), ANSWER_TIMEOUT
        )
        if await probe.wait_for(lambda: len(_notifies(probe)) > 1, SILENCE):
            raise CaseFailed("a NOTIFY came after NOTIFIED with stop: true (08 §4.3)")
        notes.note("since 4: no catch-up; seq 5 notified; after stop: true, nothing")


# ----------------------------------------------------------------- network


def _in(contacts: list[Contact], node_id: bytes) -> bool:
    return any(c.node_id == node_id for c in contacts)


@case("boot/1/1", "the target joins the harness's network and is found by lookups", network=True)
async def net_join(ctx: Context, notes: Notes) -> None:
    if not ctx.network:
        raise CaseFailed("harness: no network was started")
    found = 0
    for node in ctx.network:
        with trio.move_on_after(ANSWER_TIMEOUT * 2):
            try:
                contacts = await node.find_node(ctx.target.node_id)
            except (LookupFailedError, RPCError) as exc:
                notes.note(f"a harness node's lookup failed: {exc}")
                continue
            if _in(contacts, ctx.target.node_id):
                found += 1
    if not found:
        raise CaseFailed("no harness node finds the target by a FIND_NODE lookup of its ID")
    notes.note(f"{found} of {len(ctx.network)} harness nodes find the target")


@case(
    "dht/4.2/2",
    "a value STOREd on the target is returned to a harness node's lookup",
    network=True,
)
async def net_value_from_target(ctx: Context, notes: Notes) -> None:
    if not ctx.network:
        raise CaseFailed("harness: no network was started")
    value = b"stored on the target " + os.urandom(16)
    key = immutable_key(value)
    async with ctx.probe(notes) as probe:
        answer = await probe.request(store_value(new_rid(), value), ANSWER_TIMEOUT)
        if not isinstance(answer, Stored):
            raise CaseFailed(f"STORE answered with {describe(answer)}")
    node = ctx.network[-1]
    got = None
    with trio.move_on_after(ANSWER_TIMEOUT * 2):
        try:
            got = await node.get(key)
        except (LookupFailedError, RPCError) as exc:
            raise CaseFailed(f"the harness node's lookup failed: {exc}") from None
    if got != value:
        raise CaseFailed("a harness node's lookup did not get the value held only by the target")
    notes.note("a harness node's FIND_VALUE lookup got the value from the target")


@case(
    "dht/4.2/3",
    "a value put by a harness node is got by the target's lookup (control interface)",
    network=True,
)
async def net_value_to_target(ctx: Context, notes: Notes) -> None:
    if not ctx.network:
        raise CaseFailed("harness: no network was started")
    if not ctx.control or ctx.process is None:
        notes.informational("skipped: the target has no stdin control interface (--control)")
        return
    value = b"put by the harness " + os.urandom(16)
    key = immutable_key(value)
    with trio.move_on_after(ANSWER_TIMEOUT * 2):
        try:
            await ctx.network[0].put(value)
        except (LookupFailedError, RPCError) as exc:
            raise CaseFailed(f"the harness node's put failed: {exc}") from None
    line = await ctx.process.control(f"get {key.hex()}", f"value {key.hex()}", ANSWER_TIMEOUT * 2)
    if line is None:
        raise CaseFailed("no answer to the control command 'get'")
    if line.startswith("error"):
        raise CaseFailed(f"control 'get' failed: {printable(line)}")
    parts = line.split()
    if len(parts) != 3 or parts[2] != value.hex():
        raise CaseFailed(f"control 'get' returned other bytes: {printable(line)}")
    notes.note("the target's lookup got the value a harness node put")


# ------------------------------------------------------------ models (13 §5.3)

#: How long the target has to publish QDHT_MODEL_FILE after it printed its contact.
MODEL_WAIT: Final = 5.0


async def _get_chunk(probe: Probe, key: bytes) -> Any:
    return await probe.request(GetChunk(new_rid(), key, ro=True), ANSWER_TIMEOUT)


@case("model/5.3/1", "a model is fetched from the target: GET_CHUNK serves every chunk, verified")
async def model_fetch(ctx: Context, notes: Notes) -> None:
    if ctx.model is None:
        notes.informational("skipped: with --target the harness gave the target no model")
        return
    model = ctx.model
    async with ctx.probe(notes) as probe:
        first = await _get_chunk(probe, model.keys[0])
        waited = 0.0
        while isinstance(first, Chunk) and first.data is None and waited < MODEL_WAIT:
            await trio.sleep(0.5)  # the target may still be chunking the file
            waited += 0.5
            first = await _get_chunk(probe, model.keys[0])
        if first is None:
            raise CaseUnimplemented("GET_CHUNK got no answer: the target has no model store")
        if isinstance(first, ErrorMessage):
            if first.error_code in (ErrorCode.UNKNOWN_REQUEST, ErrorCode.NOT_SERVING):
                raise CaseUnimplemented(f"GET_CHUNK answered {describe(first)}: no model store")
            raise CaseFailed(f"GET_CHUNK answered {describe(first)}")
        if not isinstance(first, Chunk):
            raise CaseFailed(f"GET_CHUNK answered {describe(first)}, expected CHUNK")
        if first.data is None:
            raise CaseUnimplemented("the target does not serve QDHT_MODEL_FILE's chunks")
        pieces = [first.data]
        for key in model.keys[1:]:
            answer = await _get_chunk(probe, key)
            if not isinstance(answer, Chunk) or answer.data is None:
                raise CaseFailed(f"a chunk of the published model was answered {describe(answer)}")
            pieces.append(answer.data)
        for key, piece in zip(model.keys, pieces, strict=True):
            if immutable_key(piece) != key:
                raise CaseFailed("the target served bytes that do not hash to the key asked for")
        if b"".join(pieces) != model.data:
            raise CaseFailed("the chunks served do not make up the model's tensors")
        notes.note(f"{len(pieces)} chunks ({len(model.data)} bytes) fetched and verified")
        absent = await _get_chunk(probe, os.urandom(32))
        if not isinstance(absent, Chunk) or absent.data is not None:
            raise CaseFailed(f"GET_CHUNK of a key nobody holds was answered {describe(absent)}")
        notes.note("a key the target does not hold: CHUNK without data")
        await expect_alive(probe, "the model's chunks")
