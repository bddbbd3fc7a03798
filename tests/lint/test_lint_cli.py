"""``qdht-lint messages``: table and JSON output, exit codes, bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from qdht_lint.cli import main

from ._support import CONTACT, FIXTURE_SPEC, enc, nodes, ping

SPEC = ["--spec", str(FIXTURE_SPEC)]
PING = enc(ping())
UNSORTED = bytes.fromhex("a2") + enc("type") + enc("ping") + enc("rid") + enc(b"r" * 8)
NON_STRICT = enc(nodes(CONTACT, CONTACT))
BAD = enc({"type": "probe", "data": 5})


def write(tmp_path: Path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def test_all_ok_exits_0_with_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "ok.cbor", PING + PING)
    assert main(["messages", *SPEC, path]) == 0
    out = capsys.readouterr().out
    assert "2 messages: 2 OK, 0 NON-STRICT, 0 NON-DETERMINISTIC, 0 INVALID" in out


def test_table_lists_each_verdict_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "mixed.seq", PING + NON_STRICT + UNSORTED + BAD)
    assert main(["messages", *SPEC, path]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["#", "source", "verdict", "rule", "reason", "path"]
    rows = {line.split()[0]: line.split()[2:] for line in lines[1:] if line[:1].isdigit()}
    assert rows["0"] == ["OK", "dht-ping"]
    assert rows["1"] == ["NON-STRICT", "dht-nodes", "S-DHT-2", "$.nodes[1].id"]
    assert rows["2"] == ["NON-DETERMINISTIC", "dht-ping", "non-deterministic", "$"]
    assert rows["3"] == ["INVALID", "test-probe", "field-type", "$.data"]
    assert out.endswith("4 messages: 1 OK, 1 NON-STRICT, 1 NON-DETERMINISTIC, 1 INVALID\n")


def test_quiet_shows_only_messages_not_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "m.seq", PING + BAD)
    assert main(["messages", "--quiet", *SPEC, path]) == 1
    out = capsys.readouterr().out
    assert "dht-ping" not in out
    assert "test-probe" in out


def test_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [
        json.dumps({"id": "tc1", "hex": PING.hex()}),
        json.dumps({"id": "tc2", "hex": BAD.hex()}),
    ]
    path = write(tmp_path, "m.jsonl", "\n".join(lines).encode())
    assert main(["messages", "--json", *SPEC, path]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["summary"] == {
        "messages": 2,
        "OK": 1,
        "NON-STRICT": 0,
        "NON-DETERMINISTIC": 0,
        "INVALID": 1,
    }
    first, second = report["results"]
    assert first["verdict"] == "OK"
    assert first["fields"] == {"id": "tc1"}
    assert first["source"] == f"{path}:1"
    assert second["verdict"] == "INVALID"
    assert (second["rule"], second["reason"], second["path"]) == (
        "test-probe",
        "field-type",
        "$.data",
    )
    assert set(second) >= {"index", "source", "size", "detail", "should"}


def test_json_quiet_lists_only_messages_not_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "m.seq", PING + BAD)
    assert main(["messages", "--json", "--quiet", *SPEC, path]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [r["index"] for r in report["results"]] == [1]
    assert report["summary"]["messages"] == 2


def test_several_files_and_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hex_file = write(tmp_path, "a.hex", f"{PING.hex()}\n".encode())
    seq_file = write(tmp_path, "b.cbor", PING)
    assert main(["messages", *SPEC, hex_file, seq_file]) == 0
    assert "2 messages: 2 OK" in capsys.readouterr().out


def test_forced_input_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "one.cbor", PING + PING)
    assert main(["messages", *SPEC, "--input-format", "cbor", path]) == 1
    assert "trailing-bytes" in capsys.readouterr().out


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(f"{PING.hex()}\n".encode())))
    assert main(["messages", *SPEC, "-"]) == 0
    assert "<stdin>:1" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "cannot read"),
        (b"", "empty input"),
        (b"\xff\xff\xff", "not CBOR"),
        (b"abc\nxyz\n", "not a hex line"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, error: str
) -> None:
    path = str(tmp_path / "missing") if content is None else write(tmp_path, "in", content)
    if content == b"abc\nxyz\n":
        assert main(["messages", *SPEC, "--input-format", "hex", path]) == 2
    else:
        assert main(["messages", *SPEC, path]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("qdht-lint: error: ")
    assert error in captured.err
    assert captured.err.count("\n") == 1
    assert "Traceback" not in captured.err


@pytest.mark.parametrize(
    "argv",
    [[], ["bogus"], ["messages", "--input-format", "xml"], ["messages", "--spec", "/nonexistent"]],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_broken_spec_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "qdht.cddl").write_text('message = x-a\nx-a = { type: "a", b: }\n')
    path = write(tmp_path, "m.hex", f"{PING.hex()}\n".encode())
    assert main(["messages", "--spec", str(tmp_path), path]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qdht-lint: error: the spec's CDDL: ")
    assert err.count("\n") == 1


def test_console_script_reports_errors_without_traceback(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "qdht-lint"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "qdht_lint.cli"]
    garbage = write(tmp_path, "garbage.bin", b"\xff\xfe\xfd")
    done = subprocess.run(
        [*command, "messages", *SPEC, garbage], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr == f"qdht-lint: error: {garbage}: not CBOR (no data item at byte 0)\n"
    ok = subprocess.run(
        [*command, "messages", *SPEC, write(tmp_path, "ok.cbor", PING)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
