"""Private messaging (``protocol-spec/11-messaging.md``): sans-IO cores.

Direct messaging: prekeys (§2), PQXDH-shaped first contact over X-Wing (§3),
the triple ratchet (§4) and mailbox slots and intro boxes (§5).  The node
drives these cores from its own tasks, passing ``now`` in.
"""

# -- direct messaging --
from qdht.messaging._first_contact import (
    Accepted,
    FirstContact,
    accept_first,
    initiate,
    session_key,
    transcript_hash,
)
from qdht.messaging._kdf import KEY_SIZE, chain_step, derive, sha3_256
from qdht.messaging._mailbox import (
    DEFAULT_SLOT_SIZE,
    INTRO_CAP,
    INTRO_POW_BITS,
    POLL_WINDOW,
    SLOT_LIFETIME,
    IntroHolder,
    Mailbox,
    Slot,
    SlotHolder,
    intro_box_key,
    intro_work,
    slot_at,
    solve_intro,
)
from qdht.messaging._prekeys import (
    MAX_CLOCK_SKEW,
    MAX_RECORD_LIFETIME,
    SIGNED_PREKEY_KEEP,
    SIGNED_PREKEY_LIFETIME,
    PrekeyStore,
    SignedPrekey,
    Signer,
    check_prekey_record,
    parse_prekey_record,
)
from qdht.messaging._ratchet import (
    MAX_JUMP,
    MAX_SKIPPED,
    RatchetSession,
    RatchetState,
    SessionSecrets,
    initiator_state,
    responder_state,
)

__all__ = [
    "DEFAULT_SLOT_SIZE",
    "INTRO_CAP",
    "INTRO_POW_BITS",
    "KEY_SIZE",
    "MAX_CLOCK_SKEW",
    "MAX_JUMP",
    "MAX_RECORD_LIFETIME",
    "MAX_SKIPPED",
    "POLL_WINDOW",
    "SIGNED_PREKEY_KEEP",
    "SIGNED_PREKEY_LIFETIME",
    "SLOT_LIFETIME",
    "Accepted",
    "FirstContact",
    "IntroHolder",
    "Mailbox",
    "PrekeyStore",
    "RatchetSession",
    "RatchetState",
    "SessionSecrets",
    "SignedPrekey",
    "Signer",
    "Slot",
    "SlotHolder",
    "accept_first",
    "chain_step",
    "check_prekey_record",
    "derive",
    "initiate",
    "initiator_state",
    "intro_box_key",
    "intro_work",
    "parse_prekey_record",
    "responder_state",
    "session_key",
    "sha3_256",
    "slot_at",
    "solve_intro",
    "transcript_hash",
]
