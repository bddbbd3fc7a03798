"""The RFC 9420 key schedule with the symmetric half of cipher suite 0x0003.

HKDF-SHA256, SHA-256 and ChaCha20-Poly1305 (``Nh = Nk = 32``, ``Nn = 12``):
ExpandWithLabel / DeriveSecret / DeriveTreeSecret (§5.1.3, §9), RefHash
(§5.2), the GroupContext (§8.1), the epoch secrets (§8), pre-shared keys
(§8.4), the exporter (§8.5), the transcript hashes (§8.2) and confirmation
tags (§6.1).  ``tests/messaging/test_mls_vectors.py`` checks every function
here against the MLS working group's vectors for suite 3.

qdht's own suite (:data:`QDHT_SUITE`, private use) replaces X25519 by X-Wing
and Ed25519 by ML-DSA-65; everything in this module is shared with 0x0003.
"""

from __future__ import annotations

import hashlib
import hmac

import attrs
from cryptography.hazmat.primitives import hashes as _hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from qdht.errors import GroupError
from qdht.messaging._group_tls import opaque, u16, u32, u64

__all__: list[str] = []

#: ``mls10``, the only ProtocolVersion (RFC 9420 §6).
PROTOCOL_VERSION = 1
#: MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519, whose symmetric half qdht uses.
MLS_SUITE_3 = 0x0003
#: qdht's suite: X-Wing (HPKE KEM 0x647A), HKDF-SHA256, ChaCha20-Poly1305, SHA-256,
#: ML-DSA-65 signatures.  A private-use code point (RFC 9420 §17.1: 0xF000-0xFFFF).
QDHT_SUITE = 0xF003
NH = 32  # KDF.Nh and the hash size
NK = 32  # AEAD.Nk
NN = 12  # AEAD.Nn
_LABEL_PREFIX = b"MLS 1.0 "


def extract(salt: bytes, ikm: bytes) -> bytes:
    """KDF.Extract: HKDF-Extract with SHA-256 (RFC 5869 §2.2)."""
    return hmac.digest(salt, ikm, "sha256")


def _expand(secret: bytes, info: bytes, length: int) -> bytes:
    return HKDFExpand(_hashes.SHA256(), length, info).derive(secret)


