"""Test vectors for the model store (``protocol-spec/13-models.md``).

The example model's tensor bytes come from fixed labels hashed with SHA3-256,
so another implementation can recompute its chunks, chunk keys and Merkle
root from the ``model`` field of ``model-manifest.json``.  The publisher is
the records vectors' fixed owner alice; ML-DSA-65 signing is hedged, so the
manifest file pins the signatures it uses in its ``signatures`` list.

``model-manifest.json`` also has a ``semantic`` list (13-models.md §7): a
signed manifest, whether its publisher is trusted, and the outcome of the
checks of §4.3, replayed by ``tests/models/test_vectors.py``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

import attrs
import cbor2

from qdht.models import chunk_key, merkle_root, split
from qdht.wire import (
    MAX_CHUNK_SIZE,
    MAX_HAVE_BYTES,
    Address,
    Chunk,
    Contact,
    GetChunk,
    ManifestRef,
    ModelManifest,
    ModelProvider,
    ModelTensor,
    encode,
)
from qdht_lint._cddl import default_spec_dir
from qdht_lint.vectors._common import Valid, vector_file
from qdht_lint.vectors._dht import _common_invalid
from qdht_lint.vectors._records import _Owner, _owners, _Signer

__all__ = ["vector_files"]

SPEC: Final = "13-models.md"
CHUNK_SIZE: Final = 4096


def _bytes(label: str, size: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha3_256(f"qdht/vectors/model/{label}/{counter}".encode()).digest()
        counter += 1
    return out[:size]


RID: Final = _bytes("rid", 8)


def _canon(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


def _without(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != name}


class _ModelSigner(_Signer):
    """The records vectors' signer, with its pins in ``vectors/model/``."""

    def __init__(self, rule: str) -> None:
        self.pinned: dict[tuple[str, str, str], str] = {}
        self.used: list[dict[str, str]] = []
        path = default_spec_dir() / "vectors" / "model" / f"{rule}.json"
        if path.is_file():
            for entry in json.loads(path.read_text(encoding="utf-8")).get("signatures", []):
                self.pinned[(entry["key"], entry["context"], entry["message_sha3"])] = entry[
                    "signature"
                ]


#: The example model: (name, dtype, shape, item size).
_TENSORS: Final = (
    ("layer.weight", "F32", (3, 1500), 4),
    ("layer.bias", "F16", (3,), 2),
    ("empty", "I64", (0,), 8),
)


def _model() -> list[tuple[str, str, tuple[int, ...], bytes]]:
    out: list[tuple[str, str, tuple[int, ...], bytes]] = []
    for name, dtype, shape, item in _TENSORS:
        size = item
        for dim in shape:
            size *= dim
        out.append((name, dtype, shape, _bytes(f"tensor/{name}", size)))
    return out


def _tensors() -> tuple[ModelTensor, ...]:
    return tuple(
        ModelTensor(name, dtype, shape, b"".join(chunk_key(c) for c in split(data, CHUNK_SIZE)))
        for name, dtype, shape, data in _model()
    )


def _sign(signer: _Signer, owner: _Owner, manifest: ModelManifest) -> ModelManifest:
    signature = signer.sign(owner, manifest.signed_bytes(), ModelManifest.CONTEXT)
    return attrs.evolve(manifest, signature=signature)


def _manifest(signer: _Signer, owner: _Owner, **changes: Any) -> ModelManifest:
    tensors = _tensors()
    root = merkle_root([k for t in tensors for k in t.chunk_keys])
    unsigned = ModelManifest(
        owner.owner, "mnist-cnn", 3, CHUNK_SIZE, tensors, root, bytes(3309),
        meta={"framework": "numpy", "license": "Apache-2.0", "metric.accuracy": "0.991"},
    )  # fmt: skip
    return _sign(signer, owner, attrs.evolve(unsigned, **changes))


