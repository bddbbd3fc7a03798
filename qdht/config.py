"""The configuration of a qdht node: :class:`Config`, every field with its default.

``qdht.Config()`` is a working configuration: a serving node on UDP port 6881
of every IPv4 interface, with an ephemeral identity.  Every limit that bounds
memory or work is a named field here or in one of the embedded per-layer
configurations (``routing``, ``lookup``, ``session``, ``rpc``, ``storage``).
Invalid values raise :class:`qdht.errors.ConfigError` naming the field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import attrs

from qdht import validators
from qdht.dht import (
    LookupConfig,
    RecordConfig,
    RecordLimits,
    ReplicationConfig,
    ReputationConfig,
    RoutingConfig,
    RpcConfig,
    StoreLimits,
    WatchConfig,
    WatchLimits,
)
from qdht.errors import ConfigError, ContactError
from qdht.identity import (
    DEFAULT_PUZZLE_DIFFICULTY,
    MAX_PUZZLE_DIFFICULTY,
    Identity,
)
from qdht.session import SessionConfig
from qdht.wire import Address, Contact

if TYPE_CHECKING:
    from qdht.groups import GroupsConfig
    from qdht.identity import ResolveConfig
    from qdht.models import ModelsConfig
    from qdht.models.training import TrainingLayerConfig

__all__ = ["DEFAULT_PORT", "IDENTITY_FILE", "Config", "parse_listen"]

#: The default UDP port of the DHT (as BitTorrent's Mainline DHT).
DEFAULT_PORT: Final = 6881
#: Name of the identity key file inside ``data_dir``.
IDENTITY_FILE: Final = "identity.key"


def parse_listen(uri: str) -> tuple[str, str, int]:
    """Split a listen URI into (transport, host, port).

    ``udp://0.0.0.0:6881``, ``udp://[::]:6881``, ``ws://127.0.0.1:8080``.
    Port 0 asks for an ephemeral port.  Raises ConfigError.
    """
    if not isinstance(uri, str):
        raise ConfigError(f"listen: expected a URI string, got {type(uri).__name__}")
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"listen: cannot parse {uri!r}: {exc}") from None
    if parts.scheme not in ("udp", "ws"):
        raise ConfigError(f"listen: scheme must be udp:// or ws://, got {uri!r}")
    if parts.hostname is None or port is None:
        raise ConfigError(f"listen: {uri!r} needs a host and a port")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ConfigError(f"listen: unexpected parts in {uri!r}")
    try:
        address = Address(parts.scheme, parts.hostname, port or 1)
    except ContactError as exc:
        raise ConfigError(f"listen: {exc}") from None
    return parts.scheme, address.host, port


def _check_listen(_: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    if not value:
        raise ConfigError("listen must name at least one address (or pass a transport)")
    kinds = set()
    for uri in value:
        kind = parse_listen(uri)[0]
        if kind in kinds:
            raise ConfigError(f"listen: more than one {kind}:// address")
        kinds.add(kind)


def _to_tuple(value: Any) -> tuple[Any, ...]:
    if isinstance(value, str | Contact):
        return (value,)
    try:
        return tuple(value)
    except TypeError:
        raise ConfigError(f"expected a sequence, got {type(value).__name__}") from None


def _check_bootstrap(_: Any, attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
    for item in value:
        if isinstance(item, Contact):
            continue
        if not isinstance(item, str):
            raise ConfigError(f"bootstrap: expected contact URIs, got {item!r}")
        try:
            Contact.from_uri(item)
        except ContactError as exc:
            raise ConfigError(f"bootstrap: {exc}") from None


def _check_identity(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, Identity | str | os.PathLike):
        raise ConfigError(
            f"identity must be an Identity, a key file path or None, got {type(value).__name__}"
        )


def _check_difficulty(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or not 0 <= value <= MAX_PUZZLE_DIFFICULTY:
        raise ConfigError(
            f"{attribute.name} must be an integer in 0..{MAX_PUZZLE_DIFFICULTY}, got {value!r}"
        )


def _check_host(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    try:
        Address("udp", value, 1)  # type: ignore[arg-type]
    except ContactError as exc:
        raise ConfigError(f"{attribute.name}: {exc}") from None


def _layer_config(name: str, module: str | None = None) -> Any:
    """Validator of a built-in layer's field: None, or the layer's config class.

    ``name`` is the class (``"ModelsConfig"`` lives in ``qdht.models``).  It is
    looked up only when a value is given, so the layer's package and its
    optional dependencies are imported only by those who turn it on.
    """

    def check(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None:
            return
        import importlib

        package = module or f"qdht.{name.removesuffix('Config').lower()}"
        cls = getattr(importlib.import_module(package), name)
        if not isinstance(value, cls):
            raise ConfigError(f"{attribute.name} must be a {name} or None, got {value!r}")

    return check


@attrs.frozen
class Config:
    """Everything a node needs; ``qdht.Config()`` works as is.

    Times are in seconds, sizes in bytes.
    """

    #: Where to listen: one URI per transport, ``udp://HOST:PORT`` or
    #: ``ws://HOST:PORT`` (``udp://[::]:6881`` for IPv6; port 0: ephemeral).
    #: Ignored when ``open_node`` is given a transport.
    listen: tuple[str, ...] = attrs.field(
        default=(f"udp://0.0.0.0:{DEFAULT_PORT}",), converter=_to_tuple, validator=_check_listen
    )
    #: Contacts (``qdht+udp://IP:PORT/NODE-ID-HEX`` URIs or ``Contact`` objects)
    #: joined when the node starts; each pins the node ID that must answer.
    bootstrap: tuple[str | Contact, ...] = attrs.field(
        default=(), converter=_to_tuple, validator=_check_bootstrap
    )
    #: Client mode: query the DHT but serve nothing (for phones); requests carry
    #: the read-only flag, so peers keep the node out of their routing tables.
    #: A client needs no well-known port: listen on ``udp://0.0.0.0:0``.
    client_mode: bool = attrs.field(default=False, validator=validators.boolean)
    #: The node's identity: an ``Identity``, the path of a key file (created if
    #: missing), or None: ``data_dir/identity.key`` when ``data_dir`` is set,
    #: else a fresh ephemeral identity.
    identity: Identity | str | os.PathLike[str] | None = attrs.field(
        default=None, validator=_check_identity
    )
    #: Passphrase of the identity key file (None: unencrypted).
    identity_passphrase: str | None = attrs.field(default=None, repr=False)
    #: Directory for the node's files: the identity key file, the record store
    #: (SQLite, ``records.sqlite``), the publisher's records and schedule
    #: (``published.sqlite``) and the routing table (``routing.cbor``).  None:
    #: everything in memory, forgotten when the node stops.
    data_dir: str | os.PathLike[str] | None = None
    #: The network's static puzzle difficulty (leading zero bits of the node ID's
    #: hash); new identities are minted at it.  Every node of one network uses
    #: the same value (it is part of the handshake prologue).
    puzzle_difficulty: int = attrs.field(
        default=DEFAULT_PUZZLE_DIFFICULTY, validator=_check_difficulty
    )
    #: The host advertised in ``node.contact`` when listening on 0.0.0.0 or ::
    #: (None: the address of the interface that routes to the internet, or
    #: loopback when there is none).
    advertise_host: str | None = attrs.field(default=None, validator=_check_host)
    #: Kademlia's k: bucket size, lookup result size, replicas per record.  The
    #: one place to set it: ``routing.k`` and ``lookup.k`` follow it (a
    #: ``routing`` or ``lookup`` given with another k is refused).
    k: int = attrs.field(default=20, validator=validators.positive_int)
    #: Routing table: replacement cache, liveness, timeouts, refresh interval,
    #: per-prefix limits.
    routing: RoutingConfig = attrs.field(
        factory=RoutingConfig, validator=validators.instance_of(RoutingConfig)
    )
    #: Lookups: alpha (requests in flight), d (disjoint paths).
    lookup: LookupConfig = attrs.field(
        factory=LookupConfig, validator=validators.instance_of(LookupConfig)
    )
    #: Sessions: datagram size, handshake timeouts, rekeying, buffers.
    session: SessionConfig = attrs.field(
        factory=SessionConfig, validator=validators.instance_of(SessionConfig)
    )
    #: RPCs: pending requests, concurrent lookups, per-peer request rate limit.
    rpc: RpcConfig = attrs.field(factory=RpcConfig, validator=validators.instance_of(RpcConfig))
    #: Records kept for others: byte quotas in total, per publisher, per source,
    #: and for cached entries (``qdht.dht.StoreLimits``).
    storage: StoreLimits = attrs.field(
        factory=StoreLimits, validator=validators.instance_of(StoreLimits)
    )
    #: Records: the get quorum, the STORE flood guard, the signature verdict
    #: cache, entry corrections (``qdht.dht.RecordConfig``).
    records: RecordConfig = attrs.field(
        factory=RecordConfig, validator=validators.instance_of(RecordConfig)
    )
    #: Peer reputation: scores per offence, decay, bans (``qdht.dht.ReputationConfig``).
    reputation: ReputationConfig = attrs.field(
        factory=ReputationConfig, validator=validators.instance_of(ReputationConfig)
    )
    #: Watching keys (``node.watch``): holders subscribed per key, renewal,
    #: retries (``qdht.dht.WatchConfig``, 08-watch.md).
    watch: WatchConfig = attrs.field(
        factory=WatchConfig, validator=validators.instance_of(WatchConfig)
    )
    #: Watchers this node serves as a holder: per key, per watcher, in total
    #: (``qdht.dht.WatchLimits``).
    watch_limits: WatchLimits = attrs.field(
        factory=WatchLimits, validator=validators.instance_of(WatchLimits)
    )
    #: What a record may be: value sizes, set size, furthest expiry, clock skew
    #: (``qdht.dht.RecordLimits``, 07-records.md §6.1).
    record_limits: RecordLimits = attrs.field(
        factory=RecordLimits, validator=validators.instance_of(RecordLimits)
    )
    #: Replication of held records: handoff, republish rounds by keyspace
    #: region, STORE pacing, path caching (``qdht.dht.ReplicationConfig``,
    #: 07-records.md §10).
    replication: ReplicationConfig = attrs.field(
        factory=ReplicationConfig, validator=validators.instance_of(ReplicationConfig)
    )
    # -- built-in layers (one field per layer, None: off) --
    #: Direct messaging (``qdht.messaging.MessagingConfig``): ``node.messaging``.
    messaging: Any = attrs.field(default=None, validator=_layer_config("MessagingConfig"))

    #: Identity resolution (``node.resolve_identity``, 16-resolve.md): answer
    #: RESOLVE and resolve node IDs to certificates.  None: off.
    resolve: ResolveConfig | None = attrs.field(
        default=None, validator=_layer_config("ResolveConfig", "qdht.identity")
    )

    #: The model store (``qdht.models.ModelsConfig``, needs ``qdht[models]``):
    #: serve, publish and fetch models (``node.models``).
    models: ModelsConfig | None = attrs.field(default=None, validator=_layer_config("ModelsConfig"))

    #: The mixnet (``qdht.mixnet.MixnetConfig``, 10-mixnet.md): ``node.anonymous``.
    mixnet: Any = attrs.field(default=None, validator=_layer_config("MixnetConfig"))

    #: Group messaging between nodes (``qdht.groups.GroupsConfig``, 12-groups.md §12).
    groups: GroupsConfig | None = attrs.field(default=None, validator=_layer_config("GroupsConfig"))

    #: Federated training (``qdht.models.training.TrainingLayerConfig``, needs
    #: ``qdht[models]`` and the model store, ``models``): ``node.training``.
    training: TrainingLayerConfig | None = attrs.field(
        default=None,
        validator=_layer_config("TrainingLayerConfig", "qdht.models.training"),
    )
    #: Further services the node runs (``qdht.node.Service``): factories
    #: called with a ``qdht.node.ServiceContext`` when the node starts.  Each
    #: service's own configuration travels with its factory (an attrs object
    #: with a ``__call__`` is the usual shape).
    services: tuple[Any, ...] = attrs.field(default=(), converter=_to_tuple)
    #: Events buffered per ``node.events()`` subscriber; a slow subscriber loses
    #: the newest events beyond this (counted in ``stats()["events_dropped"]``).
    event_queue_size: int = attrs.field(default=256, validator=validators.positive_int)
    #: Subscribers of ``node.events()`` at once.
    max_event_subscribers: int = attrs.field(default=64, validator=validators.positive_int)
    #: Tries per bootstrap contact before giving up on it.
    bootstrap_attempts: int = attrs.field(default=4, validator=validators.positive_int)
    #: Wait before the second try; doubles per try (with ±25 % jitter).
    bootstrap_backoff: float = attrs.field(default=0.5, validator=validators.positive)
    #: Once one bootstrap contact answered, how long the others may still take.
    bootstrap_grace: float = attrs.field(default=1.0, validator=validators.positive)
    #: Datagrams queued between the transports and the node (MultiTransport).
    receive_queue: int = attrs.field(default=1024, validator=validators.positive_int)
    #: Lifetime of a record put without ``ttl`` (24 h); at most
    #: ``RecordLimits.max_ttl`` (7 days), what holders accept.
    record_ttl: float = attrs.field(default=86_400.0, validator=validators.positive)
    #: How often a publisher stores each of its records again (until the record
    #: expires), so that replicas lost to churn come back even when every
    #: holder left.  Holders also replicate what they hold (07-records.md §10).
    republish_interval: float = attrs.field(default=3_600.0, validator=validators.positive)
    #: Records a publisher hands at once to its batched republish (one lookup
    #: per keyspace region, 07-records.md §10.2); the rest wait their turn.
    republish_batch: int = attrs.field(default=1000, validator=validators.positive_int)
    #: How often the routing table is saved to ``data_dir`` (and at shutdown).
    snapshot_interval: float = attrs.field(default=600.0, validator=validators.positive)
    #: Remembered peers a restarted node re-bootstraps from when no
    #: ``bootstrap`` contact is configured (or in addition to them).
    rejoin_contacts: int = attrs.field(default=16, validator=validators.positive_int)

    def __attrs_post_init__(self) -> None:
        default_k = attrs.fields(RoutingConfig).k.default
        for name in ("routing", "lookup"):
            layer = getattr(self, name)
            if layer.k != self.k:
                if layer.k != default_k:
                    raise ConfigError(
                        f"{name}.k is {layer.k} but k is {self.k}: set k once, as Config(k=...)"
                    )
                # Frozen: the one sanctioned write, so every layer sees one k.
                object.__setattr__(self, name, attrs.evolve(layer, k=self.k))
        for factory in self.services:
            if not callable(factory):
                raise ConfigError(f"services: expected service factories, got {factory!r}")
        if self.identity_passphrase is not None and not isinstance(self.identity_passphrase, str):
            raise ConfigError("identity_passphrase must be a str or None")
        if self.data_dir is not None and not isinstance(self.data_dir, str | os.PathLike):
            raise ConfigError("data_dir must be a path or None")
        if self.record_ttl > self.record_limits.max_ttl:
            raise ConfigError(
                f"record_ttl is {self.record_ttl:g} s, more than record_limits.max_ttl "
                f"({self.record_limits.max_ttl} s): holders would refuse every record"
            )
        if isinstance(self.identity, Identity) and (
            self.identity.difficulty != self.puzzle_difficulty
        ):
            raise ConfigError(
                f"identity: minted at difficulty {self.identity.difficulty}, "
                f"but puzzle_difficulty is {self.puzzle_difficulty}"
            )

    def bootstrap_contacts(self) -> list[Contact]:
        """``bootstrap`` as ``Contact`` objects."""
        return [c if isinstance(c, Contact) else Contact.from_uri(c) for c in self.bootstrap]

    def identity_path(self) -> Path | None:
        """The key file the identity is loaded from (or created at), if any."""
        if isinstance(self.identity, str | os.PathLike):
            return Path(self.identity)
        if self.identity is None and self.data_dir is not None:
            return Path(self.data_dir) / IDENTITY_FILE
        return None

    def load_identity(self) -> Identity:
        """The node's identity: given, loaded from its key file, or minted.

        A key file that does not exist yet is created with a new identity.
        Blocking (key files use scrypt, minting solves the puzzle): the node
        runs it in a worker thread.
        """
        if isinstance(self.identity, Identity):
            return self.identity
        path = self.identity_path()
        if path is None:
            return Identity.generate(self.puzzle_difficulty)
        if path.exists():
            identity = Identity.load(path, passphrase=self.identity_passphrase)
            if identity.difficulty != self.puzzle_difficulty:
                raise ConfigError(
                    f"identity: {path} was minted at difficulty {identity.difficulty}, "
                    f"but puzzle_difficulty is {self.puzzle_difficulty}"
                )
            return identity
        path.parent.mkdir(parents=True, exist_ok=True)
        identity = Identity.generate(self.puzzle_difficulty)
        identity.save(path, passphrase=self.identity_passphrase)
        return identity
