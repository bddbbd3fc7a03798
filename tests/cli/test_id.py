"""``qdht id new`` / ``qdht id show`` and command-line errors, run in-process."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from qdht.cli import main
from qdht.identity import Identity

#: Low puzzle difficulty so that minting takes microseconds.
DIFFICULTY = "4"


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: qdht" in capsys.readouterr().out


def test_unknown_option_is_one_line_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["id", "new", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "unrecognized arguments: --bogus" in err
    assert "Traceback" not in err


def test_id_new_writes_private_key_file_that_show_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "sub" / "identity.key"
    assert main(["id", "new", "--key-file", str(key_file), "--difficulty", DIFFICULTY]) == 0
    node_id = capsys.readouterr().out.splitlines()[0]
    assert len(node_id) == 64
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Identity.load(key_file).node_id.hex() == node_id

    assert main(["id", "show", "--key-file", str(key_file)]) == 0
    shown = capsys.readouterr().out
    assert f"node ID:              {node_id}" in shown
    assert "puzzle difficulty:    4" in shown
    assert "signature verifies" in shown
    assert "not encrypted" in shown


def test_id_new_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "identity.key"
    assert main(["id", "new", "--key-file", str(key_file), "--difficulty", DIFFICULTY]) == 0
    first = capsys.readouterr().out.splitlines()[0]

    assert main(["id", "new", "--key-file", str(key_file), "--difficulty", DIFFICULTY]) == 1
    captured = capsys.readouterr()
    assert (
        captured.err == f"qdht: error: {key_file} exists; pass --force to replace it "
        "(its identity is lost)\n"
    )
    assert Identity.load(key_file).node_id.hex() == first

    argv = ["id", "new", "--key-file", str(key_file), "--difficulty", DIFFICULTY, "--force"]
    assert main(argv) == 0
    second = capsys.readouterr().out.splitlines()[0]
    assert second != first
    assert Identity.load(key_file).node_id.hex() == second


def test_encrypted_key_file_needs_its_passphrase(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "identity.key"
    passphrase = tmp_path / "pass"
    passphrase.write_text("correct horse\n")
    wrong = tmp_path / "wrong"
    wrong.write_text("battery staple\n")
    argv = ["id", "new", "--key-file", str(key_file), "--difficulty", DIFFICULTY]
    assert main([*argv, "--passphrase-file", str(passphrase), "--scrypt-log-n", "10"]) == 0
    node_id = capsys.readouterr().out.splitlines()[0]

    assert main(["id", "show", "--key-file", str(key_file)]) == 1
    assert "a passphrase is required (pass --passphrase-file FILE)" in capsys.readouterr().err

    assert main(["id", "show", "--key-file", str(key_file), "--passphrase-file", str(wrong)]) == 1
    assert "wrong passphrase" in capsys.readouterr().err

    show = ["id", "show", "--key-file", str(key_file), "--passphrase-file", str(passphrase)]
    assert main(show) == 0
    out = capsys.readouterr().out
    assert node_id in out
    assert "(encrypted)" in out


def test_id_show_missing_file_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.key"
    assert main(["id", "show", "--key-file", str(missing)]) == 1
    assert capsys.readouterr().err == f"qdht: error: key file {missing} does not exist\n"


def test_id_show_refuses_a_key_file_others_can_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "identity.key"
    assert main(["id", "new", "--key-file", str(key_file), "--difficulty", DIFFICULTY]) == 0
    capsys.readouterr()
    key_file.chmod(0o644)
    assert main(["id", "show", "--key-file", str(key_file)]) == 1
    err = capsys.readouterr().err
    assert "others may read it (run: chmod 600" in err
    assert err.count("\n") == 1


def test_id_new_rejects_out_of_range_difficulty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["id", "new", "--key-file", str(tmp_path / "k"), "--difficulty", "65"]
    assert main(argv) == 2
    assert "--difficulty must be in 0..64" in capsys.readouterr().err
    assert not (tmp_path / "k").exists()
