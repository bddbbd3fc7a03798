"""``qdht-lint spec``: is ``protocol-spec/`` self-consistent?

Checks (HACKING.md, "Protocol spec"): the CDDL compiles; every rule is
reachable from the root ``message``; every message rule has a ``type`` of its
own, is named ``<area>-<type>`` and has valid and invalid vectors; every
vector file names an existing rule, has unique ``tcId`` values and results in
{valid, invalid}; and every vector lints as it claims: a ``valid`` vector is
OK (or NON-STRICT only for SHOULD rules listed in its ``flags``), an
``invalid`` one is not OK and, when it states a ``reason``, fails for that
reason.  The SHOULD rules defined in the sections' tables (``| `S-DHT-1` |``)
are compared with the IDs the linter's checks report: a check for an
undefined ID fails, a defined ID without a check is a warning.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import attrs

from qdht_lint._cddl import ROOT_RULE, CddlError, SpecCddl
from qdht_lint._should import CHECKED_IDS
from qdht_lint.engine import NON_STRICT, OK, Linter

__all__ = ["SpecReport", "check_spec"]

#: A SHOULD rule's row in a section's table: ``| `S-DHT-1` | ... |``.
_SHOULD_ROW = re.compile(r"^\|\s*`(S-[A-Z0-9]+-\d+)`\s*\|", re.MULTILINE)


@attrs.define
class SpecReport:
    """The outcome of checking one spec directory."""

    failures: list[str] = attrs.field(factory=list)
    #: Problems that do not fail the spec (a SHOULD rule without a check).
    warnings: list[str] = attrs.field(factory=list)
    rules: int = 0
    vectors: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, where: str, what: str) -> None:
        self.failures.append(f"{where}: {what}")


def check_spec(spec_dir: Path) -> SpecReport:
    """Check the spec in ``spec_dir``; every problem found is in the report."""
    report = SpecReport()
    cddl_path = spec_dir / "qdht.cddl"
    try:
        cddl = SpecCddl.from_dir(spec_dir)
    except (OSError, UnicodeDecodeError) as exc:
        report.fail(str(cddl_path), f"cannot read: {exc}")
        return report
    report.rules = len(cddl.rule_bodies)
    if ROOT_RULE not in cddl.rule_bodies:
        report.fail(str(cddl_path), f"no root rule {ROOT_RULE!r}")
        return report
    try:
        cddl.compile_all()
    except CddlError as exc:
        report.fail(str(cddl_path), f"CDDL does not compile: {' '.join(str(exc).split())}")
        return report
    if next(iter(cddl.rule_bodies)) != ROOT_RULE:
        report.fail(str(cddl_path), f"the first rule must be the root {ROOT_RULE!r}")
    reachable = cddl.reachable()
    for rule in cddl.rule_bodies:
        if rule not in reachable:
            report.fail(f"rule {rule}", f"not reachable from {ROOT_RULE!r}")
    _check_message_rules(cddl, report)
    try:
        linter = Linter(cddl=cddl)
    except CddlError as exc:
        report.fail(str(cddl_path), f"a message rule does not compile: {exc}")
        return report
    coverage = _check_vectors(spec_dir, cddl, linter, report)
    for rule in cddl.message_rules:
        results = coverage.get(rule, set())
        for result in ("valid", "invalid"):
            if result not in results:
                report.fail(f"rule {rule}", f"no {result} vectors")
    _check_should_ids(spec_dir, report)
    return report


def _check_should_ids(spec_dir: Path, report: SpecReport) -> None:
    """Each SHOULD rule the spec's tables define has a linter check, and back."""
    defined: dict[str, str] = {}
    for path in sorted(spec_dir.glob("*.md")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            report.fail(path.name, f"cannot read: {exc}")
            continue
        for rule_id in _SHOULD_ROW.findall(text):
            defined.setdefault(rule_id, path.name)
    if not defined:  # a spec without SHOULD tables (or without sections)
        return
    for rule_id, where in sorted(defined.items()):
        if rule_id not in CHECKED_IDS:
            report.warnings.append(f"{where}: SHOULD rule {rule_id} has no qdht-lint check")
    for rule_id in sorted(CHECKED_IDS - defined.keys()):
        report.fail("qdht-lint", f"checks SHOULD rule {rule_id}, which no section defines")


def _check_message_rules(cddl: SpecCddl, report: SpecReport) -> None:
    by_type: dict[str, str] = {}
    for rule in cddl.message_rules:
        type_name = cddl.type_of(rule)
        if type_name is None:
            report.fail(f"rule {rule}", 'message rule without a literal `type: "..."` field')
            continue
        if not rule.endswith(f"-{type_name}"):
            report.fail(
                f"rule {rule}", f'a message rule of type "{type_name}" is named <area>-{type_name}'
            )
        if type_name in by_type:
            report.fail(
                f"rule {rule}", f'type "{type_name}" is also the type of {by_type[type_name]}'
            )
        by_type[type_name] = rule


def _check_vectors(
    spec_dir: Path, cddl: SpecCddl, linter: Linter, report: SpecReport
) -> dict[str, set[str]]:
    """Check every vector file; return rule → the results its vectors cover."""
    coverage: dict[str, set[str]] = {}
    message_rules = set(cddl.message_rules)
    for path in sorted((spec_dir / "vectors").rglob("*.json")):
        where = str(path.relative_to(spec_dir))
        try:
            content: Any = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            report.fail(where, f"not readable JSON: {exc}")
            continue
        if type(content) is not dict or type(content.get("tests")) is not list:
            report.fail(where, 'a vector file is an object with "rule" and a "tests" list')
            continue
        rule = content.get("rule")
        if type(rule) is not str or rule not in cddl.rule_bodies:
            report.fail(where, f"names no rule of the CDDL: {rule!r}")
            continue
        if path.stem != rule:
            report.fail(where, f"file of rule {rule!r} must be named {rule}.json")
        covered = coverage.setdefault(rule, set())
        tc_ids: set[object] = set()
        for number, test in enumerate(content["tests"]):
            report.vectors += 1
            label = (
                f"{where} tcId {test.get('tcId', f'#{number}') if type(test) is dict else number}"
            )
            problem = _check_vector(test, rule, rule in message_rules, linter, tc_ids)
            if problem is not None:
                report.fail(label, problem)
            # Coverage counts what the vectors claim; a wrong claim is reported above.
            if type(test) is dict and test.get("result") in ("valid", "invalid"):
                covered.add(test["result"])
    return coverage


def _check_vector(
    test: object, rule: str, is_message: bool, linter: Linter, tc_ids: set[object]
) -> str | None:
    """What is wrong with one vector (None if nothing)."""
    if type(test) is not dict:
        return "a vector is a JSON object"
    tc_id = test.get("tcId")
    if type(tc_id) is not int:
        return "tcId must be an integer"
    if tc_id in tc_ids:
        return "duplicate tcId"
    tc_ids.add(tc_id)
    result = test.get("result")
    if result not in ("valid", "invalid"):
        return f'result must be "valid" or "invalid", got {result!r}'
    hex_text = test.get("cbor")
    try:
        data = bytes.fromhex(hex_text) if type(hex_text) is str else None
    except ValueError:
        data = None
    if data is None:
        return '"cbor" must be a hex string'
    verdict = linter.lint(data, rule=None if is_message else rule)
    if is_message and verdict.rule not in (None, rule):
        if result == "valid":
            return f"lints against rule {verdict.rule}, not the file's rule {rule}"
        # An invalid vector of another type (``"type": "pong"`` among the
        # pings) is judged as the file's rule, where it must fail.
        verdict = linter.lint(data, rule=rule)
    said = f"{verdict.verdict}" + (
        f" ({verdict.reason} at {verdict.path}: {verdict.detail})" if verdict.reason else ""
    )
    if result == "valid":
        flags = test.get("flags") or []
        if verdict.verdict == OK:
            return None
        if verdict.verdict == NON_STRICT and all(s in flags for s in verdict.should):
            return None
        return f"expected valid, linter says {said}"
    if verdict.verdict in (OK, NON_STRICT):
        return f"expected invalid, linter says {said}"
    reason = test.get("reason")
    if reason is not None and reason != verdict.reason:
        return f"expected reason {reason!r}, linter says {said}"
    return None
