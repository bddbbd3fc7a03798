"""``qdht demo`` in-process: a small network on loopback UDP, measured and reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qdht.cli import main
from qdht.cli._demo import percentile
from qdht.cli._output import format_bytes, format_seconds


def test_demo_with_five_nodes_succeeds_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path, plot_path = tmp_path / "demo.json", tmp_path / "demo.png"
    argv = ["demo", "--nodes", "5", "--values", "4", "--lookups", "4", "--seed", "7"]
    assert main([*argv, "--json", str(report_path), "--plot", str(plot_path)]) == 0
    assert plot_path.read_bytes().startswith(b"\x89PNG")
    out = capsys.readouterr().out
    assert "5 nodes on loopback UDP, k = 5, puzzle difficulty 8" in out
    assert "seed 7" in out
    rows = _table_rows(out)
    for name in ("put", "get", "find_node"):
        assert rows[name][:2] == ["4/4", "100.0 %"]
    assert "bytes sent (total)" in rows

    report = json.loads(report_path.read_text())
    assert report["ok"] is True
    assert report["nodes"] == 5
    assert report["bootstrap_failures"] == []
    for name in ("put", "get", "find_node"):
        operation = report["operations"][name]
        assert operation["ok"] == operation["total"] == 4
        assert operation["latency_median_s"] <= operation["latency_p99_s"]
    assert report["operations"]["find_node"]["rpcs_median"] >= 1
    assert report["network"]["bytes_sent"] > 0
    assert report["network"]["handshakes"] >= 4
    assert report["network"]["handshakes_failed"] == 0


def _table_rows(text: str) -> dict[str, list[str]]:
    """The rows of the plain-text (ASCII) tables: first cell → the other cells."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| operation") and "|-" not in line:
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_percentiles_use_the_nearest_rank() -> None:
    samples = [float(v) for v in range(1, 101)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_durations_and_sizes_are_formatted_for_people() -> None:
    assert format_seconds(0.0123) == "12.3 ms"
    assert format_seconds(2.5) == "2.50 s"
    assert format_seconds(None) == "-"
    assert format_bytes(950) == "950 B"
    assert format_bytes(12.3 * 1024) == "12.3 KiB"
    assert format_bytes(3 * 1024 * 1024) == "3.00 MiB"
