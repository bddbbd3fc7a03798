"""Where a group's data lives in the DHT (12-groups.md §12): keys, names and framing.

Pure functions, no I/O: the service (``_service.py``) moves the bytes.  Every
record is a mutable record under a write-once salt (07-records.md §7.1 step
3a) signed by a key that only those who should write it can derive:

* the commit slot of an epoch and the sealed secrets of its commit: the
  epoch's slot key (12 §4), known to that epoch's members only;
* a roster leaf: a key derived from its ``LeafRef``;
* a Welcome: a key derived from the joiner's ``KeyPackageRef``;
* an application message: a key derived from the epoch's exporter, named by
  a tag only members can compute.

No key or name contains a member's identity or leaf index in the clear, and
the keys of one group change with every epoch (the leaf records excepted:
they follow a member's leaf until its next update).
"""

from __future__ import annotations

from typing import Final

from qdht.crypto.hashes import sha3_256
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.dht import WRITE_ONCE_PREFIX
from qdht.errors import ConfigError

__all__ = [
    "APP_DATA",
    "APP_PROPOSAL",
    "PART_SIZE",
    "frame",
    "join_parts",
    "leaf_signing_key",
    "message_name",
    "message_signing_key",
    "record_salt",
    "sealed_name",
    "slot_part_name",
    "split_slot",
    "unframe",
    "welcome_signing_key",
]

#: Largest piece of a commit slot in one record (bytes); larger slots are split.
PART_SIZE: Final = 32768
#: Most pieces a commit slot may be split into.
MAX_PARTS: Final = 255
#: First byte of a group message's application data: an application payload ...
APP_DATA: Final = 0
#: ... or a signed proposal for the next commit (a member asking to be removed).
APP_PROPOSAL: Final = 1


def record_salt(name: bytes) -> bytes:
    """The write-once salt of a group record called ``name``."""
    return WRITE_ONCE_PREFIX + b"grp/" + name


def _derived_key(label: bytes, secret: bytes) -> MLDSAPrivateKey:
    return MLDSAPrivateKey.from_seed(sha3_256(label + secret))


def leaf_signing_key(leaf_ref: bytes) -> MLDSAPrivateKey:
    """The signing key of the record holding the leaf with reference ``leaf_ref``."""
    return _derived_key(b"qdht/v1/group-leaf-record", leaf_ref)


def welcome_signing_key(key_package_ref: bytes) -> MLDSAPrivateKey:
    """The signing key of the record holding the Welcome for ``key_package_ref``."""
    return _derived_key(b"qdht/v1/group-welcome-record", key_package_ref)


def message_signing_key(exporter_secret: bytes) -> MLDSAPrivateKey:
    """The signing key of an epoch's message records, from its exported secret."""
    return _derived_key(b"qdht/v1/group-message-record", exporter_secret)


def message_name(exporter_secret: bytes, sender: int, n: int) -> bytes:
    """The name of the ``n``-th message of leaf ``sender`` in an epoch (members only)."""
    tag = sha3_256(
        b"qdht/v1/group-message-name" + exporter_secret + sender.to_bytes(4) + n.to_bytes(4)
    )
    return b"m/" + tag[:16]


def slot_part_name(part0: bytes, index: int) -> bytes:
    """The name of piece ``index`` ≥ 1 of the commit slot whose first record is ``part0``."""
    return b"slot/" + sha3_256(part0)[:16] + index.to_bytes(1)


def sealed_name(part0: bytes, leaf: int) -> bytes:
    """The name of the sealed secret for ``leaf`` of the commit whose first record is ``part0``.

    Named after the commit, so two committers racing for one slot never
    write the same names.
    """
    return b"sealed/" + sha3_256(part0)[:16] + leaf.to_bytes(4)


def split_slot(slot: bytes, part_size: int = PART_SIZE) -> list[bytes]:
    """A commit slot's encoding in record values: ``count ‖ piece 0``, then the pieces."""
    pieces = [slot[i : i + part_size] for i in range(0, len(slot), part_size)] or [b""]
    if len(pieces) > MAX_PARTS:
        raise ConfigError(f"a commit slot of {len(slot)} bytes needs more than {MAX_PARTS} parts")
    return [len(pieces).to_bytes(1) + pieces[0], *pieces[1:]]


def join_parts(part0: bytes, rest: list[bytes]) -> bytes | None:
    """The slot from its first record and the others in order; None if they do not fit."""
    if not part0 or part0[0] == 0 or len(rest) != part0[0] - 1:
        return None
    return part0[1:] + b"".join(rest)


def frame(kind: int, payload: bytes) -> bytes:
    """A group message's application data: one byte of kind, then the payload."""
    return kind.to_bytes(1) + payload


def unframe(data: bytes) -> tuple[int, bytes] | None:
    """``(kind, payload)``, or None for an unknown kind."""
    if not data or data[0] not in (APP_DATA, APP_PROPOSAL):
        return None
    return data[0], data[1:]