def expand_with_label(secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """ExpandWithLabel (RFC 9420 §5.1.3): Expand with KDFLabel{length, label, context}."""
    if not 0 < length < 1 << 16:
        raise GroupError(f"ExpandWithLabel length must be in 1..65535, got {length}")
    info = u16(length) + opaque(_LABEL_PREFIX + label) + opaque(context)
    return _expand(secret, info, length)


def derive_secret(secret: bytes, label: bytes) -> bytes:
    """DeriveSecret (RFC 9420 §5.1.3): ExpandWithLabel(secret, label, "", Nh)."""
    return expand_with_label(secret, label, b"", NH)


def derive_tree_secret(secret: bytes, label: bytes, generation: int, length: int) -> bytes:
    """DeriveTreeSecret (RFC 9420 §9): ExpandWithLabel with context uint32(generation)."""
    return expand_with_label(secret, label, u32(generation), length)


def ref_hash(label: bytes, value: bytes) -> bytes:
    """RefHash (RFC 9420 §5.2): Hash(RefHashInput{label<V>, value<V>})."""
    return hashlib.sha256(opaque(label) + opaque(value)).digest()


def mac(key: bytes, data: bytes) -> bytes:
    """MAC (RFC 9420 §5.1): HMAC-SHA256."""
    return hmac.digest(key, data, "sha256")


@attrs.frozen
class GroupContext:
    """The GroupContext of RFC 9420 §8.1: what every key of an epoch is bound to.

    qdht's flat key distribution puts the roster hash in ``tree_hash`` (12 §3),
    so the context binds the membership the same way a ratchet tree's hash does.
    """

    cipher_suite: int
    group_id: bytes
    epoch: int
    tree_hash: bytes
    confirmed_transcript_hash: bytes
    extensions: bytes = b""  # the serialized Extension list's content

    def serialize(self) -> bytes:
        """The TLS serialization hashed and expanded over (RFC 9420 §8.1)."""
        return (
            u16(PROTOCOL_VERSION)
            + u16(self.cipher_suite)
            + opaque(self.group_id)
            + u64(self.epoch)
            + opaque(self.tree_hash)
            + opaque(self.confirmed_transcript_hash)
            + opaque(self.extensions)
        )


@attrs.frozen(repr=False)
class EpochSecrets:
    """The secrets of one epoch (RFC 9420 §8, Table 4), derived from the epoch secret."""

    joiner_secret: bytes
    welcome_secret: bytes
    epoch_secret: bytes
    sender_data_secret: bytes
    encryption_secret: bytes
    exporter_secret: bytes
    external_secret: bytes
    confirmation_key: bytes
    membership_key: bytes
    resumption_psk: bytes
    epoch_authenticator: bytes
    init_secret: bytes  # init_secret_[n+1], the next epoch's

    @classmethod
    def derive(
        cls, init_secret: bytes, commit_secret: bytes, psk: bytes, context: GroupContext
    ) -> EpochSecrets:
        """The schedule of RFC 9420 §8 from the previous init secret and this epoch's inputs."""
        ctx = context.serialize()
        joiner = expand_with_label(extract(init_secret, commit_secret), b"joiner", ctx, NH)
        return cls.from_joiner(joiner, psk, context)

    @classmethod
    def from_joiner(cls, joiner_secret: bytes, psk: bytes, context: GroupContext) -> EpochSecrets:
        """The schedule from the joiner secret on, as a Welcome recipient derives it (§8)."""
        member = extract(joiner_secret, psk)
        epoch = expand_with_label(member, b"epoch", context.serialize(), NH)
        return cls(
            joiner_secret=joiner_secret,
            welcome_secret=welcome_secret(joiner_secret, psk),
            epoch_secret=epoch,
            sender_data_secret=derive_secret(epoch, b"sender data"),
            encryption_secret=derive_secret(epoch, b"encryption"),
            exporter_secret=derive_secret(epoch, b"exporter"),
            external_secret=derive_secret(epoch, b"external"),
            confirmation_key=derive_secret(epoch, b"confirm"),
            membership_key=derive_secret(epoch, b"membership"),
            resumption_psk=derive_secret(epoch, b"resumption"),
            epoch_authenticator=derive_secret(epoch, b"authentication"),
            init_secret=derive_secret(epoch, b"init"),
        )

    def __repr__(self) -> str:
        return "EpochSecrets(<secret>)"


def welcome_secret(joiner_secret: bytes, psk: bytes) -> bytes:
    """welcome_secret (RFC 9420 §8): what opens a Welcome's GroupInfo, before any context."""
    return derive_secret(extract(joiner_secret, psk), b"welcome")


def exporter(exporter_secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """MLS-Exporter (RFC 9420 §8.5)."""
    return expand_with_label(
        derive_secret(exporter_secret, label), b"exported", hashlib.sha256(context).digest(), length
    )


def psk_secret(psks: list[tuple[bytes, bytes, bytes]]) -> bytes:
    """psk_secret (RFC 9420 §8.4) over external PSKs given as (psk_id, psk_nonce, psk).

    Only external PSKs (``psktype = 1``) are used by qdht; an empty list
    gives the all-zero secret.
    """
    secret = bytes(NH)
    count = len(psks)
    for index, (psk_id, psk_nonce, psk) in enumerate(psks):
        psk_id_struct = b"\x01" + opaque(psk_id) + opaque(psk_nonce)
        label = psk_id_struct + u16(index) + u16(count)
        psk_input = expand_with_label(extract(bytes(NH), psk), b"derived psk", label, NH)
        secret = extract(psk_input, secret)
    return secret


def confirmed_transcript_hash(interim_before: bytes, confirmed_input: bytes) -> bytes:
    """confirmed_transcript_hash_[n] (RFC 9420 §8.2).

    ``confirmed_input`` is the serialized ConfirmedTranscriptHashInput
    (wire_format, FramedContent, signature<V>).
    """
    return hashlib.sha256(interim_before + confirmed_input).digest()


def interim_transcript_hash(confirmed: bytes, tag: bytes) -> bytes:
    """interim_transcript_hash_[n] (RFC 9420 §8.2): over the confirmed hash and the tag."""
    return hashlib.sha256(confirmed + opaque(tag)).digest()


def confirmation_tag(confirmation_key: bytes, confirmed: bytes) -> bytes:
    """The confirmation tag (RFC 9420 §6.1): MAC(confirmation_key, confirmed_transcript_hash)."""
    return mac(confirmation_key, confirmed)
