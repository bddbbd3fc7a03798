"""``qdht train``: the demo on real nodes (in-memory network), its plot, and its errors."""

from __future__ import annotations

import functools
import json
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from qdht.cli import main

from ._procs import DIFFICULTY, QdhtProcess

EXIT_FAILED, EXIT_USAGE = 1, 2


def test_train_demo_prints_each_round_and_writes_its_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "train.png"
    argv = ["train", "demo", "--devices", "4", "--rounds", "3", "--q", "1", "--epochs", "2"]
    assert main([*argv, "--noise", "0.3", "--plot", str(plot)]) == 0
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("round ")]
    assert len(lines) == 3
    epsilons = [float(line.split("epsilon")[1]) for line in lines]
    assert 0 < epsilons[0] < epsilons[1] < epsilons[2]  # the accountant's epsilon grows
    accuracies = [float(line.split("accuracy")[1].split()[0]) for line in lines]
    assert max(accuracies) > 0.2  # above chance (0.1) despite the noise of 4 devices
    assert all(" devices   4 " in line for line in lines)  # q = 1: every device, every round
    assert f"plot written to {plot}" in captured.out


def test_train_demo_stops_at_the_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "demo", "--devices", "3", "--rounds", "5", "--q", "1", "--epochs", "1"]
    report = tmp_path / "demo.json"
    assert main([*argv, "--epsilon-budget", "6", "--no-plot", "--json", str(report)]) == 0
    captured = capsys.readouterr()
    assert len([line for line in captured.out.splitlines() if line.startswith("round ")]) < 5
    assert "the next would exceed the budget" in captured.out
    figures = json.loads(report.read_text())
    assert figures["stopped"] == "budget"
    assert 1 <= len(figures["rounds"]) < 5
    assert all(0 < r["epsilon"] <= 6 for r in figures["rounds"])


def test_train_demo_without_matplotlib_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code = main(
        ["train", "demo", "--devices", "2", "--rounds", "1", "--plot", str(tmp_path / "x.png")]
    )
    assert code == EXIT_FAILED
    assert "pip install 'qdht[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "demo", "--devices", "1"], "--devices"),
        (["train", "demo", "--q", "0", "--no-plot"], "q"),
        (["train", "join", "--coordinator", "qdht+udp://127.0.0.1:1/00", "--task", "t"], "URI"),
    ],
)
def test_train_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    assert message in capsys.readouterr().err


def _starts(prefix: str, line: str) -> bool:
    return line.startswith(prefix)


@pytest.mark.slow
def test_coordinate_and_join_train_across_processes_over_loopback() -> None:
    with ExitStack() as processes:
        coordinator = QdhtProcess(
            "train", "coordinate", "--task", "digits", "--rounds", "2", "--wait-devices", "2",
            "--round-seconds", "8", "--q", "1", "--clip", "0", "--epochs", "2",
            "--difficulty", DIFFICULTY, "--timeout", "120",
        )  # fmt: skip
        processes.callback(coordinator.kill)
        uri = coordinator.wait_for_line(lambda line: line.startswith("qdht+udp://"))
        for shard in ("0/2", "1/2"):
            device = QdhtProcess(
                "train", "join", "--coordinator", uri, "--task", "digits", "--shard", shard,
                "--difficulty", DIFFICULTY, "--timeout", "120",
            )  # fmt: skip
            processes.callback(device.kill)
        for number in ("0", "1"):
            prefix = f"{number}  "
            row = coordinator.wait_for_line(functools.partial(_starts, prefix))
            _, devices, accuracy, epsilon, state = row.split("  ")
            assert (devices, epsilon, state) == ("2/2", "no DP", "published")
            assert float(accuracy) > 0.8
        assert coordinator.wait() == 0
        device.wait_for_line(lambda line: line == "round 1: sent")


def test_train_without_the_training_extras_says_what_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    assert main(["train", "demo", "--devices", "2", "--rounds", "1", "--no-plot"]) == EXIT_FAILED
    assert "pip install 'qdht[models,fl,dp]'" in capsys.readouterr().err


def test_train_demo_through_the_mixnet(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "demo", "--devices", "3", "--rounds", "2", "--q", "1", "--epochs", "1"]
    assert main([*argv, "--mixnet", "--no-plot"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("round ")]
    assert all(" devices   3 " in line for line in lines)
    assert len(lines) == 2
    assert "6 signed messages reached the coordinator through mixnet exits" in captured.out
