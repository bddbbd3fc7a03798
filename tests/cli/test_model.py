"""``qdht model publish``, ``fetch`` and ``ls`` across processes over loopback UDP."""

from __future__ import annotations

import signal
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest

from qdht.models import load_arrays, save_arrays

from ._procs import DIFFICULTY, QdhtProcess, qdht_node, run_qdht

pytestmark = pytest.mark.slow


def _run(*args: str) -> tuple[int, str, str]:
    done = run_qdht(*args, "--difficulty", DIFFICULTY, "--timeout", "60")
    return done.returncode, done.stdout.decode(), done.stderr.decode("utf-8", "replace")


def test_publish_fetch_and_list_a_model_over_loopback(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    model = {f"layer{i}": rng.standard_normal(50_000).astype(np.float32) for i in range(3)}
    source = tmp_path / "model.safetensors"
    save_arrays(model, source, {"framework": "numpy"})
    with ExitStack() as processes:
        _, seed_uri = processes.enter_context(
            qdht_node("--listen", "udp://127.0.0.1:0", "--status-interval", "0")
        )
        publisher = QdhtProcess(
            "model", "publish", str(source), "--name", "demo",
            "--identity", str(tmp_path / "publisher.key"),
            "--data-dir", str(tmp_path / "pub"),
            "--bootstrap", seed_uri, "--difficulty", DIFFICULTY,
        )  # fmt: skip
        processes.callback(publisher.kill)
        model_id = publisher.wait_for_line(lambda line: "/" in line and " " not in line)
        assert model_id.endswith("/demo")
        publisher.wait_for_line(lambda line: line.startswith("serving"))

        target = tmp_path / "fetched.safetensors"
        fetch = ("model", "fetch", model_id, "--out", str(target), "--bootstrap", seed_uri)
        code, out, err = _run(*fetch, "--data-dir", str(tmp_path / "fetcher"))
        assert code == 0, err
        assert out.splitlines()[0] == str(target)
        assert "fetched demo version 0" in out
        assert target.read_bytes() == source.read_bytes()  # the canonical file, byte for byte
        assert set(load_arrays(target)) == set(model)

        # Again into the same data dir: every chunk is there, nothing moves.
        code, out, err = _run(*fetch, "--data-dir", str(tmp_path / "fetcher"))
        assert code == 0, err
        assert "(0 B received" in out

        code, out, err = _run("model", "ls", "--data-dir", str(tmp_path / "fetcher"))
        assert code == 0, err
        assert "/demo" in out
        code, out, err = _run(
            "model", "ls", model_id, "--bootstrap", seed_uri, "--data-dir", str(tmp_path / "f2")
        )
        assert code == 0, err
        assert out.split() == [model_id, "0"]

        code, out, err = _run(
            "model", "fetch", model_id.replace("/demo", "/nothing"), "--bootstrap", seed_uri,
            "--data-dir", str(tmp_path / "fetcher"),
        )  # fmt: skip
        assert code == 1
        assert "no model 'nothing'" in err

        publisher.send_signal(signal.SIGINT)
        assert publisher.wait() == 0, publisher.describe()
