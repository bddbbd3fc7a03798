"""Group messaging on the wire: leaves, key packages, proposals, commits, Welcome, messages.

Implements the structures and field sizes of ``protocol-spec/12-groups.md``;
what they mean, how they are signed and checked lives in
:mod:`qdht.messaging` (``_group_*.py``).  Every ML-DSA-65 signature here
covers :meth:`signed_bytes`, the deterministic encoding of the map without
its ``sig`` (and a commit's ``tag``); signatures that must bind an epoch
append that epoch's GroupContext (12 §4).
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

import attrs

from qdht.errors import ConfigError
from qdht.wire._cbor import dumps_canonical
from qdht.wire._fields import FieldReader, check_bytes
from qdht.wire._registry import register

__all__ = [
    "BLANK_REF",
    "DIGEST_SIZE",
    "GROUP_ID_MAX",
    "IDENTITY_MAX",
    "MAX_MEMBERS",
    "MAX_PROPOSALS",
    "PROPOSAL_OPS",
    "Commit",
    "CommitSlot",
    "GroupInfo",
    "GroupMessage",
    "GroupSecrets",
    "KeyPackage",
    "LeafNode",
    "Proposal",
    "SealedSecret",
    "Welcome",
]

#: Longest group ID, in bytes.
GROUP_ID_MAX: Final = 32
#: Longest member identity (credential) in a leaf, in bytes.
IDENTITY_MAX: Final = 64
#: Most leaves in a roster, blanks included (a CBOR array's limit, 00 §3).
MAX_MEMBERS: Final = 1024
#: Most proposals one commit carries.
MAX_PROPOSALS: Final = 256
#: SHA-256 output: references, hashes, confirmation tags, epoch IDs.
DIGEST_SIZE: Final = 32
XWING_PUBLIC_KEY_SIZE: Final = 1216
XWING_CIPHERTEXT_SIZE: Final = 1120
MLDSA_PUBLIC_KEY_SIZE: Final = 1952
MLDSA_SIGNATURE_SIZE: Final = 3309
#: A sealed commit secret: 32 bytes and ChaCha20-Poly1305's 16-byte tag.
SEALED_SECRET_SIZE: Final = 48
#: SenderData (leaf, generation, reuse guard: 12 bytes) and its tag.
SENDER_DATA_SIZE: Final = 28
NONCE_SIZE: Final = 12
#: Largest encrypted payload (a commit in its slot, a GroupInfo, a message).
MAX_CIPHERTEXT: Final = 65536
MAX_LEAF_INDEX: Final = MAX_MEMBERS - 1
#: A blank roster slot in a GroupInfo.
BLANK_REF: Final = bytes(DIGEST_SIZE)
#: The operations a proposal may carry (12 §5).
PROPOSAL_OPS: Final = frozenset({"add", "remove", "update"})


def _bytes_in(min_size: int, max_size: int) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not bytes or not min_size <= len(value) <= max_size:
            raise ConfigError(f"{attribute.name} must be {min_size}..{max_size} bytes")

    return check


def _sized(size: int) -> Any:
    return _bytes_in(size, size)


def _uint(max_value: int) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not int or not 0 <= value <= max_value:
            raise ConfigError(f"{attribute.name} must be an integer in 0..{max_value}")

    return check


def _tuple_of(kind: type, max_len: int) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not tuple or len(value) > max_len:
            raise ConfigError(f"{attribute.name} must be a tuple of at most {max_len} items")
        if not all(isinstance(item, kind) for item in value):
            raise ConfigError(f"{attribute.name} must hold {kind.__name__} items")

    return check


_group = _bytes_in(1, GROUP_ID_MAX)
_digest = _sized(DIGEST_SIZE)
_signature = _sized(MLDSA_SIGNATURE_SIZE)
_leaf_index = _uint(MAX_LEAF_INDEX)
_epoch = _uint(2**64 - 1)


def _without(body: dict[str, Any], *fields: str) -> bytes:
    for name in fields:
        del body[name]
    return dumps_canonical(body)


@register
@attrs.frozen
class LeafNode:
    """A member's leaf (12 §2): its HPKE key, signature key and identity, self-signed."""

    TYPE: ClassVar[str] = "leaf"
    CONTEXT: ClassVar[bytes] = b"qdht/v1/group-leaf"

    encryption_key: bytes = attrs.field(validator=_sized(XWING_PUBLIC_KEY_SIZE), repr=False)
    signature_key: bytes = attrs.field(validator=_sized(MLDSA_PUBLIC_KEY_SIZE), repr=False)
    identity: bytes = attrs.field(validator=_bytes_in(1, IDENTITY_MAX))
    signature: bytes = attrs.field(validator=_signature, repr=False)

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "enc": self.encryption_key,
            "vk": self.signature_key,
            "id": self.identity,
            "sig": self.signature,
        }

    def signed_bytes(self) -> bytes:
        """What ``sig`` covers: the map without ``sig``."""
        return _without(self.to_cbor(), "sig")

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> LeafNode:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        enc = reader.bytes_("enc", size=XWING_PUBLIC_KEY_SIZE)
        vk = reader.bytes_("vk", size=MLDSA_PUBLIC_KEY_SIZE)
        identity = reader.bytes_("id", min_size=1, max_size=IDENTITY_MAX)
        sig = reader.bytes_("sig", size=MLDSA_SIGNATURE_SIZE)
        reader.finish()
        return cls(enc, vk, identity, sig)


