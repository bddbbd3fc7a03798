"""``qdht-bench fuzz``: long mutation-fuzzing runs of every decoder and state machine.

Each harness holds one long-lived system under test (one decoder, one
established session, one DHT core, ...) so that an execution costs
microseconds, not a key generation.  Inputs come from a mutation loop seeded
with the protocol's own test vectors and with datagrams captured from real
handshakes: byte-level mutations (flips, interesting values, inserts,
deletes, splices, truncation) and CBOR-aware ones (replace, drop or add a
field anywhere in the decoded tree, then re-encode, sometimes
non-canonically).  Where a MAC or AEAD would stop a mutated input at the
door, the harness *fixes it up* with the real keys (mac1 recomputed, frames
encrypted with the sender's session key) so the fuzzing reaches the code
behind it.  A cheap feedback signal stands in for coverage: an input that
makes the system under test count a drop reason, counter or event kind it
never counted before is kept as a new seed.

An *unhandled* exception is one that escapes the harness's entry point, or
one that the system under test caught in its last-resort handler (counted
as ``internal-error``: remote input must never get there).  An *invariant*
failure is a broken property: a decoded message that does not re-encode to
its input, a fast parser that disagrees with the strict decoder, a bound
exceeded, reassembly accounting that does not add up.

The same harnesses back the short hypothesis tests in ``tests/fuzz``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import math
import multiprocessing
import os
import random
import time
import traceback
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any, Final

import cbor2

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.crypto.xwing import XWingPrivateKey
from qdht.dht import DhtCore, RecordConfig, RecordValidator, RpcConfig
from qdht.errors import DecodeError, RecordRejectedError
from qdht.identity import Identity
from qdht.session import Keypair, SessionConfig, SessionEndpoint, cookie_mac, mac1_key
from qdht.wire import (
    RECORD_TYPES,
    Address,
    Contact,
    DataPacket,
    FragmentFrame,
    HandshakeFragment,
    HsView,
    MessageFrame,
    Ping,
    decode,
    decode_object,
    encode,
    encode_frag_frame,
    encode_hs_fragment,
    encode_msg_frame,
    loads_canonical,
    parse_data_packet,
    parse_frame,
    parse_hs_fragment,
    parse_nodes,
    record_key,
)
from qdht_bench._common import BenchResult, Target

__all__ = [
    "DESCRIPTION",
    "HARNESSES",
    "FuzzReport",
    "Harness",
    "InvariantError",
    "Mutator",
    "add_arguments",
    "fuzz",
    "run",
]

DESCRIPTION: Final = "mutation fuzzing of every decoder and state machine: executions, failures"
#: The network puzzle difficulty of the harnesses' identities (cheap to mint).
DIFFICULTY: Final = 2
#: Loop turns a harness may take per requested execution (the rest are inputs
#: it threw away unrun).
MAX_SKIP_FACTOR: Final = 4
#: Simulated seconds per execution: a million executions span ten seconds, so
#: buckets refill and buffers time out, but keys never expire.
TICK: Final = 1e-5
#: Executions between timer runs and full invariant checks.
CHECK_EVERY: Final = 512
#: Seeds kept per harness (the corpus grows by novel behaviour up to this).
MAX_CORPUS: Final = 512
_VECTORS: Final = Path(__file__).resolve().parents[3] / "protocol-spec" / "vectors"


class InvariantError(AssertionError):
    """A property of the system under test does not hold."""


# ------------------------------------------------------------------ mutation


_INTS: Final = (
    0, 1, 2, 7, 23, 24, 255, 256, 1023, 1024, 65_535, 65_536, 2**31 - 1, 2**32 - 1, 2**32,
    2**63 - 1, 2**64 - 1, -1, -24, -25, -(2**63), -(2**64),
)  # fmt: skip
_BYTE_LENGTHS: Final = (0, 1, 7, 8, 15, 16, 31, 32, 33, 64, 255, 1216, 1217, 2000)


class Mutator:
    """Byte-level and CBOR-aware mutations of seed inputs, seeded and deterministic."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def mutate(self, data: bytes, corpus: list[bytes]) -> bytes:
        rng = self.rng
        if rng.random() < 0.45:
            mutated = self._cbor(data)
            if mutated is not None:
                return mutated
        out = bytearray(data)
        for _ in range(1 + int(rng.expovariate(1.0))):
            self._bytes(out, corpus)
        return bytes(out)

    # -- byte level

    def _bytes(self, out: bytearray, corpus: list[bytes]) -> None:
        rng = self.rng
        op = rng.randrange(9)
        n = len(out)
        if n == 0 or op == 0:
            out[rng.randint(0, n) : rng.randint(0, n)] = rng.randbytes(rng.randint(1, 8))
        elif op == 1:
            i = rng.randrange(n)
            out[i] ^= 1 << rng.randrange(8)
        elif op == 2:
            out[rng.randrange(n)] = rng.choice((0, 0x17, 0x18, 0x19, 0x1F, 0x7F, 0x80, 0xFF))
        elif op == 3:
            i = rng.randrange(n)
            del out[i : i + rng.randint(1, 16)]
        elif op == 4:
            del out[rng.randrange(n) :]
        elif op == 5:  # duplicate a chunk
            i = rng.randrange(n)
            chunk = out[i : i + rng.randint(1, 64)]
            j = rng.randint(0, n)
            out[j:j] = chunk
        elif op == 6:  # splice with another seed
            other = rng.choice(corpus) if corpus else b""
            i = rng.randint(0, n)
            out[i:] = other[rng.randint(0, len(other)) :]
        elif op == 7:  # a CBOR head: non-shortest or indefinite length
            i = rng.randrange(n)
            out[i:i] = rng.choice(
                (b"\x18\x01", b"\x19\x00\x01", b"\x5f", b"\x9f", b"\xff", b"\xbf")
            )
        else:
            i = rng.randrange(n)
            out[i : i + 4] = rng.choice(_INTS).to_bytes(9, "big", signed=True)[-4:]

    # -- CBOR level

    def _cbor(self, data: bytes) -> bytes | None:
        rng = self.rng
        try:
            obj = cbor2.loads(data)
        except Exception:
            return None
        containers: list[Any] = []
        self._walk(obj, containers, 0)
        if not containers:
            obj = self.value()
        else:
            node = rng.choice(containers)
            if type(node) is dict:
                keys = list(node)
                op = rng.randrange(4)
                if keys and op == 0:
                    del node[rng.choice(keys)]
                elif op == 1 or not keys:
                    node[rng.choice(("x", "type", "rid", "n", "ct", "v", "k", "sig"))] = (
                        self.value()
                    )
                else:
                    key = rng.choice(keys)
                    node[key] = self._tweak(node[key])
            elif node:
                i = rng.randrange(len(node))
                op = rng.randrange(3)
                if op == 0:
                    del node[i]
                elif op == 1:
                    node.insert(i, node[i] if rng.random() < 0.5 else self.value())
                else:
                    node[i] = self._tweak(node[i])
            else:
                node.append(self.value())
        try:
            return cbor2.dumps(obj, canonical=rng.random() < 0.9)
        except Exception:
            return None

    def _walk(self, obj: Any, out: list[Any], depth: int) -> None:
        if depth > 8:
            return
        if type(obj) is dict:
            out.append(obj)
            for value in obj.values():
                self._walk(value, out, depth + 1)
        elif type(obj) is list:
            out.append(obj)
            for value in obj:
                self._walk(value, out, depth + 1)

    def _tweak(self, value: Any) -> Any:
        """A near miss of ``value`` (same type, boundary size) or a value of another type."""
        rng = self.rng
        if rng.random() < 0.3:
            return self.value()
        if type(value) is int:
            return rng.choice((value + 1, value - 1, -value, value * 2**8, *_INTS))
        if type(value) is bytes:
            size = rng.choice((len(value) - 1, len(value) + 1, 0, *_BYTE_LENGTHS))
            size = max(0, size)
            if rng.random() < 0.5 and value:
                b = bytearray(value)
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
                return bytes(b)
            return (value * (size // max(1, len(value)) + 1))[:size] or rng.randbytes(size)
        if type(value) is str:
            return rng.choice(("", value + "x", value[:-1], value.upper(), "\u00e9" + value))
        return self.value()

    def value(self) -> Any:
        rng = self.rng
        op = rng.randrange(9)
        if op == 0:
            return rng.choice(_INTS)
        if op == 1:
            return rng.randbytes(rng.choice(_BYTE_LENGTHS))
        if op == 2:
            return rng.choice(("", "a", "ping", "msg", "frag", "data", "hs", "\u0000"))
        if op == 3:
            return None
        if op == 4:
            return rng.random() < 0.5
        if op == 5:
            return rng.choice((0.0, 1.5, math.inf, math.nan, -0.0))
        if op == 6:
            return [self.value() for _ in range(rng.randint(0, 3))] if rng.random() < 0.3 else []
        if op == 7:
            return {}
        return cbor2.CBORTag(rng.choice((0, 1, 2, 24, 55799)), rng.randbytes(4))


# ------------------------------------------------------------------ harness base


class Harness:
    """One system under test; ``execute(data)`` feeds it one input."""

    name: str = ""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.now = 1.0
        self.seeds: list[bytes] = []
        #: Failures the system under test swallowed (its ``internal-error`` count).
        self.swallowed = 0
        #: Inputs the harness threw away before they reached the system under test
        #: (not counted as executions).
        self.skipped = 0

    def execute(self, data: bytes) -> None:
        raise NotImplementedError

    def check(self) -> None:
        """Full invariant check and timers; run every CHECK_EVERY executions."""

    def behaviour(self) -> frozenset[str]:
        """What the system under test has counted so far (the feedback signal)."""
        return frozenset()

    def internal_errors(self) -> int:
        return 0


def _vector_cbor(area: str | None = None) -> list[bytes]:
    """Every test vector's CBOR, valid and invalid (of one area, or all)."""
    out: list[bytes] = []
    for path in sorted(_VECTORS.glob(f"{area or '*'}/*.json")):
        for test in json.loads(path.read_text(encoding="utf-8")).get("tests", []):
            hex_ = test.get("cbor")
            if isinstance(hex_, str):
                out.append(bytes.fromhex(hex_))
    return out


@functools.cache
def _identity(n: int) -> Identity:
    """The n-th harness identity, the same in every run (seeded keys)."""
    seed = hashlib.sha3_256(b"qdht-fuzz-identity %d" % n).digest()
    return Identity.from_keys(
        XWingPrivateKey.from_seed(seed), MLDSAPrivateKey.from_seed(seed), DIFFICULTY
    )


# ------------------------------------------------------------------ wire decode


class WireDecode(Harness):
    """``decode`` of every registered message, and the hot-path parsers against it.

    Invariants: only DecodeError is raised; a decoded message re-encodes to
    exactly its input (deterministic encoding); a fast parser that accepts an
    input agrees field by field with the strict decoder.
    """

    name = "wire-decode"

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.seeds = _vector_cbor()
        self.accepted: set[str] = set()

    def execute(self, data: bytes) -> None:
        try:
            message: Any = decode(data)
        except DecodeError:
            message = None
        if message is not None:
            self.accepted.add(message.TYPE)
            if encode(message) != data:
                raise InvariantError(f"{message.TYPE} does not re-encode to its input")
        _agree(data, message)

    def behaviour(self) -> frozenset[str]:
        return frozenset(self.accepted)


def _agree(data: bytes, message: Any) -> None:
    """The fast parsers accept a subset of what ``decode`` accepts, with equal fields."""
    fast_data = parse_data_packet(data)
    if fast_data is not None and (
        type(message) is not DataPacket or (message.rid, message.n, message.ct) != fast_data
    ):
        raise InvariantError("parse_data_packet disagrees with decode")
    hs = parse_hs_fragment(data)
    if hs is not None:
        fields = ("kind", "sid", "rid", "index", "count", "body", "mac1", "mac2")
        if type(message) is not HandshakeFragment or any(
            getattr(hs, f) != getattr(message, f) for f in fields
        ):
            raise InvariantError("parse_hs_fragment disagrees with decode")
    frame = parse_frame(data)
    if frame is not None:
        if type(message) is MessageFrame:
            ok = frame == (0, 0, 1, message.payload)
        elif type(message) is FragmentFrame:
            ok = frame == (message.msg_id, message.index, message.count, message.payload)
        else:
            ok = False
        if not ok:
            raise InvariantError("parse_frame disagrees with decode")
    try:
        nodes = parse_nodes(data)
    except Exception as exc:  # parse_nodes must return None, not raise
        raise InvariantError(f"parse_nodes raised {type(exc).__name__}") from exc
    if nodes is not None and nodes != message:
        raise InvariantError("parse_nodes disagrees with decode")


# ------------------------------------------------------------------ sessions


class _SessionHarness(Harness):
    """Endpoints of identities 0 (A, initiator) and 1 (B, responder) on a hand-run wire."""

    A: Final = Address("udp", "192.0.2.1", 6881)
    B: Final = Address("udp", "192.0.2.2", 6881)
    #: Limits wide open so that inputs reach the code behind them.
    CONFIG: Final = SessionConfig(
        under_load_handshakes_per_s=10**9,
        handshake_rate_per_address=1e9,
        handshake_burst_per_address=10**9,
        handshake_rate_global=1e9,
        handshake_burst_global=10**9,
        handshake_rate_per_node=1e9,
        handshake_burst_per_node=10**9,
        max_sessions=64,
        handshake_reassembly_slots=32,
        handshake_reassembly_bytes=64 * 1024,
        reassembly_peer_bytes=256 * 1024,
        reassembly_global_bytes=512 * 1024,
    )

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.a = SessionEndpoint(_identity(0), self.CONFIG, rng=rng.randbytes)
        self.b = SessionEndpoint(_identity(1), self.CONFIG, rng=rng.randbytes)
        self.target = self.b

    def pump(self, *, until: Callable[[], bool] | None = None, rounds: int = 20) -> list[bytes]:
        """Move datagrams between A and B; return everything B received."""
        seen: list[bytes] = []
        for _ in range(rounds):
            moved = False
            for src, dst, src_addr in ((self.a, self.b, self.A), (self.b, self.a, self.B)):
                for data, _addr in src.datagrams_to_send(self.now):
                    moved = True
                    if dst is self.b:
                        seen.append(data)
                    dst.receive_datagram(data, src_addr, self.now)
            for endpoint in (self.a, self.b):
                while endpoint.next_event() is not None:
                    pass
            if not moved or (until is not None and until()):
                break
        return seen

    def drain(self) -> None:
        for endpoint in (self.a, self.b):
            endpoint.datagrams_to_send(self.now)
            while endpoint.next_event() is not None:
                pass

    def established(self) -> Keypair | None:
        """A's current keypair with B, if B also holds the session."""
        peer = self.a._peers.get(self.b.node_id)
        kp = peer.current if peer is not None else None
        b_peer = self.b._peers.get(self.a.node_id)
        if kp is None or b_peer is None or b_peer.current is None:
            return None
        return kp

    def connect(self) -> Keypair:
        """An established A→B session (a new handshake only when there is none)."""
        kp = self.established()
        if kp is not None:
            return kp
        for endpoint, other in ((self.a, self.b), (self.b, self.a)):
            if endpoint._peers.get(other.node_id) is not None:
                endpoint.close(other.node_id, self.now)
        self.a.send_message(self.b.node_id, b"hello", self.now, addr=self.B)
        self.pump(until=lambda: self.established() is not None)
        kp = self.established()
        if kp is None:
            raise RuntimeError("the fuzz harness could not establish its session")
        return kp

    def check(self) -> None:
        for endpoint in (self.a, self.b):
            cfg = endpoint.config
            peers = endpoint._peers
            if len(peers) > cfg.max_sessions:
                raise InvariantError("more peers than max_sessions")
            if len(endpoint._hs_buffer) > cfg.handshake_reassembly_slots:
                raise InvariantError("handshake buffer over its slots")
            if endpoint._hs_buffer_bytes > cfg.handshake_reassembly_bytes:
                raise InvariantError("handshake buffer over its bytes")
            held = sum(p.reasm_bytes for p in peers.values())
            if held != endpoint._reasm_global or held > cfg.reassembly_global_bytes:
                raise InvariantError("reassembly accounting does not add up")
            for p in peers.values():
                if p.reasm_bytes > cfg.reassembly_peer_bytes:
                    raise InvariantError("a peer's reassembly over its cap")
                parts = sum(e.nbytes for e in (p.reassembly or {}).values())
                if parts != p.reasm_bytes:
                    raise InvariantError("a peer's reassembly bytes do not add up")
            endpoint.handle_timer(self.now)
        self.drain()

    def behaviour(self) -> frozenset[str]:
        return frozenset(self.target.drops) | frozenset(self.target.counters)

    def internal_errors(self) -> int:
        return self.a.drops["internal-error"] + self.b.drops["internal-error"]


def _fix_mac1(data: bytes, key: bytes, rng: random.Random) -> bytes:
    """A mutated handshake fragment with a correct mac1 (so that it gets past 04 §5.1)."""
    frag = parse_hs_fragment(data)
    if frag is None:
        return data
    mac1 = cookie_mac(key, frag.mac_input())
    mac2 = frag.mac2 if rng.random() < 0.5 else None
    return encode_hs_fragment(
        HsView(frag.kind, frag.sid, frag.rid, frag.index, frag.count, frag.body, mac1), mac2
    )


class HandshakeResponder(_SessionHarness):
    """The responder (B) fed mutated pqXX message 1 and 3 and pqIK message 1 fragments.

    Seeds are the datagrams of real handshakes; a mutated fragment travels
    with the other fragments of its message, and its mac1 is recomputed half
    the time, so reassembly completes and the KEM and Noise code run.
    """

    name = "handshake-responder"

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.messages: list[list[bytes]] = []
        self._capture()
        self.seeds = [d for message in self.messages for d in message]
        self._key = mac1_key(self.b.node_id)
        self._execs = 0

    def _capture(self) -> None:
        """Fresh first and third messages (a biscuit ages out after the handshake timeout)."""
        for static in (None, self.b._static_pub):
            self.a._statics.clear()
            self.b._peers.pop(self.a.node_id, None)
            self.a._peers.pop(self.b.node_id, None)
            self.a.connect(self.B, self.b.node_id, self.now, responder_static=static)
            first = [d for d, _ in self.a.datagrams_to_send(self.now)]
            for d in first:
                self.b.receive_datagram(d, self.A, self.now)
            reply = [d for d, _ in self.b.datagrams_to_send(self.now)]
            self.messages.append(first)
            if static is None:
                for d in reply:
                    self.a.receive_datagram(d, self.B, self.now)
                self.messages.append([d for d, _ in self.a.datagrams_to_send(self.now)])
        self.drain()

    def execute(self, data: bytes) -> None:
        self._execs += 1
        if self._execs % 4096 == 0:
            self.messages = self.messages[-6:]
            self._capture()
        if self.rng.random() < 0.5:
            data = _fix_mac1(data, self._key, self.rng)
        frag = parse_hs_fragment(data)
        group = next(
            (
                m
                for m in self.messages
                if frag is not None and len(m) > 1 and _sid(m[0]) == frag.sid
            ),
            None,
        )
        src = self.A if self.rng.random() < 0.8 else Address("udp", "192.0.2.9", 1)
        if group is not None and frag is not None:
            for other in group:
                if _index(other) != frag.index:
                    self.b.receive_datagram(other, src, self.now)
        self.b.receive_datagram(data, src, self.now)
        self.b.datagrams_to_send(self.now)
        while self.b.next_event() is not None:
            pass


@functools.lru_cache(maxsize=1024)
def _sid(data: bytes) -> int:
    frag = parse_hs_fragment(data)
    return -1 if frag is None else frag.sid


def _index(data: bytes) -> int:
    frag = parse_hs_fragment(data)
    return -1 if frag is None else frag.index


class HandshakeInitiator(_SessionHarness):
    """The initiator (A) fed mutated pqXX message 2 / pqIK message 2 fragments and cookies."""

    name = "handshake-initiator"

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.target = self.a
        self.replies: list[bytes] = []
        self._restart()
        self.seeds = list(self.replies)
        self._key = mac1_key(self.b.node_id)

    def _restart(self) -> None:
        """A fresh handshake from A (pqXX or pqIK) and B's real answers to it."""
        self.a._peers.pop(self.b.node_id, None)
        self.b._peers.pop(self.a.node_id, None)
        static = self.b._static_pub if self.rng.random() < 0.5 else None
        self.a._statics.clear()
        self.a.connect(self.B, self.b.node_id, self.now, responder_static=static)
        first = [d for d, _ in self.a.datagrams_to_send(self.now)]
        for d in first:
            self.b.receive_datagram(d, self.A, self.now)
        self.replies = [d for d, _ in self.b.datagrams_to_send(self.now)]
        # A cookie reply for the same first message, as an overloaded B would send.
        saved = self.b._load_count, self.b._load_second
        self.b._load_second, self.b._load_count = int(self.now), 10**12
        self.b.receive_datagram(first[0], self.A, self.now)
        self.replies += [d for d, _ in self.b.datagrams_to_send(self.now)]
        self.b._load_count, self.b._load_second = saved
        self.drain()

    def execute(self, data: bytes) -> None:
        peer = self.a._peers.get(self.b.node_id)
        if peer is None or peer.handshake is None or peer.handshake.awaiting not in (2, 6):
            self._restart()
            peer = self.a._peers[self.b.node_id]
        assert peer.handshake is not None
        if self.rng.random() < 0.5:
            data = _fix_mac1(data, self._key, self.rng)
        frag = parse_hs_fragment(data)
        if frag is not None and len(self.replies) > 1 and frag.rid == peer.handshake.sid:
            for other in self.replies:
                if other != data and _index(other) != frag.index and _sid(other) == frag.sid:
                    self.a.receive_datagram(other, self.B, self.now)
        self.a.receive_datagram(data, self.B, self.now)
        self.drain()


class SessionTransport(_SessionHarness):
    """An established session (B receiving) fed mutated transport packets.

    Half the inputs are mutated ciphertext packets; the other half are
    mutated *frames* encrypted with A's real session key, so the frame
    parser, fragment reassembly and close handling see them.
    """

    name = "session-transport"

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        kp = self.connect()
        frames = [
            encode_msg_frame(b"ping"),
            encode_msg_frame(bytes(600)),
            encode_frag_frame(7, 0, 3, bytes(1000)),
            encode_frag_frame(7, 2, 3, b"tail"),
            cbor2.dumps({"type": "keepalive"}, canonical=True),
        ]
        packets = []
        for frame in frames:
            self.a._send_frame(kp, frame)
            packets += [d for d, _ in self.a.datagrams_to_send(self.now)]
        # Frames are seeds tagged with a leading 0x00, packets with 0x01.
        self.seeds = [b"\x00" + f for f in frames] + [b"\x01" + p for p in packets]

    def execute(self, data: bytes) -> None:
        if not data:
            self.skipped += 1
            return
        kp = self.connect()
        body = data[1:]
        if data[0] & 1 == 0:
            self.a._send_frame(kp, body)
            for packet, _ in self.a.datagrams_to_send(self.now):
                self.b.receive_datagram(packet, self.A, self.now)
        else:
            self.b.receive_datagram(body, self.A, self.now)
        self.b.datagrams_to_send(self.now)
        while self.b.next_event() is not None:
            pass


class FragmentReassembly(_SessionHarness):
    """Fragment frames with adversarial ids, indices, counts and sizes into a session.

    Inputs are mutated ``(msg_id, index, count, length)`` quadruples (CBOR
    arrays), turned into valid, authenticated ``frag`` frames, so every one
    reaches reassembly: bounds, eviction, duplicates and timeouts.
    """

    name = "fragment-reassembly"

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.connect()
        self.seeds = [
            cbor2.dumps(q)
            for q in ([1, 0, 2, 1088], [1, 1, 2, 10], [2, 0, 4096, 1088], [3, 5, 70, 500])
        ]

    def execute(self, data: bytes) -> None:
        try:
            quad = cbor2.loads(data)
            msg_id, index, count, length = (int(x) for x in quad[:4])
        except Exception:
            self.skipped += 1
            return
        msg_id %= 2**32
        count = max(2, min(count, 4096))
        index %= count
        length = max(1, min(abs(length), 1088))
        kp = self.connect()
        self.a._send_frame(kp, encode_frag_frame(msg_id, index, count, bytes(length)))
        for packet, _ in self.a.datagrams_to_send(self.now):
            self.b.receive_datagram(packet, self.A, self.now)
        while self.b.next_event() is not None:
            pass


# ------------------------------------------------------------------ DHT


class RpcHandling(Harness):
    """``DhtCore.receive_message`` with mutated requests and responses.

    Seeds are the DHT and watch vectors; half the responses get the rid of a
    real pending request, so they are matched and processed.  Invariants:
    pending requests, lookups, routing table and outbox stay bounded.
    """

    name = "rpc"

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.senders = [rng.randbytes(32) for _ in range(16)]
        self.addrs = [Address("udp", f"198.51.100.{i}", 6881) for i in range(8)]
        rpc = RpcConfig(
            max_pending=256,
            rate_limit=1e9,
            rate_burst=10**9,
            rate_limit_per_address=1e9,
            rate_burst_per_address=10**9,
            rate_limit_global=1e9,
            rate_burst_global=10**9,
        )
        records = RecordConfig(store_rate=1e9, store_burst=10**9, store_rate_global=1e9,
                               store_burst_global=10**9)  # fmt: skip
        self.core = DhtCore(
            rng.randbytes(32), now=self.now, rpc=rpc, record_config=records, rng=rng.randbytes
        )
        self.contacts = [
            Contact(node_id, (addr,))
            for node_id, addr in zip(self.senders, self.addrs, strict=False)
        ]
        for contact in self.contacts:
            self.core.routing.update_verified(contact, self.now)
        self.seeds = _vector_cbor("dht") + _vector_cbor("watch") + [encode(Ping(b"R" * 8))]
        self._execs = 0

    def execute(self, data: bytes) -> None:
        rng = self.rng
        core = self.core
        self._execs += 1
        if self._execs % 16 == 0:
            core.ping(rng.choice(self.contacts), self.now)
            if self._execs % 256 == 0:
                core.start_lookup(rng.randbytes(32), self.now)
        sender = rng.randrange(len(self.senders))
        if core._pending and rng.random() < 0.5:
            rid, pending = next(iter(core._pending.items()))
            data = _with_rid(data, rid)
            node_id = pending.contact.node_id
            addr: Hashable = pending.contact.addresses[0]
        else:
            node_id, addr = self.senders[sender], self.addrs[sender % len(self.addrs)]
        core.receive_message(node_id, addr, data, self.now, early=rng.random() < 0.05)
        core.messages_to_send()
        while core.next_event() is not None:
            pass

    def check(self) -> None:
        core = self.core
        if len(core._pending) > core.rpc_config.max_pending:
            raise InvariantError("pending requests over max_pending")
        if len(core.routing) > 256 * core.routing.config.k:
            raise InvariantError("routing table unbounded")
        core.handle_timer(self.now)
        core.messages_to_send()
        while core.next_event() is not None:
            pass

    def behaviour(self) -> frozenset[str]:
        return frozenset(self.core.drops) | frozenset(self.core.received)

    def internal_errors(self) -> int:
        return self.core.drops.get("internal-error", 0)


def _with_rid(data: bytes, rid: bytes) -> bytes:
    try:
        obj = loads_canonical(data)
    except DecodeError:
        return data
    if type(obj) is not dict:
        return data
    obj["rid"] = rid
    return cbor2.dumps(obj, canonical=True)


class RecordValidation(Harness):
    """``RecordValidator.validate`` on mutated immutable, mutable, tombstone and set records.

    Invariant: a record either validates or is rejected with
    RecordRejectedError; nothing else escapes.
    """

    name = "record-validation"

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.seeds = _vector_cbor("records")
        self.validator = RecordValidator(cache_size=1024)
        self.outcomes: set[str] = set()

    def execute(self, data: bytes) -> None:
        try:
            record = decode_object(loads_canonical(data), expect=RECORD_TYPES)
        except DecodeError:
            self.outcomes.add("undecodable")
            return
        key = record_key(record)  # type: ignore[arg-type]
        if self.rng.random() < 0.1:
            key = self.rng.randbytes(32)
        try:
            self.validator.validate(record, key, 1_700_000_000.0)  # type: ignore[arg-type]
            self.outcomes.add("valid")
        except RecordRejectedError as exc:
            self.outcomes.add(exc.reason)

    def behaviour(self) -> frozenset[str]:
        return frozenset(self.outcomes)


#: Every harness, by name.
HARNESSES: Final[dict[str, type[Harness]]] = {
    cls.name: cls
    for cls in (
        WireDecode,
        HandshakeResponder,
        HandshakeInitiator,
        SessionTransport,
        FragmentReassembly,
        RpcHandling,
        RecordValidation,
    )
}


# ------------------------------------------------------------------ the loop


class FuzzReport:
    """What one harness run found."""

    def __init__(self, name: str) -> None:
        self.name = name
        #: Inputs that reached the system under test (the loop's inputs less the
        #: ones the harness threw away unrun).
        self.executions = 0
        #: Inputs the harness threw away before the system under test saw them.
        self.skipped = 0
        self.unhandled = 0
        self.invariant_failures = 0
        self.corpus = 0
        self.seconds = 0.0
        #: (kind, input hex, traceback) of the first few failures.
        self.examples: list[tuple[str, str, str]] = []

    def failed(self, kind: str, data: bytes) -> None:
        if len(self.examples) < 5:
            self.examples.append((kind, data.hex(), traceback.format_exc()))


class _SwallowedErrors(logging.Handler):
    """Counts ``internal-error`` tracebacks the cores log (they catch everything)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < 5:
            self.records.append(self.format(record))


def fuzz(harness: Harness, execs: int, *, seed: int = 0) -> FuzzReport:
    """Run ``execs`` mutated inputs through ``harness``; never raises for a found bug.

    ``report.executions`` counts the inputs that reached the system under test;
    the ones the harness threw away unrun are ``report.skipped``."""
    rng = random.Random(seed)
    mutator = Mutator(rng)
    corpus = list(harness.seeds) or [b""]
    report = FuzzReport(harness.name)
    seen = set(harness.behaviour())
    handler = _SwallowedErrors()
    qdht_logger = logging.getLogger("qdht")
    qdht_logger.addHandler(handler)
    started = time.perf_counter()
    attempted = 0
    i = -1
    try:
        # ``execs`` inputs that reach the system under test, not loop turns: a
        # harness throws some away unrun (at most MAX_SKIP_FACTOR times as many).
        while attempted - harness.skipped < execs and attempted < MAX_SKIP_FACTOR * execs:
            i += 1
            attempted += 1
            parent = corpus[rng.randrange(len(corpus))]
            data = parent if rng.random() < 0.02 else mutator.mutate(parent, corpus)
            harness.now += TICK
            try:
                harness.execute(data)
                if i % CHECK_EVERY == CHECK_EVERY - 1:
                    harness.check()
            except InvariantError:
                report.invariant_failures += 1
                report.failed("invariant", data)
            except Exception:
                report.unhandled += 1
                report.failed("unhandled", data)
            if i % 64 == 0:
                now_seen = harness.behaviour()
                if not now_seen <= seen:
                    seen |= now_seen
                    if len(corpus) < MAX_CORPUS:
                        corpus.append(data)
        try:
            harness.check()
        except InvariantError:
            report.invariant_failures += 1
            report.failed("invariant", b"")
    finally:
        qdht_logger.removeHandler(handler)
    report.skipped = harness.skipped
    report.executions = attempted - harness.skipped
    report.unhandled += harness.internal_errors()
    report.corpus = len(corpus)
    report.seconds = time.perf_counter() - started
    for text in handler.records:
        report.examples.append(("internal-error", "", text))
    return report


def _run_one(name: str, execs: int, seed: int) -> FuzzReport:
    return fuzz(HARNESSES[name](random.Random(seed)), execs, seed=seed)


def run_harnesses(
    names: Iterable[str], execs: int, *, seed: int = 0, jobs: int = 1
) -> list[FuzzReport]:
    """Every named harness for ``execs`` executions, ``jobs`` processes at a time."""
    names = list(names)
    reports: list[FuzzReport] = []
    if jobs <= 1 or len(names) == 1:
        for n in names:
            reports.append(_run_one(n, execs, seed))
            _progress(reports[-1])
        return reports
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        for report in pool.imap_unordered(_star_run_one, [(n, execs, seed) for n in names]):
            reports.append(report)
            _progress(report)
    return sorted(reports, key=lambda r: names.index(r.name))


def _star_run_one(job: tuple[str, int, int]) -> FuzzReport:
    return _run_one(*job)


def _progress(report: FuzzReport) -> None:
    """One line per finished harness, as it finishes (a long run shows its progress)."""
    print(
        f"fuzz {report.name}: {report.executions:,} executions in {report.seconds:.0f} s, "
        f"{report.unhandled} unhandled, {report.invariant_failures} invariant failures",
        flush=True,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--execs", type=int, default=1_000_000, help="executions per harness (default 1,000,000)"
    )
    parser.add_argument(
        "--harness",
        action="append",
        choices=sorted(HARNESSES),
        help="run only this harness (repeatable; default: all)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (a failure reproduces)")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="harnesses run in parallel"
    )
    parser.add_argument(
        "--failures", type=Path, metavar="PATH", help="write failing inputs and tracebacks here"
    )


def run(args: argparse.Namespace) -> BenchResult:
    names = args.harness or list(HARNESSES)
    result = BenchResult("fuzz")
    reports = run_harnesses(names, args.execs, seed=args.seed, jobs=args.jobs)
    for r in reports:
        result.add(f"execs_{r.name}", r.executions)
        result.add(f"skipped_{r.name}", r.skipped)
        result.add(f"execs_per_s_{r.name}", round(r.executions / max(r.seconds, 1e-9)))
        result.add(f"unhandled_{r.name}", r.unhandled, Target("==", 0))
        result.add(f"invariant_failures_{r.name}", r.invariant_failures, Target("==", 0))
        result.add(f"corpus_{r.name}", r.corpus)
    result.add("executions_min", min(r.executions for r in reports), Target(">=", 1_000_000))
    result.add("unhandled", sum(r.unhandled for r in reports), Target("==", 0))
    result.add("invariant_failures", sum(r.invariant_failures for r in reports), Target("==", 0))
    failures = [(r.name, *ex) for r in reports for ex in r.examples]
    for name, kind, data, text in failures[:3]:
        result.notes.append(f"{name} {kind}: input {data[:120]} ...\n{text}")
    if args.failures is not None and failures:
        args.failures.write_text(
            json.dumps(
                [{"harness": n, "kind": k, "input": d, "traceback": t} for n, k, d, t in failures],
                indent=2,
            ),
            encoding="utf-8",
        )
    result.notes.append(f"seed {args.seed}; harnesses: {', '.join(names)}")
    return result
