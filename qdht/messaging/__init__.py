"""Private messaging (``protocol-spec/11-messaging.md``): sans-IO cores.

Direct messaging: prekeys (§2), PQXDH-shaped first contact over X-Wing (§3),
the triple ratchet (§4) and mailbox slots (§5).  The node drives these cores
from its own tasks, passing ``now`` in.
"""

# -- direct messaging --
from qdht.messaging._prekeys import (
    PrekeyStore,
    SignedPrekey,
    check_prekey_record,
    parse_prekey_record,
)

__all__ = [
    # -- direct messaging --
    "PrekeyStore",
    "SignedPrekey",
    "check_prekey_record",
    "parse_prekey_record",
]
