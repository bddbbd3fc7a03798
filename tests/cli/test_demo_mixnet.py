"""``qdht demo --mixnet`` in-process, and the ``--mixnet`` parameter file of the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qdht.cli import main
from qdht.cli._common import CommandError
from qdht.cli._mixnet import mixnet_config
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


def test_the_mixnet_file_gives_the_network_parameters(tmp_path: Path) -> None:
    key = Identity.generate(0).mldsa.public_key_bytes()
    path = tmp_path / "mixnet.json"
    path.write_text(json.dumps({"directory_keys": [key.hex()], "user_payload_size": 8192}))
    config = mixnet_config(path, mix=True)
    assert config.directory_keys == (key,)
    assert config.user_payload_size == 8192
    assert config.mix is True
    assert mixnet_config(None).directory_keys == ()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "--mixnet"),
        (json.dumps({"lambda_loop": 3}), "a JSON object with keys"),
        (json.dumps({"directory_keys": ["zz"]}), "directory_keys must be hex"),
        (json.dumps({"directory_keys": ["00"]}), "ML-DSA-65 keys"),
    ],
)
def test_a_bad_mixnet_file_is_a_usage_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "mixnet.json"
    path.write_text(content)
    with pytest.raises(CommandError, match=message):
        mixnet_config(path)
