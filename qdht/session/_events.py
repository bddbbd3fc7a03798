"""Events a :class:`~qdht.session.SessionEndpoint` reports (h11-style ``next_event``)."""

from __future__ import annotations

from collections.abc import Hashable

import attrs

__all__ = ["Event", "HandshakeFailed", "MessageReceived", "SessionClosed", "SessionEstablished"]


@attrs.frozen
class SessionEstablished:
    """A handshake completed: ``node_id`` is verified (it decapsulated, and its ID checks out)."""

    node_id: bytes
    addr: Hashable
    initiator: bool
    pattern: str
    handshake_hash: bytes = attrs.field(repr=False)


@attrs.frozen
class MessageReceived:
    """An application message arrived from ``node_id`` at ``addr``.

    ``early`` marks pqIK first-message data: it may be a replay and its
    sender is *not* authenticated yet, so only idempotent requests belong there.
    """

    node_id: bytes
    addr: Hashable
    payload: bytes = attrs.field(repr=lambda p: f"<{len(p)} bytes>")
    early: bool = False


@attrs.frozen
class HandshakeFailed:
    """A handshake we started failed: ``timeout``, ``wrong-identity``, ``bad-puzzle``, ..."""

    node_id: bytes
    addr: Hashable
    reason: str
    dropped_messages: int = 0


@attrs.frozen
class SessionClosed:
    """A session ended: keys expired, the peer closed it, or it was evicted."""

    node_id: bytes
    reason: str


Event = SessionEstablished | MessageReceived | HandshakeFailed | SessionClosed
