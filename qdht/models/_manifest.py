"""Signed manifests and their records, provider records, the trust list (13-models.md §4, §5).

A manifest names a model version: its publisher, name and version, the chunk
size, every tensor (name, dtype, shape, chunk keys), the Merkle root over the
chunk keys and optional metadata.  The publisher signs it with ML-DSA-65 under
``ModelManifest.CONTEXT`` (``qdht/v1/model-manifest``) and publishes its encoding as the
value of a mutable record under (publisher, :func:`model_salt` (name)) with
``seq`` = version, so the DHT's sequence rules order the versions.

A fetcher accepts a manifest only from a publisher it trusts, and checks
(cheapest first) the publisher, the record binding, every tensor's chunk count
against its shape, the Merkle root, and last the signature: each failure is a
:class:`~qdht.errors.ModelError` whose reason names it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Protocol

from qdht.crypto import mldsa
from qdht.crypto.hashes import sha3_256
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.dht import sign_mutable, sign_set_entry
from qdht.errors import ConfigError, DecodeError, InvalidSignatureError, ModelError
from qdht.models._chunks import ChunkSink, chunk_key, merkle_root, split
from qdht.wire import (
    MAX_CHUNK_SIZE,
    MAX_MANIFEST_PAGES,
    MAX_VALUE_SIZE,
    CborLimits,
    Contact,
    ManifestRef,
    ModelManifest,
    ModelProvider,
    ModelTensor,
    MutableRecord,
    SetEntry,
    decode,
    encode,
    mutable_key,
    owner_hash,
)

__all__ = [
    "MANIFEST_LIMITS",
    "MANIFEST_REJECT_REASONS",
    "MODEL_SALT_PREFIX",
    "PAGES_ROOT_PREFIX",
    "PROVIDER_TOPIC_PREFIX",
    "PageSource",
    "TrustedPublishers",
    "has_chunk",
    "have_bitfield",
    "manifest_from_pages",
    "manifest_from_record",
    "manifest_record",
    "manifest_ref",
    "model_record_key",
    "model_salt",
    "pages_root",
    "provider_entry",
    "provider_from_entry",
    "provider_topic",
    "sign_manifest",
    "verify_manifest",
]

#: Domain separation of the mutable-record salt of a model name (13-models.md §4.2).
MODEL_SALT_PREFIX: Final = b"qdht/v1/model-name"
#: Prefix of the set topic under which a model's providers announce themselves (§5.2).
PROVIDER_TOPIC_PREFIX: Final = b"qdht/v1/model-providers"
#: Domain separation of the provider ``root`` of a paged manifest's pages (§5.2).
PAGES_ROOT_PREFIX: Final = b"qdht/v1/model-pages"
#: Every reason a manifest can be refused for (13-models.md §4.3).
MANIFEST_REJECT_REASONS: Final = frozenset(
    {
        "malformed",
        "untrusted-publisher",
        "publisher-mismatch",
        "name-mismatch",
        "version-mismatch",
        "shape-mismatch",
        "root-mismatch",
        "bad-signature",
        "ref-mismatch",
    }
)
#: Decoding limits of a manifest read from pages (§4.4): up to 256 pages, more items.
MANIFEST_LIMITS: Final = CborLimits(
    max_bytes=MAX_MANIFEST_PAGES * MAX_CHUNK_SIZE, max_items=1 << 17
)


class PageSource(Protocol):
    """Where a fetcher reads a paged manifest from (a :class:`~qdht.models.ChunkStore`)."""

    def load(self, key: bytes) -> bytes: ...


def model_salt(name: str) -> bytes:
    """The salt of the model ``name``'s mutable record: SHA3-256(prefix ‖ UTF-8 name)."""
    if type(name) is not str or not name:
        raise ConfigError("a model name must be non-empty text")
    return sha3_256(MODEL_SALT_PREFIX + name.encode())


def model_record_key(publisher: bytes, name: str) -> bytes:
    """The DHT key of (publisher, name)'s manifest record; ``publisher`` is the owner hash."""
    return mutable_key(publisher, model_salt(name))


def provider_topic(root: bytes) -> bytes:
    """The set topic of the model with Merkle root ``root``: prefix ‖ root (55 bytes)."""
    if type(root) is not bytes or len(root) != 32:
        raise ConfigError("root must be 32 bytes")
    return PROVIDER_TOPIC_PREFIX + root


class TrustedPublishers:
    """The publisher keys a fetcher accepts manifests from, by owner hash (13-models.md §4.3)."""

    __slots__ = ("_keys",)

    def __init__(self, public_keys: Iterable[bytes] = ()) -> None:
        self._keys: dict[bytes, bytes] = {}
        for pk in public_keys:
            if type(pk) is not bytes or len(pk) != mldsa.PUBLIC_KEY_SIZE:
                raise ConfigError(f"a trusted publisher key is {mldsa.PUBLIC_KEY_SIZE} bytes")
            self._keys[owner_hash(pk)] = pk

    def key_of(self, publisher: bytes) -> bytes | None:
        """The public key of the publisher whose owner hash is ``publisher``, if trusted."""
        return self._keys.get(publisher)

    def __contains__(self, publisher: object) -> bool:
        return publisher in self._keys

    def __len__(self) -> int:
        return len(self._keys)


