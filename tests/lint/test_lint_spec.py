"""``qdht-lint spec``: the real spec passes; broken copies fail, readably."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from qdht_lint._cddl import default_spec_dir
from qdht_lint.cli import main
from qdht_lint.spec_check import check_spec

from ._support import enc


def edit_vectors(spec: Path, name: str, change: Any) -> None:
    path = spec / "vectors" / name
    content = json.loads(path.read_text(encoding="utf-8"))
    change(content)
    path.write_text(json.dumps(content), encoding="utf-8")


def run_spec(spec: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = main(["spec", str(spec)])
    return status, capsys.readouterr().out


def test_real_spec_passes(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run_spec(default_spec_dir(), capsys)
    assert out.splitlines()[-1].startswith("spec OK: "), out
    assert status == 0


def _break_unreachable(spec: Path) -> None:
    with (spec / "qdht.cddl").open("a", encoding="utf-8") as f:
        f.write("\nlint-orphan = uint\n")


def _break_no_invalid(spec: Path) -> None:
    def keep_valid(content: dict[str, Any]) -> None:
        content["tests"] = [t for t in content["tests"] if t["result"] == "valid"]

    edit_vectors(spec, "dht/dht-ping.json", keep_valid)


def _break_result(spec: Path) -> None:
    def flip(content: dict[str, Any]) -> None:
        content["tests"][0]["result"] = "invalid"

    edit_vectors(spec, "dht/dht-ping.json", flip)


def _break_cddl(spec: Path) -> None:
    with (spec / "qdht.cddl").open("a", encoding="utf-8") as f:
        f.write("\nlint-broken = { x: \n")


@pytest.mark.parametrize(
    ("breakage", "failure"),
    [
        (_break_unreachable, "FAIL rule lint-orphan: not reachable from 'message'"),
        (_break_no_invalid, "FAIL rule dht-ping: no invalid vectors"),
        (_break_result, "FAIL vectors/dht/dht-ping.json tcId 1: expected invalid, linter says OK"),
        (_break_cddl, "FAIL qdht.cddl: CDDL does not compile: "),
    ],
)
def test_broken_copies_of_the_real_spec_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], breakage: Any, failure: str
) -> None:
    spec = tmp_path / "protocol-spec"
    shutil.copytree(default_spec_dir(), spec, ignore=shutil.ignore_patterns("*.md"))
    breakage(spec)
    status, out = run_spec(spec, capsys)
    assert status == 1
    assert failure in out.replace(str(spec) + "/", "")
    assert out.splitlines()[-1].startswith("spec FAILED: ")


def test_fixture_spec_passes(spec_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run_spec(spec_copy, capsys)
    assert (status, out) == (0, "spec OK: 11 rules, 11 vectors\n")


def test_unreachable_rule_fails(spec_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with (spec_copy / "qdht.cddl").open("a", encoding="utf-8") as f:
        f.write("orphan = uint\n")
    status, out = run_spec(spec_copy, capsys)
    assert status == 1
    assert "FAIL rule orphan: not reachable from 'message'" in out
    assert out.splitlines()[-1] == "spec FAILED: 1 problems (12 rules, 11 vectors)"


def test_message_rule_without_invalid_vectors_fails(
    spec_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_vectors(spec_copy, "dht/dht-ping.json", lambda c: c["tests"].pop())
    status, out = run_spec(spec_copy, capsys)
    assert status == 1
    assert "FAIL rule dht-ping: no invalid vectors" in out


def test_message_rule_without_vectors_fails(spec_copy: Path) -> None:
    (spec_copy / "vectors" / "test" / "test-probe.json").unlink()
    failures = check_spec(spec_copy).failures
    assert failures == ["rule test-probe: no valid vectors", "rule test-probe: no invalid vectors"]


def test_wrong_expected_result_fails(spec_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def flip(content: dict[str, Any]) -> None:
        content["tests"][1]["result"] = "valid"

    edit_vectors(spec_copy, "dht/dht-ping.json", flip)
    status, out = run_spec(spec_copy, capsys)
    assert status == 1
    assert "FAIL vectors/dht/dht-ping.json tcId 2: expected valid, linter says INVALID" in out
    assert "missing-field at $.rid" in out


def test_valid_vector_that_lints_invalid_fails(spec_copy: Path) -> None:
    def corrupt(content: dict[str, Any]) -> None:
        content["tests"][0]["cbor"] = enc({"type": "ping", "rid": b""}).hex()

    edit_vectors(spec_copy, "dht/dht-ping.json", corrupt)
    [failure] = check_spec(spec_copy).failures
    assert failure.startswith(
        "vectors/dht/dht-ping.json tcId 1: expected valid, linter says INVALID"
    )


def test_non_strict_valid_vector_needs_its_flag(spec_copy: Path) -> None:
    def unflag(content: dict[str, Any]) -> None:
        content["tests"][1]["flags"] = []

    edit_vectors(spec_copy, "dht/dht-nodes.json", unflag)
    [failure] = check_spec(spec_copy).failures
    assert "tcId 2: expected valid, linter says NON-STRICT (S-DHT-2" in failure


def test_wrong_expected_reason_fails(spec_copy: Path) -> None:
    def reason(content: dict[str, Any]) -> None:
        content["tests"][1]["reason"] = "field-size"

    edit_vectors(spec_copy, "dht/dht-ping.json", reason)
    [failure] = check_spec(spec_copy).failures
    assert "tcId 2: expected reason 'field-size', linter says INVALID (missing-field" in failure


def test_invalid_vector_of_another_type_is_judged_as_the_file_rule(spec_copy: Path) -> None:
    def add(content: dict[str, Any]) -> None:
        echo_as_ping = enc({"type": "probe", "data": b""}).hex()
        content["tests"].append({"tcId": 3, "cbor": echo_as_ping, "result": "invalid"})
        content["tests"].append({"tcId": 4, "cbor": echo_as_ping, "result": "valid"})

    edit_vectors(spec_copy, "dht/dht-ping.json", add)
    failures = check_spec(spec_copy).failures
    assert failures == [
        "vectors/dht/dht-ping.json tcId 4: "
        "lints against rule test-probe, not the file's rule dht-ping"
    ]


def test_malformed_vector_files_fail(spec_copy: Path) -> None:
    def mangle(content: dict[str, Any]) -> None:
        content["tests"][1]["tcId"] = 1
        content["tests"].append({"tcId": 9, "cbor": "zz", "result": "valid"})
        content["tests"].append({"tcId": 10, "cbor": "00", "result": "maybe"})

    edit_vectors(spec_copy, "dht/dht-ping.json", mangle)
    (spec_copy / "vectors" / "dht" / "nope.json").write_text('{"rule": "nope", "tests": []}')
    (spec_copy / "vectors" / "dht" / "broken.json").write_text("{")
    failures = check_spec(spec_copy).failures
    assert "vectors/dht/dht-ping.json tcId 1: duplicate tcId" in failures
    assert 'vectors/dht/dht-ping.json tcId 9: "cbor" must be a hex string' in failures
    assert any("tcId 10: result must be" in f for f in failures)
    assert "vectors/dht/nope.json: names no rule of the CDDL: 'nope'" in failures
    assert any(f.startswith("vectors/dht/broken.json: not readable JSON") for f in failures)


def test_cddl_that_does_not_compile_fails(
    spec_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (spec_copy / "qdht.cddl").open("a", encoding="utf-8") as f:
        f.write("broken = { x: \n")
    status, out = run_spec(spec_copy, capsys)
    assert status == 1
    assert "CDDL does not compile" in out
    assert out.count("\n") == 2  # one failure line, one summary line
    assert "Traceback" not in out


def test_message_rule_types_are_unique_and_match_names(spec_copy: Path) -> None:
    text = (spec_copy / "qdht.cddl").read_text(encoding="utf-8")
    text = text.replace('test-probe = { type: "probe"', 'test-probe = { type: "ping"')
    (spec_copy / "qdht.cddl").write_text(text, encoding="utf-8")
    failures = check_spec(spec_copy).failures
    assert 'rule test-probe: a message rule of type "ping" is named <area>-ping' in failures
    assert 'rule test-probe: type "ping" is also the type of dht-ping' in failures


def test_not_a_spec_directory_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["spec", str(tmp_path)]) == 2
    assert "no qdht.cddl there" in capsys.readouterr().err


SHOULD_TABLE = """
| ID | rule |
|---|---|
| `S-DHT-1` | at most 20 contacts |
| `S-DHT-2` | no node ID twice |
| `S-DHT-3` | short error text |
| `S-CONTACT-1` | no address twice |
| `S-MIX-1` | a packet of some geometry |
| `S-MIX-2` | a descriptor that verifies |
| `S-MIX-3` | a directory of usable keys |
| `S-MIX-4` | a forwarded message with a type |
"""


def test_should_rules_without_a_check_are_warnings(
    spec_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (spec_copy / "02-dht.md").write_text(SHOULD_TABLE + "| `S-DHT-9` | new |\n")
    status, out = run_spec(spec_copy, capsys)
    assert status == 0
    assert "WARN 02-dht.md: SHOULD rule S-DHT-9 has no qdht-lint check" in out


def test_checks_for_undefined_should_rules_fail(spec_copy: Path) -> None:
    (spec_copy / "02-dht.md").write_text(
        SHOULD_TABLE.replace("| `S-DHT-3` | short error text |", "")
    )
    failures = check_spec(spec_copy).failures
    assert failures == ["qdht-lint: checks SHOULD rule S-DHT-3, which no section defines"]
