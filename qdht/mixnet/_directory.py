"""Mix descriptors and the threshold-signed directory (10-mixnet.md §10).

Clients must all choose paths from the same mix list, or the routes they can
build fingerprint them.  Each mix signs a :class:`MixDescriptor` with its
owner (ML-DSA-65) key; an authority checks the descriptors it collected from
the DHT (:class:`DirectoryAuthority`) and signs the epoch's
:class:`MixDirectory`; a client accepts a directory only with ``t`` valid
signatures by distinct keys of the network's ``n`` directory keys
(:func:`verify_directory`).  Verification never raises on remote input: it
returns a reason string.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, Final

from qdht.crypto import mldsa, xwing
from qdht.errors import CryptoError, IdentityError, InvalidSignatureError
from qdht.identity import Identity, verify_certificate
from qdht.mixnet._config import MixnetConfig
from qdht.mixnet._routes import DirectoryView
from qdht.wire import (
    DESCRIPTOR_CONTEXT,
    DIRECTORY_CONTEXT,
    MAX_DIRECTORY_MIXES,
    Contact,
    MixDescriptor,
    MixDirectory,
    MixEntry,
)

__all__ = [
    "DirectoryAuthority",
    "sign_descriptor",
    "sign_directory",
    "usable_key",
    "verify_descriptor",
    "verify_directory",
    "with_signatures",
]

#: A descriptor issued further than this in the future is refused (seconds).
CLOCK_SKEW: Final = 300
_NO_SIGNATURE: Final = bytes(mldsa.SIGNATURE_SIZE)


def sign_descriptor(
    identity: Identity,
    contact: Contact,
    layer: int,
    keys: dict[int, bytes],
    *,
    now: int,
    cert_lifetime: int = 86400,
) -> MixDescriptor:
    """The mix's descriptor for its epoch ``keys``, signed with its owner key (§10.1)."""
    cert = identity.certificate(now=now, lifetime=cert_lifetime)
    unsigned = MixDescriptor(cert, contact, layer, sorted(keys.items()), now, _NO_SIGNATURE)
    signature = identity.mldsa.sign(unsigned.signed_bytes(), DESCRIPTOR_CONTEXT)
    return MixDescriptor(cert, contact, layer, unsigned.keys, now, signature)


def verify_descriptor(descriptor: MixDescriptor, *, now: int, difficulty: int) -> str | None:
    """None if ``descriptor`` is valid at ``now``, else the reason (§10.1)."""
    if descriptor.issued > now + CLOCK_SKEW:
        return "descriptor-from-future"
    try:
        node_id = verify_certificate(descriptor.cert, now=now, difficulty=difficulty)
    except IdentityError:
        return "descriptor-bad-cert"
    if descriptor.contact.node_id != node_id:
        return "descriptor-wrong-node"
    if not all(usable_key(key) for _, key in descriptor.keys):
        return "descriptor-bad-key"
    try:
        mldsa.verify(
            descriptor.cert.mldsa_public,
            descriptor.signed_bytes(),
            descriptor.signature,
            DESCRIPTOR_CONTEXT,
        )
    except InvalidSignatureError:
        return "descriptor-bad-signature"
    return None


def sign_directory(directory: MixDirectory, key: mldsa.MLDSAPrivateKey) -> bytes:
    """One directory key's signature over the directory without ``sigs``."""
    return key.sign(directory.signed_bytes(), DIRECTORY_CONTEXT)


def verify_directory(
    directory: MixDirectory, config: MixnetConfig
) -> tuple[DirectoryView | None, str | None]:
    """(the view, None) if ``t`` distinct directory keys signed it, else (None, reason)."""
    if directory.hops != config.hops:
        return None, "directory-wrong-hops"
    keys = config.directory_keys
    if not keys:
        return None, "directory-no-keys"
    message = directory.signed_bytes()
    good: set[int] = set()
    for index, signature in directory.signatures:
        if index >= len(keys) or index in good:
            continue
        try:
            mldsa.verify(keys[index], message, signature, DIRECTORY_CONTEXT)
        except InvalidSignatureError:
            continue
        good.add(index)
    if len(good) < config.directory_threshold:
        return None, "directory-too-few-signatures"
    if not all(usable_key(m.key) for m in directory.mixes):
        return None, "directory-bad-key"
    return DirectoryView(directory.epoch, directory.mixes), None


def usable_key(public_key: bytes) -> bool:
    """Whether ``public_key`` is an X-Wing key a client can encapsulate to.

    FIPS 203's modulus check on the ML-KEM part and a non-low-order X25519
    part: a malformed key would otherwise fail every packet built for it.
    """
    try:
        xwing.encapsulate(public_key)
    except CryptoError:
        return False
    return True


class DirectoryAuthority:
    """An authority's sans-IO side: collect descriptors, build and sign an epoch's list."""

    def __init__(self, config: MixnetConfig, *, difficulty: int) -> None:
        self.config = config
        self.difficulty = difficulty
        self._descriptors: dict[bytes, MixDescriptor] = {}
        self._drops: Counter[str] = Counter()

    def add_descriptor(self, descriptor: MixDescriptor, now: int) -> bool:
        """Check and keep a descriptor (the newest per mix); False if dropped."""
        reason = verify_descriptor(descriptor, now=now, difficulty=self.difficulty)
        if reason is not None:
            self._drops[reason] += 1
            return False
        node_id = descriptor.contact.node_id
        held = self._descriptors.get(node_id)
        if held is not None and held.issued >= descriptor.issued:
            self._drops["descriptor-stale"] += 1
            return False
        self._descriptors[node_id] = descriptor
        return True

    def build(self, epoch: int) -> MixDirectory | None:
        """The unsigned directory of ``epoch``: every mix with a key for it, by node id."""
        entries: list[MixEntry] = []
        for node_id in sorted(self._descriptors):
            descriptor = self._descriptors[node_id]
            key = descriptor.key_for(epoch)
            if key is not None:
                entries.append(MixEntry(descriptor.contact, descriptor.layer, key))
        if not entries:
            return None
        return MixDirectory(epoch, self.config.hops, entries[:MAX_DIRECTORY_MIXES])

    def stats(self) -> dict[str, Any]:
        return {"descriptors": len(self._descriptors), "drops": dict(self._drops)}


def with_signatures(
    directory: MixDirectory, signatures: Iterable[tuple[int, bytes]]
) -> MixDirectory:
    """``directory`` carrying ``signatures`` (key index, signature), sorted by index."""
    merged = dict(directory.signatures)
    merged.update(signatures)
    return MixDirectory(
        directory.epoch, directory.hops, directory.mixes, sorted(merged.items()), directory.version
    )