def _trust(trusted: TrustedPublishers | Iterable[bytes]) -> TrustedPublishers:
    return trusted if isinstance(trusted, TrustedPublishers) else TrustedPublishers(trusted)


def sign_manifest(
    key: MLDSAPrivateKey,
    *,
    name: str,
    version: int,
    tensors: Sequence[ModelTensor],
    chunk_size: int,
    meta: Mapping[str, str] | None = None,
) -> ModelManifest:
    """A manifest of ``tensors`` signed by ``key``; ConfigError if it would not fit a record."""
    tensors = tuple(tensors)
    root = merkle_root([k for t in tensors for k in t.chunk_keys])
    publisher = owner_hash(key.public_key_bytes())
    unsigned = ModelManifest(
        publisher, name, version, chunk_size, tensors, root, bytes(mldsa.SIGNATURE_SIZE),
        meta=meta or {},
    )  # fmt: skip
    size = len(encode(unsigned))
    if size > MAX_MANIFEST_PAGES * MAX_CHUNK_SIZE:
        raise ConfigError(
            f"the manifest is {size} bytes, more than {MAX_MANIFEST_PAGES} pages (13 §4.4)"
        )
    signature = key.sign(unsigned.signed_bytes(), ModelManifest.CONTEXT)
    return ModelManifest(
        publisher, name, version, chunk_size, tensors, root, signature, meta=unsigned.meta
    )


def _fits_one_record(data: bytes) -> bool:
    if len(data) > MAX_VALUE_SIZE:
        return False
    try:
        decode(data, expect=(ModelManifest,))
    except DecodeError:  # over the default item limits: many tensors
        return False
    return True


def manifest_ref(manifest: ModelManifest) -> ManifestRef | None:
    """The reference a record holds instead of ``manifest`` if it needs pages (§4.4), else None."""
    data = encode(manifest)
    if _fits_one_record(data):
        return None
    keys = b"".join(chunk_key(page) for page in split(data, MAX_CHUNK_SIZE))
    return ManifestRef(manifest.publisher, manifest.name, manifest.version, len(data), keys)


def pages_root(ref: ManifestRef) -> bytes:
    """The ``root`` under which holders of a paged manifest announce its pages (§5.2)."""
    return sha3_256(PAGES_ROOT_PREFIX + b"".join(ref.page_keys))


def manifest_record(
    key: MLDSAPrivateKey,
    manifest: ModelManifest,
    *,
    expires: int,
    pages: ChunkSink | None = None,
) -> MutableRecord:
    """The mutable record publishing ``manifest``: salt from its name, ``seq`` = version.

    A manifest too large for one record is cut into pages put into ``pages``
    (the publisher's chunk store, which serves them) and the record holds a
    :class:`ManifestRef` instead (§4.4).
    """
    if owner_hash(key.public_key_bytes()) != manifest.publisher:
        raise ConfigError("the manifest was signed by another key")
    data = encode(manifest)
    if not _fits_one_record(data):
        if pages is None:
            raise ConfigError("this manifest needs pages: pass the chunk store as pages")
        keys = []
        for page in split(data, MAX_CHUNK_SIZE):
            keys.append(chunk_key(page))
            pages.put(keys[-1], page)
        ref = ManifestRef(
            manifest.publisher, manifest.name, manifest.version, len(data), b"".join(keys)
        )
        data = encode(ref)
    return sign_mutable(
        key, salt=model_salt(manifest.name), seq=manifest.version, value=data, expires=expires
    )


def verify_manifest(
    manifest: ModelManifest | bytes,
    trusted: TrustedPublishers | Iterable[bytes],
    *,
    name: str | None = None,
    publisher: bytes | None = None,
) -> ModelManifest:
    """``manifest`` checked against the trust list; ModelError naming the first failure.

    ``name`` and ``publisher`` (an owner hash), when given, must be the
    manifest's: a fetcher that asked for one model must not accept another.
    """
    if not isinstance(manifest, ModelManifest):
        try:
            decoded = decode(manifest, expect=(ModelManifest,))
        except DecodeError as exc:
            raise ModelError("malformed", str(exc)) from None
        assert isinstance(decoded, ModelManifest)
        manifest = decoded
    pk = _trust(trusted).key_of(manifest.publisher)
    if pk is None:
        raise ModelError("untrusted-publisher", manifest.publisher.hex()[:16])
    if publisher is not None and manifest.publisher != publisher:
        raise ModelError("publisher-mismatch", "not the publisher asked for")
    if name is not None and manifest.name != name:
        raise ModelError("name-mismatch", f"{manifest.name!r} is not {name!r}")
    for tensor in manifest.tensors:
        expected = math.ceil(tensor.nbytes / manifest.chunk_size)
        if len(tensor.chunk_keys) != expected:
            raise ModelError(
                "shape-mismatch",
                f"{tensor.name!r}: shape needs {expected} chunks, {len(tensor.chunk_keys)} listed",
            )
    if merkle_root(manifest.chunk_keys) != manifest.root:
        raise ModelError("root-mismatch", "the root is not the Merkle root of the chunk keys")
    try:
        mldsa.verify(pk, manifest.signed_bytes(), manifest.signature, ModelManifest.CONTEXT)
    except InvalidSignatureError:
        raise ModelError("bad-signature", "the manifest signature does not verify") from None
    return manifest


