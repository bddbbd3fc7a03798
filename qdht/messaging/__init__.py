"""Messaging: direct messages and groups (DESIGN §2, ``protocol-spec/12-groups.md``).

Sans-IO cores only; the node wires them to the DHT and the mixnet.
"""

# -- groups (12-groups.md) --
from qdht.messaging._group_lite import (
    FlatKeyDistribution,
    KeyDistribution,
    KeyPackageBundle,
    MemberKeys,
)
from qdht.messaging._group_state import (
    ApplicationMessage,
    CommitBundle,
    EpochChanged,
    Equivocation,
    ForkDetected,
    Group,
    GroupConfig,
    GroupEvent,
    GroupInvitations,
    MemberAdded,
    MemberRemoved,
    Removed,
)

__all__ = [
    "ApplicationMessage",
    "CommitBundle",
    "EpochChanged",
    "Equivocation",
    "FlatKeyDistribution",
    "ForkDetected",
    "Group",
    "GroupConfig",
    "GroupEvent",
    "GroupInvitations",
    "KeyDistribution",
    "KeyPackageBundle",
    "MemberAdded",
    "MemberKeys",
    "MemberRemoved",
    "Removed",
]
