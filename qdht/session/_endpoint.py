"""The sans-IO session endpoint: every session of one local identity.

Implements ``protocol-spec/04-handshake.md`` and ``05-transport.md``.  Bytes
and time go in (``receive_datagram``, ``handle_timer``), datagrams and events
come out (``datagrams_to_send``, ``next_event``); addresses are opaque
hashables.  Remote input never raises: it is dropped and counted in
``stats()["drops"]``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import logging
import os
import struct
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Any, Final

from qdht.crypto.aead import ChaChaPoly
from qdht.errors import ConfigError, CryptoError, DecodeError, HandshakeError, SessionError
from qdht.identity import Identity, compute_node_id, puzzle_ok
from qdht.ratelimit import TokenBuckets
from qdht.session._config import SessionConfig
from qdht.session._events import (
    Event,
    HandshakeFailed,
    MessageReceived,
    SessionClosed,
    SessionEstablished,
)
from qdht.session._keylog import KeyLogEntry
from qdht.session._noise import PQIK, PQXX, HandshakeState, KemOps, SymmetricState
from qdht.session._replay import ReplayWindow
from qdht.wire import (
    MAC_INPUT_HEAD,
    MAC_SIZE,
    MAX_HS_FRAGMENTS,
    CloseFrame,
    CookieReply,
    DataPacket,
    FragmentFrame,
    HandshakeFragment,
    Hello,
    HsView,
    KeepaliveFrame,
    MessageFrame,
    decode,
    dumps_canonical,
    encode_data_packet,
    encode_frag_frame,
    encode_hs_fragment,
    encode_msg_frame,
    parse_data_packet,
    parse_frame,
    parse_hello,
    parse_hs_fragment,
)

__all__ = [
    "BISCUIT_SIZE",
    "DATA_OVERHEAD",
    "HS_OVERHEAD",
    "KEEPALIVE_FRAME",
    "Keypair",
    "SessionEndpoint",
    "cookie_mac",
    "mac1_key",
]

logger = logging.getLogger(__name__)

Addr = Hashable
_Frag = HandshakeFragment | HsView
Rng = Callable[[int], bytes]

#: Bytes of a ``hs`` packet besides its body (CBOR framing, indices, both MACs).
HS_OVERHEAD: Final = 112
#: Bytes of a ``data`` packet besides the application bytes of one fragment.
DATA_OVERHEAD: Final = 112
#: Early data allowed in a pqIK first message.
MAX_EARLY_DATA: Final = 1024
_BISCUIT_PLAIN = struct.Struct("!64s64s32sQIId16s")
#: epoch (1) ‖ counter (8) ‖ sealed state (200 + 16 tag)
BISCUIT_SIZE: Final = 1 + 8 + _BISCUIT_PLAIN.size + 16
_DATA_AD: Final = b"qdht-data"
_MAX_EVENTS: Final = 4096
#: Partly received messages held per peer (oldest evicted beyond).
_MAX_PARTIAL_MESSAGES: Final = 64
#: The non-initiating side rekeys this much later, so both sides rarely start at once.
_REKEY_JITTER: Final = 10.0

_PACKETS: Final = (HandshakeFragment, CookieReply, DataPacket)
_FRAMES: Final = (MessageFrame, FragmentFrame, KeepaliveFrame, CloseFrame)
_EXPECT_KIND: Final = {1: 2, 3: 4, 5: 6}  # what the initiator waits for after sending
#: The encoded keepalive frame (05-transport.md).
KEEPALIVE_FRAME: Final = dumps_canonical(KeepaliveFrame().to_cbor())


def cookie_mac(key: bytes, data: bytes) -> bytes:
    """The keyed BLAKE2b MAC of mac1, mac2 and cookies (04-handshake.md §6)."""
    return hashlib.blake2b(data, key=key, digest_size=MAC_SIZE).digest()


@functools.lru_cache(maxsize=4096)
def mac1_key(responder_node_id: bytes) -> bytes:
    """The mac1 key of handshakes with responder ``responder_node_id`` (04 §5)."""
    return hashlib.blake2b(b"qdht-mac1" + responder_node_id, digest_size=32).digest()


@functools.lru_cache(maxsize=4096)
def _cookie_key(responder_node_id: bytes) -> bytes:
    return hashlib.blake2b(b"qdht-cookie" + responder_node_id, digest_size=32).digest()


@functools.lru_cache(maxsize=4096)
def _addr_bytes(addr: Addr) -> bytes:
    return repr(addr).encode()


@functools.lru_cache(maxsize=4096)
def _addr_hash(addr: Addr) -> bytes:
    return hashlib.blake2b(_addr_bytes(addr), digest_size=16).digest()


@functools.lru_cache(maxsize=4096)
def _source_host(addr: Addr) -> Hashable:
    """Whom a handshake rate limit counts an address against: its IP address.

    Ports cost an attacker nothing, node IDs only a puzzle.  Loopback sources
    keep their port (as the DHT's STORE bound does), so that many nodes on one
    host -- tests, benchmarks, a local network -- are not one source.
    """
    host = getattr(addr, "host", None)
    port = getattr(addr, "port", None)
    if host is None and type(addr) is tuple and len(addr) >= 2:
        host, port = addr[0], addr[1]
    if type(host) is not str:
        return addr
    return (host, port) if _is_loopback(host) else host


@functools.lru_cache(maxsize=4096)
def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Keypair:
    """Transport keys of one completed handshake (05 §2)."""

    __slots__ = (
        "confirmed",
        "created",
        "initiator",
        "local_index",
        "peer",
        "pending",
        "recv",
        "remote_index",
        "reply",
        "reply_key",
        "send",
        "send_n",
        "window",
    )

    def __init__(
        self,
        keys: tuple[bytes, bytes],
        local_index: int,
        remote_index: int,
        created: float,
        initiator: bool,
        window: int,
        peer: Peer,
    ) -> None:
        self.send = ChaChaPoly(keys[0])
        self.recv = ChaChaPoly(keys[1])
        self.send_n = 0
        self.window = ReplayWindow(window)
        self.local_index = local_index
        self.remote_index = remote_index
        self.created = created
        self.initiator = initiator
        self.confirmed = initiator
        self.peer = peer
        self.reply: list[bytes] | None = None
        self.reply_key: bytes | None = None
        #: (pattern, handshake hash) until the responder sees the first packet.
        self.pending: tuple[str, bytes] | None = None


class Reassembly:
    """One partly received message."""

    __slots__ = ("count", "deadline", "nbytes", "parts")

    def __init__(self, count: int, deadline: float) -> None:
        self.count = count
        self.deadline = deadline
        self.nbytes = 0
        self.parts: dict[int, bytes] = {}


class Peer:
    """What the endpoint holds for one verified node ID."""

    __slots__ = (
        "addr",
        "current",
        "handshake",
        "next",
        "next_msg_id",
        "node_id",
        "previous",
        "queue",
        "reasm_bytes",
        "reassembly",
    )

    def __init__(self, node_id: bytes, addr: Addr) -> None:
        self.node_id = node_id
        self.addr = addr
        self.current: Keypair | None = None
        self.previous: Keypair | None = None
        self.next: Keypair | None = None
        self.handshake: PendingHandshake | None = None
        self.queue: deque[bytes] | None = None
        self.reassembly: dict[int, Reassembly] | None = None
        self.reasm_bytes = 0
        #: Fragmented-message id (05 §4): per peer, continuing across rekeys;
        #: -1 until the first fragmented message draws a random start.
        self.next_msg_id = -1


class PendingHandshake:
    """A handshake this endpoint started (the initiator keeps state; 04 §4)."""

    __slots__ = (
        "addr",
        "awaiting",
        "cookie",
        "hs",
        "mac1_key",
        "next_retry",
        "node_id",
        "parts",
        "parts_count",
        "remote_index",
        "retry",
        "sent",
        "sid",
        "started",
    )

    def __init__(
        self, hs: HandshakeState, sid: int, node_id: bytes, addr: Addr, now: float
    ) -> None:
        self.hs = hs
        self.sid = sid
        self.node_id = node_id
        self.addr = addr
        self.started = now
        self.mac1_key = mac1_key(node_id)
        self.cookie: bytes | None = None
        self.awaiting = 0
        self.sent: list[HsView] = []
        self.retry = 0.0
        self.next_retry = 0.0
        self.parts: dict[int, bytes] = {}
        self.parts_count = 0
        self.remote_index = 0


class _HsBuffer:
    """A partly received responder-bound handshake message (global buffer entry)."""

    __slots__ = ("count", "deadline", "first", "nbytes", "parts", "wire_bytes")

    def __init__(self, count: int, deadline: float) -> None:
        self.count = count
        self.deadline = deadline
        self.nbytes = 0
        self.wire_bytes = 0
        self.parts: dict[int, bytes] = {}
        self.first: _Frag | None = None


class _Rotating:
    """A secret that rotates every ``lifetime`` seconds and keeps its predecessor."""

    __slots__ = ("_aeads", "epoch", "lifetime", "previous", "rng", "rotated", "secret")

    def __init__(self, rng: Rng, lifetime: float) -> None:
        self.rng = rng
        self.lifetime = lifetime
        self.secret = b""
        self.previous = b""
        self.rotated = -float("inf")
        self.epoch = -1
        #: ChaChaPoly per secret (at most the current and the previous one).
        self._aeads: dict[bytes, ChaChaPoly] = {}

    def aead(self, secret: bytes) -> ChaChaPoly:
        """The AEAD keyed with ``secret``, set up once per secret, not per handshake."""
        box = self._aeads.get(secret)
        if box is None:
            if len(self._aeads) >= 2:
                self._aeads = {s: b for s, b in self._aeads.items() if s == self.secret}
            box = self._aeads[secret] = ChaChaPoly(secret)
        return box

    def current(self, now: float) -> bytes:
        if now - self.rotated >= self.lifetime:
            self.previous = self.secret if now - self.rotated < 2 * self.lifetime else b""
            self.secret = self.rng(32)
            self.rotated = now
            self.epoch = (self.epoch + 1) % 256
        return self.secret

    def candidates(self, now: float) -> list[bytes]:
        self.current(now)
        return [s for s in (self.secret, self.previous) if s]


class SessionEndpoint:
    """All sessions of one local :class:`~qdht.identity.Identity` (04/05), sans-IO.

    ``send_message(node_id, payload, now, addr=...)`` delivers to a verified
    node (starting a handshake as needed); ``receive_datagram`` feeds bytes
    in; ``datagrams_to_send`` gives bytes out; ``next_event`` reports
    established sessions, received messages and failures.
    """

    def __init__(
        self,
        identity: Identity,
        config: SessionConfig | None = None,
        *,
        rng: Rng = os.urandom,
        kem: KemOps | None = None,
        keylog: Callable[[str], None] | None = None,
    ) -> None:
        self.identity = identity
        #: Called with one line per installed keypair (09-keylog.md); None: no key log.
        self.keylog = keylog
        self.config = config if config is not None else SessionConfig()
        self._rng = rng
        self._kem = kem if kem is not None else KemOps(rng)
        self.node_id = identity.node_id
        self._static_pub = identity.xwing.public_key_bytes()
        self._mac1_key = mac1_key(self.node_id)
        self._cookie_key = _cookie_key(self.node_id)
        self._prologue = b"qdht-session" + bytes(
            [self.config.protocol_version, identity.difficulty]
        )
        self._hello = dumps_canonical(
            Hello(
                self.config.protocol_version, identity.mldsa_public_hash, identity.nonce
            ).to_cbor()
        )
        self._peers: OrderedDict[bytes, Peer] = OrderedDict()
        #: Verified static X-Wing keys by node ID (bounded, least recently used out).
        self._statics: OrderedDict[bytes, bytes] = OrderedDict()
        self._by_index: dict[int, Keypair | PendingHandshake] = {}
        self._hs_buffer: OrderedDict[tuple[Addr, int, int], _HsBuffer] = OrderedDict()
        self._hs_buffer_bytes = 0
        self._reasm_global = 0
        self._cookie_secret = _Rotating(rng, self.config.secret_rotation)
        self._biscuit_key = _Rotating(rng, self.config.secret_rotation)
        self._biscuit_counter = 0
        self._accepted_biscuits: OrderedDict[int, tuple[float, int, bytes]] = OrderedDict()
        self._biscuit_floor = 0
        self._load_second = -1
        self._load_count = 0
        cfg = self.config
        # Handshake rate limits (04 §5.5); per address, the key is (source
        # host, whether mac2 validated it).
        self._hs_per_address: TokenBuckets[Hashable] = TokenBuckets(
            rate=cfg.handshake_rate_per_address,
            burst=cfg.handshake_burst_per_address,
            max_keys=cfg.handshake_rate_keys,
        )
        self._hs_global: TokenBuckets[None] = TokenBuckets(
            rate=cfg.handshake_rate_global, burst=cfg.handshake_burst_global, max_keys=1
        )
        self._hs_per_node: TokenBuckets[bytes] = TokenBuckets(
            rate=cfg.handshake_rate_per_node,
            burst=cfg.handshake_burst_per_node,
            max_keys=cfg.handshake_rate_keys,
        )
        self._unauthenticated: TokenBuckets[Hashable] = TokenBuckets(
            rate=cfg.unauthenticated_per_address,
            burst=cfg.unauthenticated_burst_per_address,
            max_keys=cfg.handshake_rate_keys,
        )
        #: Muted source → when the mute ends (insertion-ordered, bounded).
        self._muted: dict[Hashable, float] = {}
        #: Refused node ID → until when (see :meth:`refuse`; bounded).
        self._refused: dict[bytes, float] = {}
        self._authenticated = False
        self._outbox: deque[tuple[bytes, Addr]] = deque()
        self._new_deadline = float("inf")
        self._events: deque[Event] = deque()
        self.drops: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        self._chunk = self.config.datagram_size - DATA_OVERHEAD

    # ------------------------------------------------------------ public API

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

    def _is_refused(self, node_id: bytes, now: float) -> bool:
        until = self._refused.get(node_id)
        if until is None:
            return False
        if now < until:
            self.drops["refused-peer"] += 1
            return True
        del self._refused[node_id]
        return False

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
        ``unauthenticated_per_address`` allows is *muted* for ``mute_time``:
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
            self._authenticated = False
            self._receive_datagram(data, addr, now)
        except Exception:  # the last resort: a bug here must not let a packet kill the node
            self.drops["internal-error"] += 1
            logger.exception("internal error on a datagram from %r", addr)
        if not self._authenticated and not self._unauthenticated.allow(source, now):
            self._muted[source] = now + self.config.mute_time
            self.counters["sources_muted"] += 1
            if len(self._muted) > self.config.handshake_rate_keys:
                del self._muted[next(iter(self._muted))]

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

    def _note_deadline(self, when: float) -> None:
        if when < self._new_deadline:
            self._new_deadline = when

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

    # ------------------------------------------------------------ helpers

    def _event(self, event: Event) -> None:
        if len(self._events) >= _MAX_EVENTS:
            self._events.popleft()
            self.drops["event-overflow"] += 1
        self._events.append(event)

    def _peer_for(self, node_id: bytes, addr: Addr) -> Peer:
        peer = self._peers.get(node_id)
        if peer is None:
            if node_id == self.node_id:
                raise SessionError("cannot open a session with our own node ID")
            if len(self._peers) >= self.config.max_sessions:
                _, oldest = next(iter(self._peers.items()))
                self._remove_peer(oldest, "evicted")
            peer = Peer(node_id, addr)
            self._peers[node_id] = peer
        return peer

    def _remember_static(self, node_id: bytes, static: bytes) -> None:
        """Cache a verified static key so the next handshake with the node can be pqIK."""
        statics = self._statics
        statics[node_id] = static
        statics.move_to_end(node_id)
        if len(statics) > self.config.static_key_cache:
            statics.popitem(last=False)

    def _new_index(self) -> int:
        while True:
            index = int.from_bytes(self._rng(4), "big")
            if index and index not in self._by_index:
                return index

    def _send_keypair(self, peer: Peer, now: float) -> Keypair | None:
        kp = peer.current
        if kp is None or now - kp.created >= self.config.reject_after_time:
            return None
        return kp

    def _remove_peer(self, peer: Peer, reason: str) -> None:
        for kp in (peer.current, peer.previous, peer.next):
            if kp is not None:
                self._forget_keypair(kp)
        if peer.handshake is not None:
            self._by_index.pop(peer.handshake.sid, None)
        if peer.reassembly:
            for msg_id in list(peer.reassembly):
                self._drop_reassembly(peer, msg_id)
        had_session = peer.current is not None or peer.previous is not None
        self._peers.pop(peer.node_id, None)
        if had_session:
            self._event(SessionClosed(peer.node_id, reason))

    def _forget_keypair(self, kp: Keypair) -> None:
        if self._by_index.get(kp.local_index) is kp:
            del self._by_index[kp.local_index]

    def _fail(self, peer: Peer, reason: str) -> None:
        hs = peer.handshake
        assert hs is not None
        self._by_index.pop(hs.sid, None)
        peer.handshake = None
        dropped = len(peer.queue) if peer.queue else 0
        peer.queue = None
        self.counters["handshakes_failed"] += 1
        self._event(HandshakeFailed(peer.node_id, hs.addr, reason, dropped))
        if peer.current is None and peer.next is None and peer.previous is None:
            self._peers.pop(peer.node_id, None)

    def _emit(self, data: bytes, addr: Addr) -> None:
        self.counters["datagrams_out"] += 1
        self.counters["bytes_out"] += len(data)
        self._outbox.append((data, addr))

    # ------------------------------------------------------------ handshake: sending

    def _fragments(self, kind: int, sid: int, rid: int, body: bytes, key: bytes) -> list[HsView]:
        size = self.config.datagram_size - HS_OVERHEAD
        count = max(1, -(-len(body) // size))
        if count > MAX_HS_FRAGMENTS:
            raise ConfigError("datagram_size too small for a handshake message")
        frags = []
        for i in range(count):
            chunk = body[i * size : (i + 1) * size]
            mac1 = cookie_mac(
                key, MAC_INPUT_HEAD.pack(b"qdht-hs", kind, sid, rid, i, count) + chunk
            )
            frags.append(HsView(kind, sid, rid, i, count, chunk, mac1))
        return frags

    def _encode_hs(self, frag: HsView, cookie: bytes | None) -> bytes:
        mac2 = None if cookie is None else cookie_mac(cookie, frag.mac_input() + frag.mac1)
        return encode_hs_fragment(frag, mac2)

    def _emit_hs(self, frag: HsView, addr: Addr, cookie: bytes | None) -> None:
        self._emit(self._encode_hs(frag, cookie), addr)

    def _start_handshake(self, peer: Peer, now: float, *, early: bytes | None = None) -> None:
        sid = self._new_index()
        static = self._statics.get(peer.node_id)
        if static is not None:
            hs = HandshakeState(
                PQIK,
                initiator=True,
                prologue=self._prologue,
                s=self.identity.xwing,
                rs=static,
                kem=self._kem,
            )
            hello = Hello(
                self.config.protocol_version,
                self.identity.mldsa_public_hash,
                self.identity.nonce,
                early,
            )
            body = hs.write_message(dumps_canonical(hello.to_cbor()))
            kind = 5
            if early is not None and peer.queue:
                peer.queue.popleft()
        else:
            hs = HandshakeState(
                PQXX, initiator=True, prologue=self._prologue, s=self.identity.xwing, kem=self._kem
            )
            body = hs.write_message(b"")
            kind = 1
        pending = PendingHandshake(hs, sid, peer.node_id, peer.addr, now)
        pending.awaiting = _EXPECT_KIND[kind]
        pending.sent = self._fragments(kind, sid, 0, body, pending.mac1_key)
        pending.retry = self.config.handshake_retry
        pending.next_retry = now + pending.retry
        self._note_deadline(pending.next_retry)
        peer.handshake = pending
        self._by_index[sid] = pending
        self.counters["handshakes_started"] += 1
        for frag in pending.sent:
            self._emit_hs(frag, peer.addr, None)

    # ------------------------------------------------------------ handshake: receiving

    def _on_handshake_fragment(self, frag: _Frag, wire_len: int, addr: Addr, now: float) -> None:
        if frag.kind in (2, 4, 6):
            self._on_initiator_fragment(frag, addr, now)
            return
        # Responder-bound (kinds 1, 3, 5): no per-initiator state (04 §5).
        mac_data = frag.mac_input()
        if not hmac.compare_digest(cookie_mac(self._mac1_key, mac_data), frag.mac1):
            self.drops["bad-mac1"] += 1
            return
        if frag.kind in (1, 5):
            if frag.rid != 0:
                self.drops["bad-handshake"] += 1
                return
            if not self._check_load(frag, mac_data, addr, now):
                return
        key = (addr, frag.sid, frag.kind)
        entry = self._hs_buffer.get(key)
        if entry is None:
            entry = _HsBuffer(frag.count, now + self.config.handshake_timeout)
            self._note_deadline(entry.deadline)
            self._hs_buffer[key] = entry
        elif entry.count != frag.count:
            self.drops["bad-fragment"] += 1
            return
        if frag.index in entry.parts:
            self.drops["duplicate-fragment"] += 1
            return
        entry.parts[frag.index] = frag.body
        entry.nbytes += len(frag.body)
        entry.wire_bytes += wire_len
        self._hs_buffer_bytes += len(frag.body)
        if frag.index == 0:
            entry.first = frag
        cfg = self.config
        while (
            len(self._hs_buffer) > cfg.handshake_reassembly_slots
            or self._hs_buffer_bytes > cfg.handshake_reassembly_bytes
        ):
            oldest = next(iter(self._hs_buffer))
            self._evict_hs(oldest)
            self.drops["handshake-buffer-evicted"] += 1
        if key not in self._hs_buffer or len(entry.parts) < entry.count:
            return
        self._evict_hs(key)
        body = b"".join(entry.parts[i] for i in range(entry.count))
        if frag.kind == 1:
            self._respond_xx1(frag.sid, body, entry.wire_bytes, addr, now)
        elif frag.kind == 3:
            self._respond_xx3(frag.sid, frag.rid, body, addr, now)
        else:
            self._respond_ik1(frag.sid, body, entry.wire_bytes, addr, now)

    def _evict_hs(self, key: tuple[Addr, int, int]) -> None:
        entry = self._hs_buffer.pop(key)
        self._hs_buffer_bytes -= entry.nbytes

    def _check_load(self, frag: _Frag, mac_data: bytes, addr: Addr, now: float) -> bool:
        """Whether to process this first-message fragment (04 §5.2, §5.5).

        Under load a cookie (mac2) is demanded before any KEM work; then the
        per-address and global initiation buckets are charged (fragment 0 only).
        """
        second = int(now)
        if second != self._load_second:
            self._load_second = second
            self._load_count = 0
        if frag.index == 0:
            self._load_count += 1
        validated = False
        if frag.mac2 is not None:
            for secret in self._cookie_secret.candidates(now):
                cookie = cookie_mac(secret, _addr_bytes(addr))
                # Constant time: the cookie is secret (04-handshake.md §5.2).
                if hmac.compare_digest(cookie_mac(cookie, mac_data + frag.mac1), frag.mac2):
                    validated = True
                    break
        if not validated and self._load_count > self.config.under_load_handshakes_per_s:
            if frag.index == 0:
                self._send_cookie(frag, addr, now)
            self.drops["cookie-required"] += 1
            return False
        if frag.index != 0:
            return True
        if not self._hs_per_address.allow((_source_host(addr), validated), now):
            # A spoofer drains only the unvalidated bucket of the address it
            # forges; the real owner gets a cookie and continues with its own.
            if not validated:
                self._send_cookie(frag, addr, now)
            self.drops["handshake-rate-address"] += 1
            return False
        if not self._hs_global.allow(None, now):
            self.drops["handshake-rate-global"] += 1
            return False
        return True

    def _send_cookie(self, frag: _Frag, addr: Addr, now: float) -> None:
        """Answer a first-message fragment 0 with a cookie (about 80 bytes, never amplifying).

        Not rate limited: any per-address limit on cookies could be drained by
        a sender forging the address, locking its owner out.
        """
        secret = self._cookie_secret.current(now)
        cookie = cookie_mac(secret, _addr_bytes(addr))
        salt = self._rng(16)
        box_key = hashlib.blake2b(salt + frag.mac1, key=self._cookie_key, digest_size=32).digest()
        box = ChaChaPoly(box_key).encrypt(0, frag.mac1, cookie)
        self._emit(dumps_canonical(CookieReply(frag.sid, salt, box).to_cbor()), addr)
        self.counters["cookies_sent"] += 1

    def _send_reply(self, frags: list[HsView], received: int, addr: Addr) -> list[bytes] | None:
        """Send a reply to an unvalidated address within the amplification bound (04 §5)."""
        datagrams = [encode_hs_fragment(f) for f in frags]
        total = sum(map(len, datagrams))
        if total > self.config.amplification_factor * received:
            self.drops["amplification-limit"] += 1
            return None
        for d in datagrams:
            self._emit(d, addr)
        return datagrams

    def _verify_hello(self, static: bytes, payload: bytes) -> tuple[bytes, bytes | None]:
        """(proven node ID, pqIK early data) of the peer's hello (04 §6), or raise."""
        fields = parse_hello(payload)
        if fields is None:  # early data, or malformed: the strict decoder judges
            hello = decode(payload, expect=(Hello,))
            assert isinstance(hello, Hello)
            version, mldsa, nonce, early = hello.version, hello.mldsa, hello.nonce, hello.early
        else:
            (version, mldsa, nonce), early = fields, None
        if version != self.config.protocol_version:
            raise HandshakeError("version-mismatch")
        node_id = compute_node_id(static, mldsa, nonce)
        if not puzzle_ok(node_id, self.identity.difficulty):
            raise HandshakeError("bad-puzzle")
        return node_id, early

    def _respond_xx1(self, isid: int, body: bytes, received: int, addr: Addr, now: float) -> None:
        hs = HandshakeState(
            PQXX, initiator=False, prologue=self._prologue, s=self.identity.xwing, kem=self._kem
        )
        if hs.read_message(body) != b"":
            self.drops["bad-handshake"] += 1
            return
        msg2 = hs.write_message(self._hello)
        rsid = self._new_index()
        biscuit = self._seal_biscuit(hs.ss, isid, rsid, addr, now)
        frags = self._fragments(2, rsid, isid, biscuit + msg2, self._mac1_key)
        if self._send_reply(frags, received, addr) is not None:
            self.counters["responder_msg2"] += 1

    def _seal_biscuit(
        self, ss: SymmetricState, isid: int, rsid: int, addr: Addr, now: float
    ) -> bytes:
        ck, h, k, n = ss.snapshot()
        assert k is not None
        key = self._biscuit_key.current(now)
        self._biscuit_counter += 1
        header = bytes([self._biscuit_key.epoch]) + self._biscuit_counter.to_bytes(8, "big")
        plain = _BISCUIT_PLAIN.pack(ck, h, k, n, isid, rsid, now, _addr_hash(addr))
        return header + self._biscuit_key.aead(key).encrypt(self._biscuit_counter, header, plain)

    def _open_biscuit(
        self, biscuit: bytes, now: float
    ) -> tuple[int, tuple[bytes, bytes, bytes, int, int, int, float, bytes]] | None:
        header = biscuit[:9]
        counter = int.from_bytes(biscuit[1:9], "big")
        for secret in self._biscuit_key.candidates(now):
            try:
                plain = self._biscuit_key.aead(secret).decrypt(counter, header, biscuit[9:])
            except CryptoError:
                continue
            return counter, _BISCUIT_PLAIN.unpack(plain)
        return None

    def _respond_xx3(self, isid: int, rsid: int, body: bytes, addr: Addr, now: float) -> None:
        if len(body) <= BISCUIT_SIZE:
            self.drops["truncated"] += 1
            return
        opened = self._open_biscuit(body[:BISCUIT_SIZE], now)
        if opened is None:
            self.drops["bad-biscuit"] += 1
            return
        counter, (ck, h, k, n, b_isid, b_rsid, created, addr_hash) = opened
        if (b_isid, b_rsid) != (isid, rsid) or addr_hash != _addr_hash(addr):
            self.drops["bad-biscuit"] += 1
            return
        if now - created > self.config.handshake_timeout:
            self.drops["expired-biscuit"] += 1
            return
        digest = hashlib.blake2b(body, digest_size=16).digest()
        seen = self._accepted_biscuits.get(counter)
        if seen is not None or counter <= self._biscuit_floor:
            kp = self._by_index.get(seen[1]) if seen is not None else None
            if seen is not None and isinstance(kp, Keypair) and kp.reply and seen[2] == digest:
                for d in kp.reply:  # our msg4 was lost: the initiator retransmitted msg3
                    self._emit(d, addr)
                self.counters["handshake_retransmits"] += 1
            else:
                self.drops["replayed-biscuit"] += 1
            return
        hs = HandshakeState.resume(
            PQXX, SymmetricState.restore(ck, h, k, n), 2, s=self.identity.xwing, kem=self._kem
        )
        try:
            payload = hs.read_message(body[BISCUIT_SIZE:])
            assert hs.rs is not None
            node_id, _ = self._verify_hello(hs.rs, payload)
        except (HandshakeError, DecodeError) as exc:
            self.drops[_reason(exc)] += 1
            return
        if rsid in self._by_index or node_id == self.node_id:
            self.drops["bad-handshake"] += 1
            return
        if self._is_refused(node_id, now):
            return
        if not self._hs_per_node.allow(node_id, now):
            self.drops["handshake-rate-node"] += 1
            return
        self._remember_biscuit(counter, now, rsid, digest)
        msg4 = hs.write_message(b"")
        frags = self._fragments(4, rsid, isid, msg4, self._mac1_key)
        datagrams = [self._encode_hs(f, None) for f in frags]
        for d in datagrams:  # the biscuit proved the address receives our packets
            self._emit(d, addr)
        self._install_responder_keys(hs, node_id, rsid, isid, addr, now, datagrams, digest)

    def _remember_biscuit(self, counter: int, now: float, rsid: int, digest: bytes) -> None:
        table = self._accepted_biscuits
        table[counter] = (now, rsid, digest)
        while table:
            oldest_counter, (when, _, _) = next(iter(table.items()))
            if len(table) <= self.config.biscuit_replay_entries and (
                now - when <= self.config.handshake_timeout
            ):
                break
            del table[oldest_counter]
            self._biscuit_floor = max(self._biscuit_floor, oldest_counter)

    def _respond_ik1(self, isid: int, body: bytes, received: int, addr: Addr, now: float) -> None:
        digest = hashlib.blake2b(body, digest_size=16).digest()
        hs = HandshakeState(
            PQIK, initiator=False, prologue=self._prologue, s=self.identity.xwing, kem=self._kem
        )
        try:
            payload = hs.read_message(body)
            assert hs.rs is not None
            node_id, early = self._verify_hello(hs.rs, payload)
        except (HandshakeError, DecodeError) as exc:
            self.drops[_reason(exc)] += 1
            return
        if node_id == self.node_id:
            self.drops["bad-handshake"] += 1
            return
        peer = self._peers.get(node_id)
        if peer is not None and peer.next is not None and peer.next.reply_key == digest:
            if peer.next.reply:  # a retransmitted (or replayed) first message
                for d in peer.next.reply:
                    self._emit(d, addr)
            self.counters["handshake_duplicates"] += 1
            return
        if self._is_refused(node_id, now):
            return
        if not self._hs_per_node.allow(node_id, now):
            self.drops["handshake-rate-node"] += 1
            return
        rsid = self._new_index()
        msg2 = hs.write_message(self._hello)
        frags = self._fragments(6, rsid, isid, msg2, self._mac1_key)
        datagrams = self._send_reply(frags, received, addr)
        if datagrams is None:
            return
        self._install_responder_keys(hs, node_id, rsid, isid, addr, now, datagrams, digest)
        if early is not None:
            self._event(MessageReceived(node_id, addr, early, early=True))

    def _install_responder_keys(
        self,
        hs: HandshakeState,
        node_id: bytes,
        rsid: int,
        isid: int,
        addr: Addr,
        now: float,
        reply: list[bytes],
        digest: bytes,
    ) -> None:
        peer = self._peer_for(node_id, addr)
        assert hs.rs is not None
        self._remember_static(node_id, hs.rs)
        if peer.current is None:
            peer.addr = addr
        keys = hs.split()
        if self.keylog is not None:
            self._log_keys(node_id, rsid, isid, keys, hs.handshake_hash)
        kp = Keypair(keys, rsid, isid, now, False, self.config.replay_window, peer)
        self._note_deadline(now + self.config.reject_after_time)
        kp.reply, kp.reply_key = reply, digest
        kp.pending = (hs.pattern, hs.handshake_hash)
        if peer.next is not None:
            self._forget_keypair(peer.next)
        peer.next = kp
        self._by_index[rsid] = kp
        self.counters["handshakes_responded"] += 1

    def _on_initiator_fragment(self, frag: _Frag, addr: Addr, now: float) -> None:
        pending = self._by_index.get(frag.rid)
        if not isinstance(pending, PendingHandshake) or pending.awaiting != frag.kind:
            self.drops["unknown-index"] += 1
            return
        mac_data = frag.mac_input()
        if not hmac.compare_digest(cookie_mac(pending.mac1_key, mac_data), frag.mac1):
            self.drops["bad-mac1"] += 1
            return
        if pending.parts and (
            pending.parts_count != frag.count or pending.remote_index != frag.sid
        ):
            # A reply to a retransmission: the newest reply replaces the partial one.
            pending.parts = {}
        if frag.index in pending.parts:
            self.drops["duplicate-fragment"] += 1
            return
        pending.parts[frag.index] = frag.body
        pending.parts_count = frag.count
        pending.remote_index = frag.sid
        if len(pending.parts) < frag.count:
            return
        body = b"".join(pending.parts[i] for i in range(frag.count))
        pending.parts = {}
        peer = self._peers.get(pending.node_id)
        assert peer is not None
        assert peer.handshake is pending
        hs = pending.hs
        biscuit = b""
        if frag.kind == 2:
            if len(body) <= BISCUIT_SIZE:
                self.drops["truncated"] += 1
                return
            biscuit, body = body[:BISCUIT_SIZE], body[BISCUIT_SIZE:]
        try:
            payload = hs.read_message(body)
        except HandshakeError:
            self.drops["bad-handshake"] += 1
            return
        if frag.kind in (2, 6):
            assert hs.rs is not None
            try:
                node_id, _ = self._verify_hello(hs.rs, payload)
            except (HandshakeError, DecodeError) as exc:
                self._fail(peer, _reason(exc))
                return
            if node_id != pending.node_id:
                self._fail(peer, "wrong-identity")
                return
            self._remember_static(node_id, hs.rs)
        if frag.kind == 2:
            msg3 = hs.write_message(self._hello)
            pending.sent = self._fragments(
                3, pending.sid, frag.sid, biscuit + msg3, pending.mac1_key
            )
            pending.awaiting = 4
            pending.retry = self.config.handshake_retry
            pending.next_retry = now + pending.retry
            self._note_deadline(pending.next_retry)
            for f in pending.sent:
                self._emit_hs(f, pending.addr, None)
            return
        # kind 4 (pqXX) or 6 (pqIK): complete.
        keys = hs.split()
        if self.keylog is not None:
            self._log_keys(peer.node_id, pending.sid, frag.sid, keys, hs.handshake_hash)
        kp = Keypair(keys, pending.sid, frag.sid, now, True, self.config.replay_window, peer)
        self._note_deadline(now + self.config.reject_after_time)
        self._by_index[pending.sid] = kp
        peer.handshake = None
        peer.addr = addr
        self._promote(peer, kp)
        self.counters["handshakes_completed"] += 1
        self._event(SessionEstablished(peer.node_id, addr, True, hs.pattern, hs.handshake_hash))
        queue, peer.queue = peer.queue, None
        if queue:
            for payload_ in queue:
                self._send_payload(kp, payload_)
        else:
            self._send_frame(kp, KEEPALIVE_FRAME)

    def _log_keys(
        self, peer_id: bytes, local: int, remote: int, keys: tuple[bytes, bytes], hh: bytes
    ) -> None:
        """One key log line (09-keylog.md), before any packet uses the keys."""
        assert self.keylog is not None
        line = KeyLogEntry(peer_id, local, remote, keys[0], keys[1], hh).line()
        try:
            self.keylog(line)
        except Exception:  # a broken hook must not break the session
            logger.exception("key log hook failed")

    def _promote(self, peer: Peer, kp: Keypair) -> None:
        if peer.previous is not None:
            self._forget_keypair(peer.previous)
        peer.previous = peer.current
        peer.current = kp

    def _on_cookie(self, packet: CookieReply, addr: Addr, now: float) -> None:
        pending = self._by_index.get(packet.rid)
        if not isinstance(pending, PendingHandshake) or pending.awaiting not in (2, 6):
            self.drops["unknown-index"] += 1
            return
        mac1 = pending.sent[0].mac1
        box_key = hashlib.blake2b(
            packet.salt + mac1, key=_cookie_key(pending.node_id), digest_size=32
        ).digest()
        try:
            pending.cookie = ChaChaPoly(box_key).decrypt(0, mac1, packet.box)
        except CryptoError:
            self.drops["bad-cookie"] += 1
            return
        self.counters["cookies_received"] += 1
        for f in pending.sent:
            self._emit_hs(f, pending.addr, pending.cookie)

    # ------------------------------------------------------------ transport

    def _send_payload(self, kp: Keypair, payload: bytes) -> None:
        chunk = self._chunk
        if len(payload) <= chunk:
            self._send_frame(kp, encode_msg_frame(payload))
            return
        peer = kp.peer
        msg_id = peer.next_msg_id
        if msg_id < 0:
            # A random start, so that the ids of a restarted node do not meet
            # the receiver's partial messages from before the restart (05 §4).
            msg_id = int.from_bytes(self._rng(4), "big")
        peer.next_msg_id = msg_id + 1
        count = -(-len(payload) // chunk)
        for i in range(count):
            part = payload[i * chunk : (i + 1) * chunk]
            self._send_frame(kp, encode_frag_frame(msg_id, i, count, part))

    def _send_frame(self, kp: Keypair, frame: bytes) -> None:
        n = kp.send_n
        kp.send_n = n + 1
        rid = kp.remote_index
        ct = kp.send.encrypt(n, _DATA_AD + rid.to_bytes(4, "big"), frame)
        self._emit(encode_data_packet(rid, n, ct), kp.peer.addr)

    def _maybe_rekey(self, peer: Peer, kp: Keypair, now: float) -> None:
        if peer.handshake is not None or peer.next is not None:
            return
        age = now - kp.created
        limit = self.config.rekey_after_time + (0.0 if kp.initiator else _REKEY_JITTER)
        if age >= limit or kp.send_n >= self.config.rekey_after_messages:
            self.counters["rekeys"] += 1
            self._start_handshake(peer, now)

    def _on_data(self, rid: int, n: int, ct: bytes, addr: Addr, now: float) -> None:
        kp = self._by_index.get(rid)
        if not isinstance(kp, Keypair):
            self.drops["unknown-index"] += 1
            return
        if self._refused and self._is_refused(kp.peer.node_id, now):
            self._authenticated = True  # a known session's packet: not a reason to mute
            return
        if now - kp.created >= self.config.reject_after_time:
            self.drops["expired-keys"] += 1
            return
        reason = kp.window.check(n)
        if reason is not None:
            self.drops[reason] += 1
            return
        try:
            plain = kp.recv.decrypt(n, _DATA_AD + rid.to_bytes(4, "big"), ct)
        except CryptoError:
            self.drops["bad-tag"] += 1
            return
        kp.window.mark(n)
        self._authenticated = True
        peer = kp.peer
        if self._peers.get(peer.node_id) is not peer:
            self.drops["unknown-index"] += 1
            return
        if not kp.confirmed:
            kp.confirmed = True
            pattern, hs_hash = kp.pending or ("", b"")
            kp.reply = kp.reply_key = kp.pending = None
            if peer.next is kp:
                peer.next = None
            self._promote(peer, kp)
            self.counters["handshakes_completed"] += 1
            self._event(SessionEstablished(peer.node_id, addr, False, pattern, hs_hash))
            if peer.queue:
                queue, peer.queue = peer.queue, None
                for payload in queue:
                    self._send_payload(kp, payload)
        peer.addr = addr
        if plain == KEEPALIVE_FRAME:  # what confirms every handshake: skip the decoders
            return
        fast = parse_frame(plain)
        if fast is not None:
            if fast[2] == 1:
                self._event(MessageReceived(peer.node_id, addr, fast[3]))
            else:
                self._on_fragment(peer, *fast, addr, now)
            return
        try:
            frame = decode(plain, expect=_FRAMES)
        except DecodeError:
            self.drops["bad-frame"] += 1
            return
        if type(frame) is MessageFrame:
            self._event(MessageReceived(peer.node_id, addr, frame.payload))
        elif type(frame) is FragmentFrame:
            self._on_fragment(
                peer, frame.msg_id, frame.index, frame.count, frame.payload, addr, now
            )
        elif type(frame) is CloseFrame:
            self._remove_peer(peer, "closed-by-peer")

    def _on_fragment(
        self,
        peer: Peer,
        msg_id: int,
        index: int,
        count: int,
        chunk: bytes,
        addr: Addr,
        now: float,
    ) -> None:
        cfg = self.config
        if peer.reassembly is None:
            peer.reassembly = {}
        entry = peer.reassembly.get(msg_id)
        if entry is None:
            if len(peer.reassembly) >= _MAX_PARTIAL_MESSAGES:
                self._evict_oldest_partial(peer)
            entry = Reassembly(count, now + cfg.reassembly_timeout)
            self._note_deadline(entry.deadline)
            peer.reassembly[msg_id] = entry
        elif entry.count != count:
            self.drops["bad-fragment"] += 1
            return
        if index in entry.parts:
            self.drops["duplicate-fragment"] += 1
            return
        size = len(chunk)
        if entry.nbytes + size > cfg.max_message_size:
            self._drop_reassembly(peer, msg_id)
            self.drops["oversized"] += 1
            return
        # Over a cap, the peer's oldest partial messages go first: a message
        # that stalls has most likely lost a fragment, newer ones may complete.
        while (
            peer.reasm_bytes + size > cfg.reassembly_peer_bytes
            or self._reasm_global + size > cfg.reassembly_global_bytes
        ):
            oldest = next(iter(peer.reassembly))
            if oldest == msg_id:
                self.drops["reassembly-full"] += 1
                if not entry.parts:
                    self._drop_reassembly(peer, msg_id)
                return
            self._evict_oldest_partial(peer)
        entry.parts[index] = chunk
        entry.nbytes += size
        peer.reasm_bytes += size
        self._reasm_global += size
        if len(entry.parts) == entry.count:
            payload = b"".join(entry.parts[i] for i in range(entry.count))
            self._drop_reassembly(peer, msg_id)
            self._event(MessageReceived(peer.node_id, addr, payload))

    def _evict_oldest_partial(self, peer: Peer) -> None:
        assert peer.reassembly
        self._drop_reassembly(peer, next(iter(peer.reassembly)))
        self.drops["reassembly-evicted"] += 1

    def _drop_reassembly(self, peer: Peer, msg_id: int) -> None:
        assert peer.reassembly is not None
        entry = peer.reassembly.pop(msg_id)
        peer.reasm_bytes -= entry.nbytes
        self._reasm_global -= entry.nbytes
        if not peer.reassembly:
            peer.reassembly = None


def _reason(exc: Exception) -> str:
    if isinstance(exc, DecodeError):
        return "bad-hello"
    text = str(exc)
    if text in ("version-mismatch", "bad-puzzle"):
        return text
    return "bad-handshake"
