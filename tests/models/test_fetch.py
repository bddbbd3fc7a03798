"""Fetching a model: parallel, verified, bounded, resumable; bad holders dropped (13 §6)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.errors import ConfigError, ModelError
from qdht.models import (
    ChunkStore,
    FetchComplete,
    FetchEvent,
    FetchLimits,
    FetchStuck,
    HolderDropped,
    ModelFetch,
    Penalty,
    Progress,
    assemble,
    chunk_lengths,
    load_arrays,
    prepare_release,
    read_header_from_path,
    save_arrays,
    storage_cost,
    verify_manifest,
)
from qdht.wire import GetChunk, ModelManifest

NOW = 1_750_000_000
#: A holder's behaviour: the answer to a request for ``key`` (bytes, None = not held, or
#: ``STALL`` = no answer at all).
STALL = object()
Behaviour = Callable[[bytes], Any]


@cache
def key() -> MLDSAPrivateKey:
    return MLDSAPrivateKey.from_seed(b"\x33" * 32)


def model(seed: int = 0, tensors: int = 10, size: int = 20_000) -> dict[str, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    return {
        f"layer{i}.weight": rng.standard_normal(size).astype(np.float32) for i in range(tensors)
    }


def publish(
    tmp_path: Path, arrays: dict[str, Any], version: int = 1
) -> tuple[ModelManifest, ChunkStore]:
    store = ChunkStore(tmp_path / "publisher")
    release = prepare_release(
        key(), name="m", version=version, source=arrays, store=store, expires=NOW + 3600,
        chunk_size=16384,
    )  # fmt: skip
    return verify_manifest(release.manifest, [key().public_key_bytes()]), store


def run(
    fetch: ModelFetch[str],
    holders: dict[str, Behaviour],
    *,
    have: dict[str, bytes] | None = None,
    max_steps: int = 10_000,
    stop_after: int | None = None,
) -> list[FetchEvent]:
    """Drive ``fetch`` like a node would, with instant answers and a manual clock."""
    for name in holders:
        fetch.add_holder(name, (have or {}).get(name))
    now, events, asked = 0.0, [], 0
    for _ in range(max_steps):
        requests = fetch.next_requests(now)
        assert fetch.stats()["in_flight"] <= fetch.limits.max_in_flight
        per_holder: dict[str, int] = {}
        for request in requests:
            per_holder[request.holder] = per_holder.get(request.holder, 0) + 1
        assert all(n <= fetch.limits.per_holder for n in per_holder.values())
        for request in requests:
            answer = holders[request.holder](request.key)
            asked += 1
            if answer is STALL:
                continue
            if answer is None:
                fetch.chunk_missing(request.holder, request.key, now)
            else:
                fetch.receive_chunk(request.holder, request.key, answer, now)
        while (event := fetch.next_event()) is not None:
            events.append(event)
        if fetch.complete or any(isinstance(e, FetchStuck) for e in events):
            break
        if stop_after is not None and asked >= stop_after:
            break
        if not requests:
            timer = fetch.get_timer()
            if timer is None:
                break
            now = timer
            fetch.handle_timer(now)
    while (event := fetch.next_event()) is not None:
        events.append(event)
    return events


def serving(store: ChunkStore) -> Behaviour:
    return lambda k: store.serve(GetChunk(b"\0" * 8, k)).data


def lying(store: ChunkStore) -> Behaviour:
    def answer(k: bytes) -> bytes:
        data = bytearray(store.load(k))
        data[0] ^= 1
        return bytes(data)

    return answer


def test_a_fetch_from_several_holders_rebuilds_the_publishers_file(tmp_path: Path) -> None:
    arrays = model()
    manifest, published = publish(tmp_path, arrays)
    mine = ChunkStore(tmp_path / "fetcher")
    fetch: ModelFetch[str] = ModelFetch(manifest, mine, FetchLimits(max_in_flight=6, per_holder=2))
    events = run(fetch, {h: serving(published) for h in ("a", "b", "c")})
    assert isinstance(events[-1], FetchComplete)
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[0].chunks_done == 0
    assert [p.bytes_done for p in progress] == sorted(p.bytes_done for p in progress)
    assert progress[-1].bytes_done == progress[-1].bytes_total == 10 * 20_000 * 4
    out = assemble(manifest, mine, tmp_path / "out.safetensors")
    expected = tmp_path / "expected.safetensors"
    save_arrays(arrays, expected)
    assert out.read_bytes() == expected.read_bytes()
    for name, array in load_arrays(out).items():
        np.testing.assert_array_equal(array, arrays[name])
    assert fetch.stats()["drops"] == {}
    assert published.stats()["served"] == len(set(manifest.chunk_keys))


def test_a_lying_holder_is_dropped_penalised_and_never_written(tmp_path: Path) -> None:
    manifest, published = publish(tmp_path, model())
    mine = ChunkStore(tmp_path / "fetcher")
    fetch: ModelFetch[str] = ModelFetch(manifest, mine)
    events = run(fetch, {"liar": lying(published), "good": serving(published)})
    assert fetch.complete
    assert HolderDropped("liar", "bad-chunk") in events
    assert Penalty("liar", "forged-record") in events
    assert fetch.stats()["drops"]["bad-chunk"] >= 1
    for k in mine.held():
        assert mine.get(k) is not None  # every kept chunk verifies
    assemble(manifest, mine, tmp_path / "out.safetensors")


def test_a_stalling_holder_times_out_and_is_dropped(tmp_path: Path) -> None:
    manifest, published = publish(tmp_path, model())
    fetch: ModelFetch[str] = ModelFetch(
        manifest, ChunkStore(tmp_path / "f"), FetchLimits(max_stalls=2)
    )
    events = run(fetch, {"slow": lambda k: STALL, "good": serving(published)})
    assert fetch.complete
    assert events.count(Penalty("slow", "timeout")) >= 2
    assert HolderDropped("slow", "stalled") in events
    assert fetch.stats()["drops"]["timeout"] >= 2


def test_with_only_bad_holders_the_fetch_is_stuck_and_nothing_is_assembled(tmp_path: Path) -> None:
    manifest, published = publish(tmp_path, model())
    mine = ChunkStore(tmp_path / "fetcher")
    fetch: ModelFetch[str] = ModelFetch(manifest, mine)
    events = run(fetch, {"liar": lying(published), "empty": lambda k: None})
    assert any(isinstance(e, FetchStuck) for e in events)
    assert not fetch.complete
    assert list(mine.held()) == []
    target = tmp_path / "out.safetensors"
    with pytest.raises(ModelError) as info:
        assemble(manifest, mine, target)
    assert info.value.reason == "missing-chunk"
    assert not target.exists()
    assert list(tmp_path.glob(".out.safetensors*")) == []


def test_an_interrupted_fetch_resumes_from_the_store(tmp_path: Path) -> None:
    manifest, published = publish(tmp_path, model())
    mine = ChunkStore(tmp_path / "fetcher")
    total = len(set(manifest.chunk_keys))
    first: ModelFetch[str] = ModelFetch(manifest, mine)
    run(first, {"a": serving(published)}, stop_after=total // 2)
    assert not first.complete
    kept = len(list(mine.held()))
    asked: list[bytes] = []

    def counting(k: bytes) -> bytes | None:
        asked.append(k)
        return published.get(k)

    second: ModelFetch[str] = ModelFetch(manifest, mine)
    resumed = second.next_event()
    assert isinstance(resumed, Progress)
    assert resumed.chunks_done == kept > 0
    run(second, {"a": counting})
    assert second.complete
    assert len(asked) == total - kept  # nothing already kept is asked again
    assemble(manifest, mine, tmp_path / "out.safetensors")


def test_a_new_version_fetches_only_the_changed_tensor(tmp_path: Path) -> None:
    old = model()
    new = dict(old)
    new["layer4.weight"] = old["layer4.weight"] * 2
    v1, pub1 = publish(tmp_path / "v1", old, version=1)
    v2, pub2 = publish(tmp_path / "v2", new, version=2)
    mine = ChunkStore(tmp_path / "fetcher")
    run(ModelFetch(v1, mine), {"a": serving(pub1)})
    fetch: ModelFetch[str] = ModelFetch(v2, mine)
    assert fetch.missing_bytes == new["layer4.weight"].nbytes
    run(fetch, {"a": serving(pub2)})
    assert fetch.complete
    assert fetch.stats()["received_bytes"] == new["layer4.weight"].nbytes
    out = assemble(v2, mine, tmp_path / "v2.safetensors")
    np.testing.assert_array_equal(load_arrays(out)["layer4.weight"], new["layer4.weight"])


def test_holders_are_asked_only_for_chunks_they_announce(tmp_path: Path) -> None:
    manifest, published = publish(tmp_path, model(tensors=2))
    n = len(manifest.chunk_keys)
    half = bytes([0xFF] * (n // 8)) + (bytes([0xFF << (8 - n % 8) & 0xFF]) if n % 8 else b"")
    evens = bytes(b & 0xAA for b in half)
    odds = bytes(b & 0x55 for b in half)
    asked: dict[str, list[int]] = {"even": [], "odd": []}
    index = {k: i for i, k in enumerate(manifest.chunk_keys)}

    def track(name: str) -> Behaviour:
        def answer(k: bytes) -> bytes | None:
            asked[name].append(index[k])
            return published.get(k)

        return answer

    fetch: ModelFetch[str] = ModelFetch(manifest, ChunkStore(tmp_path / "f"))
    run(fetch, {"even": track("even"), "odd": track("odd")}, have={"even": evens, "odd": odds})
    assert fetch.complete
    assert all(i % 2 == 0 for i in asked["even"])
    assert all(i % 2 == 1 for i in asked["odd"])


def test_a_holder_without_the_chunk_sends_the_fetch_elsewhere(tmp_path: Path) -> None:
    manifest, published = publish(tmp_path, model(tensors=3))
    fetch: ModelFetch[str] = ModelFetch(manifest, ChunkStore(tmp_path / "f"))
    run(fetch, {"empty": lambda k: None, "good": serving(published)})
    assert fetch.complete
    assert fetch.stats()["drops"]["not-held"] >= 1


def test_unsolicited_chunks_are_dropped(tmp_path: Path) -> None:
    manifest, published = publish(tmp_path, model(tensors=1))
    fetch: ModelFetch[str] = ModelFetch(manifest, ChunkStore(tmp_path / "f"))
    k = manifest.chunk_keys[0]
    fetch.receive_chunk("nobody", k, published.load(k), 0.0)
    fetch.add_holder("a")
    fetch.receive_chunk("a", k, published.load(k), 0.0)
    assert fetch.stats()["drops"] == {"unsolicited": 2}
    assert not fetch.complete


def test_a_chunk_corrupted_on_disk_is_refused_at_assembly_and_fetched_again(tmp_path: Path) -> None:
    manifest, published = publish(tmp_path, model(tensors=2))
    mine = ChunkStore(tmp_path / "fetcher")
    run(ModelFetch(manifest, mine), {"a": serving(published)})
    victim = manifest.chunk_keys[1]
    path = tmp_path / "fetcher" / "chunks" / victim.hex()[:2] / victim.hex()
    path.write_bytes(b"\0" + path.read_bytes()[1:])
    target = tmp_path / "out.safetensors"
    with pytest.raises(ModelError) as info:
        assemble(manifest, mine, target)
    assert info.value.reason == "corrupt-chunk"
    assert not target.exists()
    again: ModelFetch[str] = ModelFetch(manifest, mine)
    assert again.missing_bytes == 16384
    run(again, {"a": serving(published)})
    assemble(manifest, mine, target)
    assert read_header_from_path(target).tensors[0].name == "layer0.weight"


def test_publishing_a_file_keeps_its_metadata_and_streams_it(tmp_path: Path) -> None:
    path = tmp_path / "in.safetensors"
    save_arrays(model(tensors=2), path, {"task": "digits"})
    store = ChunkStore(tmp_path / "pub")
    release = prepare_release(
        key(), name="m", version=3, source=path, store=store, expires=NOW + 60,
        meta={"license": "MIT"},
    )  # fmt: skip
    assert dict(release.manifest.meta) == {"task": "digits", "license": "MIT"}
    assert release.record.seq == 3
    assert store.have(release.manifest) is None
    out = assemble(release.manifest, store, tmp_path / "out.safetensors")
    assert read_header_from_path(out).metadata == {"license": "MIT", "task": "digits"}


def test_provider_scheme_stores_a_fraction_of_naive_replication() -> None:
    lengths = chunk_lengths(50 * 2**20, 65536)
    cost = storage_cost(lengths, k=20, seeds=3)
    assert 20 < cost.naive_per_model_byte < 20.1
    assert 3 < cost.provider_per_model_byte < 3.01
    with_fetchers = storage_cost(lengths, fetchers=100)
    assert with_fetchers.naive_bytes - cost.naive_bytes == 100 * cost.model_bytes
    with pytest.raises(ConfigError):
        storage_cost([], k=20)


def test_fetch_limits_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        FetchLimits(max_in_flight=0)
    with pytest.raises(ConfigError):
        FetchLimits(request_timeout=-1.0)


def test_kept_manifests_survive_a_restart_and_tampering_is_noticed(tmp_path: Path) -> None:
    manifest, _ = publish(tmp_path, model(tensors=2))
    trusted = [key().public_key_bytes()]
    reopened = ChunkStore(tmp_path / "publisher")
    assert reopened.manifests(trusted) == [manifest]
    assert reopened.manifests([]) == []
    assert reopened.stats()["drops"] == {"bad-manifest": 1}
    (path,) = (tmp_path / "publisher" / "manifests").glob("*/*.cbor")
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    assert reopened.manifests(trusted) == []
