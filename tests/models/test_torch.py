"""The PyTorch adapter: a state_dict published, fetched and loaded back, bf16 included."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.errors import ConfigError
from qdht.models import (
    ChunkStore,
    ModelFetch,
    arrays_to_state_dict,
    assemble,
    load_state_dict,
    prepare_release,
    state_dict_to_arrays,
)

# Imported as Any so that mypy does not analyse all of torch on every run.
torch: Any = importlib.import_module("torch")
safetensors_torch: Any = importlib.import_module("safetensors.torch")


def _net() -> Any:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


def test_a_state_dict_survives_publish_fetch_and_load(tmp_path: Path) -> None:
    net = _net()
    arrays = state_dict_to_arrays(net.state_dict())
    publisher = ChunkStore(tmp_path / "pub")
    release = prepare_release(
        MLDSAPrivateKey.from_seed(b"\x44" * 32), name="mlp", version=1, source=arrays,
        store=publisher, expires=2_000_000_000, meta={"framework": "pytorch"},
    )  # fmt: skip
    mine = ChunkStore(tmp_path / "mine")
    fetch: ModelFetch[str] = ModelFetch(release.manifest, mine)
    fetch.add_holder("publisher")
    while not fetch.complete:
        for request in fetch.next_requests(0.0):
            fetch.receive_chunk(request.holder, request.key, publisher.load(request.key), 0.0)
    path = assemble(release.manifest, mine, tmp_path / "mlp.safetensors")
    loaded = load_state_dict(path)
    fresh = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    fresh.load_state_dict(loaded)
    x = torch.ones(3, 8)
    assert torch.equal(fresh(x), net(x))
    assert torch.equal(arrays_to_state_dict(arrays)["0.weight"], net.state_dict()["0.weight"])


def test_bfloat16_files_load_but_bfloat16_state_dicts_are_refused(tmp_path: Path) -> None:
    weights = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3).to(torch.bfloat16),
               "empty": torch.zeros(0, 4, dtype=torch.bfloat16)}  # fmt: skip
    path = tmp_path / "bf16.safetensors"
    safetensors_torch.save_file(weights, str(path))
    loaded = load_state_dict(path)
    assert loaded["w"].dtype == torch.bfloat16
    assert torch.equal(loaded["w"], weights["w"])
    assert loaded["empty"].shape == (0, 4)
    with pytest.raises(ConfigError, match="bfloat16"):
        state_dict_to_arrays(weights)
    with pytest.raises(ConfigError, match="not a tensor"):
        state_dict_to_arrays({"w": [1.0]})
