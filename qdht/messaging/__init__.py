"""Private messaging (``protocol-spec/11-messaging.md``): sans-IO cores.

Direct messaging: prekeys (§2), PQXDH-shaped first contact over X-Wing (§3),
the triple ratchet (§4) and mailbox slots and intro boxes (§5).  The node
drives these cores from its own tasks, passing ``now`` in.
"""

# -- direct messaging --
from qdht.messaging._first_contact import Accepted, FirstContact, accept_first, initiate
from qdht.messaging._mailbox import (
    DEFAULT_SLOT_SIZE,
    IntroHolder,
    Mailbox,
    SlotHolder,
    intro_box_key,
    solve_intro,
)
from qdht.messaging._prekeys import (
    PrekeyStore,
    SignedPrekey,
    check_prekey_record,
    parse_prekey_record,
)
from qdht.messaging._ratchet import MAX_JUMP, MAX_SKIPPED, RatchetSession, RatchetState

__all__ = [
    # -- direct messaging --
    "DEFAULT_SLOT_SIZE",
    "MAX_JUMP",
    "MAX_SKIPPED",
    "Accepted",
    "FirstContact",
    "IntroHolder",
    "Mailbox",
    "PrekeyStore",
    "RatchetSession",
    "RatchetState",
    "SignedPrekey",
    "SlotHolder",
    "accept_first",
    "check_prekey_record",
    "initiate",
    "intro_box_key",
    "parse_prekey_record",
    "solve_intro",
]
