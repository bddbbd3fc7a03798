"""The harness's own client: a :class:`~qdht.session.SessionEndpoint` on a UDP socket.

Unlike :func:`qdht.session.open_session_host`, the probe keeps every
datagram it sends and receives, can hold datagrams back (to replay, tamper
with or reorder them), and lints every application message it receives
from the target with the linter's engine.
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
from qdht_lint.engine import INVALID, NON_STRICT, Linter

from qdht.errors import DecodeError
from qdht.identity import Identity
from qdht.session import (
    HandshakeFailed,
    MessageReceived,
    SessionConfig,
    SessionEndpoint,
    SessionEstablished,
)
from qdht.wire import Contact, decode, encode

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
        self.endpoint = SessionEndpoint(identity, config)
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
        self._changed = trio.Event()
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

    def _on_message(self, payload: bytes) -> None:
        verdict = self.linter.lint(payload)
        if verdict.verdict != "OK":
            where = f" at {verdict.path}" if verdict.path else ""
            text = (
                f"{verdict.verdict} {verdict.rule or 'message'}: {verdict.reason or ''}{where}"
                f" {verdict.detail} {' '.join(verdict.should)}"
            ).strip()
            self.findings.append((verdict.verdict, text))
        message: Any = None
        error = None
        try:
            message = decode(payload)
        except DecodeError as exc:
            error = f"{exc.reason}: {exc}"
            message = Undecodable(error, _permissive_rid(payload))
        if len(self.messages) < MAX_KEPT:
            self.messages.append(Received(payload, message, error))

    # ------------------------------------------------------------------ cases

    async def wait_for(self, predicate: Callable[[], bool], seconds: float) -> bool:
        """Whether ``predicate`` became true within ``seconds``."""
        with trio.move_on_after(seconds):
            while not predicate():
                await self._changed.wait()
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
