"""Flat key distribution ("MLS-lite", 12 §6.1) and members' signed leaves and key packages.

A commit's secret is HPKE-sealed (EncryptWithLabel, X-Wing) to the leaf key
of every member who stays, one :class:`~qdht.wire.SealedSecret` each: one
commit costs n-1 encapsulations and each receiver opens exactly one.  The
group state machine talks to key distribution only through
:class:`KeyDistribution`, so a TreeKEM implementation of RFC 9420 §7 can
replace :class:`FlatKeyDistribution` without touching it.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Sequence
from typing import Protocol

import attrs

from qdht.crypto import mldsa
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.errors import GroupError, InvalidSignatureError
from qdht.messaging._group_hpke import LeafKey, encrypt_with_label
from qdht.messaging._group_schedule import NH, GroupContext, ref_hash
from qdht.messaging._group_tls import opaque
from qdht.wire import KeyPackage, LeafNode, SealedSecret, encode

__all__ = [
    "FlatKeyDistribution",
    "KeyDistribution",
    "KeyPackageBundle",
    "MemberKeys",
    "key_package_ref",
    "leaf_ref",
    "roster_hash",
    "sealed_digest",
    "verify_key_package",
    "verify_leaf",
]

Random = Callable[[int], bytes]
#: EncryptWithLabel's label for a sealed commit secret (as RFC 9420's UpdatePathNode).
SEAL_LABEL = b"UpdatePathNode"


@functools.lru_cache(maxsize=4096)
def leaf_ref(leaf: LeafNode) -> bytes:
    """A leaf's reference: RefHash("qdht/v1 leaf", encoding) (12 §2).

    Cached: every roster hash needs every leaf's reference.
    """
    return ref_hash(b"qdht/v1 leaf", encode(leaf))


def key_package_ref(kp: KeyPackage) -> bytes:
    """RFC 9420 §5.2's KeyPackageRef over the key package's encoding."""
    return ref_hash(b"MLS 1.0 KeyPackage Reference", encode(kp))


def sealed_digest(sealed: SealedSecret) -> bytes:
    """SHA-256 of a sealed secret's encoding: what a commit lists for it (12 §6)."""
    return hashlib.sha256(encode(sealed)).digest()


def roster_hash(roster: Sequence[LeafNode | None]) -> bytes:
    """The roster hash bound into the GroupContext as ``tree_hash`` (12 §3).

    RefHash("qdht/v1 roster", ‖ opaque(leaf_ref or "") over the leaf slots).
    """
    body = b"".join(opaque(b"" if leaf is None else leaf_ref(leaf)) for leaf in roster)
    return ref_hash(b"qdht/v1 roster", body)


def verify_leaf(leaf: LeafNode) -> None:
    """InvalidSignatureError unless the leaf is signed by its own signature key."""
    mldsa.verify(leaf.signature_key, leaf.signed_bytes(), leaf.signature, LeafNode.CONTEXT)


def verify_key_package(kp: KeyPackage) -> None:
    """InvalidSignatureError unless the key package and its leaf verify."""
    verify_leaf(kp.leaf)
    mldsa.verify(kp.leaf.signature_key, kp.signed_bytes(), kp.signature, KeyPackage.CONTEXT)