def manifest_from_record(
    record: MutableRecord,
    trusted: TrustedPublishers | Iterable[bytes],
    *,
    name: str | None = None,
) -> ModelManifest | ManifestRef:
    """The verified manifest in a (DHT-validated) record, or the checked reference to its pages.

    The record's key binds (owner, salt), its ``seq`` orders versions: the
    manifest (or reference) inside must be the owner's, for the salt's name,
    at that ``seq`` (§4.3).  A :class:`ManifestRef` is returned for the
    fetcher to fetch its pages and call :func:`manifest_from_pages`.
    """
    try:
        decoded = decode(record.value, expect=(ModelManifest, ManifestRef))
    except DecodeError as exc:
        raise ModelError("malformed", str(exc)) from None
    assert isinstance(decoded, ModelManifest | ManifestRef)
    if decoded.publisher != record.owner:
        raise ModelError("publisher-mismatch", "the record's owner did not publish it")
    if model_salt(decoded.name) != record.salt:
        raise ModelError("name-mismatch", "the record's salt is not the manifest's name")
    if decoded.version != record.seq:
        raise ModelError("version-mismatch", f"version {decoded.version}, record seq {record.seq}")
    if isinstance(decoded, ManifestRef):
        if decoded.publisher not in _trust(trusted):
            raise ModelError("untrusted-publisher", decoded.publisher.hex()[:16])
        if name is not None and decoded.name != name:
            raise ModelError("name-mismatch", f"{decoded.name!r} is not {name!r}")
        return decoded
    return verify_manifest(decoded, trusted, name=name)


def manifest_from_pages(
    ref: ManifestRef, pages: PageSource, trusted: TrustedPublishers | Iterable[bytes]
) -> ModelManifest:
    """The verified manifest whose pages ``ref`` lists, read from ``pages`` (§4.4).

    Each page is checked against its key by ``pages.load`` (ModelError
    ``missing-chunk`` or ``corrupt-chunk``); the manifest must name the
    reference's publisher, name and version (``ref-mismatch``).
    """
    data = b"".join(pages.load(k) for k in ref.page_keys)
    if len(data) != ref.size:
        raise ModelError("ref-mismatch", f"{len(data)} bytes of pages, reference says {ref.size}")
    try:
        manifest = decode(data, limits=MANIFEST_LIMITS, expect=(ModelManifest,))
    except DecodeError as exc:
        raise ModelError("malformed", str(exc)) from None
    assert isinstance(manifest, ModelManifest)
    if (manifest.publisher, manifest.name, manifest.version) != (
        ref.publisher,
        ref.name,
        ref.version,
    ):
        raise ModelError("ref-mismatch", "the pages hold another manifest")
    return verify_manifest(manifest, trusted)


def have_bitfield(present: Sequence[bool]) -> bytes:
    """A provider's ``have`` bitfield: bit 7 of byte 0 is chunk 0 (13-models.md §5.2)."""
    out = bytearray((len(present) + 7) // 8)
    for i, held in enumerate(present):
        if held:
            out[i >> 3] |= 0x80 >> (i & 7)
    return bytes(out)


def has_chunk(have: bytes | None, index: int) -> bool:
    """Whether a provider with bitfield ``have`` (None: every chunk) holds chunk ``index``."""
    if have is None:
        return True
    byte = index >> 3
    return byte < len(have) and bool(have[byte] & (0x80 >> (index & 7)))


def provider_entry(
    key: MLDSAPrivateKey,
    *,
    root: bytes,
    chunks: int,
    contact: Contact,
    have: bytes | None,
    seq: int,
    expires: int,
) -> SetEntry:
    """The set entry announcing that ``contact`` serves the model ``root`` (§5.2)."""
    provider = ModelProvider(root, chunks, contact, have=have)
    return sign_set_entry(
        key, topic=provider_topic(root), seq=seq, value=encode(provider), expires=expires
    )


def provider_from_entry(entry: SetEntry, root: bytes, chunks: int) -> ModelProvider:
    """The provider record in a (DHT-validated) set entry of ``root``'s topic; ModelError if bad.

    Reasons: ``malformed``, ``wrong-model`` (another root or chunk count),
    ``bad-bitfield`` (``have`` not ceil(chunks / 8) bytes).
    """
    try:
        provider = decode(entry.value, expect=(ModelProvider,))
    except DecodeError as exc:
        raise ModelError("malformed", str(exc)) from None
    assert isinstance(provider, ModelProvider)
    if entry.topic != provider_topic(root) or provider.root != root or provider.chunks != chunks:
        raise ModelError("wrong-model", "the provider record names another model")
    if provider.have is not None and len(provider.have) != (chunks + 7) // 8:
        raise ModelError("bad-bitfield", f"{len(provider.have)} bytes for {chunks} chunks")
    return provider
