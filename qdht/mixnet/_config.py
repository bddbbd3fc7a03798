"""Every parameter of the mixnet in one value (``MixnetConfig``), 10-mixnet.md §9.

Rates are per second, times in seconds.  The defaults follow Loopix's latency
run (one packet per second per stream, Piotrowska et al. 2017 §5) with Nym's
50 ms mean delay per hop, and Katzenpost's 20-minute mix-key epochs.  The
network-wide values (geometry, epoch period, mean delay, directory keys and
threshold) must be the same at every node, like the puzzle difficulty.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from qdht.crypto import mldsa
from qdht.errors import ConfigError
from qdht.mixnet._geometry import DEFAULT_PAYLOAD_SIZE, Geometry
from qdht.wire import MAX_LAYER

__all__ = ["MixnetConfig"]


def _positive(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) not in (int, float) or not value > 0:  # type: ignore[operator]
        raise ConfigError(f"{attribute.name} must be a positive number, got {value!r}")


def _rate(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) not in (int, float) or not value >= 0:  # type: ignore[operator]
        raise ConfigError(f"{attribute.name} must be a rate >= 0 per second, got {value!r}")


def _count(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or value < 1:
        raise ConfigError(f"{attribute.name} must be a positive integer, got {value!r}")


def _fraction(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) not in (int, float) or not 0 < value < 1:  # type: ignore[operator]
        raise ConfigError(f"{attribute.name} must be in (0, 1), got {value!r}")


def _flag(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not bool:
        raise ConfigError(f"{attribute.name} must be True or False, got {value!r}")


def _layer(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or not 0 <= value <= MAX_LAYER:
        raise ConfigError(f"{attribute.name} must be an integer in 0..{MAX_LAYER}, got {value!r}")


def _seed(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and type(value) is not int:
        raise ConfigError(f"{attribute.name} must be an integer or None, got {value!r}")


def _keys(value: Iterable[bytes]) -> tuple[bytes, ...]:
    keys = tuple(value)
    for key in keys:
        if type(key) is not bytes or len(key) != mldsa.PUBLIC_KEY_SIZE:
            raise ConfigError(f"directory keys are {mldsa.PUBLIC_KEY_SIZE}-byte ML-DSA-65 keys")
    return keys


@attrs.frozen
class MixnetConfig:
    """The mixnet's parameters: packet geometry, epochs, delays, cover rates, limits."""

    # -- network-wide (§2, §9)
    hops: int = 3
    user_payload_size: int = DEFAULT_PAYLOAD_SIZE
    #: Mix keys rotate every epoch; epoch ``e`` covers Unix time [e·period, (e+1)·period).
    epoch_period: float = attrs.field(default=1200.0, validator=_positive)
    #: Mean of the exponential delay each hop holds a packet (1/μ).
    mean_delay: float = attrs.field(default=0.05, validator=_positive)
    #: A drawn delay is capped at this many means (e^-20: the cap almost never bites).
    max_delay_means: float = attrs.field(default=20.0, validator=_positive)
    #: ML-DSA-65 keys of the directory authorities and how many must sign (§10).
    directory_keys: tuple[bytes, ...] = attrs.field(default=(), converter=_keys)
    directory_threshold: int = attrs.field(default=1, validator=_count)
    # -- client (§11): Loopix's Poisson streams
    #: λ_P: the payload stream; a real message takes the place of a drop packet.
    lambda_payload: float = attrs.field(default=1.0, validator=_rate)
    #: λ_L: loop cover packets that return to the sender.
    lambda_loop: float = attrs.field(default=1.0, validator=_rate)
    #: λ_D: drop cover packets that end at a mix.
    lambda_drop: float = attrs.field(default=1.0, validator=_rate)
    #: Real messages waiting for a payload slot; more are refused.
    max_send_queue: int = attrs.field(default=256, validator=_count)
    # -- mix (§8)
    #: λ_M: a mix's own loops, through the network and back, watching for n-1 attacks.
    lambda_mix_loop: float = attrs.field(default=1.0, validator=_rate)
    #: Loops are judged over this window; a loop not back after it is lost.
    loop_window: float = attrs.field(default=30.0, validator=_positive)
    #: Raise the n-1 alarm when fewer than this fraction of judged loops returned.
    loop_alarm_fraction: float = attrs.field(default=0.5, validator=_fraction)
    #: ... and only once at least this many loops were judged in the window.
    loop_alarm_min: int = attrs.field(default=10, validator=_count)
    #: Packets a mix holds at once; more are dropped (``queue-full``).
    max_queue: int = attrs.field(default=20_000, validator=_count)
    #: Decapsulations per second per session, with this burst (``rate-limited``).
    decap_rate: float = attrs.field(default=500.0, validator=_positive)
    decap_burst: int = attrs.field(default=1000, validator=_count)
    max_rate_sessions: int = attrs.field(default=4096, validator=_count)
    #: Replay tags each epoch key's filter is sized for, and its false-positive rate.
    replay_capacity: int = attrs.field(default=1_000_000, validator=_count)
    replay_fp_rate: float = attrs.field(default=1e-6, validator=_fraction)
    # -- this node's roles in a running network (§14)
    #: Run the mix role (``qdht node --mix``): hold epoch keys, publish a
    #: descriptor in the DHT, mix packets.  Every mixnet node is a client.
    mix: bool = attrs.field(default=False, validator=_flag)
    #: The layer this mix announces (stratified routes, §11.1).
    layer: int = attrs.field(default=0, validator=_layer)
    #: Sign the directory: the node's ML-DSA key must be one of ``directory_keys``.
    authority: bool = attrs.field(default=False, validator=_flag)
    #: How often mixes publish their descriptor, authorities sign, clients fetch (s).
    directory_interval: float = attrs.field(default=60.0, validator=_positive)
    #: Exits an anonymous operation is sent to at once, each on its own path.
    exits: int = attrs.field(default=2, validator=_count)
    #: How long an anonymous operation waits for its answers (s).
    anonymous_timeout: float = attrs.field(default=15.0, validator=_positive)
    #: Dummy lookups per second, each an EXIT_GET of a random key without a
    #: reply block in the payload stream, so an exit's lookups hide the real ones.
    lambda_dummy_lookup: float = attrs.field(default=0.05, validator=_rate)
    #: Seed of this node's path, delay and cover-time draws (``random.Random``),
    #: for tests and simulations that must replay; None (the default, and the
    #: only choice in deployment): the system's randomness.  Key material and
    #: reply block ids always come from the system.
    random_seed: int | None = attrs.field(default=None, validator=_seed)
    # -- messages larger than one payload (§14.6)
    #: Fragments one request or answer may take (at most 255); more are refused.
    max_fragments: int = attrs.field(default=8, validator=_count)
    #: Partly received messages an exit (or a client) holds at once; the oldest goes first.
    max_open_messages: int = attrs.field(default=64, validator=_count)
    #: A message whose fragments did not all arrive within this time is dropped (s).
    fragment_timeout: float = attrs.field(default=30.0, validator=_positive)
    # -- forwarding a message to a node (§14.7)
    #: EXIT_FORWARDs an exit runs per second (all askers together: it cannot tell
    #: them apart), up to ``forward_burst`` at once; more are dropped.  The same
    #: bucket, per exit, bounds the hand-offs a node accepts from each exit.
    forward_rate: float = attrs.field(default=5.0, validator=_positive)
    forward_burst: int = attrs.field(default=20, validator=_count)
    #: How long an exit waits for the node's HANDOFF_ACK (s).
    handoff_timeout: float = attrs.field(default=10.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        geometry = self.geometry  # validates hops and payload size
        del geometry
        if self.max_fragments > 255:
            raise ConfigError(f"max_fragments must be at most 255, got {self.max_fragments}")
        if self.directory_keys and not self.directory_threshold <= len(self.directory_keys):
            raise ConfigError(
                f"directory_threshold {self.directory_threshold} exceeds the "
                f"{len(self.directory_keys)} directory keys"
            )

    @property
    def geometry(self) -> Geometry:
        return Geometry(hops=self.hops, user_payload_size=self.user_payload_size)

    @property
    def mu(self) -> float:
        """μ, the rate of a hop's exponential delay."""
        return 1.0 / self.mean_delay
