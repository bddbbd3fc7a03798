"""The sans-IO session endpoint: every session of one local identity.

Implements ``protocol-spec/04-handshake.md`` and ``05-transport.md``.  Bytes
and time go in (``receive_datagram``, ``handle_timer``), datagrams and events
come out (``datagrams_to_send``, ``next_event``); addresses are opaque
hashables.  Remote input never raises: it is dropped and counted in
``stats()["drops"]``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Mapping
from typing import Any

from qdht.errors import ConfigError, CryptoError, DecodeError, HandshakeError, SessionError
from qdht.session._events import (
    Event,
    SessionClosed,
)
from qdht.session._frames import _Frames
from qdht.session._peers import _PACKETS, MAX_EARLY_DATA, Addr, Keypair, _source_host, logger
from qdht.wire import (
    CloseFrame,
    CookieReply,
    DataPacket,
    HandshakeFragment,
    HsView,
    decode,
    dumps_canonical,
    parse_data_packet,
    parse_hs_fragment,
)

__all__ = ["SessionEndpoint"]


class SessionEndpoint(_Frames):
    """All sessions of one local :class:`~qdht.identity.Identity` (04/05), sans-IO.

    ``send_message(node_id, payload, now, addr=...)`` delivers to a verified
    node (starting a handshake as needed); ``receive_datagram`` feeds bytes
    in; ``datagrams_to_send`` gives bytes out; ``next_event`` reports
    established sessions, received messages and failures.
    """

    def connect(
        self,
        addr: Addr,
        expected_node_id: bytes,
        now: float,
        *,
        responder_static: bytes | None = None,
    ) -> None:
        """Start a handshake with ``expected_node_id`` at ``addr`` unless one runs or keys exist."""
        peer = self._peer_for(expected_node_id, addr)
        if responder_static is not None:
            self._remember_static(peer.node_id, responder_static)
        if peer.handshake is None and self._send_keypair(peer, now) is None:
            self._start_handshake(peer, now)

    def send_message(
        self,
        node_id: bytes,
        payload: bytes,
        now: float,
        *,
        addr: Addr | None = None,
        responder_static: bytes | None = None,
        idempotent: bool = False,
    ) -> None:
        """Send ``payload`` to verified node ``node_id``, handshaking first if needed.

        ``addr`` is needed when no session with ``node_id`` exists.  Messages
        wait in a bounded queue during a handshake (oldest dropped beyond
        ``send_queue_messages``).  With ``idempotent=True`` the message may
        ride in a pqIK first message, where it can be replayed.
        """
        if type(payload) is not bytes:
            raise SessionError("payload must be bytes")
        if len(payload) > self.config.max_message_size:
            raise SessionError(
                f"payload is {len(payload)} bytes, "
                f"max_message_size is {self.config.max_message_size}"
            )
        if type(node_id) is not bytes or len(node_id) != 32:
            raise SessionError("node_id must be 32 bytes")
        peer = self._peers.get(node_id)
        if peer is None:
            if addr is None:
                raise SessionError("no session with this node: pass addr")
            peer = self._peer_for(node_id, addr)
        elif addr is not None and peer.current is None:
            peer.addr = addr
        if responder_static is not None:
            self._remember_static(peer.node_id, responder_static)
        kp = self._send_keypair(peer, now)
        if kp is not None:
            self._send_payload(kp, payload)
            self._maybe_rekey(peer, kp, now)
            return
        if peer.queue is None:
            peer.queue = deque()
        if len(peer.queue) >= self.config.send_queue_messages:
            peer.queue.popleft()
            self.drops["send-queue-full"] += 1
        peer.queue.append(payload)
        if peer.handshake is None:
            early = None
            if idempotent and len(payload) <= MAX_EARLY_DATA and len(peer.queue) == 1:
                early = payload
            self._start_handshake(peer, now, early=early)

    def refuse(self, node_id: bytes, until: float) -> None:
        """Drop everything from ``node_id`` until ``until`` (a ban decided by a layer above).

        Its transport packets are dropped before decryption (``refused-peer``)
        and its handshakes once its identity is proven, so a banned peer's
        flood over an established session costs one lookup per packet.  A
        forged packet naming the peer's index is dropped too, which is no loss.
        """
        if type(node_id) is not bytes or len(node_id) != 32:
            raise SessionError("node_id must be 32 bytes")
        refused = self._refused
        refused.pop(node_id, None)
        refused[node_id] = until
        if len(refused) > self.config.handshake_rate_keys:
            del refused[next(iter(refused))]

    def close(self, node_id: bytes, now: float) -> None:
        """Close the session with ``node_id`` (tells the peer if keys exist)."""
        peer = self._peers.get(node_id)
        if peer is None:
            return
        kp = self._send_keypair(peer, now)
        if kp is not None:
            self._send_frame(kp, dumps_canonical(CloseFrame().to_cbor()))
        self._remove_peer(peer, "closed")

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        """Process one datagram from ``addr``; bad input is dropped and counted.

        A source address that sends more unauthenticated datagrams than
        ``unauthenticated_per_address`` allows, or one while all sources
        together exceed ``unauthenticated_global``, is *muted* for ``mute_time``
        (longer for a repeat offender, see :meth:`_mute`):
        its datagrams are then dropped unread (``source-muted``), except
        transport packets of an established session, so that a flood costs a
        dictionary lookup per packet and a forger of the address cannot cut
        its owner's sessions (04 §5.5).
        """
        source = _source_host(addr)
        try:
            muted = self._muted.get(source)
            if muted is not None:
                if now < muted:
                    fast = parse_data_packet(data) if data[:1] == b"\xa4" else None
                    if fast is None or type(self._by_index.get(fast[0])) is not Keypair:
                        self.drops["source-muted"] += 1
                        return
                else:
                    del self._muted[source]
            self._authenticated = self._overload = False
            self._receive_datagram(data, addr, now)
        except Exception:  # the last resort: a bug here must not let a packet kill the node
            self.drops["internal-error"] += 1
            logger.exception("internal error on a datagram from %r", addr)
        if not self._authenticated and (
            self._overload or not self._unauthenticated.allow(source, now)
        ):
            self._mute(source, now)

    def _mute(self, source: Hashable, now: float) -> None:
        """Mute ``source``: for ``mute_time``, or twice its last mute (at most
        ``max_mute_time``) if it offends again within as long as that mute lasted
        after it ended, so a flooder pays its burst once per growing period."""
        cfg = self.config
        length = cfg.mute_time
        last = self._mute_history.pop(source, None)
        if last is not None and now - last[1] < last[0]:
            length = min(2.0 * last[0], cfg.max_mute_time)
        self._mute_history[source] = (length, now + length)
        self._muted[source] = now + length
        self.counters["sources_muted"] += 1
        limit = cfg.handshake_rate_keys
        if len(self._muted) > limit:
            del self._muted[next(iter(self._muted))]
        if len(self._mute_history) > limit:
            del self._mute_history[next(iter(self._mute_history))]

    @property
    def muted_sources(self) -> Mapping[Hashable, float]:
        """Muted source → when its mute ends (live; keys as the rate limits count
        sources: an IP address, or ``(host, port)`` on loopback).

        A driver may drop a datagram from a muted source on receipt, before it
        reaches :meth:`receive_datagram`, unless it begins with a transport
        packet's first byte (``0xa4``): those may belong to an established session.
        """
        return self._muted

    @property
    def blocked_sources(self) -> Mapping[Hashable, float]:
        """``(host, port)`` → until when: where a refused peer (:meth:`refuse`) sent
        its refused transport packets from (live).  A driver may drop every
        datagram from such an address on receipt until then."""
        return self._blocked

    def _receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        self.counters["datagrams_in"] += 1
        self.counters["bytes_in"] += len(data)
        if len(data) > self.config.datagram_size:
            self.drops["oversized"] += 1
            return
        packet: Any = None
        first = data[:1]
        if first == b"\xa4":
            fast = parse_data_packet(data)
            if fast is not None:
                self._on_data(fast[0], fast[1], fast[2], addr, now)
                return
        elif first in (b"\xa8", b"\xa9"):
            packet = parse_hs_fragment(data)
            # Work a sender can cause without keys: the fragments a responder
            # checks (kinds 1, 3, 5) share one budget with garbage (04 §5.5).
            if packet is not None and packet.kind & 1 and not self._unauth_global.allow(None, now):
                self.drops["unauthenticated-global"] += 1
                self._overload = True  # its source is muted: it adds to the overload
                return
        if packet is None and not self._unauth_global.allow(None, now):
            self.drops["unauthenticated-global"] += 1
            self._overload = True
            return
        try:
            if packet is None:
                packet = decode(data, expect=_PACKETS)
        except DecodeError as exc:
            self.drops["malformed"] += 1
            logger.debug("malformed datagram from %r: %s", addr, exc)
            return
        try:
            if type(packet) is DataPacket:
                self._on_data(packet.rid, packet.n, packet.ct, addr, now)
            elif type(packet) is HandshakeFragment or type(packet) is HsView:
                self._on_handshake_fragment(packet, len(data), addr, now)
            elif type(packet) is CookieReply:
                self._on_cookie(packet, addr, now)
        except (HandshakeError, CryptoError, DecodeError, ConfigError) as exc:
            self.drops["bad-handshake"] += 1
            logger.debug("dropped packet from %r: %s", addr, exc)
        except Exception:  # a bug here must not let a remote packet kill the node
            self.drops["internal-error"] += 1
            logger.exception("internal error on a packet from %r", addr)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        """Every datagram ready to go out, oldest first."""
        out = list(self._outbox)
        self._outbox.clear()
        return out

    def has_output(self) -> bool:
        """Whether datagrams or events are waiting (a cheap check for drivers)."""
        return bool(self._outbox or self._events)

    def next_event(self) -> Event | None:
        """The oldest unreported event, or None."""
        return self._events.popleft() if self._events else None

    @property
    def new_deadline(self) -> float:
        """The earliest deadline created since the last :meth:`get_timer` (inf: none).

        A driver sleeping until some time need only recompute the timer when
        this is earlier; :meth:`get_timer` scans every session.
        """
        return self._new_deadline

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next run (None: nothing scheduled)."""
        self._new_deadline = float("inf")
        when: list[float] = []
        cfg = self.config
        for peer in self._peers.values():
            if peer.handshake is not None:
                hs = peer.handshake
                when.append(min(hs.next_retry, hs.started + cfg.handshake_timeout))
            for kp in (peer.current, peer.previous, peer.next):
                if kp is not None:
                    when.append(kp.created + cfg.reject_after_time)
            if peer.reassembly:
                when.extend(r.deadline for r in peer.reassembly.values())
        if self._hs_buffer:
            when.append(next(iter(self._hs_buffer.values())).deadline)
        return min(when) if when else None

    def handle_timer(self, now: float) -> None:
        """Retransmit, time out handshakes, expire keys and partial messages."""
        cfg = self.config
        for peer in list(self._peers.values()):
            hs = peer.handshake
            if hs is not None:
                if now >= hs.started + cfg.handshake_timeout:
                    self._fail(peer, "timeout")
                elif now >= hs.next_retry:
                    self.counters["handshake_retransmits"] += 1
                    for frag in hs.sent:
                        self._emit_hs(frag, hs.addr, hs.cookie)
                    hs.retry *= 2
                    hs.next_retry = now + hs.retry
            expired = False
            for slot in ("previous", "next", "current"):
                kp = getattr(peer, slot)
                if kp is not None and now >= kp.created + cfg.reject_after_time:
                    self._forget_keypair(kp)
                    setattr(peer, slot, None)
                    expired = expired or slot != "next"
            if peer.reassembly:
                for msg_id, entry in list(peer.reassembly.items()):
                    if now >= entry.deadline:
                        self._drop_reassembly(peer, msg_id)
                        self.drops["reassembly-timeout"] += 1
            if (
                peer.node_id in self._peers
                and peer.current is None
                and peer.previous is None
                and peer.next is None
                and peer.handshake is None
            ):
                self._remove_peer(peer, "expired")
                if expired:
                    self._event(SessionClosed(peer.node_id, "expired"))
        table = self._accepted_biscuits
        while table and now - next(iter(table.values()))[0] > cfg.handshake_timeout:
            table.popitem(last=False)
        while self._hs_buffer:
            key, buffered = next(iter(self._hs_buffer.items()))
            if now < buffered.deadline:
                break
            self._evict_hs(key)
            self.drops["handshake-reassembly-timeout"] += 1

    def stats(self) -> dict[str, Any]:
        """Counters, drops by reason, and sizes of every bounded structure."""
        return {
            "sessions": sum(1 for p in self._peers.values() if p.current is not None),
            "peers": len(self._peers),
            "handshake_buffer": len(self._hs_buffer),
            "handshake_buffer_bytes": self._hs_buffer_bytes,
            "reassembly_bytes": self._reasm_global,
            "drops": dict(self.drops),
            **dict(self.counters),
        }

    def peer_state(self, node_id: bytes) -> dict[str, Any] | None:
        """What the endpoint holds for ``node_id`` (for tests and diagnostics)."""
        peer = self._peers.get(node_id)
        if peer is None:
            return None
        return {
            "addr": peer.addr,
            "established": peer.current is not None,
            "handshaking": peer.handshake is not None,
            "queued": len(peer.queue) if peer.queue else 0,
            "static": self._statics.get(node_id),
        }

    def index_count(self) -> int:
        """Receiver indices in use (keypairs and handshakes this endpoint started)."""
        return len(self._by_index)
