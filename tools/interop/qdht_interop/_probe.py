"""The harness's own client: a :class:`~qdht.session.SessionEndpoint` on a UDP socket.

Unlike :func:`qdht.session.open_session_host`, the probe keeps every
datagram it sends and receives, can hold datagrams back (to replay, tamper
with or reorder them), and lints every application message it receives
from the target with the linter's engine.  It learns its transport keys
through the public key log hook (``protocol-spec/09-keylog.md``), so it can
also seal packets of its own: oversize, out of window, with chosen counters.
"""

from __future__ import annotations

import contextlib
import math
import socket
from collections.abc import Callable
from typing import Any, ClassVar, Final

import attrs
import cbor2
import trio
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from qdht_lint.engine import INVALID, NON_STRICT, Linter, Verdict

from qdht.errors import DecodeError
from qdht.identity import Identity
from qdht.session import (
    HandshakeFailed,
    KeyLogEntry,
    MessageReceived,
    SessionConfig,
    SessionEndpoint,
    SessionEstablished,
    parse_keylog,
)
from qdht.wire import Contact, decode, dumps_canonical, encode, loads_canonical

__all__ = ["MAX_KEPT", "Probe", "Received", "Undecodable"]

#: Datagrams and messages kept per probe (a case is short; beyond this the oldest go).
MAX_KEPT: Final = 4096


@attrs.frozen
class Undecodable:
    """A message from the target that did not decode (its ``rid`` read permissively, if any)."""

    error: str
    rid: bytes | None = None
    TYPE: ClassVar[str] = "invalid message"

    def __str__(self) -> str:
        return f"an invalid message ({self.error})"


@attrs.frozen
class Received:
    """One application message from the target, decoded (None if it did not decode)."""

    payload: bytes
    message: Any
    error: str | None