@register
@attrs.frozen
class KeyPackage:
    """What a would-be member publishes so others can add it (12 §2): leaf and init key."""

    TYPE: ClassVar[str] = "key_package"
    CONTEXT: ClassVar[bytes] = b"qdht/v1/group-key-package"

    leaf: LeafNode
    init_key: bytes = attrs.field(validator=_sized(XWING_PUBLIC_KEY_SIZE), repr=False)
    signature: bytes = attrs.field(validator=_signature, repr=False)

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "leaf": self.leaf.to_cbor(),
            "init": self.init_key,
            "sig": self.signature,
        }

    def signed_bytes(self) -> bytes:
        """What ``sig`` (by the leaf's signature key) covers: the map without ``sig``."""
        return _without(self.to_cbor(), "sig")

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> KeyPackage:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        leaf = reader.nested("leaf", LeafNode.from_cbor)
        init = reader.bytes_("init", size=XWING_PUBLIC_KEY_SIZE)
        sig = reader.bytes_("sig", size=MLDSA_SIGNATURE_SIZE)
        reader.finish()
        return cls(leaf, init, sig)


@register
@attrs.frozen
class Proposal:
    """A signed request to change the roster in epoch ``epoch`` (12 §5).

    ``op`` is ``add`` (with ``key_package``), ``remove`` (with ``removed``,
    a leaf index) or ``update`` (with ``leaf``, the sender's new leaf).
    """

    TYPE: ClassVar[str] = "proposal"
    CONTEXT: ClassVar[bytes] = b"qdht/v1/group-proposal"

    group_id: bytes = attrs.field(validator=_group)
    epoch: int = attrs.field(validator=_epoch)
    sender: int = attrs.field(validator=_leaf_index)
    op: str = attrs.field(validator=attrs.validators.in_(PROPOSAL_OPS))
    signature: bytes = attrs.field(validator=_signature, repr=False)
    key_package: KeyPackage | None = attrs.field(default=None, kw_only=True, repr=False)
    removed: int | None = attrs.field(default=None, kw_only=True)
    leaf: LeafNode | None = attrs.field(default=None, kw_only=True, repr=False)

    def __attrs_post_init__(self) -> None:
        present = {
            "add": self.key_package is not None,
            "remove": self.removed is not None,
            "update": self.leaf is not None,
        }
        if not present[self.op] or sum(present.values()) != 1:
            raise ConfigError(f"a {self.op} proposal carries exactly its own operand")
        if self.removed is not None:
            _leaf_index(self, attrs.fields(Proposal).removed, self.removed)

    def to_cbor(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.TYPE,
            "group": self.group_id,
            "epoch": self.epoch,
            "sender": self.sender,
            "op": self.op,
        }
        if self.key_package is not None:
            body["kp"] = self.key_package.to_cbor()
        if self.removed is not None:
            body["removed"] = self.removed
        if self.leaf is not None:
            body["leaf"] = self.leaf.to_cbor()
        body["sig"] = self.signature
        return body

    def signed_bytes(self) -> bytes:
        """The map without ``sig``; the signer appends GroupContext_epoch (12 §5)."""
        return _without(self.to_cbor(), "sig")

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Proposal:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        group = reader.bytes_("group", min_size=1, max_size=GROUP_ID_MAX)
        epoch = reader.uint("epoch")
        sender = reader.uint("sender", max_value=MAX_LEAF_INDEX)
        op = reader.text("op", max_len=8, choices=PROPOSAL_OPS)
        # Only the operand ``op`` names is read: another one is an unknown field.
        kp = reader.nested("kp", KeyPackage.from_cbor) if op == "add" else None
        removed = reader.uint("removed", max_value=MAX_LEAF_INDEX) if op == "remove" else None
        leaf = reader.nested("leaf", LeafNode.from_cbor) if op == "update" else None
        sig = reader.bytes_("sig", size=MLDSA_SIGNATURE_SIZE)
        reader.finish()
        return cls(group, epoch, sender, op, sig, key_package=kp, removed=removed, leaf=leaf)


