"""``qdht demo --mixnet`` in-process, and the ``--mixnet`` parameter file of the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qdht.cli import main
from qdht.identity import Identity


def test_demo_mixnet_succeeds_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "demo.json"
    argv = ["demo", "--mixnet", "--mixes", "4", "--clients", "2", "--values", "2", "--seed", "3"]
    assert main([*argv, "--json", str(report_path)]) == 0
    out = capsys.readouterr().out
    assert "1 authority, 4 mixes, 2 clients on loopback UDP" in out
    report = json.loads(report_path.read_text())
    assert report["directory_accepted"] == "7/7"
    for name in ("anonymous put", "anonymous get", "plain get"):
        assert report["operations"][name]["ok"] == report["operations"][name]["total"] == 2
    assert report["mixed"] > 0
    assert report["failures"] == []


BOOTSTRAP = "qdht+udp://127.0.0.1:9/" + "ab" * 32


def anonymous_get(path: Path) -> list[str]:
    key = "cd" * 32
    return ["get", key, "--anonymous", "--mixnet", str(path), "--bootstrap", BOOTSTRAP]


def test_a_good_mixnet_file_gets_as_far_as_joining(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = Identity.generate(0).mldsa.public_key_bytes()
    path = tmp_path / "mixnet.json"
    path.write_text(json.dumps({"directory_keys": [key.hex()], "user_payload_size": 8192}))
    # Nobody listens at the bootstrap address: the command fails there, not on the file.
    assert main([*anonymous_get(path), "--timeout", "0.5", "--difficulty", "0"]) == 1
    assert "bootstrap failed" in capsys.readouterr().err


def test_anonymous_needs_the_mixnet_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "cd" * 32, "--anonymous", "--bootstrap", BOOTSTRAP]) == 2
    assert "--anonymous needs --mixnet FILE" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "--mixnet"),
        (json.dumps({"lambda_loop": 3}), "a JSON object with keys"),
        (json.dumps({"directory_keys": ["zz"]}), "directory_keys must be hex"),
        (json.dumps({"directory_keys": ["00"]}), "ML-DSA-65 keys"),
    ],
)
def test_a_bad_mixnet_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "mixnet.json"
    path.write_text(content)
    assert main(anonymous_get(path)) == 2
    assert message in capsys.readouterr().err