def _manifest_file() -> dict[str, Any]:
    alice, _ = _owners()
    signer = _ModelSigner("model-manifest")
    typical = _manifest(signer, alice)
    bare = _manifest(signer, alice, meta=(), version=0, tensors=(), root=merkle_root([]))
    big = _manifest(signer, alice, chunk_size=MAX_CHUNK_SIZE, tensors=_tensors()[1:2])
    big = _sign(signer, alice, attrs.evolve(big, root=merkle_root(list(big.chunk_keys))))
    valid: list[Valid] = [
        ("three tensors, metadata", [], encode(typical)),
        ("no tensors, no metadata, version 0", [], encode(bare)),
        ("64 KiB chunks", [], encode(big)),
    ]
    base = typical.to_cbor()
    tensor0 = base["tensors"][0]
    invalid = _common_invalid(base)
    invalid += [
        ("chunk_size 1000", ["wrong-field-value"], _canon(dict(base, chunk_size=1000)),
         "field-value"),
        ("chunk_size 5000 (not a power of two)", ["wrong-field-value"],
         _canon(dict(base, chunk_size=5000)), "field-value"),
        ("chunk_size 131072", ["wrong-field-value"], _canon(dict(base, chunk_size=131072)),
         "field-value"),
        ("name empty", ["undersize-field"], _canon(dict(base, name="")), "field-size"),
        ("name of 65 bytes", ["oversize-field"], _canon(dict(base, name="m" * 65)), "field-size"),
        ("version negative", ["wrong-field-type"], _canon(dict(base, version=-1)), "field-type"),
        ("publisher of 31 bytes", ["undersize-field"],
         _canon(dict(base, publisher=alice.owner[:31])), "field-size"),
        ("root of 33 bytes", ["oversize-field"], _canon(dict(base, root=base["root"] + b"\0")),
         "field-size"),
        ("sig of 3308 bytes", ["undersize-field"], _canon(dict(base, sig=base["sig"][:-1])),
         "field-size"),
        ("sig missing", ["missing-field"], _canon(_without(base, "sig")), "missing-field"),
        ("tensors missing", ["missing-field"], _canon(_without(base, "tensors")), "missing-field"),
        ("meta value is an integer", ["wrong-field-type"],
         _canon(dict(base, meta={"framework": 1})), "field-type"),
        ("meta value of 257 bytes", ["oversize-field"],
         _canon(dict(base, meta={"task": "t" * 257})), "field-size"),
        ("tensor dtype F128", ["wrong-field-value"],
         _canon(dict(base, tensors=[dict(tensor0, dtype="F128")])), "field-value"),
        ("tensor shape with a negative dimension", ["wrong-field-type"],
         _canon(dict(base, tensors=[dict(tensor0, shape=[-3])])), "field-type"),
        ("tensor name empty", ["undersize-field"],
         _canon(dict(base, tensors=[dict(tensor0, name="")])), "field-size"),
        ("tensor chunks is an array", ["wrong-field-type"],
         _canon(dict(base, tensors=[dict(tensor0, chunks=[tensor0["chunks"][:32]])])),
         "field-type"),
    ]  # fmt: skip
    content = vector_file(
        "model-manifest",
        SPEC,
        valid,
        invalid,
        publisher=alice.describe(),
        model={
            "chunk_size": CHUNK_SIZE,
            "tensors": [
                {"name": n, "dtype": d, "shape": list(s), "data": data.hex()}
                for n, d, s, data in _model()
            ],
            "chunk_keys": [k.hex() for k in typical.chunk_keys],
            "root": typical.root.hex(),
        },
    )
    content["semantic"] = _semantic(signer, alice, typical)
    content["signatures"] = signer.used
    return content


def _semantic(signer: _Signer, alice: _Owner, typical: ModelManifest) -> list[dict[str, Any]]:
    weight, bias, empty = typical.tensors
    wider = attrs.evolve(weight, shape=(3, 2000))  # needs 6 chunks, lists 5
    sig = typical.signature
    cases: list[tuple[str, ModelManifest, bool, str | None]] = [
        ("trusted publisher, everything matches", typical, True, None),
        ("publisher not trusted", typical, False, "untrusted-publisher"),
        (
            "signature flipped in its first byte",
            attrs.evolve(typical, signature=bytes([sig[0] ^ 1]) + sig[1:]),
            True,
            "bad-signature",
        ),
        (
            "signed, but a shape needs more chunks than listed",
            _sign(signer, alice, attrs.evolve(typical, tensors=(wider, bias, empty))),
            True,
            "shape-mismatch",
        ),
        (
            "signed, but the root is not the chunks' Merkle root",
            _sign(signer, alice, attrs.evolve(typical, root=bytes(32))),
            True,
            "root-mismatch",
        ),
        (
            "signed over another manifest (the version changed after signing)",
            attrs.evolve(typical, version=4),
            True,
            "bad-signature",
        ),
    ]
    return [
        {
            "comment": comment,
            "cbor": encode(manifest).hex(),
            "trusted": trusted,
            "result": "valid" if reason is None else "invalid",
            **({"reason": reason} if reason else {}),
        }
        for comment, manifest, trusted, reason in cases
    ]