def _secret_ref(item: Any, path: str) -> tuple[int, bytes]:
    reader = FieldReader(item, path)
    to = reader.uint("to", max_value=MAX_LEAF_INDEX)
    digest = reader.bytes_("h", size=DIGEST_SIZE)
    reader.finish()
    return to, digest


def _check_secret_refs(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not tuple or len(value) > MAX_MEMBERS:
        raise ConfigError(f"{attribute.name} must be a tuple of at most {MAX_MEMBERS} pairs")
    for item in value:
        if (
            type(item) is not tuple
            or len(item) != 2
            or type(item[0]) is not int
            or not 0 <= item[0] <= MAX_LEAF_INDEX
            or type(item[1]) is not bytes
            or len(item[1]) != DIGEST_SIZE
        ):
            raise ConfigError(f"{attribute.name} items must be (leaf index, 32-byte digest)")


@register
@attrs.frozen
class Commit:
    """A commit moving the group from ``epoch`` to ``epoch + 1`` (12 §6).

    ``secrets`` lists, per receiving leaf of the new roster, the SHA-256 of
    the :class:`SealedSecret` sealed to it; the sealed secrets travel apart,
    so each receiver fetches only its own.  ``sig`` is by the sender's leaf
    of epoch ``epoch``; ``tag`` is the confirmation tag of epoch ``epoch+1``.
    """

    TYPE: ClassVar[str] = "commit"
    CONTEXT: ClassVar[bytes] = b"qdht/v1/group-commit"

    group_id: bytes = attrs.field(validator=_group)
    epoch: int = attrs.field(validator=_epoch)
    sender: int = attrs.field(validator=_leaf_index)
    proposals: tuple[Proposal, ...] = attrs.field(
        validator=_tuple_of(Proposal, MAX_PROPOSALS), repr=False
    )
    leaf: LeafNode = attrs.field(repr=False)
    secrets: tuple[tuple[int, bytes], ...] = attrs.field(validator=_check_secret_refs, repr=False)
    signature: bytes = attrs.field(validator=_signature, repr=False)
    confirmation_tag: bytes = attrs.field(validator=_digest, repr=False)

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "group": self.group_id,
            "epoch": self.epoch,
            "sender": self.sender,
            "proposals": [p.to_cbor() for p in self.proposals],
            "leaf": self.leaf.to_cbor(),
            "secrets": [{"to": to, "h": digest} for to, digest in self.secrets],
            "sig": self.signature,
            "tag": self.confirmation_tag,
        }

    def content_bytes(self) -> bytes:
        """The framed content: the map without ``sig`` and ``tag`` (12 §6.2)."""
        return _without(self.to_cbor(), "sig", "tag")

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Commit:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        group = reader.bytes_("group", min_size=1, max_size=GROUP_ID_MAX)
        epoch = reader.uint("epoch")
        sender = reader.uint("sender", max_value=MAX_LEAF_INDEX)
        proposals = reader.array("proposals", Proposal.from_cbor, max_len=MAX_PROPOSALS)
        leaf = reader.nested("leaf", LeafNode.from_cbor)
        secrets = reader.array("secrets", _secret_ref, max_len=MAX_MEMBERS)
        sig = reader.bytes_("sig", size=MLDSA_SIGNATURE_SIZE)
        tag = reader.bytes_("tag", size=DIGEST_SIZE)
        reader.finish()
        return cls(group, epoch, sender, proposals, leaf, secrets, sig, tag)


