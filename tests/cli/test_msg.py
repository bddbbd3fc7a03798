"""``qdht msg send`` / ``qdht msg inbox`` across processes, and ``qdht demo --messaging``."""

from __future__ import annotations

import json
import re
from contextlib import ExitStack
from pathlib import Path

import pytest

from qdht.cli import main

from ._procs import DIFFICULTY, qdht_node, run_qdht

pytestmark = pytest.mark.slow


def _msg(*args: str) -> tuple[int, str, str]:
    done = run_qdht("msg", *args, "--difficulty", DIFFICULTY, "--timeout", "60")
    return done.returncode, done.stdout.decode(), done.stderr.decode("utf-8", "replace")


def test_send_and_inbox_between_two_users_through_messaging_nodes(tmp_path: Path) -> None:
    with ExitStack() as processes:
        _, seed = processes.enter_context(
            qdht_node("--listen", "udp://127.0.0.1:0", "--messaging", "--status-interval", "0")
        )
        processes.enter_context(
            qdht_node(
                "--listen",
                "udp://127.0.0.1:0",
                "--bootstrap",
                seed,
                "--messaging",
                "--status-interval",
                "0",
            )
        )
        bob, alice = ("--data-dir", str(tmp_path / "bob")), ("--data-dir", str(tmp_path / "alice"))
        # Bob's first command publishes his prekeys; his inbox is empty.
        code, out, err = _msg("inbox", "--bootstrap", seed, *bob)
        assert (code, out) == (0, ""), err
        bob_id = _messaging_as(err)
        code, out, err = _msg("send", bob_id, "hello bob", "--bootstrap", seed, *alice)
        assert code == 0, err
        assert out.split() == ["1", "stored"]
        alice_id = _messaging_as(err)
        code, out, err = _msg("inbox", "--bootstrap", seed, *bob)
        assert code == 0, err
        [line] = [json.loads(text) for text in out.splitlines()]
        assert (line["sender"], line["text"]) == (alice_id, "hello bob")
        # --new hands each message out once.
        code, out, _ = _msg("inbox", "--new", "--bootstrap", seed, *bob)
        assert code == 0
        assert [json.loads(text)["text"] for text in out.splitlines()] == ["hello bob"]
        code, out, _ = _msg("inbox", "--new", "--bootstrap", seed, *bob)
        assert (code, out) == (0, "")


def _messaging_as(stderr: str) -> str:
    match = re.search(r"messaging as ([0-9a-f]{64})", stderr)
    assert match is not None, stderr
    return match.group(1)


def test_demo_messaging_delivers_everything(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["demo", "--messaging", "--nodes", "3", "--difficulty", "0", "--direct", "--rounds", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "direct delivery" in out
    assert "read by Bob on return" in out
    assert "3/3" in out


def test_demo_messaging_goes_through_mixes(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["demo", "--messaging", "--nodes", "6", "--difficulty", "0", "--timeout", "120"]
    argv += ["--rounds", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "mixnet (3 mixes)" in out
    assert re.search(r"ping-pong messages\s*\|\s*2\s*\|", out), out
    assert "3/3" in out
    assert re.search(r"other requests sent directly\s*\|\s*0\s*\|", out), out
    assert re.search(r"intro reads sent directly \(§7.4\)\s*\|\s*[1-9]", out), out