class Probe:
    """A client identity talking to one target; run :meth:`run` in a nursery."""

    def __init__(
        self,
        identity: Identity,
        target: Contact,
        linter: Linter,
        *,
        handshake_timeout: float = 5.0,
    ) -> None:
        config = SessionConfig(handshake_timeout=handshake_timeout)
        #: The probe's own identity (a mix case routes packets back to its node ID).
        self.identity = identity
        self.endpoint = SessionEndpoint(identity, config, keylog=self._on_keys)
        #: Transport keys of every session this probe completed, oldest first.
        self.keys: list[KeyLogEntry] = []
        self.target = target
        self.addr = (target.address.host, target.address.port)
        self.linter = linter
        family = socket.AF_INET6 if ":" in target.address.host else socket.AF_INET
        self.sock = trio.socket.socket(family, socket.SOCK_DGRAM)
        self.sent: list[bytes] = []
        self.datagrams_in: list[bytes] = []
        self.messages: list[Received] = []
        self.established: list[SessionEstablished] = []
        self.failed: list[HandshakeFailed] = []
        #: Lint findings on messages from the target: (verdict, text).
        self.findings: list[tuple[str, str]] = []
        #: Datagrams from the target linted as session packets.
        self.datagrams_linted = 0
        self._changed = trio.Event()
        self._datagram = trio.Event()
        self._wake = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        host = "::1" if self.sock.family == socket.AF_INET6 else "127.0.0.1"
        await self.sock.bind((host, 0))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._reader)
                nursery.start_soon(self._timer)
                task_status.started()
        finally:
            self.sock.close()

    # ---------------------------------------------------------------- driving

    async def _reader(self) -> None:
        while True:
            try:
                data, addr = await self.sock.recvfrom(65536)
            except OSError:
                # ICMP port unreachable (the target is gone) surfaces here on Linux.
                await trio.sleep(0.05)
                continue
            if len(self.datagrams_in) < MAX_KEPT:
                self.datagrams_in.append(data)
            self._datagram.set()
            self._datagram = trio.Event()
            if (addr[0], addr[1]) == self.addr:
                self._lint_datagram(data)
            self.endpoint.receive_datagram(data, (addr[0], addr[1]), trio.current_time())
            await self.flush()

    async def _timer(self) -> None:
        while True:
            deadline = self.endpoint.get_timer()
            self._wake = trio.Event()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await self._wake.wait()
            if deadline is not None and trio.current_time() >= deadline:
                self.endpoint.handle_timer(trio.current_time())
                await self.flush()

    async def flush(self) -> None:
        """Handle events, then send every datagram the endpoint has ready."""
        self._events()
        for data, _addr in self.endpoint.datagrams_to_send(trio.current_time()):
            await self.send_raw(data)
        self._wake.set()

    def take(self) -> list[bytes]:
        """The datagrams the endpoint has ready, *not* sent (for replay and tampering)."""
        self._events()
        return [data for data, _ in self.endpoint.datagrams_to_send(trio.current_time())]

    async def send_raw(self, data: bytes) -> None:
        if len(self.sent) < MAX_KEPT:
            self.sent.append(data)
        with contextlib.suppress(OSError):  # the target is gone: cases notice the silence
            await self.sock.sendto(data, self.addr)

    def _events(self) -> None:
        changed = False
        while (event := self.endpoint.next_event()) is not None:
            changed = True
            if type(event) is SessionEstablished:
                self.established.append(event)
            elif type(event) is HandshakeFailed:
                self.failed.append(event)
            elif type(event) is MessageReceived and event.node_id == self.target.node_id:
                self._on_message(event.payload)
        if changed:
            self._changed.set()
            self._changed = trio.Event()

    def _finding(self, verdict: Verdict, what: str = "") -> None:
        if verdict.verdict == "OK":
            return
        where = f" at {verdict.path}" if verdict.path else ""
        text = (
            f"{what}{verdict.verdict} {verdict.rule or 'message'}: {verdict.reason or ''}{where}"
            f" {verdict.detail} {' '.join(verdict.should)}"
        ).strip()
        self.findings.append((verdict.verdict, text))

    def _lint_datagram(self, data: bytes) -> None:
        """Lint a datagram from the target as a session packet (05 §9), and the frame
        inside a data packet, opened with the keys this probe logged (09-keylog.md)."""
        self.datagrams_linted += 1
        verdict = self.linter.lint(data)
        if verdict.verdict != "OK":
            self._finding(verdict, "datagram: ")
            return
        packet = loads_canonical(data)
        kind = packet.get("type") if isinstance(packet, dict) else None
        if kind not in ("hs", "cookie", "data"):
            self.findings.append(
                (
                    INVALID,
                    f"datagram: INVALID a bare {kind!r} message, not a packet (05 §9)",
                )
            )
            return
        if kind != "data":
            return
        rid, n, ct = packet["rid"], packet["n"], packet["ct"]
        for entry in reversed(self.keys):
            if entry.local_index != rid:
                continue
            nonce = b"\x00\x00\x00\x00" + n.to_bytes(8, "little")
            try:
                frame = ChaCha20Poly1305(entry.recv_key).decrypt(
                    nonce, ct, b"qdht-data" + rid.to_bytes(4, "big")
                )
            except InvalidTag:
                continue
            frame_verdict = self.linter.lint(frame)
            self._finding(frame_verdict, "frame: ")
            ftype = loads_canonical(frame).get("type") if frame_verdict.ok else None
            if frame_verdict.ok and ftype not in ("msg", "frag", "keepalive", "close"):
                self.findings.append((INVALID, f"frame: INVALID {ftype!r} is not a frame (05 §3)"))
            return
        if any(entry.local_index == rid for entry in self.keys):
            self.findings.append(
                (INVALID, f"datagram: INVALID a data packet for index {rid} fails its tag (05 §2)")
            )

    def _on_message(self, payload: bytes) -> None:
        verdict = self.linter.lint(payload)
        self._finding(verdict)
        message: Any = None
        error = None
        try:
            message = decode(payload)
        except DecodeError as exc:
            error = f"{exc.reason}: {exc}"
            message = Undecodable(error, _permissive_rid(payload))
        if len(self.messages) < MAX_KEPT:
            self.messages.append(Received(payload, message, error))

    def _on_keys(self, line: str) -> None:
        entries, _ = parse_keylog(line)
        if len(self.keys) < MAX_KEPT:
            self.keys.extend(entries)

    def sent_counters(self, rid: int) -> list[int]:
        """Counters of the data packets this probe sent with receiver index ``rid``."""
        out = []
        for data in self.sent:
            try:
                obj = loads_canonical(data)
            except DecodeError:
                continue
            if isinstance(obj, dict) and obj.get("type") == "data" and obj.get("rid") == rid:
                out.append(obj["n"])
        return out

    def seal(self, frame: dict[str, Any], n: int, keys: KeyLogEntry | None = None) -> bytes:
        """A data packet carrying ``frame`` under the newest keys (or ``keys``), counter ``n``.

        Built here from 05-transport.md §2, not by the endpoint, so it may be
        anything the spec forbids a sender to make (oversize, a stale counter).
        """
        if keys is None:
            if not self.keys:
                raise RuntimeError("harness: no session keys yet")
            keys = self.keys[-1]
        nonce = b"\x00\x00\x00\x00" + n.to_bytes(8, "little")
        ad = b"qdht-data" + keys.peer_index.to_bytes(4, "big")
        ct = ChaCha20Poly1305(keys.send_key).encrypt(nonce, dumps_canonical(frame), ad)
        return dumps_canonical({"type": "data", "rid": keys.peer_index, "n": n, "ct": ct})

    def seal_message(self, payload: bytes, n: int) -> bytes:
        """A data packet with one ``msg`` frame carrying ``payload``, counter ``n``."""
        return self.seal({"type": "msg", "p": payload}, n)

    # ------------------------------------------------------------------ cases

    async def wait_for(self, predicate: Callable[[], bool], seconds: float) -> bool:
        """Whether ``predicate`` became true within ``seconds``."""
        with trio.move_on_after(seconds):
            while not predicate():
                await self._changed.wait()
            return True
        return predicate()

    async def wait_datagrams(self, predicate: Callable[[], bool], seconds: float) -> bool:
        """Like :meth:`wait_for`, re-checked on every datagram received (kept or not)."""
        with trio.move_on_after(seconds):
            while not predicate():
                await self._datagram.wait()
            return True
        return predicate()

    async def handshake(self, seconds: float) -> SessionEstablished | HandshakeFailed | None:
        self.endpoint.connect(self.addr, self.target.node_id, trio.current_time())
        await self.flush()
        await self.wait_for(lambda: bool(self.established or self.failed), seconds)
        if self.established:
            return self.established[0]
        return self.failed[0] if self.failed else None

    async def send_payload(self, payload: bytes) -> None:
        self.endpoint.send_message(
            self.target.node_id, payload, trio.current_time(), addr=self.addr
        )
        await self.flush()

    def responses(self, rid: bytes) -> list[Received]:
        return [
            r
            for r in self.messages
            if r.message is not None and getattr(r.message, "rid", None) == rid
        ]

    async def request(self, message: Any, seconds: float) -> Any:
        """Send ``message`` (a wire object) and return the first response to its rid, or None."""
        return await self.request_payload(encode(message), message.rid, seconds)

    async def request_payload(self, payload: bytes, rid: bytes, seconds: float) -> Any:
        await self.send_payload(payload)
        if await self.wait_for(lambda: bool(self.responses(rid)), seconds):
            return self.responses(rid)[0].message
        return None

    def lint_worst(self) -> str | None:
        """INVALID / NON-STRICT if any message from the target got that verdict."""
        verdicts = {v for v, _ in self.findings}
        for verdict in (INVALID, "NON-DETERMINISTIC", NON_STRICT):
            if verdict in verdicts:
                return verdict
        return None


def _permissive_rid(payload: bytes) -> bytes | None:
    """The ``rid`` of a message that failed strict decoding, if plain CBOR can find it."""
    try:
        obj = cbor2.loads(payload)
    except Exception:  # any bytes: cbor2 raises assorted errors on garbage
        return None
    rid = obj.get("rid") if isinstance(obj, dict) else None
    return rid if isinstance(rid, bytes) else None
