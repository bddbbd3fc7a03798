"""``qdht-bench durability`` in miniature: records survive churn through replication."""

from __future__ import annotations

import argparse
import pickle
import random
from pathlib import Path
from typing import Any

import pytest
from qdht_bench import _durability
from qdht_bench._durability import resume, run_one

from qdht.testing import SessionLengths


def test_records_stay_retrievable_under_heavy_tailed_churn_and_loss() -> None:
    metrics = run_one(nodes=50, records=20, hours=3.0, churn=0.5, seed=3, join_interval=0.05)
    assert metrics["puts_ok"] == 20
    assert metrics["found"] == 20
    # Half the network leaves per hour, on average: about 75 departures in 3 hours.
    assert 40 <= metrics["departures"] <= 120
    assert metrics["messages_lost"] > 0  # 5 % loss by default
    # Copies were restored, not merely left over: the k closest hold each record.
    assert metrics["replicas_min"] >= 10
    assert metrics["republish_lookups_per_h"] > 0


def test_records_survive_a_mass_departure() -> None:
    metrics = run_one(
        nodes=40, records=12, hours=1.0, churn=0.0, mass=0.3, seed=4, join_interval=0.05
    )
    assert metrics["departures"] == 12
    assert metrics["found"] == 12


def test_session_lengths_have_the_mean_of_the_hourly_churn_and_a_heavy_tail() -> None:
    sessions = SessionLengths.for_hourly_churn(0.5)
    assert sessions.mean == 7200.0
    rng = random.Random(1)
    draws = sorted(sessions.draw(rng) for _ in range(20_000))
    assert abs(sum(draws) / len(draws) - 7200.0) < 400
    # Heavy tailed: most sessions are far shorter than the mean, a few far longer.
    assert draws[len(draws) // 2] < 0.5 * 7200.0
    assert draws[-len(draws) // 100] > 5 * 7200.0
    # A node found online is in a longer session than a new one (length bias).
    remaining = [sessions.draw_remaining(rng) for _ in range(20_000)]
    assert sum(remaining) / len(remaining) > 7200.0


@pytest.fixture
def saves(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bytes]]:
    """Every checkpoint the benchmark saves: (the simulated hour it ends, its bytes)."""
    saved: list[tuple[int, bytes]] = []
    save = _durability.save_checkpoint

    def keep(run: Any, path: Path) -> None:
        save(run, path)
        saved.append((run.next_hour - 1, path.read_bytes()))

    monkeypatch.setattr(_durability, "save_checkpoint", keep)
    return saved


def test_a_run_resumed_from_an_hourly_checkpoint_ends_as_the_uninterrupted_one(
    tmp_path: Path, saves: list[tuple[int, bytes]]
) -> None:
    """The full-size benchmark takes hours of CPU: a stopped run is taken up from
    its last checkpoint, and must end exactly where it would have."""

    def simulate(checkpoint: Path | None = None) -> dict[str, float]:
        return run_one(
            nodes=24,
            records=8,
            hours=2.0,
            churn=0.5,
            seed=5,
            join_interval=0.05,
            checkpoint=checkpoint,
        )

    plain = simulate()
    assert saves == []
    checkpointed = simulate(tmp_path / "run.ckpt")
    assert [hour for hour, _ in saves] == [1, 2]  # one per simulated hour
    assert not (tmp_path / "run.ckpt.tmp").exists()

    first_hour = tmp_path / "hour1.ckpt"
    first_hour.write_bytes(saves[0][1])
    run, resumed = resume(first_hour)
    assert (run.next_hour, run.churn, run.nodes) == (3, 0.5, 24)
    for metrics in (checkpointed, resumed):
        assert {k: v for k, v in metrics.items() if k not in ("wall_s", "cpu_s")} == {
            k: v for k, v in plain.items() if k not in ("wall_s", "cpu_s")
        }
    assert plain["found"] == 8


def test_resume_refuses_a_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "other.pickle"
    path.write_bytes(pickle.dumps({"not": "a run"}))
    with pytest.raises(TypeError, match="not a durability checkpoint"):
        resume(path)


def test_checkpoints_are_saved_every_so_many_simulated_hours(
    tmp_path: Path, saves: list[tuple[int, bytes]]
) -> None:
    run_one(
        nodes=12,
        records=4,
        hours=5.0,
        churn=0.3,
        seed=9,
        join_interval=0.05,
        checkpoint=tmp_path / "run.ckpt",
        checkpoint_every=2,
    )
    assert [hour for hour, _ in saves] == [2, 4]
    assert _durability.load_checkpoint(tmp_path / "run.ckpt").next_hour == 5


def test_scenarios_in_parallel_processes_give_the_same_figures() -> None:
    # --jobs runs each scenario in its own process: the same runs, same figures
    # (only the times each process measured itself differ).
    parser = argparse.ArgumentParser()
    _durability.add_arguments(parser)
    argv = [
        *("--core", "python", "--nodes", "16", "--records", "4"),
        *("--hours", "0.5", "--churn", "0.3", "0.5"),
    ]
    one = _durability.run(parser.parse_args(argv)).metrics
    two = _durability.run(parser.parse_args([*argv, "--jobs", "2"])).metrics

    def figures(metrics: dict[str, float]) -> dict[str, float]:
        return {k: v for k, v in metrics.items() if not k.startswith(("wall_s", "cpu_s"))}

    assert figures(two) == figures(one)
    assert {"retrievable_churn30", "retrievable_churn50", "retrievable_mass30"} <= set(one)
    assert one["cpu_s_churn50"] > 0
    assert two["cpu_s_churn50"] > 0


def test_the_mass_departure_branched_off_the_churn_run_ends_as_a_run_of_its_own() -> None:
    # Until the departure the mass run is the churn run of the same hourly churn:
    # it starts from that run's half-way state, and must end exactly where a run
    # from the start ends.
    parser = argparse.ArgumentParser()
    _durability.add_arguments(parser)
    argv = [
        *("--core", "python", "--nodes", "16", "--records", "4"),
        *("--hours", "1", "--churn", "0.3", "--seed", "2"),
    ]
    branched = _durability.run(parser.parse_args(argv)).metrics
    alone = run_one(nodes=16, records=4, hours=1.0, churn=0.3, mass=0.3, seed=2, join_interval=0.05)
    assert branched["departures_mass30"] == alone["departures"]
    for name, value in alone.items():
        if name not in ("wall_s", "cpu_s", "puts_ok", "found"):
            assert branched[f"{name}_mass30"] == value, name
    assert branched["retrievable_mass30"] == alone["found"] / 4
    assert 0 < branched["cpu_s_own_mass30"] < branched["cpu_s_mass30"]
