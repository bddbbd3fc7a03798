"""``GroupsConfig``: the groups layer's parameters (``Config.groups``; None: off)."""

from __future__ import annotations

from typing import Any, Final

import attrs

from qdht import validators
from qdht.errors import ConfigError
from qdht.messaging import GroupConfig

__all__ = ["GroupsConfig"]


DELIVERY_MODES: Final = ("auto", "direct", "anonymous")


def _delivery_mode(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in DELIVERY_MODES or type(value) is not str:
        raise ConfigError(f"{attribute.name} must be one of {DELIVERY_MODES}, got {value!r}")


@attrs.frozen
class GroupsConfig:
    """How this node runs its groups (12-groups.md §12)."""

    #: Every group's protocol parameters (window Δ, turns, padding); members should agree.
    group: GroupConfig = attrs.field(
        factory=GroupConfig, validator=validators.instance_of(GroupConfig)
    )
    #: Lifetime of the records a group writes (s): how long an offline member may lag.
    record_ttl: float = attrs.field(default=7 * 86400.0, validator=validators.positive)
    #: How often the current commit slot is read besides watching it (s): a member
    #: whose watch lapsed (offline, partitioned) catches up within this.
    poll_interval: float = attrs.field(default=30.0, validator=validators.positive)
    #: Attempts of a local add/remove/update whose commit lost a race.
    commit_attempts: int = attrs.field(default=4, validator=validators.positive_int)
    #: Where the records go (12 §14): "direct" (this node puts and gets them),
    #: "anonymous" (mixnet exits do, ``node.anonymous``), "auto" (anonymous when
    #: the node runs the mixnet, direct otherwise).
    delivery: str = attrs.field(default="auto", validator=_delivery_mode)
    #: Through the mixnet a key waited on is polled, not watched: every this many s.
    anonymous_poll: float = attrs.field(default=5.0, validator=validators.positive)
    #: Most anonymous requests of this node's groups in flight at once: a mixnet
    #: client sends at a fixed rate (``MixnetConfig.lambda_payload``), so more only queue.
    anonymous_concurrency: int = attrs.field(default=4, validator=validators.positive_int)
    #: Events buffered per ``node.groups.events()`` subscriber (the oldest are lost).
    event_buffer: int = attrs.field(default=1024, validator=validators.positive_int)
