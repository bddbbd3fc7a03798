"""``qdht group`` across processes: create, key-package, add, send, watch, remove, list."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import pytest

from qdht.cli import main

from ._procs import DIFFICULTY, qdht_node, run_qdht

pytestmark = pytest.mark.slow


def _group(*args: str) -> tuple[int, str, str]:
    done = run_qdht("group", *args, "--difficulty", DIFFICULTY, "--window", "1", "--timeout", "50")
    return done.returncode, done.stdout.decode().strip(), done.stderr.decode("utf-8", "replace")


def test_two_users_make_a_group_talk_and_part(tmp_path: Path) -> None:
    with ExitStack() as processes:
        _, seed = processes.enter_context(
            qdht_node("--listen", "udp://127.0.0.1:0", "--status-interval", "0")
        )
        processes.enter_context(
            qdht_node(
                "--listen", "udp://127.0.0.1:0", "--bootstrap", seed, "--status-interval", "0"
            )
        )
        alice = ("--bootstrap", seed, "--data-dir", str(tmp_path / "alice"))
        bob = ("--bootstrap", seed, "--data-dir", str(tmp_path / "bob"))
        code, gid, err = _group("create", *alice)
        assert code == 0, err
        assert len(bytes.fromhex(gid)) == 32
        code, kp, err = _group("key-package", *bob)
        assert code == 0, err
        (tmp_path / "bob.kp").write_text(kp)
        code, epoch, err = _group("add", gid, f"@{tmp_path / 'bob.kp'}", *alice)
        assert (code, epoch) == (0, "1"), err
        # Bob's next command reads the Welcome: he is in, at the same epoch.
        code, out, err = _group("list", *bob)
        assert code == 0, err
        [row] = [json.loads(line) for line in out.splitlines()]
        assert (row["group"], row["epoch"], len(row["members"])) == (gid, 1, 2)
        code, out, err = _group("send", gid, "hello bob", *alice)
        assert (code, out) == (0, "1"), err
        code, out, err = _group("watch", "--kind", "message", "--count", "1", *bob)
        assert code == 0, err
        [line] = [json.loads(text) for text in out.splitlines()]
        assert (line["event"], line["text"], line["group"]) == ("message", "hello bob", gid)
        alice_id = line["sender"]
        bob_id = next(m for m in row["members"] if m != alice_id)
        code, out, err = _group("remove", gid, bob_id, *alice)
        assert (code, out) == (0, "2"), err
        # Bob learns it at his next command: the group is gone from his list.
        code, out, err = _group("list", *bob)
        assert (code, out) == (0, ""), err
        code, out, err = _group("list", *alice)
        [row] = [json.loads(line) for line in out.splitlines()]
        assert (row["epoch"], row["members"]) == (2, [alice_id])


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--bootstrap", "qdht+udp://127.0.0.1:9/" + "00" * 32]
    assert main(["group", "send", "not hex", "hi", *base]) == 2
    assert main(["group", "add", "00" * 32, "zz", *base]) == 2
    assert main(["group", "watch", "--count", "0", *base]) == 2
    assert "GROUP must be hex" in capsys.readouterr().err
