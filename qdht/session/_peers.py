"""Session state: peers, keypairs, pending handshakes, and the endpoint's shared helpers.

:class:`~qdht.session.SessionEndpoint` is one class split by section over
several modules, each a class in one chain: :class:`_EndpointBase` (here:
state, the cookie and address helpers, per-peer bookkeeping) ←
:class:`~qdht.session._handshakes._Handshakes` (04-handshake.md) ←
:class:`~qdht.session._frames._Frames` (05-transport.md: data, fragments,
rekeying) ← ``SessionEndpoint`` (the public API).  A section that calls into
a later one goes through the hooks declared at the end of
:class:`_EndpointBase`.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import os
import struct
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Final

from qdht.crypto.aead import ChaChaPoly
from qdht.errors import DecodeError, SessionError
from qdht.identity import Identity
from qdht.ratelimit import TokenBuckets
from qdht.session._config import SessionConfig
from qdht.session._events import (
    Event,
    HandshakeFailed,
    SessionClosed,
)
from qdht.session._noise import HandshakeState, KemOps
from qdht.session._replay import ReplayWindow
from qdht.wire import (
    MAC_SIZE,
    CloseFrame,
    CookieReply,
    DataPacket,
    FragmentFrame,
    HandshakeFragment,
    Hello,
    HsView,
    KeepaliveFrame,
    MessageFrame,
    dumps_canonical,
)

__all__ = [
    "BISCUIT_SIZE",
    "DATA_OVERHEAD",
    "HS_OVERHEAD",
    "KEEPALIVE_FRAME",
    "Keypair",
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


def _reason(exc: Exception) -> str:
    if isinstance(exc, DecodeError):
        return "bad-hello"
    text = str(exc)
    if text in ("version-mismatch", "bad-puzzle"):
        return text
    return "bad-handshake"


class _EndpointBase:
    """The state of :class:`~qdht.session.SessionEndpoint` and the helpers its sections share."""

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
        self._unauth_global: TokenBuckets[None] = TokenBuckets(
            rate=cfg.unauthenticated_global,
            burst=cfg.unauthenticated_burst_global,
            max_keys=1,
        )
        #: Muted source → when the mute ends (insertion-ordered, bounded).
        self._muted: dict[Hashable, float] = {}
        #: Source → (length, end) of its last mute (for escalation; bounded).
        self._mute_history: dict[Hashable, tuple[float, float]] = {}
        #: (host, port) of a refused peer → until when (see :meth:`_block`; bounded).
        self._blocked: dict[Hashable, float] = {}
        #: Refused node ID → until when (see :meth:`refuse`; bounded).
        self._refused: dict[bytes, float] = {}
        self._authenticated = False
        #: Set while a datagram is processed: it was dropped by the global budget.
        self._overload = False
        self._outbox: deque[tuple[bytes, Addr]] = deque()
        self._new_deadline = float("inf")
        self._events: deque[Event] = deque()
        self.drops: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        self._chunk = self.config.datagram_size - DATA_OVERHEAD

    def _block(self, addr: Addr, until: float) -> None:
        """Drop everything from the exact address ``addr`` until ``until``: where a
        refused peer sends from (only its own address: the check follows its keys)."""
        host = getattr(addr, "host", None)
        port = getattr(addr, "port", None)
        if host is None and type(addr) is tuple and len(addr) >= 2:
            host, port = addr[0], addr[1]
        blocked = self._blocked
        blocked.pop((host, port), None)
        blocked[(host, port)] = until
        if len(blocked) > self.config.handshake_rate_keys:
            del blocked[next(iter(blocked))]

    def _is_refused(self, node_id: bytes, now: float) -> bool:
        until = self._refused.get(node_id)
        if until is None:
            return False
        if now < until:
            self.drops["refused-peer"] += 1
            return True
        del self._refused[node_id]
        return False

    def _note_deadline(self, when: float) -> None:
        if when < self._new_deadline:
            self._new_deadline = when

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

    # ------------------------------------------------------------ hooks of later sections

    def _drop_reassembly(self, peer: Peer, msg_id: int) -> None:
        raise NotImplementedError  # _frames.py

    def _send_frame(self, kp: Keypair, frame: bytes) -> None:
        raise NotImplementedError  # _frames.py

    def _send_payload(self, kp: Keypair, payload: bytes) -> None:
        raise NotImplementedError  # _frames.py