@register
@attrs.frozen
class SealedSecret:
    """A commit secret HPKE-sealed to the leaf ``to`` of the new roster (12 §6.1)."""

    TYPE: ClassVar[str] = "sealed"

    to: int = attrs.field(validator=_leaf_index)
    kem_output: bytes = attrs.field(validator=_sized(XWING_CIPHERTEXT_SIZE), repr=False)
    ciphertext: bytes = attrs.field(validator=_sized(SEALED_SECRET_SIZE), repr=False)

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "to": self.to, "kem": self.kem_output, "ct": self.ciphertext}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> SealedSecret:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        to = reader.uint("to", max_value=MAX_LEAF_INDEX)
        kem = reader.bytes_("kem", size=XWING_CIPHERTEXT_SIZE)
        ct = reader.bytes_("ct", size=SEALED_SECRET_SIZE)
        reader.finish()
        return cls(to, kem, ct)


@register
@attrs.frozen
class CommitSlot:
    """What is written, once, into an epoch's commit slot (12 §7): the encrypted commit.

    ``pk`` is the epoch's slot key (derived from the epoch secret, so only
    members know it); the slot's address is SHA3-256(pk).  ``sig`` by that
    key covers the map without ``sig``.
    """

    TYPE: ClassVar[str] = "commit_slot"
    CONTEXT: ClassVar[bytes] = b"qdht/v1/group-slot"

    public_key: bytes = attrs.field(validator=_sized(MLDSA_PUBLIC_KEY_SIZE), repr=False)
    nonce: bytes = attrs.field(validator=_sized(NONCE_SIZE))
    ciphertext: bytes = attrs.field(validator=_bytes_in(16, MAX_CIPHERTEXT), repr=False)
    signature: bytes = attrs.field(validator=_signature, repr=False)

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "pk": self.public_key,
            "nonce": self.nonce,
            "ct": self.ciphertext,
            "sig": self.signature,
        }

    def signed_bytes(self) -> bytes:
        """What ``sig`` covers: the map without ``sig``."""
        return _without(self.to_cbor(), "sig")

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> CommitSlot:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        pk = reader.bytes_("pk", size=MLDSA_PUBLIC_KEY_SIZE)
        nonce = reader.bytes_("nonce", size=NONCE_SIZE)
        ct = reader.bytes_("ct", min_size=16, max_size=MAX_CIPHERTEXT)
        sig = reader.bytes_("sig", size=MLDSA_SIGNATURE_SIZE)
        reader.finish()
        return cls(pk, nonce, ct, sig)


@register
@attrs.frozen
class GroupSecrets:
    """The plaintext sealed to a joiner's init key in a Welcome (12 §8)."""

    TYPE: ClassVar[str] = "group_secrets"

    joiner_secret: bytes = attrs.field(validator=_digest, repr=False)

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "joiner": self.joiner_secret}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> GroupSecrets:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        joiner = reader.bytes_("joiner", size=DIGEST_SIZE)
        reader.finish()
        return cls(joiner)


def _roster_ref(item: Any, path: str) -> bytes:
    return check_bytes(item, path, size=DIGEST_SIZE)


