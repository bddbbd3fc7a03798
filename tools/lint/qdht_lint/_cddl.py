"""The spec's CDDL, compiled once per rule, with the ``type`` → rule map.

pycddl validates a document against the *first* rule of a schema, so each
rule gets its own schema: ``__root = <rule>`` followed by the whole CDDL.
Message rules are found from the root rule ``message`` (a union of rule
names); each message rule's map has a literal ``type: "<name>"`` field, which
is how a message picks its rule without trying every branch.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Final

__all__ = ["CddlError", "SpecCddl", "default_spec_dir"]

ROOT_RULE: Final = "message"

_RULE_DEF = re.compile(r"^([A-Za-z_@$][\w@.$-]*)\s*(?:/?/=|=)", re.MULTILINE)
_TYPE_FIELD = re.compile(r'\btype\s*:\s*"([^"]+)"')
_NAME = re.compile(r"[A-Za-z_@$][\w@.$-]*")
_COMMENT = re.compile(r";[^\n]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


class CddlError(Exception):
    """The CDDL does not compile, or a rule it names does not exist."""


def default_spec_dir() -> Path:
    """protocol-spec/ of the source tree if present, else the copy installed with qdht_lint."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parents[2] / "protocol-spec", here / "protocol-spec"):
        if (candidate / "qdht.cddl").is_file():
            return candidate
    return here.parents[2] / "protocol-spec"


class SpecCddl:
    """The CDDL text of a spec, its rules, and compiled validators."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._stripped = _COMMENT.sub("", text)
        self._schemas: dict[str, object] = {}

    @classmethod
    def from_dir(cls, spec_dir: Path) -> SpecCddl:
        return cls((spec_dir / "qdht.cddl").read_text(encoding="utf-8"))

    @cached_property
    def rule_bodies(self) -> dict[str, str]:
        """Rule name → the text of its definition (comments removed)."""
        matches = list(_RULE_DEF.finditer(self._stripped))
        bodies: dict[str, str] = {}
        for i, match in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(self._stripped)
            name = match.group(1)
            bodies[name] = bodies.get(name, "") + self._stripped[match.end() : end]
        return bodies

    def references(self, rule: str) -> set[str]:
        """Names of the rules that ``rule``'s definition mentions."""
        body = _STRING.sub("", self.rule_bodies.get(rule, ""))
        return {name for name in _NAME.findall(body) if name in self.rule_bodies}

    def reachable(self, root: str = ROOT_RULE) -> set[str]:
        """Every rule reachable from ``root`` (``root`` included)."""
        seen = {root}
        todo = [root]
        while todo:
            for name in self.references(todo.pop()):
                if name not in seen:
                    seen.add(name)
                    todo.append(name)
        return seen

    @cached_property
    def message_rules(self) -> list[str]:
        """The rules the root rule unions, in order."""
        out: list[str] = []
        todo = [ROOT_RULE]
        while todo:
            body = _STRING.sub("", self.rule_bodies.get(todo.pop(0), ""))
            for name in _NAME.findall(body):
                if name not in self.rule_bodies or name in out:
                    continue
                # A union of unions (dht-message = dht-ping / ...) is flattened.
                if _TYPE_FIELD.search(self.rule_bodies[name]):
                    out.append(name)
                else:
                    todo.append(name)
        return out

    @cached_property
    def rule_for_type(self) -> dict[str, str]:
        """``type`` field value → message rule name."""
        mapping: dict[str, str] = {}
        for rule in self.message_rules:
            match = _TYPE_FIELD.search(self.rule_bodies[rule])
            if match is not None:
                mapping[match.group(1)] = rule
        return mapping

    def schema(self, rule: str) -> object:
        """The compiled pycddl schema whose root is ``rule`` (cached)."""
        schema = self._schemas.get(rule)
        if schema is None:
            if rule not in self.rule_bodies:
                raise CddlError(f"no rule named {rule!r}")
            import pycddl

            try:
                schema = pycddl.Schema(f"__root = {rule}\n{self.text}")
            except Exception as exc:
                raise CddlError(str(exc)) from None
            self._schemas[rule] = schema
        return schema

    def validate(self, data: bytes, rule: str) -> str | None:
        """None if ``data`` matches ``rule``, else pycddl's explanation."""
        schema = self.schema(rule)
        try:
            schema.validate_cbor(data)  # type: ignore[attr-defined]
        except Exception as exc:  # pycddl.ValidationError, or a decoding error
            return str(exc).strip() or type(exc).__name__
        return None
