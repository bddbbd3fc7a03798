"""Manifests: signed, published as mutable records, accepted only from trusted publishers."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.dht import DEFAULT_RECORD_LIMITS, RecordValidator, sign_mutable
from qdht.errors import ConfigError, ModelError
from qdht.models import (
    ChunkStore,
    ModelFetch,
    TrustedPublishers,
    chunk_arrays,
    chunk_key,
    has_chunk,
    have_bitfield,
    manifest_from_pages,
    manifest_from_record,
    manifest_record,
    model_record_key,
    model_salt,
    provider_entry,
    provider_from_entry,
    sign_manifest,
    verify_manifest,
)
from qdht.wire import (
    MAX_HAVE_BYTES,
    Address,
    Contact,
    ManifestRef,
    ModelManifest,
    ModelProvider,
    ModelTensor,
    encode,
    owner_hash,
)

SPEC_DIR = Path(__file__).resolve().parents[2] / "protocol-spec"
NOW = 1_750_000_000


@cache
def publisher() -> MLDSAPrivateKey:
    return MLDSAPrivateKey.from_seed(b"\x11" * 32)


@cache
def stranger() -> MLDSAPrivateKey:
    return MLDSAPrivateKey.from_seed(b"\x22" * 32)


@cache
def manifest() -> ModelManifest:
    rng = np.random.default_rng(3)
    arrays: dict[str, np.ndarray[Any, Any]] = {
        "w": rng.standard_normal((100, 300)).astype(np.float32),
        "b": np.zeros(3, np.int8),
    }
    return sign_manifest(
        publisher(), name="digits", version=7, tensors=chunk_arrays(arrays), chunk_size=65536,
        meta={"framework": "numpy"},
    )  # fmt: skip


def trusted() -> list[bytes]:
    return [publisher().public_key_bytes()]


def test_a_published_manifest_round_trips_through_its_record() -> None:
    record = manifest_record(publisher(), manifest(), expires=NOW + 3600)
    owner = owner_hash(publisher().public_key_bytes())
    assert record.key() == model_record_key(owner, "digits")
    assert record.seq == 7
    assert record.salt == model_salt("digits")
    RecordValidator().validate(record, record.key(), NOW)  # a valid DHT record
    assert manifest_from_record(record, trusted(), name="digits") == manifest()


def _reason(call: Any) -> str:
    with pytest.raises(ModelError) as info:
        call()
    return info.value.reason


def test_manifests_from_untrusted_publishers_are_refused() -> None:
    assert _reason(lambda: verify_manifest(manifest(), [])) == "untrusted-publisher"
    other = [stranger().public_key_bytes()]
    assert _reason(lambda: verify_manifest(encode(manifest()), other)) == "untrusted-publisher"


def test_a_tampered_manifest_is_refused() -> None:
    sig = manifest().signature
    forged = attrs.evolve(manifest(), signature=sig[:-1] + bytes([sig[-1] ^ 1]))
    assert _reason(lambda: verify_manifest(forged, trusted())) == "bad-signature"
    renamed = attrs.evolve(manifest(), version=8)
    assert _reason(lambda: verify_manifest(renamed, trusted())) == "bad-signature"


def test_shapes_and_root_must_match_the_chunks() -> None:
    w, b = manifest().tensors
    bigger = attrs.evolve(w, shape=(100, 400))
    resigned = sign_manifest(
        publisher(), name="digits", version=7, tensors=(bigger, b), chunk_size=65536
    )
    assert _reason(lambda: verify_manifest(resigned, trusted())) == "shape-mismatch"
    swapped = attrs.evolve(manifest(), root=bytes(32))
    assert _reason(lambda: verify_manifest(swapped, trusted())) == "root-mismatch"


def test_the_record_must_bind_publisher_name_and_version() -> None:
    value = encode(manifest())
    key = publisher()

    def record(salt: bytes = model_salt("digits"), seq: int = 7, value: bytes = value) -> Any:
        return sign_mutable(key, salt=salt, seq=seq, value=value, expires=NOW + 60)

    assert _reason(lambda: manifest_from_record(record(seq=8), trusted())) == "version-mismatch"
    salt = model_salt("other")
    assert _reason(lambda: manifest_from_record(record(salt=salt), trusted())) == "name-mismatch"
    assert _reason(lambda: manifest_from_record(record(value=b"junk"), trusted())) == "malformed"
    theirs = sign_mutable(
        stranger(), salt=model_salt("digits"), seq=7, value=value, expires=NOW + 60
    )
    assert _reason(lambda: manifest_from_record(theirs, trusted())) == "publisher-mismatch"
    good = record()
    assert _reason(lambda: manifest_from_record(good, trusted(), name="x")) == "name-mismatch"


@cache
def big_manifest() -> ModelManifest:
    """A manifest of 3,000 chunks (about 190 MiB of tensors): too large for one record."""
    tensors = [
        ModelTensor(n, "U8", (65536 * 1500,), b"".join(bytes([i % 256, i // 256]) * 16
                    for i in range(1500)))
        for n in "ab"
    ]  # fmt: skip
    return sign_manifest(publisher(), name="big", version=2, tensors=tensors, chunk_size=65536)


def test_a_manifest_too_large_for_one_record_travels_in_pages(tmp_path: Path) -> None:
    pub = ChunkStore(tmp_path / "pub")
    record = manifest_record(publisher(), big_manifest(), expires=NOW + 60, pages=pub)
    RecordValidator().validate(record, record.key(), NOW)
    ref = manifest_from_record(record, trusted(), name="big")
    assert isinstance(ref, ManifestRef)
    assert ref.size == len(encode(big_manifest())) > 65536
    mine = ChunkStore(tmp_path / "mine")
    with pytest.raises(ModelError) as info:
        manifest_from_pages(ref, mine, trusted())
    assert info.value.reason == "missing-chunk"
    fetch: ModelFetch[str] = ModelFetch(ref, mine)
    fetch.add_holder("publisher", have=b"\x00")  # a bitfield covers chunks, not pages
    for request in fetch.next_requests(0.0):
        fetch.receive_chunk(request.holder, request.key, pub.load(request.key), 0.0)
    assert fetch.complete
    assert manifest_from_pages(ref, mine, trusted()) == big_manifest()
    assert _reason(lambda: manifest_from_pages(ref, mine, [])) == "untrusted-publisher"
    with pytest.raises(ConfigError, match="pass the chunk store"):
        manifest_record(publisher(), big_manifest(), expires=NOW + 60)


def test_pages_of_another_manifest_are_refused(tmp_path: Path) -> None:
    pub = ChunkStore(tmp_path / "pub")
    record = manifest_record(publisher(), big_manifest(), expires=NOW + 60, pages=pub)
    ref = manifest_from_record(record, trusted())
    assert isinstance(ref, ManifestRef)
    other = attrs.evolve(ref, version=3)
    assert _reason(lambda: manifest_from_pages(other, pub, trusted())) == "ref-mismatch"
    small = encode(manifest())
    pub.put(chunk_key(small), small)
    renamed = ManifestRef(ref.publisher, "big", 2, len(small), chunk_key(small))
    assert _reason(lambda: manifest_from_pages(renamed, pub, trusted())) == "ref-mismatch"


def test_manifest_record_refuses_another_key() -> None:
    with pytest.raises(ConfigError, match="another key"):
        manifest_record(stranger(), manifest(), expires=NOW)


def test_provider_records_round_trip_and_bad_ones_are_refused() -> None:
    contact = Contact(b"\5" * 32, (Address("udp", "127.0.0.1", 6881),))
    root = manifest().root
    have = have_bitfield([True, False, True])
    assert have == b"\xa0"
    assert [has_chunk(have, i) for i in range(4)] == [True, False, True, False]
    assert has_chunk(None, 10**6)
    entry = provider_entry(
        stranger(), root=root, chunks=3, contact=contact, have=have, seq=1, expires=NOW + 60
    )
    RecordValidator().validate(entry, entry.key(), NOW)
    provider = provider_from_entry(entry, root, 3)
    assert provider.contact == contact
    assert _reason(lambda: provider_from_entry(entry, bytes(32), 3)) == "wrong-model"
    assert _reason(lambda: provider_from_entry(entry, root, 17)) == "wrong-model"
    bad = provider_entry(
        stranger(), root=root, chunks=17, contact=contact, have=have, seq=1, expires=NOW + 60
    )
    assert _reason(lambda: provider_from_entry(bad, root, 17)) == "bad-bitfield"


def test_the_largest_provider_record_fits_a_set_entry_value() -> None:
    contact = Contact(b"\5" * 32, tuple(Address("udp", f"2001:db8::{i}", 65535) for i in range(4)))
    largest = ModelProvider(b"\6" * 32, 2**64 - 1, contact, have=b"\xff" * MAX_HAVE_BYTES)
    assert len(encode(largest)) <= DEFAULT_RECORD_LIMITS.max_set_value_size


def test_trust_list_rejects_malformed_keys() -> None:
    with pytest.raises(ConfigError):
        TrustedPublishers([b"short"])
    trust = TrustedPublishers(trusted())
    assert owner_hash(trusted()[0]) in trust
    assert len(trust) == 1


# ------------------------------------------------------------------ vectors


def _vectors() -> dict[str, Any]:
    path = SPEC_DIR / "vectors" / "model" / "model-manifest.json"
    content: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return content


@pytest.mark.parametrize("case", _vectors()["semantic"], ids=lambda c: c["comment"])
def test_semantic_manifest_vectors(case: dict[str, Any]) -> None:
    seed = bytes.fromhex(_vectors()["publisher"]["mldsa_seed"])
    keys = [MLDSAPrivateKey.from_seed(seed).public_key_bytes()] if case["trusted"] else []
    data = bytes.fromhex(case["cbor"])
    if case["result"] == "valid":
        assert verify_manifest(data, keys).root.hex() == _vectors()["model"]["root"]
    else:
        assert _reason(lambda: verify_manifest(data, keys)) == case["reason"]


def test_the_example_model_chunks_to_the_vector_keys_and_root() -> None:
    from qdht.models import chunk_key, merkle_root, split

    model = _vectors()["model"]
    keys = [
        chunk_key(piece).hex()
        for tensor in model["tensors"]
        for piece in split(bytes.fromhex(tensor["data"]), model["chunk_size"])
    ]
    assert keys == model["chunk_keys"]
    assert merkle_root([bytes.fromhex(k) for k in keys]).hex() == model["root"]
