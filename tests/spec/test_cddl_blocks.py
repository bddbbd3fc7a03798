"""The CDDL shown in the spec's sections says what ``qdht.cddl`` says.

Each section quotes the rules it defines in a ```cddl block, usually
compacted; ``qdht.cddl`` is what the linter and the vectors use.  For every
map rule quoted in a section, its fields — name, and whether optional — must
be those of the rule of the same name in ``qdht.cddl``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SPEC = Path(__file__).resolve().parents[2] / "protocol-spec"
_BLOCK = re.compile(r"```cddl\n(.*?)```", re.S)
_RULE_START = re.compile(r"^([a-z][\w-]*)\s*=\s*\{", re.M)
_FIELD = re.compile(r"(\?\s*)?([a-z_][\w-]*)\s*:")


def _strip_comments(text: str) -> str:
    return "\n".join(line.split(";", 1)[0] for line in text.splitlines())


def _map_rules(text: str) -> dict[str, frozenset[tuple[bool, str]]]:
    """Top-level fields of every ``name = { ... }`` rule (nested maps skipped)."""
    text = _strip_comments(text)
    rules = {}
    for match in _RULE_START.finditer(text):
        depth, pos, top = 1, match.end(), []
        while depth:
            char = text[pos]
            depth += {"{": 1, "}": -1}.get(char, 0)
            top.append(char if depth == 1 else " ")
            pos += 1
        body = "".join(top)
        rules[match.group(1)] = frozenset((bool(o), f) for o, f in _FIELD.findall(body))
    return rules


def _quoted() -> list[tuple[str, str, frozenset[tuple[bool, str]]]]:
    out = []
    for section in sorted(SPEC.glob("[0-9][0-9]-*.md")):
        for block in _BLOCK.findall(section.read_text()):
            for name, fields in _map_rules(block).items():
                out.append((section.name, name, fields))
    return out


QUOTED = _quoted()
CANONICAL = _map_rules((SPEC / "qdht.cddl").read_text())


def test_sections_quote_rules() -> None:
    assert len(QUOTED) >= 10
    assert {"dht-store", "dht-value", "records-mutable"} <= {name for _, name, _ in QUOTED}


@pytest.mark.parametrize(
    ("section", "rule", "fields"), QUOTED, ids=[f"{s}:{r}" for s, r, _ in QUOTED]
)
def test_quoted_rule_has_the_fields_of_qdht_cddl(
    section: str, rule: str, fields: frozenset[tuple[bool, str]]
) -> None:
    assert rule in CANONICAL, f"{section} quotes {rule}, which qdht.cddl does not define"
    assert fields == CANONICAL[rule], f"{section} and qdht.cddl disagree on {rule}"
