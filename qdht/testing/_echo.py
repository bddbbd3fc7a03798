"""The echo service: the smallest complete node service (HACKING "Services").

It shows everything a sub-protocol needs and nothing else, and the tests run
it to prove that adding a service is a registration and a task, with no edit
to the node: a sans-IO core (:class:`EchoCore`) that owns the ``echo`` and
``echoed`` message types (``protocol-spec/15-echo.md``), a factory that
registers it (:func:`echo_service`), and a Trio face (:func:`echo`).

    async with open_node(config, services=[echo_service]) as node:
        data = await echo(node, peer_contact, b"hello")
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable, Hashable
from typing import Any, Final

import attrs

from qdht.errors import ConfigError, DecodeError, LookupFailedError
from qdht.node import Node, Operations, Outgoing, Service, ServiceContext
from qdht.wire import MAX_ECHO_DATA, RID_SIZE, Contact, Echo, Echoed, decode, encode

__all__ = [
    "ECHO_TIMEOUT",
    "EchoCore",
    "EchoFace",
    "EchoFailed",
    "EchoReplied",
    "echo",
    "echo_service",
]

#: How long an ECHO waits for its ECHOED.
ECHO_TIMEOUT: Final = 5.0
#: ECHOs of this node waiting for their answer at once.
MAX_PENDING: Final = 256


@attrs.frozen
class EchoReplied:
    """The ECHO started as ``handle`` came back with ``data`` after ``rtt`` seconds."""

    handle: int
    data: bytes
    rtt: float


@attrs.frozen
class EchoFailed:
    """The ECHO started as ``handle`` got no answer (``reason``)."""

    handle: int
    reason: str


class EchoCore:
    """Sans-IO: answer ECHOs, send ours, match ECHOED answers by rid, time them out."""

    def __init__(self, *, rng: Callable[[int], bytes] = os.urandom) -> None:
        self._rng = rng
        self._out: list[Outgoing] = []
        self._events: list[EchoReplied | EchoFailed] = []
        # rid → (handle, peer, sent at); deadlines as a heap of (when, rid).
        self._pending: dict[bytes, tuple[int, bytes, float]] = {}
        self._deadlines: list[tuple[float, bytes]] = []
        self._new_deadline = float("inf")
        self._next_handle = 1
        self.answered = 0
        self.drops: dict[str, int] = {}

    def _drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1

    def start_echo(self, node_id: bytes, addr: Hashable, data: bytes, now: float) -> int:
        """Send ``data`` to ``node_id`` at ``addr``; the answer is reported by handle."""
        if type(data) is not bytes or len(data) > MAX_ECHO_DATA:
            raise ConfigError(f"data must be bytes of at most {MAX_ECHO_DATA}")
        if len(self._pending) >= MAX_PENDING:
            raise LookupFailedError(f"{MAX_PENDING} echoes are waiting already")
        handle, self._next_handle = self._next_handle, self._next_handle + 1
        rid = self._rng(RID_SIZE)
        self._pending[rid] = (handle, node_id, now)
        deadline = now + ECHO_TIMEOUT
        heapq.heappush(self._deadlines, (deadline, rid))
        self._new_deadline = min(self._new_deadline, deadline)
        self._out.append((node_id, addr, encode(Echo(rid, data))))
        return handle

    # ------------------------------------------------------------ ServiceCore

    def receive_message(
        self, node_id: bytes, addr: Hashable, payload: bytes, now: float, *, early: bool = False
    ) -> None:
        try:
            message = decode(payload, expect=(Echo, Echoed))
        except DecodeError:
            self._drop("malformed")
            return
        if type(message) is Echo:
            # Idempotent, so an answer in pqIK early data is harmless.
            self.answered += 1
            self._out.append((node_id, addr, encode(Echoed(message.rid, message.data))))
            return
        assert type(message) is Echoed
        pending = self._pending.get(message.rid)
        if early or pending is None or pending[1] != node_id:
            self._drop("unexpected-echoed")
            return
        del self._pending[message.rid]
        self._events.append(EchoReplied(pending[0], message.data, now - pending[2]))

    def messages_to_send(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> object | None:
        return self._events.pop(0) if self._events else None

    @property
    def new_deadline(self) -> float:
        return self._new_deadline

    def get_timer(self) -> float | None:
        self._new_deadline = float("inf")
        while self._deadlines and self._deadlines[0][1] not in self._pending:
            heapq.heappop(self._deadlines)  # answered already
        return self._deadlines[0][0] if self._deadlines else None

    def handle_timer(self, now: float) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            _, rid = heapq.heappop(self._deadlines)
            pending = self._pending.pop(rid, None)
            if pending is not None:
                self._events.append(EchoFailed(pending[0], "timeout"))

    def peer_unreachable(self, node_id: bytes, now: float, reason: str) -> None:
        for rid, (handle, peer, _) in list(self._pending.items()):
            if peer == node_id:
                del self._pending[rid]
                self._events.append(EchoFailed(handle, reason))

    def stats(self) -> dict[str, Any]:
        return {"answered": self.answered, "waiting": len(self._pending), "drops": dict(self.drops)}


class EchoFace:
    """The Trio side of the echo service: ``node.services.get("echo").face``."""

    def __init__(self) -> None:
        self.core = EchoCore()
        self.operations = Operations()

    async def echo(self, node: Node, peer: Contact, data: bytes) -> bytes:
        """Send ``data`` to ``peer`` and return what came back.

        Raises ``LookupFailedError`` when the peer did not answer within
        ``ECHO_TIMEOUT`` or could not be reached.
        """
        address = peer.addresses[0] if peer.addresses else None
        core = self.core
        result = await self.operations.run(
            node, lambda now: core.start_echo(peer.node_id, address, data, now)
        )
        if type(result) is EchoFailed:
            raise LookupFailedError(f"echo to {peer.node_id.hex()[:16]}: {result.reason}")
        assert type(result) is EchoReplied
        return result.data


def echo_service(context: ServiceContext) -> Service:
    """The service factory: pass it in ``Config.services`` or ``open_node(services=...)``."""
    face = EchoFace()
    return Service(
        "echo", face.core, {Echo.TYPE, Echoed.TYPE}, on_event=face.operations.resolve, face=face
    )


async def echo(node: Node, peer: Contact, data: bytes) -> bytes:
    """``node``'s echo service: send ``data`` to ``peer``, return what came back."""
    face = node.services.get("echo").face
    if not isinstance(face, EchoFace):
        raise ConfigError("the node's 'echo' service is not qdht.testing's echo service")
    return await face.echo(node, peer, data)
