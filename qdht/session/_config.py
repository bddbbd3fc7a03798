"""Every limit and timer of the session layer, with its default (05-transport.md §7)."""

from __future__ import annotations

from typing import Final

import attrs

from qdht import validators
from qdht.errors import ConfigError
from qdht.wire import DEFAULT_LIMITS

__all__ = ["KEYLOG_ENV", "SessionConfig"]

#: The environment variable naming the session key log file (09-keylog.md);
#: here, so that a node checks it without loading :mod:`qdht.session._keylog`.
KEYLOG_ENV: Final = "QDHT_KEYLOGFILE"


@attrs.frozen
class SessionConfig:
    """Limits and timers of one :class:`~qdht.session.SessionEndpoint` (times in seconds)."""

    #: Largest datagram sent (bytes); handshake messages and large
    #: application messages are fragmented to fit.
    datagram_size: int = attrs.field(default=1200, validator=validators.positive)
    #: Largest application message (bytes).
    max_message_size: int = attrs.field(
        default=DEFAULT_LIMITS.max_bytes, validator=validators.positive
    )
    #: Replay window (packets) checked after the AEAD tag; at least 2048.
    replay_window: int = attrs.field(default=2048, validator=validators.positive)
    #: Start a new handshake when the sending keys are this old ...
    rekey_after_time: float = attrs.field(default=120.0, validator=validators.positive)
    #: ... or have sent this many packets.
    rekey_after_messages: int = attrs.field(default=2**20, validator=validators.positive)
    #: Keys older than this are never used to send or receive.
    reject_after_time: float = attrs.field(default=180.0, validator=validators.positive)
    #: A partly received message is discarded after this long.
    reassembly_timeout: float = attrs.field(default=10.0, validator=validators.positive)
    #: Bytes of partly received messages held per peer ...
    reassembly_peer_bytes: int = attrs.field(default=1024 * 1024, validator=validators.positive)
    #: ... and in total.
    reassembly_global_bytes: int = attrs.field(
        default=16 * 1024 * 1024, validator=validators.positive
    )
    #: Partly received handshake messages held in the responder's global buffer
    #: (oldest evicted first), and their total bytes.
    handshake_reassembly_slots: int = attrs.field(default=256, validator=validators.positive)
    handshake_reassembly_bytes: int = attrs.field(
        default=1024 * 1024, validator=validators.positive
    )
    #: A handshake that has not completed after this long fails ("timeout");
    #: a biscuit older than this is refused.
    handshake_timeout: float = attrs.field(default=10.0, validator=validators.positive)
    #: First retransmission of an unanswered handshake message; doubles each time.
    handshake_retry: float = attrs.field(default=1.0, validator=validators.positive)
    #: Messages queued per peer while its handshake runs (oldest dropped beyond).
    send_queue_messages: int = attrs.field(default=64, validator=validators.positive)
    #: First handshake messages per second above which the responder demands
    #: a cookie (mac2) before doing any KEM work.
    under_load_handshakes_per_s: int = attrs.field(default=50, validator=validators.positive)
    #: Handshake initiations (fragment 0 of a first message, after mac1) accepted
    #: per second from one source IP address (the port is ignored) -- a token
    #: bucket checked before any KEM work; beyond it the fragment is dropped
    #: (``handshake-rate-address``) and, without a valid mac2, answered with a
    #: cookie, so that an address validated by its cookie keeps its own bucket
    #: that senders spoofing it cannot drain.
    handshake_rate_per_address: float = attrs.field(default=10.0, validator=validators.positive)
    #: ... and the burst one address may send at once.
    handshake_burst_per_address: int = attrs.field(default=20, validator=validators.positive)
    #: Handshake initiations accepted per second from all sources together (after
    #: the cookie check, before any KEM work): a hard cap on the CPU handshakes
    #: may take (``handshake-rate-global``).
    handshake_rate_global: float = attrs.field(default=400.0, validator=validators.positive)
    #: ... and its burst.
    handshake_burst_global: int = attrs.field(default=800, validator=validators.positive)
    #: Handshakes completed per second by one node ID (checked once its identity
    #: is proven, before the responder writes its last message and installs keys;
    #: ``handshake-rate-node``).
    handshake_rate_per_node: float = attrs.field(default=2.0, validator=validators.positive)
    #: ... and the burst one node ID may use at once.
    handshake_burst_per_node: int = attrs.field(default=10, validator=validators.positive)
    #: Unauthenticated datagrams (anything but a transport packet that decrypts)
    #: accepted per second from one source IP address (loopback: per port).
    #: Beyond this burst the address is muted for ``mute_time``: its datagrams
    #: are dropped unread (``source-muted``), except transport packets of
    #: established sessions.  A handshake costs its initiator 3 to 6 datagrams.
    unauthenticated_per_address: float = attrs.field(default=200.0, validator=validators.positive)
    #: ... and the burst of that bucket.
    unauthenticated_burst_per_address: int = attrs.field(default=400, validator=validators.positive)
    #: Unauthenticated datagrams that get parsed (garbage, and handshake
    #: fragments a responder checks) accepted per second from all sources
    #: together: beyond this burst they are dropped before parsing
    #: (``unauthenticated-global``), so many sources each under their own
    #: limit cannot take more CPU than this.  Transport packets and the
    #: replies to this node's own handshakes are not counted.
    unauthenticated_global: float = attrs.field(default=1000.0, validator=validators.positive)
    #: ... and the burst of that bucket.
    unauthenticated_burst_global: int = attrs.field(default=2000, validator=validators.positive)
    #: How long a muted source stays muted (seconds).
    mute_time: float = attrs.field(default=1.0, validator=validators.positive)
    #: A source muted again within as long as its last mute lasted (counted
    #: from its end) is muted twice as long, up to this (seconds).
    max_mute_time: float = attrs.field(default=16.0, validator=validators.positive)
    #: Source addresses and node IDs whose handshake buckets are remembered
    #: (least recently seen forgotten; a forgotten one starts with a full bucket).
    handshake_rate_keys: int = attrs.field(default=4096, validator=validators.positive)
    #: Lifetime of the cookie secret and of the biscuit key (each keeps one predecessor).
    secret_rotation: float = attrs.field(default=120.0, validator=validators.positive)
    #: Bytes sent in answer to an unvalidated address, as a multiple of the bytes received.
    amplification_factor: int = attrs.field(default=3, validator=validators.positive)
    #: Most established sessions (peers); a new one beyond evicts the least recently used.
    max_sessions: int = attrs.field(default=100_000, validator=validators.positive)
    #: Most node IDs whose last accepted biscuit number is remembered.
    biscuit_replay_entries: int = attrs.field(default=65_536, validator=validators.positive)
    #: Verified static X-Wing keys remembered (1216 bytes each, least recently
    #: used evicted): a peer whose key is known is rehandshaked with pqIK,
    #: otherwise with pqXX.
    static_key_cache: int = attrs.field(default=256, validator=validators.positive)
    #: Protocol version carried in every hello.
    protocol_version: int = attrs.field(default=1, validator=validators.positive)

    def __attrs_post_init__(self) -> None:
        if not 600 <= self.datagram_size <= 65_507:
            raise ConfigError(f"datagram_size must be in 600..65507, got {self.datagram_size}")
        if self.replay_window < 2048:
            raise ConfigError(f"replay_window must be at least 2048, got {self.replay_window}")
        # An application message is one encoded protocol message, so the wire
        # layer's limit (72 KiB: a 64 KiB value plus a signed record's key and
        # signature) is also the largest message worth carrying.
        if self.max_message_size > DEFAULT_LIMITS.max_bytes:
            raise ConfigError(
                f"max_message_size must be at most {DEFAULT_LIMITS.max_bytes}, "
                f"got {self.max_message_size}"
            )
        if self.max_mute_time < self.mute_time:
            raise ConfigError("max_mute_time must be at least mute_time")
        if self.reject_after_time <= self.rekey_after_time:
            raise ConfigError("reject_after_time must exceed rekey_after_time")
        for name in (
            "handshake_burst_per_address",
            "handshake_burst_global",
            "handshake_burst_per_node",
            "handshake_rate_keys",
            "unauthenticated_burst_per_address",
            "unauthenticated_burst_global",
        ):
            if type(getattr(self, name)) is not int:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
