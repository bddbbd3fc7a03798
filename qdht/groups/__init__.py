"""Group messaging on the network: the ``groups`` service (``node.groups``).

The group protocol itself is :mod:`qdht.messaging`'s sans-IO core
(``protocol-spec/12-groups.md`` §1-§11); this package runs it between nodes
(§12): commit slots, sealed secrets, roster leaves, Welcomes and messages
in write-once DHT records, behind a :class:`Delivery` interface.
"""

from qdht.groups._config import DELIVERY_MODES, GroupsConfig
from qdht.groups._delivery import AnonymousDelivery, Delivery, DhtDelivery, record_key
from qdht.groups._layout import (
    APP_DATA,
    APP_PROPOSAL,
    PART_SIZE,
    frame,
    join_parts,
    leaf_signing_key,
    message_name,
    message_signing_key,
    record_salt,
    sealed_name,
    slot_part_name,
    split_slot,
    unframe,
    welcome_signing_key,
)
from qdht.groups._service import (
    GroupJoined,
    GroupNotice,
    GroupsCore,
    GroupsFace,
    groups_service,
)
from qdht.groups._store import GROUPS_FILE, GroupStore, SavedGroup

__all__ = [
    "APP_DATA",
    "APP_PROPOSAL",
    "DELIVERY_MODES",
    "GROUPS_FILE",
    "PART_SIZE",
    "AnonymousDelivery",
    "Delivery",
    "DhtDelivery",
    "GroupJoined",
    "GroupNotice",
    "GroupStore",
    "GroupsConfig",
    "GroupsCore",
    "GroupsFace",
    "SavedGroup",
    "frame",
    "groups_service",
    "join_parts",
    "leaf_signing_key",
    "message_name",
    "message_signing_key",
    "record_key",
    "record_salt",
    "sealed_name",
    "slot_part_name",
    "split_slot",
    "unframe",
    "welcome_signing_key",
]