@attrs.frozen(repr=False, slots=False)
class MemberKeys:
    """A member's private keys for one leaf: X-Wing (HPKE) and ML-DSA-65, as seeds.

    The expanded keys are made once, on first use (an ML-KEM expansion costs
    as much as a decapsulation).
    """

    leaf_seed: bytes
    signature_seed: bytes
    identity: bytes

    @classmethod
    def generate(cls, identity: bytes, random: Random = os.urandom) -> MemberKeys:
        """Fresh leaf keys for ``identity`` from ``random``."""
        return cls(random(32), random(32), identity)

    @functools.cached_property
    def _leaf_key(self) -> LeafKey:
        return LeafKey(self.leaf_seed)

    @functools.cached_property
    def _signing_key(self) -> MLDSAPrivateKey:
        return MLDSAPrivateKey.from_seed(self.signature_seed)

    def leaf_key(self) -> LeafKey:
        """The HPKE decryption key of the leaf."""
        return self._leaf_key

    def signing_key(self) -> MLDSAPrivateKey:
        """The leaf's ML-DSA-65 signing key."""
        return self._signing_key

    def leaf(self) -> LeafNode:
        """The signed leaf these keys stand behind."""
        key = self.signing_key()
        unsigned = LeafNode(
            self.leaf_key().public_key_bytes(),
            key.public_key_bytes(),
            self.identity,
            bytes(mldsa.SIGNATURE_SIZE),
        )
        return attrs.evolve(unsigned, signature=key.sign(unsigned.signed_bytes(), LeafNode.CONTEXT))

    def __deepcopy__(self, memo: dict[int, object]) -> MemberKeys:
        # A copy (a state dump) holds the seeds; the expanded keys are remade.
        return MemberKeys(self.leaf_seed, self.signature_seed, self.identity)

    def __repr__(self) -> str:
        return f"MemberKeys(identity={self.identity!r})"


@attrs.frozen(repr=False)
class KeyPackageBundle:
    """A published key package with the private keys behind it (leaf and init key)."""

    key_package: KeyPackage
    member: MemberKeys
    init_seed: bytes

    @classmethod
    def generate(cls, identity: bytes, random: Random = os.urandom) -> KeyPackageBundle:
        """A fresh key package for ``identity``."""
        member = MemberKeys.generate(identity, random)
        init_seed = random(32)
        key = member.signing_key()
        unsigned = KeyPackage(
            member.leaf(), LeafKey(init_seed).public_key_bytes(), bytes(mldsa.SIGNATURE_SIZE)
        )
        sig = key.sign(unsigned.signed_bytes(), KeyPackage.CONTEXT)
        return cls(attrs.evolve(unsigned, signature=sig), member, init_seed)

    @property
    def ref(self) -> bytes:
        """The key package's reference, which a Welcome names."""
        return key_package_ref(self.key_package)

    def __repr__(self) -> str:
        return f"KeyPackageBundle(ref={self.ref[:8].hex()}…)"


class KeyDistribution(Protocol):
    """How a commit secret reaches the members who stay (12 §6.1): flat now, TreeKEM later."""

    def seal(
        self,
        commit_secret: bytes,
        recipients: Sequence[tuple[int, LeafNode]],
        context: GroupContext,
    ) -> list[SealedSecret]:
        """One sealed secret per recipient (leaf index in the new roster, its leaf)."""
        ...

    def open(self, sealed: SealedSecret, key: LeafKey, context: GroupContext) -> bytes:
        """The commit secret; GroupError if ``sealed`` does not open under ``key``."""
        ...


class FlatKeyDistribution:
    """MLS-lite: the commit secret EncryptWithLabel-sealed to each recipient's leaf key.

    The context is the provisional GroupContext of the new epoch with the old
    confirmed transcript hash, as RFC 9420 §12.4.2 uses for UpdatePath.
    """

    def seal(
        self,
        commit_secret: bytes,
        recipients: Sequence[tuple[int, LeafNode]],
        context: GroupContext,
    ) -> list[SealedSecret]:
        ctx = context.serialize()
        out = []
        for index, leaf in recipients:
            kem, ct = encrypt_with_label(leaf.encryption_key, SEAL_LABEL, ctx, commit_secret)
            out.append(SealedSecret(index, kem, ct))
        return out

    def open(self, sealed: SealedSecret, key: LeafKey, context: GroupContext) -> bytes:
        secret = key.decrypt(SEAL_LABEL, context.serialize(), sealed.kem_output, sealed.ciphertext)
        if len(secret) != NH:
            raise GroupError("sealed commit secret has the wrong size")
        return secret


def check_signature(public_key: bytes, message: bytes, signature: bytes, context: bytes) -> bool:
    """Whether an ML-DSA-65 signature verifies (remote input: a verdict, never a raise)."""
    try:
        mldsa.verify(public_key, message, signature, context)
    except InvalidSignatureError:
        return False
    return True
