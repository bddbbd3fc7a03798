"""PrivateMessage protection (RFC 9420 §6.3) with the symmetric half of suite 0x0003.

The content is framed and signed as RFC 9420 §6 says (FramedContent,
FramedContentTBS, SignWithLabel), encrypted under the sender's ratchet key
with the reuse guard XORed into the nonce (§6.3.1), and the sender's leaf
index and generation are encrypted under a key derived from the sender-data
secret and a ciphertext sample (§6.3.2).  Signing is left to the caller, so
the same framing serves the MLS vectors (Ed25519) and qdht's groups (ML-DSA-65).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from qdht.errors import GroupError
from qdht.messaging._group_schedule import NH, NK, NN, PROTOCOL_VERSION, GroupContext
from qdht.messaging._group_schedule import expand_with_label as _ewl
from qdht.messaging._group_tls import TLSReader, opaque, u8, u16, u32, u64

__all__: list[str] = []

WIRE_PUBLIC = 1  # mls_public_message
WIRE_PRIVATE = 2  # mls_private_message
CONTENT_APPLICATION = 1
CONTENT_PROPOSAL = 2
CONTENT_COMMIT = 3
SENDER_MEMBER = 1
REUSE_GUARD_SIZE = 4


def sign_content(label: bytes, content: bytes) -> bytes:
    """SignContent (RFC 9420 §5.1.2): the bytes SignWithLabel signs."""
    return opaque(b"MLS 1.0 " + label) + opaque(content)


def framed_content(
    group_id: bytes,
    epoch: int,
    sender_leaf: int,
    authenticated_data: bytes,
    content_type: int,
    body: bytes,
) -> bytes:
    """FramedContent (RFC 9420 §6) from a member; ``body`` is the serialized content field."""
    return (
        opaque(group_id)
        + u64(epoch)
        + u8(SENDER_MEMBER)
        + u32(sender_leaf)
        + opaque(authenticated_data)
        + u8(content_type)
        + body
    )


def framed_content_tbs(wire_format: int, framed: bytes, context: GroupContext) -> bytes:
    """FramedContentTBS (RFC 9420 §6.1) for a member sender: binds the GroupContext."""
    return u16(PROTOCOL_VERSION) + u16(wire_format) + framed + context.serialize()


def sender_data_aad(group_id: bytes, epoch: int, content_type: int) -> bytes:
    """SenderDataAAD (RFC 9420 §6.3.2)."""
    return opaque(group_id) + u64(epoch) + u8(content_type)


def private_content_aad(
    group_id: bytes, epoch: int, content_type: int, authenticated_data: bytes
) -> bytes:
    """PrivateContentAAD (RFC 9420 §6.3.1)."""
    return opaque(group_id) + u64(epoch) + u8(content_type) + opaque(authenticated_data)


@attrs.frozen
class SenderData:
    """SenderData (RFC 9420 §6.3.2): who sent, with which generation and reuse guard."""

    leaf_index: int
    generation: int
    reuse_guard: bytes

    def serialize(self) -> bytes:
        """The TLS form that is encrypted."""
        return u32(self.leaf_index) + u32(self.generation) + self.reuse_guard


def _sender_data_key(sender_data_secret: bytes, ciphertext: bytes) -> tuple[bytes, bytes]:
    sample = ciphertext[:NH]
    key = _ewl(sender_data_secret, b"key", sample, NK)
    nonce = _ewl(sender_data_secret, b"nonce", sample, NN)
    return key, nonce


def seal_sender_data(
    sender_data_secret: bytes, ciphertext: bytes, aad: bytes, data: SenderData
) -> bytes:
    """encrypted_sender_data (RFC 9420 §6.3.2) for content ``ciphertext``."""
    key, nonce = _sender_data_key(sender_data_secret, ciphertext)
    return ChaCha20Poly1305(key).encrypt(nonce, data.serialize(), aad)


def open_sender_data(
    sender_data_secret: bytes, ciphertext: bytes, aad: bytes, encrypted: bytes
) -> SenderData:
    """The SenderData of a PrivateMessage; GroupError if it does not decrypt or parse."""
    key, nonce = _sender_data_key(sender_data_secret, ciphertext)
    try:
        plain = ChaCha20Poly1305(key).decrypt(nonce, encrypted, aad)
    except InvalidTag:
        raise GroupError("sender data does not decrypt") from None
    reader = TLSReader(plain)
    data = SenderData(reader.uint(4), reader.uint(4), reader.raw(REUSE_GUARD_SIZE))
    reader.finish()
    return data


def _guarded(nonce: bytes, reuse_guard: bytes) -> bytes:
    head = bytes(a ^ b for a, b in zip(nonce[:REUSE_GUARD_SIZE], reuse_guard, strict=True))
    return head + nonce[REUSE_GUARD_SIZE:]


@attrs.frozen
class PrivateContent:
    """A decrypted PrivateMessageContent (RFC 9420 §6.3.1): body, signature, tag."""

    body: bytes
    signature: bytes
    confirmation_tag: bytes | None


def seal_content(
    key: bytes,
    nonce: bytes,
    reuse_guard: bytes,
    aad: bytes,
    body: bytes,
    signature: bytes,
    confirmation_tag: bytes | None = None,
    padding: int = 0,
) -> bytes:
    """The ciphertext of PrivateMessageContent ``body ‖ auth ‖ 0^padding``."""
    plain = body + opaque(signature)
    if confirmation_tag is not None:
        plain += opaque(confirmation_tag)
    plain += bytes(padding)
    return ChaCha20Poly1305(key).encrypt(_guarded(nonce, reuse_guard), plain, aad)


def open_content(
    key: bytes,
    nonce: bytes,
    reuse_guard: bytes,
    aad: bytes,
    ciphertext: bytes,
    body_length: Callable[[bytes], int],
    has_tag: bool,
) -> PrivateContent:
    """Decrypt and split PrivateMessageContent; GroupError on a bad tag or malformed content.

    ``body_length(plaintext)`` says how long the content-type-specific body is
    (for application data, its ``<V>`` prefix); padding must be all zeros.
    """
    try:
        plain = ChaCha20Poly1305(key).decrypt(_guarded(nonce, reuse_guard), ciphertext, aad)
    except InvalidTag:
        raise GroupError("content does not decrypt") from None
    n = body_length(plain)
    reader = TLSReader(plain)
    body = reader.raw(n)
    signature = reader.opaque()
    tag = reader.opaque() if has_tag else None
    if any(reader.rest()):
        raise GroupError("padding is not all zeros")
    return PrivateContent(body, signature, tag)


def application_body_length(plain: bytes) -> int:
    """The length of an ``application_data<V>`` body at the start of ``plain``."""
    reader = TLSReader(plain)
    n = reader.varint()
    return len(plain) - reader.remaining + n
