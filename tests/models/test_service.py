"""The ``models`` service between nodes of an in-memory network (13-models.md §8)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing

from qdht import Config, Node, open_node
from qdht.errors import ConfigError, ModelError, NodeStateError
from qdht.identity import Identity
from qdht.models import (
    ChunkStore,
    ModelsConfig,
    ModelsCore,
    Progress,
    ServeReady,
    chunk_key,
    load_arrays,
    model_salt,
)
from qdht.testing import MemoryNetwork
from qdht.wire import Chunk, GetChunk, ManifestRef, decode, encode

DIFFICULTY = 4


@functools.cache
def identity(n: int) -> Identity:
    return Identity.generate(DIFFICULTY)


def publisher_key() -> bytes:
    return identity(0).mldsa.public_key_bytes()


def models_config(**changes: Any) -> ModelsConfig:
    return ModelsConfig(trusted=(publisher_key(),), **changes)


def arrays(seed: int = 0, tensors: int = 4, size: int = 40_000) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        f"layer{i}.weight": rng.standard_normal(size).astype(np.float32) for i in range(tensors)
    }


@asynccontextmanager
async def network(
    count: int, tmp_path: Path, *, seed: int = 1, models: ModelsConfig | None = None
) -> AsyncIterator[list[Node]]:
    """``count`` nodes with the models layer, joined through the first; node 0 publishes."""
    net = MemoryNetwork(seed=seed)
    async with AsyncExitStack() as stack:
        nodes: list[Node] = []
        for n in range(count):
            transport = await stack.enter_async_context(net.open_transport())
            config = Config(
                identity=identity(n),
                puzzle_difficulty=DIFFICULTY,
                data_dir=str(tmp_path / f"node{n}"),
                models=models or models_config(),
            )
            node = await stack.enter_async_context(open_node(config, transport=transport))
            if nodes:
                assert await node.bootstrap([nodes[0].contact])
            nodes.append(node)
        for node in nodes:
            await node.bootstrap([nodes[-1].contact])
        yield nodes


def same_arrays(path: Path, expected: dict[str, Any]) -> bool:
    loaded = load_arrays(path)
    return loaded.keys() == expected.keys() and all(
        np.array_equal(loaded[k], v) for k, v in expected.items()
    )


async def test_a_model_published_on_one_node_is_fetched_on_another(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    model = arrays()
    async with network(10, tmp_path) as nodes:
        publisher, fetcher, third = nodes[0], nodes[9], nodes[5]
        manifest = await publisher.models.publish("demo", model, meta={"task": "test"})
        assert manifest.version == 0
        seen: list[Progress] = []
        result = await fetcher.models.fetch(
            publisher.identity.mldsa_public_hash,
            "demo",
            into=tmp_path / "demo.safetensors",
            progress=seen.append,
        )
        assert result.manifest == manifest
        assert result.path is not None
        assert same_arrays(result.path, model)
        assert seen[-1].bytes_done == seen[-1].bytes_total == sum(v.nbytes for v in model.values())
        assert result.received_bytes == seen[-1].bytes_total
        assert result.reused_bytes == 0
        # The fetcher announced itself: a third node finds two holders and uses both.
        result = await third.models.fetch(
            publisher.identity.mldsa_public_hash, "demo", into=tmp_path / "third.safetensors"
        )
        assert result.path is not None
        assert same_arrays(result.path, model)
        assert fetcher.stats()["models"]["served"] > 0
        assert publisher.stats()["models"]["served"] > 0
        assert await third.models.versions(publisher.identity.mldsa_public_hash, "demo") == [0]
        assert [m.name for m in third.models.local()] == ["demo"]


async def test_an_interrupted_fetch_resumes_from_the_store(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    model = arrays(tensors=2, size=200_000)  # 2 x 13 chunks
    async with network(6, tmp_path) as nodes:
        publisher, fetcher = nodes[0], nodes[5]
        await publisher.models.publish("big", model)
        owner = publisher.identity.mldsa_public_hash
        target = tmp_path / "big.safetensors"
        with trio.CancelScope() as scope:

            def stop_early(progress: Progress) -> None:
                if progress.chunks_done >= 6:
                    scope.cancel()

            await fetcher.models.fetch(owner, "big", into=target, progress=stop_early)
        assert scope.cancelled_caught
        assert not target.exists()  # never a partial file
        result = await fetcher.models.fetch(owner, "big", into=target)
        total = sum(v.nbytes for v in model.values())
        assert result.reused_bytes >= 6 * 65536
        assert result.received_bytes == total - result.reused_bytes
        assert same_arrays(target, model)


async def test_a_lying_holder_is_dropped_and_nothing_unverified_is_written(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    model = arrays(tensors=3, size=100_000)
    async with network(6, tmp_path) as nodes:
        publisher, liar, fetcher, last = nodes[0], nodes[1], nodes[4], nodes[5]
        owner = publisher.identity.mldsa_public_hash
        await publisher.models.publish("m", model)
        await liar.models.fetch(owner, "m")  # holds it, announced itself: now it lies
        setattr(liar.models.core, "chunk_data", lambda key: bytes(1000))  # noqa: B010
        result = await fetcher.models.fetch(owner, "m", into=tmp_path / "ok.safetensors")
        assert result.path is not None
        assert same_arrays(result.path, model)
        drops = fetcher.stats()["drops"]
        assert drops["models.holder-bad-chunk"] == 1
        assert fetcher.core.reputation.score(liar.node_id, trio.current_time()) < 0
        # With the liar as the only holder left, the fetch fails and writes nothing.
        setattr(publisher.models.core, "chunk_data", lambda key: None)  # noqa: B010
        setattr(fetcher.models.core, "chunk_data", lambda key: None)  # noqa: B010
        target = tmp_path / "never.safetensors"
        with pytest.raises(ModelError) as failed:
            await last.models.fetch(owner, "m", into=target)
        assert failed.value.reason == "no-holders"
        assert not target.exists()
        assert last.stats()["drops"]["models.holder-bad-chunk"] == 1


async def test_tampered_and_untrusted_manifests_are_refused(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    model = arrays(tensors=2, size=1000)
    async with network(5, tmp_path) as nodes:
        publisher, fetcher = nodes[0], nodes[4]
        owner = publisher.identity.mldsa_public_hash
        manifest = await publisher.models.publish("m", model)
        # A publisher that is not on the fetcher's trust list is refused.
        stranger = nodes[3]
        await stranger.models.publish("m", model)
        with pytest.raises(ModelError) as untrusted:
            await fetcher.models.fetch(stranger.identity.mldsa_public_hash, "m")
        assert untrusted.value.reason == "untrusted-publisher"
        # Unless the caller gives its key for this fetch.
        given = await fetcher.models.fetch(stranger.identity.mldsa.public_key_bytes(), "m")
        assert given.manifest.publisher == stranger.identity.mldsa_public_hash
        # A manifest whose chunk list was changed after signing (in a record the
        # publisher's key signed) is refused before any chunk is fetched.
        tensor = manifest.tensors[0]
        forged_tensor = type(tensor)(
            tensor.name, tensor.dtype, tensor.shape, bytes(32) * len(tensor.chunk_keys)
        )
        forged = type(manifest)(
            manifest.publisher, manifest.name, manifest.version + 1, manifest.chunk_size,
            (forged_tensor, *manifest.tensors[1:]), manifest.root, manifest.signature,
        )  # fmt: skip
        await publisher.put_mutable(encode(forged), salt=model_salt("m"), seq=forged.version)
        target = tmp_path / "forged.safetensors"
        with pytest.raises(ModelError) as tampered:
            await fetcher.models.fetch(owner, "m", into=target)
        assert tampered.value.reason == "root-mismatch"
        assert not target.exists()


async def test_a_new_version_moves_only_the_changed_tensor(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    v1 = arrays(tensors=10, size=20_000)
    v2 = dict(v1)
    v2["layer3.weight"] = v1["layer3.weight"] + 1
    async with network(6, tmp_path) as nodes:
        publisher, fetcher = nodes[0], nodes[5]
        owner = publisher.identity.mldsa_public_hash
        await publisher.models.publish("m", v1)
        first = await fetcher.models.fetch(owner, "m", into=tmp_path / "v1.safetensors")
        assert first.manifest.version == 0
        async with fetcher.models.watch(owner, "m") as versions:
            current = await versions.__anext__()
            assert current.version == 0
            await publisher.models.publish("m", v2)
            with trio.fail_after(120):
                async for manifest in versions:
                    if manifest.version == 1:
                        break
        second = await fetcher.models.fetch(owner, "m", into=tmp_path / "v2.safetensors")
        assert second.manifest.version == 1
        assert second.received_bytes == v2["layer3.weight"].nbytes
        assert same_arrays(tmp_path / "v2.safetensors", v2)
        assert await fetcher.models.versions(owner, "m") == [0, 1]
        # The older version is still in the store: fetching it moves nothing.
        again = await fetcher.models.fetch(owner, "m", version=0, into=tmp_path / "again")
        assert again.received_bytes == 0
        assert same_arrays(tmp_path / "again", v1)
        with pytest.raises(ModelError) as unknown:
            await fetcher.models.fetch(owner, "m", version=7)
        assert unknown.value.reason == "version-unavailable"


def test_serving_is_bounded_and_rate_limited_per_peer(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path)
    data = b"chunk"
    key = chunk_key(data)
    store.put(key, data)
    config = ModelsConfig(max_serving=12, peer_queue=8, peer_rate=10.0, peer_burst=5)
    core = ModelsCore(bytes(32), store, config)
    flood, other = bytes([1]) * 32, bytes([2]) * 32
    for n in range(20):
        core.receive_message(flood, None, encode(GetChunk(bytes([n]) * 8, key)), now=0.0)
    assert core.stats()["drops"] == {"peer-busy": 12}
    for n in range(6):
        core.receive_message(other, None, encode(GetChunk(bytes([n]) * 8, key)), now=0.0)
    assert core.stats()["drops"] == {"peer-busy": 12, "busy": 2}
    assert type(core.next_event()) is ServeReady
    # Peers take turns; each gets its burst of 5 now, the rest waits for tokens.
    assert core.serve_pending(0.0, limit=100) == 9
    answers = [decode(payload) for _, _, payload in core.messages_to_send()]
    assert all(type(a) is Chunk and a.data == data for a in answers)
    assert core.serving == 3
    assert core.serve_pending(0.0, limit=100) == 0
    assert core.serve_pending(1.0, limit=100) == 3  # a second later: 10 more tokens each
    assert core.serving == 0
    # Malformed input and unsolicited answers are dropped and counted, never raised.
    core.receive_message(flood, None, b"\xff", now=1.0)
    core.receive_message(flood, None, encode(Chunk(bytes(8), data)), now=1.0)
    assert core.stats()["drops"]["malformed"] == 1
    assert core.stats()["drops"]["unsolicited"] == 1


async def test_the_layer_is_off_by_default_and_checks_its_config(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = MemoryNetwork(seed=3)
    async with (
        net.open_transport() as transport,
        open_node(
            Config(identity=identity(1), puzzle_difficulty=DIFFICULTY), transport=transport
        ) as node,
    ):
        with pytest.raises(NodeStateError, match="models layer is off"):
            node.models  # noqa: B018
    with pytest.raises(ConfigError, match="ModelsConfig"):
        Config(models="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="trusted"):
        ModelsConfig(trusted=(b"short",))


async def test_a_manifest_in_pages_is_fetched_from_the_holders_of_its_pages(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # 1024 tensors: more CBOR items than one record value may hold (13-models.md §4.4).
    model = {f"t{i}": np.full(3, i, np.float32) for i in range(1024)}
    async with network(4, tmp_path) as nodes:
        publisher, fetcher = nodes[0], nodes[3]
        manifest = await publisher.models.publish("paged", model)
        latest = await fetcher.models.latest(publisher.identity.mldsa_public_hash, "paged")
        assert isinstance(latest, ManifestRef)
        result = await fetcher.models.fetch(
            publisher.identity.mldsa_public_hash, "paged", into=tmp_path / "paged"
        )
        assert result.manifest == manifest
        assert same_arrays(tmp_path / "paged", model)
        assert publisher.stats()["models"]["held"] == 2  # the model and its pages