def _check_roster(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not tuple or not 1 <= len(value) <= MAX_MEMBERS:
        raise ConfigError(f"{attribute.name} must hold 1..{MAX_MEMBERS} entries")
    if not all(type(r) is bytes and len(r) == DIGEST_SIZE for r in value):
        raise ConfigError(f"{attribute.name} entries are 32-byte leaf references")


@register
@attrs.frozen
class GroupInfo:
    """The epoch a joiner enters (12 §8): its context, roster references and confirmation tag.

    A blank roster slot is :data:`BLANK_REF` (32 zero bytes).
    """

    TYPE: ClassVar[str] = "group_info"
    CONTEXT: ClassVar[bytes] = b"qdht/v1/group-info"

    group_id: bytes = attrs.field(validator=_group)
    epoch: int = attrs.field(validator=_epoch)
    roster: tuple[bytes, ...] = attrs.field(validator=_check_roster, repr=False)
    confirmed_transcript_hash: bytes = attrs.field(validator=_digest, repr=False)
    confirmation_tag: bytes = attrs.field(validator=_digest, repr=False)
    signer: int = attrs.field(validator=_leaf_index)
    signature: bytes = attrs.field(validator=_signature, repr=False)

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "group": self.group_id,
            "epoch": self.epoch,
            "roster": list(self.roster),
            "cth": self.confirmed_transcript_hash,
            "tag": self.confirmation_tag,
            "signer": self.signer,
            "sig": self.signature,
        }

    def signed_bytes(self) -> bytes:
        """What ``sig`` (by the signer's leaf) covers: the map without ``sig``."""
        return _without(self.to_cbor(), "sig")

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> GroupInfo:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        group = reader.bytes_("group", min_size=1, max_size=GROUP_ID_MAX)
        epoch = reader.uint("epoch")
        roster = reader.array("roster", _roster_ref, min_len=1, max_len=MAX_MEMBERS)
        cth = reader.bytes_("cth", size=DIGEST_SIZE)
        tag = reader.bytes_("tag", size=DIGEST_SIZE)
        signer = reader.uint("signer", max_value=MAX_LEAF_INDEX)
        sig = reader.bytes_("sig", size=MLDSA_SIGNATURE_SIZE)
        reader.finish()
        return cls(group, epoch, roster, cth, tag, signer, sig)


@register
@attrs.frozen
class Welcome:
    """What a joiner receives (12 §8): GroupSecrets sealed to its init key, GroupInfo encrypted."""

    TYPE: ClassVar[str] = "welcome"

    key_package_ref: bytes = attrs.field(validator=_digest)
    kem_output: bytes = attrs.field(validator=_sized(XWING_CIPHERTEXT_SIZE), repr=False)
    secrets: bytes = attrs.field(validator=_bytes_in(16, 256), repr=False)
    info: bytes = attrs.field(validator=_bytes_in(16, MAX_CIPHERTEXT), repr=False)

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "kp": self.key_package_ref,
            "kem": self.kem_output,
            "secrets": self.secrets,
            "info": self.info,
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Welcome:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        kp = reader.bytes_("kp", size=DIGEST_SIZE)
        kem = reader.bytes_("kem", size=XWING_CIPHERTEXT_SIZE)
        secrets = reader.bytes_("secrets", min_size=16, max_size=256)
        info = reader.bytes_("info", min_size=16, max_size=MAX_CIPHERTEXT)
        reader.finish()
        return cls(kp, kem, secrets, info)


@register
@attrs.frozen
class GroupMessage:
    """An application message (12 §9): RFC 9420 PrivateMessage protection, named by epoch ID.

    ``epoch_id`` replaces MLS's clear group ID and epoch: it is derived from
    the epoch secret, so only members can tell which group and epoch it is.
    """

    TYPE: ClassVar[str] = "group_message"

    epoch_id: bytes = attrs.field(validator=_digest)
    sender_data: bytes = attrs.field(validator=_sized(SENDER_DATA_SIZE), repr=False)
    ciphertext: bytes = attrs.field(validator=_bytes_in(16, MAX_CIPHERTEXT), repr=False)

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "epoch_id": self.epoch_id,
            "sd": self.sender_data,
            "ct": self.ciphertext,
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> GroupMessage:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        epoch_id = reader.bytes_("epoch_id", size=DIGEST_SIZE)
        sd = reader.bytes_("sd", size=SENDER_DATA_SIZE)
        ct = reader.bytes_("ct", min_size=16, max_size=MAX_CIPHERTEXT)
        reader.finish()
        return cls(epoch_id, sd, ct)
