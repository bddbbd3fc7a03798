"""The model store on the wire: manifests, provider records and chunk transfer.

Implements the structures of ``protocol-spec/13-models.md``; signing,
verification and fetching live in :mod:`qdht.models`.

=============  ==========================  =========================================
object         where it travels            meaning
=============  ==========================  =========================================
``manifest``   a mutable record's value    a model version: tensors, chunk keys, root
``provider``   a set entry's value         this node serves the chunks of ``root``
``get_chunk``  request                     send me the chunk with key ``key``
``chunk``      response                    here it is (no ``data``: I do not hold it)
=============  ==========================  =========================================

``get_chunk`` may instead be answered with ``error``
(:class:`~qdht.wire.ErrorMessage`), for example ``rate-limited``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Final

import attrs

from qdht.errors import ConfigError, DecodeError
from qdht.wire._cbor import dumps_canonical
from qdht.wire._contact import Contact
from qdht.wire._dht import KEY_SIZE, RID_SIZE, _read_ro, _read_ws, _with_flags
from qdht.wire._fields import FieldReader, check_uint, child_path
from qdht.wire._records import MAX_VALUE_SIZE, MLDSA_SIGNATURE_SIZE, OWNER_HASH_SIZE
from qdht.wire._registry import register

__all__ = [
    "CHUNK_KEY_SIZE",
    "CHUNK_SIZES",
    "MAX_CHUNK_SIZE",
    "MAX_HAVE_BYTES",
    "MAX_MANIFEST_PAGES",
    "MAX_META_ENTRIES",
    "MAX_META_VALUE",
    "MAX_MODEL_NAME",
    "MAX_RANK",
    "MAX_TENSORS",
    "MAX_TENSOR_NAME",
    "TENSOR_DTYPES",
    "Chunk",
    "GetChunk",
    "ManifestRef",
    "ModelManifest",
    "ModelProvider",
    "ModelTensor",
]

#: safetensors dtype → item size in bytes (13-models.md §2).
TENSOR_DTYPES: Final[Mapping[str, int]] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "U16": 2,
    "I16": 2,
    "F16": 2,
    "BF16": 2,
    "U32": 4,
    "I32": 4,
    "F32": 4,
    "U64": 8,
    "I64": 8,
    "F64": 8,
}
#: A chunk's key: the immutable key of its bytes (07-records.md §3).
CHUNK_KEY_SIZE: Final = KEY_SIZE
#: Largest chunk: the largest record value, so a chunk fits one message (13-models.md §3).
MAX_CHUNK_SIZE: Final = MAX_VALUE_SIZE
#: The chunk sizes a manifest may use.
CHUNK_SIZES: Final = frozenset({4096, 8192, 16384, 32768, 65536})
#: Longest model name, in UTF-8 bytes.
MAX_MODEL_NAME: Final = 64
#: Most pages of a manifest too large for one record (§4.4): 16 MiB of manifest.
MAX_MANIFEST_PAGES: Final = 256
#: Most tensors in one manifest.
MAX_TENSORS: Final = 1024
#: Longest tensor name, in UTF-8 bytes.
MAX_TENSOR_NAME: Final = 256
#: Most dimensions of one tensor.
MAX_RANK: Final = 32
#: Most metadata entries, longest key and value (UTF-8 bytes).
MAX_META_ENTRIES: Final = 32
MAX_META_KEY: Final = 64
MAX_META_VALUE: Final = 256
#: Longest ``have`` bitfield of a provider record: 16384 chunks (1 GiB at 64 KiB).
MAX_HAVE_BYTES: Final = 2048


# ------------------------------------------------------------------ validators


def _bytes(name: str, min_size: int, max_size: int) -> Any:
    def check(_: object, __: object, value: object) -> None:
        if type(value) is not bytes or not min_size <= len(value) <= max_size:
            raise ConfigError(f"{name} must be {min_size}..{max_size} bytes")

    return check


def _text(name: str, min_len: int, max_len: int) -> Any:
    def check(_: object, __: object, value: object) -> None:
        if type(value) is not str or not min_len <= len(value.encode()) <= max_len:
            raise ConfigError(f"{name} must be text of {min_len}..{max_len} UTF-8 bytes")

    return check


def _uint(name: str, min_value: int = 0, max_value: int = 2**64 - 1) -> Any:
    def check(_: object, __: object, value: object) -> None:
        if type(value) is not int or not min_value <= value <= max_value:
            raise ConfigError(f"{name} must be an integer in {min_value}..{max_value}")

    return check


def _choice(name: str, choices: frozenset[Any]) -> Any:
    def check(_: object, __: object, value: object) -> None:
        if value not in choices or type(value) not in (str, int):
            raise ConfigError(f"{name} must be one of {sorted(choices)}, got {value!r}")

    return check


def _instance(name: str, cls: type) -> Any:
    def check(_: object, __: object, value: object) -> None:
        if type(value) is not cls:
            raise ConfigError(f"{name} must be a {cls.__name__}, got {type(value).__name__}")

    return check


def _to_shape(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


def _check_chunks(_: object, __: object, value: Any) -> None:
    if type(value) is not bytes or len(value) % CHUNK_KEY_SIZE or len(value) > MAX_VALUE_SIZE:
        raise ConfigError(f"chunks must be concatenated {CHUNK_KEY_SIZE}-byte keys")


def _check_shape(_: object, __: object, value: object) -> None:
    if (
        type(value) is not tuple
        or len(value) > MAX_RANK
        or not all(type(d) is int and 0 <= d <= 2**64 - 1 for d in value)
    ):
        raise ConfigError(f"shape must be a tuple of at most {MAX_RANK} unsigned integers")


def _check_meta(_: object, __: object, value: object) -> None:
    if (
        type(value) is not tuple
        or len(value) > MAX_META_ENTRIES
        or any(
            type(k) is not str
            or type(v) is not str
            or not 0 < len(k.encode()) <= MAX_META_KEY
            or len(v.encode()) > MAX_META_VALUE
            for k, v in value
        )
        or len({k for k, _ in value}) != len(value)
    ):
        raise ConfigError(
            f"meta must map at most {MAX_META_ENTRIES} keys of 1..{MAX_META_KEY} bytes "
            f"to text of at most {MAX_META_VALUE} bytes"
        )


def _to_meta(value: Mapping[str, str] | Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    return tuple(sorted(items))


def _to_tensors(value: Iterable[ModelTensor]) -> tuple[ModelTensor, ...]:
    return tuple(value)


def _check_tensors(_: object, __: object, value: tuple[ModelTensor, ...]) -> None:
    if len(value) > MAX_TENSORS or not all(isinstance(t, ModelTensor) for t in value):
        raise ConfigError(f"tensors must be at most {MAX_TENSORS} ModelTensor values")
    if len({t.name for t in value}) != len(value):
        raise ConfigError("tensor names must be unique")


_rid = _bytes("rid", RID_SIZE, RID_SIZE)
_key32 = _bytes("key", KEY_SIZE, KEY_SIZE)


def _read_meta(obj: Any, path: str) -> tuple[tuple[str, str], ...]:
    if type(obj) is not dict:
        raise DecodeError("field-type", path, "meta must be a map")
    if not 0 < len(obj) <= MAX_META_ENTRIES:
        # An empty map is written by leaving meta out: one encoding per manifest.
        raise DecodeError("field-size", path, f"{len(obj)} entries, 1..{MAX_META_ENTRIES}")
    for key, value in obj.items():
        if not 0 < len(key.encode()) <= MAX_META_KEY:
            raise DecodeError("field-size", child_path(path, key), "key of 1..64 bytes")
        if type(value) is not str:
            raise DecodeError("field-type", child_path(path, key), "expected text")
        if len(value.encode()) > MAX_META_VALUE:
            raise DecodeError(
                "field-size", child_path(path, key), f"at most {MAX_META_VALUE} bytes"
            )
    return _to_meta(obj)


# -------------------------------------------------------------------- objects


@attrs.frozen
class ModelTensor:
    """One tensor of a manifest: name, dtype, shape and the keys of its chunks (§4.1)."""

    name: str = attrs.field(validator=_text("name", 1, MAX_TENSOR_NAME))
    dtype: str = attrs.field(validator=_choice("dtype", frozenset(TENSOR_DTYPES)))
    shape: tuple[int, ...] = attrs.field(converter=_to_shape, validator=_check_shape)
    #: The chunk keys, concatenated (32 bytes each), in tensor order.
    chunks: bytes = attrs.field(validator=_check_chunks, repr=False)

    @property
    def nbytes(self) -> int:
        """The tensor's size in bytes, from its shape and dtype."""
        size = TENSOR_DTYPES[self.dtype]
        for dim in self.shape:
            size *= dim
        return size

    @property
    def chunk_keys(self) -> tuple[bytes, ...]:
        c = self.chunks
        return tuple(c[i : i + CHUNK_KEY_SIZE] for i in range(0, len(c), CHUNK_KEY_SIZE))

    def to_cbor(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "chunks": self.chunks,
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> ModelTensor:
        reader = FieldReader(obj, path)
        name = reader.text("name", min_len=1, max_len=MAX_TENSOR_NAME)
        dtype = reader.text("dtype", max_len=8, choices=frozenset(TENSOR_DTYPES))
        shape = reader.array("shape", check_uint, max_len=MAX_RANK)
        chunks = reader.bytes_("chunks", max_size=MAX_VALUE_SIZE)
        if len(chunks) % CHUNK_KEY_SIZE:
            raise DecodeError("field-size", child_path(path, "chunks"), "not a multiple of 32")
        reader.finish()
        return cls(name, dtype, shape, chunks)


def _parse_tensor(obj: Any, path: str) -> ModelTensor:
    return ModelTensor.from_cbor(obj, path)


@register
@attrs.frozen
class ModelManifest:
    """A signed model version (13-models.md §4), the value of the publisher's mutable record.

    The publisher signs :meth:`signed_bytes` (the map without ``sig``) with
    :attr:`CONTEXT`; ``root`` is the Merkle root over every tensor's
    chunk keys in manifest order.
    """

    TYPE: ClassVar[str] = "manifest"
    #: FIPS 204 context string of the publisher's signature.
    CONTEXT: ClassVar[bytes] = b"qdht/v1/model-manifest"

    #: SHA3-256 of the publisher's ML-DSA-65 public key (the record's ``owner``).
    publisher: bytes = attrs.field(validator=_bytes("publisher", OWNER_HASH_SIZE, OWNER_HASH_SIZE))
    name: str = attrs.field(validator=_text("name", 1, MAX_MODEL_NAME))
    version: int = attrs.field(validator=_uint("version"))
    chunk_size: int = attrs.field(validator=_choice("chunk_size", CHUNK_SIZES))
    tensors: tuple[ModelTensor, ...] = attrs.field(converter=_to_tensors, validator=_check_tensors)
    root: bytes = attrs.field(validator=_bytes("root", 32, 32))
    signature: bytes = attrs.field(
        validator=_bytes("signature", MLDSA_SIGNATURE_SIZE, MLDSA_SIGNATURE_SIZE), repr=False
    )
    meta: tuple[tuple[str, str], ...] = attrs.field(
        default=(), converter=_to_meta, validator=_check_meta, kw_only=True
    )

    def to_cbor(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "type": self.TYPE,
            "publisher": self.publisher,
            "name": self.name,
            "version": self.version,
            "chunk_size": self.chunk_size,
            "tensors": [t.to_cbor() for t in self.tensors],
            "root": self.root,
            "sig": self.signature,
        }
        if self.meta:
            obj["meta"] = dict(self.meta)
        return obj

    def signed_bytes(self) -> bytes:
        """The deterministic encoding of the manifest without ``sig``."""
        body = self.to_cbor()
        del body["sig"]
        return dumps_canonical(body)

    @property
    def chunk_keys(self) -> tuple[bytes, ...]:
        """Every chunk key in manifest order (repeats included)."""
        return tuple(k for t in self.tensors for k in t.chunk_keys)

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> ModelManifest:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        publisher = reader.bytes_("publisher", size=OWNER_HASH_SIZE)
        name = reader.text("name", min_len=1, max_len=MAX_MODEL_NAME)
        version = reader.uint("version")
        chunk_size = reader.uint("chunk_size", min_value=min(CHUNK_SIZES), max_value=MAX_CHUNK_SIZE)
        if chunk_size not in CHUNK_SIZES:
            raise DecodeError("field-value", child_path(path, "chunk_size"), "not a power of two")
        tensors = reader.array("tensors", _parse_tensor, max_len=MAX_TENSORS)
        if len({t.name for t in tensors}) != len(tensors):
            raise DecodeError("field-value", child_path(path, "tensors"), "duplicate tensor name")
        root = reader.bytes_("root", size=32)
        meta = reader.nested("meta", _read_meta, optional=True)
        signature = reader.bytes_("sig", size=MLDSA_SIGNATURE_SIZE)
        reader.finish()
        return cls(publisher, name, version, chunk_size, tensors, root, signature, meta=meta or ())


@register
@attrs.frozen
class ManifestRef:
    """A manifest too large for one record, cut into pages (13-models.md §4.4).

    The value of the publisher's mutable record in place of the manifest:
    the manifest's encoding (``size`` bytes) is cut into 65536-byte pages
    keyed like chunks, fetched like chunks, and must name the same
    publisher, name and version as this reference.
    """

    TYPE: ClassVar[str] = "manifest_ref"

    publisher: bytes = attrs.field(validator=_bytes("publisher", OWNER_HASH_SIZE, OWNER_HASH_SIZE))
    name: str = attrs.field(validator=_text("name", 1, MAX_MODEL_NAME))
    version: int = attrs.field(validator=_uint("version"))
    size: int = attrs.field(validator=_uint("size", 1, MAX_MANIFEST_PAGES * MAX_CHUNK_SIZE))
    #: The page keys, concatenated (32 bytes each).
    pages: bytes = attrs.field(
        validator=_bytes("pages", CHUNK_KEY_SIZE, MAX_MANIFEST_PAGES * CHUNK_KEY_SIZE), repr=False
    )

    def __attrs_post_init__(self) -> None:
        if len(self.pages) % CHUNK_KEY_SIZE or len(self.pages) // CHUNK_KEY_SIZE != -(
            -self.size // MAX_CHUNK_SIZE
        ):
            raise ConfigError("pages must list one 32-byte key per 65536 bytes of size")

    @property
    def page_keys(self) -> tuple[bytes, ...]:
        p = self.pages
        return tuple(p[i : i + CHUNK_KEY_SIZE] for i in range(0, len(p), CHUNK_KEY_SIZE))

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "publisher": self.publisher,
            "name": self.name,
            "version": self.version,
            "size": self.size,
            "pages": self.pages,
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> ManifestRef:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        publisher = reader.bytes_("publisher", size=OWNER_HASH_SIZE)
        name = reader.text("name", min_len=1, max_len=MAX_MODEL_NAME)
        version = reader.uint("version")
        size = reader.uint("size", min_value=1, max_value=MAX_MANIFEST_PAGES * MAX_CHUNK_SIZE)
        pages = reader.bytes_(
            "pages", min_size=CHUNK_KEY_SIZE, max_size=MAX_MANIFEST_PAGES * CHUNK_KEY_SIZE
        )
        if len(pages) != CHUNK_KEY_SIZE * -(-size // MAX_CHUNK_SIZE):
            raise DecodeError("field-size", child_path(path, "pages"), "one key per page of size")
        reader.finish()
        return cls(publisher, name, version, size, pages)


@register
@attrs.frozen
class ModelProvider:
    """A provider record (13-models.md §5.2): ``contact`` serves chunks of the model ``root``.

    It travels as the value of a set entry under the model's provider topic,
    signed there by the provider.  ``have`` is a bitfield over the model's
    ``chunks`` chunks in manifest order (bit 7 of byte 0 is chunk 0); absent,
    the provider holds them all.
    """

    TYPE: ClassVar[str] = "provider"

    root: bytes = attrs.field(validator=_bytes("root", 32, 32))
    chunks: int = attrs.field(validator=_uint("chunks"))
    contact: Contact = attrs.field(validator=_instance("contact", Contact))
    have: bytes | None = attrs.field(
        default=None,
        kw_only=True,
        validator=attrs.validators.optional(_bytes("have", 1, MAX_HAVE_BYTES)),
    )

    def to_cbor(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "type": self.TYPE,
            "root": self.root,
            "chunks": self.chunks,
            "contact": self.contact.to_cbor(),
        }
        if self.have is not None:
            obj["have"] = self.have
        return obj

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> ModelProvider:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        root = reader.bytes_("root", size=32)
        chunks = reader.uint("chunks")
        contact = reader.nested("contact", Contact.from_cbor)
        have = reader.bytes_("have", min_size=1, max_size=MAX_HAVE_BYTES, optional=True)
        reader.finish()
        return cls(root, chunks, contact, have=have)


@register
@attrs.frozen
class GetChunk:
    """GET_CHUNK: send me the chunk whose key is ``key`` (13-models.md §5.3)."""

    TYPE: ClassVar[str] = "get_chunk"

    rid: bytes = attrs.field(validator=_rid)
    key: bytes = attrs.field(validator=_key32)
    ro: bool = attrs.field(default=False, kw_only=True, validator=_instance("ro", bool))
    ws: int | None = attrs.field(
        default=None, kw_only=True, validator=attrs.validators.optional(_uint("ws", 1, 65535))
    )

    def to_cbor(self) -> dict[str, Any]:
        return _with_flags({"type": self.TYPE, "rid": self.rid, "key": self.key}, self.ro, self.ws)

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> GetChunk:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        rid = reader.bytes_("rid", size=RID_SIZE)
        key = reader.bytes_("key", size=KEY_SIZE)
        ro = _read_ro(reader)
        ws = _read_ws(reader)
        reader.finish()
        return cls(rid, key, ro=ro, ws=ws)


@register
@attrs.frozen
class Chunk:
    """CHUNK: the answer to GET_CHUNK ``rid``: the chunk's bytes, or none if not held."""

    TYPE: ClassVar[str] = "chunk"

    rid: bytes = attrs.field(validator=_rid)
    data: bytes | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(_bytes("data", 1, MAX_CHUNK_SIZE)),
        repr=False,
    )

    def to_cbor(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"type": self.TYPE, "rid": self.rid}
        if self.data is not None:
            obj["data"] = self.data
        return obj

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Chunk:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        rid = reader.bytes_("rid", size=RID_SIZE)
        data = reader.bytes_("data", min_size=1, max_size=MAX_CHUNK_SIZE, optional=True)
        reader.finish()
        return cls(rid, data)