def _manifest_ref_file() -> dict[str, Any]:
    alice, _ = _owners()
    pages = b"".join(chunk_key(_bytes(f"page-{i}", 8)) for i in range(3))
    typical = ManifestRef(alice.owner, "llm-small", 12, 2 * MAX_CHUNK_SIZE + 17, pages)
    valid: list[Valid] = [
        ("three pages", [], encode(typical)),
        ("one page, one byte", [], encode(ManifestRef(alice.owner, "m", 0, 1, pages[:32]))),
    ]
    base = typical.to_cbor()
    invalid = _common_invalid(base)
    invalid += [
        ("pages empty", ["undersize-field"], _canon(dict(base, pages=b"")), "field-size"),
        ("size 0", ["wrong-field-value"], _canon(dict(base, size=0)), "field-value"),
        ("size over 256 pages", ["wrong-field-value"], _canon(dict(base, size=2**24 + 1)),
         "field-value"),
        ("name empty", ["undersize-field"], _canon(dict(base, name="")), "field-size"),
        ("version missing", ["missing-field"], _canon(_without(base, "version")),
         "missing-field"),
        ("publisher of 33 bytes", ["oversize-field"],
         _canon(dict(base, publisher=alice.owner + b"\0")), "field-size"),
    ]  # fmt: skip
    return vector_file("model-manifest_ref", SPEC, valid, invalid)


def _provider_file() -> dict[str, Any]:
    root = _bytes("root", 32)
    contact = Contact(_bytes("holder", 32), (Address("udp", "198.51.100.7", 6881),))
    typical = ModelProvider(root, 6, contact)
    partial = ModelProvider(root, 6, contact, have=b"\xb4")  # chunks 0, 2, 3, 5
    two = Contact(
        contact.node_id,
        (Address("udp", "2001:db8::7", 6881), Address("ws", "203.0.113.9", 443)),
    )
    valid: list[Valid] = [
        ("holds every chunk", [], encode(typical)),
        ("partial: chunks 0, 2, 3 and 5 of 6", [], encode(partial)),
        ("two addresses, largest bitfield", [],
         encode(ModelProvider(root, 16384, two, have=b"\xff" * MAX_HAVE_BYTES))),
    ]  # fmt: skip
    base = partial.to_cbor()
    invalid = _common_invalid(base)
    invalid += [
        ("have empty", ["undersize-field"], _canon(dict(base, have=b"")), "field-size"),
        ("have of 2049 bytes", ["oversize-field"], _canon(dict(base, have=bytes(2049))),
         "field-size"),
        ("root of 31 bytes", ["undersize-field"], _canon(dict(base, root=root[:31])), "field-size"),
        ("chunks negative", ["wrong-field-type"], _canon(dict(base, chunks=-1)), "field-type"),
        ("contact missing", ["missing-field"], _canon(_without(base, "contact")), "missing-field"),
        ("contact is bytes", ["wrong-field-type"], _canon(dict(base, contact=b"c")), "not-a-map"),
        ("have is null", ["wrong-field-type"], _canon(dict(base, have=None)), "field-type"),
    ]  # fmt: skip
    return vector_file("model-provider", SPEC, valid, invalid)


def _get_chunk_file() -> dict[str, Any]:
    key = chunk_key(b"chunk")
    typical = GetChunk(RID, key)
    valid: list[Valid] = [
        ("a chunk by key", [], encode(typical)),
        ("client-mode requester on WebSocket", [], encode(GetChunk(RID, key, ro=True, ws=443))),
    ]
    base = typical.to_cbor()
    invalid = _common_invalid(base)
    invalid += [
        ("key of 31 bytes", ["undersize-field"], _canon(dict(base, key=key[:31])), "field-size"),
        ("key missing", ["missing-field"], _canon(_without(base, "key")), "missing-field"),
        ("ro false", ["wrong-field-value"], _canon(dict(base, ro=False)), "field-value"),
        ("ws port 0", ["wrong-field-value"], _canon(dict(base, ws=0)), "field-value"),
    ]
    return vector_file("model-get_chunk", SPEC, valid, invalid)


def _chunk_file() -> dict[str, Any]:
    data = _bytes("chunk-data", 100)
    typical = Chunk(RID, data)
    valid: list[Valid] = [
        ("a short chunk", [], encode(typical)),
        ("not held: no data", [], encode(Chunk(RID))),
        ("a full 64 KiB chunk", [], encode(Chunk(RID, b"\x5a" * MAX_CHUNK_SIZE))),
    ]
    base = typical.to_cbor()
    invalid = _common_invalid(base)
    invalid += [
        ("data empty", ["undersize-field"], _canon(dict(base, data=b"")), "field-size"),
        ("data of 65537 bytes", ["oversize-field"], _canon(dict(base, data=bytes(65537))),
         "field-size"),
        ("data is text", ["wrong-field-type"], _canon(dict(base, data="chunk")), "field-type"),
        ("data is null", ["wrong-field-type"], _canon(dict(base, data=None)), "field-type"),
    ]  # fmt: skip
    return vector_file("model-chunk", SPEC, valid, invalid)


def vector_files() -> dict[str, dict[str, Any]]:
    """``model/model-<type>.json`` for the five model-store objects."""
    return {
        "model/model-manifest.json": _manifest_file(),
        "model/model-manifest_ref.json": _manifest_ref_file(),
        "model/model-provider.json": _provider_file(),
        "model/model-get_chunk.json": _get_chunk_file(),
        "model/model-chunk.json": _chunk_file(),
    }
