"""``qdht-bench durability`` in miniature: records survive churn through replication."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from qdht_bench import _durability
from qdht_bench._durability import replacement_schedule, resume, run_one


def test_records_stay_retrievable_while_half_the_network_is_replaced() -> None:
    metrics = run_one(nodes=50, records=20, hours=3.0, churn=0.5, seed=3, join_interval=0.05)
    assert metrics["put_success"] == 1.0
    assert metrics["retrievable"] == 1.0
    assert metrics["nodes_replaced"] == 25
    # Copies were restored, not merely left over: the k closest hold each record.
    assert metrics["replicas_min"] >= 15
    assert metrics["republish_lookups_per_h"] > 0


def test_the_churn_schedule_replaces_nodes_evenly() -> None:
    schedule = replacement_schedule(100, 0.3, 3600.0)
    assert schedule.leaves == schedule.joins == 30
    times = sorted({event.at for event in schedule})
    assert len(times) == 30
    assert times[0] == 60.0
    assert times[-1] == 3540.0


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
        assert {k: v for k, v in metrics.items() if k != "wall_s"} == {
            k: v for k, v in plain.items() if k != "wall_s"
        }
    assert plain["retrievable"] == 1.0


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
