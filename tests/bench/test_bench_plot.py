"""``qdht-bench NAME --plot out.png``: a benchmark's figures drawn against their targets."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from qdht_bench._common import BenchResult, Target
from qdht_bench.cli import main


def test_a_result_with_and_without_targets_is_drawn(tmp_path: Path) -> None:
    from qdht_bench._plot import plot_result

    result = BenchResult("example")
    result.add("latency_ms", 12.0, Target("<=", 20.0))
    result.add("throughput", 5.0, Target(">=", 10.0))
    result.add("missing", math.nan, Target("<=", 1.0))
    result.add("ratio_to_baseline", 1.7)
    path = tmp_path / "plots" / "example.png"
    plot_result(result, path)
    assert path.read_bytes().startswith(b"\x89PNG")


def test_the_plot_option_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "identity.png"
    assert (
        main(["identity", "--count", "2", "--runs", "1", "--mints", "1", "--plot", str(path)]) == 0
    )
    assert f"wrote {path}" in capsys.readouterr().out
    assert path.read_bytes().startswith(b"\x89PNG")
