"""The spec's CDDL, compiled once per rule, with the ``type`` → rule map.

pycddl validates a document against the *first* rule of a schema, so each
rule gets its own schema: the rule's definition first, then only the rules it
reaches (pycddl's cost per message grows with the size of the schema), with
the text rewritten around pycddl 0.6 bugs (:func:`pycddl_text`).
Message rules are found from the root rule ``message`` (a union of rule
names); each message rule's map has a literal ``type: "<name>"`` field, which
is how a message picks its rule without trying every branch.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, Final

__all__ = ["CddlError", "SpecCddl", "default_spec_dir", "pycddl_text"]

ROOT_RULE: Final = "message"

_RULE_DEF = re.compile(r"^([A-Za-z_@$][\w@.$-]*)\s*(?:/?/=|=)", re.MULTILINE)
_TYPE_FIELD = re.compile(r'\btype\s*:\s*"([^"]+)"')
_NAME = re.compile(r"[A-Za-z_@$][\w@.$-]*")
_COMMENT = re.compile(r";[^\n]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
# pycddl 0.6 checks ``.size`` without checking the target type: ``bstr .size 8``
# accepts the integer 5 and any 8-byte text.  Compiled schemas therefore get
# ``(bstr .size 8) .and bstr``, which pycddl checks fully (not ``((...))``:
# pycddl reads a rule ``r = (...)`` as a group, not a type).
_SIZED = re.compile(r"\b(bstr|bytes|tstr|text|uint)\s+\.size\s+(\([^()]*\)|[\w.-]+)")
# pycddl 0.6 also reads a bareword member key that is the name of a rule
# (``rid: rid``) as that rule's type instead of the text "rid" (RFC 8610 §3.5.1):
# compiled schemas quote every bareword key.
_BAREWORD_KEY = re.compile(r'("(?:[^"\\]|\\.)*")|(?<![\w@.$-])([A-Za-z_@$][\w@.$-]*)(\s*):(?!=)')


def _quote_key(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        return match.group(1)
    return f'"{match.group(2)}"{match.group(3)}:'


_DEFINITION = re.compile(r"^([A-Za-z_@$][\w@.$-]*)\s*(//=|/=|=)\s*(.*)$", re.DOTALL)


def _names_pattern(names: dict[str, str]) -> re.Pattern[str]:
    """Strings (kept as they are) or a whole-word use of one of ``names``."""
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf'("(?:[^"\\]|\\.)*")|(?<![\w@.$-])({alternatives})(?![\w@.$-])')


def pycddl_text(text: str) -> str:
    """``text`` rewritten around two pycddl 0.6 bugs, for compiling.

    Sized primitives become ``(bstr .size 8) .and bstr`` so pycddl checks
    the type too, and bareword member keys are quoted.
    """
    text = _BAREWORD_KEY.sub(_quote_key, _COMMENT.sub("", text))
    return _SIZED.sub(r"(\1 .size \2) .and \1", text)


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
        self._schemas: dict[str, Any] = {}

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

    @cached_property
    def definitions(self) -> list[tuple[str, str]]:
        """Each definition in order: (rule name, its full text, comments removed)."""
        matches = list(_RULE_DEF.finditer(self._stripped))
        out = []
        for i, match in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(self._stripped)
            out.append((match.group(1), self._stripped[match.start() : end].strip()))
        return out

    def pruned_text(self, rule: str) -> str:
        """The definitions ``rule`` needs, and no others.

        pycddl's validation time grows with the number of rules in the schema
        (a small message costs 4x more against the whole spec), so each
        rule's schema holds only what is reachable from it.
        """
        keep = self.reachable(rule)
        # pycddl validates against the first rule: put ``rule`` first, which
        # is also cheaper per call than a ``__root = rule`` indirection.
        first = [text for name, text in self.definitions if name == rule]
        rest = [text for name, text in self.definitions if name in keep and name != rule]
        return "\n".join(first + rest)

    def inlined_text(self, rule: str) -> str:
        """:meth:`pruned_text` rewritten (:func:`pycddl_text`), with every
        simple type rule (``rid = bstr .size 8``, ``transport = "udp" / "ws"``)
        substituted where it is used, in parentheses.

        pycddl looks rules up by name on every use, so a NODES message
        validates twice as fast once its small rules are inlined.
        """
        keep = self.reachable(rule)
        definitions: list[tuple[str, str, str]] = []
        for name, text in self.definitions:
            if name not in keep:
                continue
            match = _DEFINITION.match(pycddl_text(text))
            if match is None:
                return pycddl_text(self.pruned_text(rule))
            definitions.append((match.group(1), match.group(2), match.group(3).strip()))
        counts: dict[str, int] = {}
        for name, _, _ in definitions:
            counts[name] = counts.get(name, 0) + 1
        simple = {
            name: body
            for name, op, body in definitions
            if name != rule
            and op == "="
            and counts[name] == 1
            and not any(c in _STRING.sub("", body) for c in "{[:&~<>=")
        }

        def substitute(body: str) -> str:
            for _ in range(8):  # simple rules may use simple rules
                new = _names_pattern(simple).sub(
                    lambda m: m.group(1) or f"({simple[m.group(2)]})", body
                )
                if new == body:
                    break
                body = new
            return body

        out = [
            f"{name} {op} {substitute(body) if simple else body}"
            for name, op, body in definitions
            if name not in simple
        ]
        # A use the substitution could not take (``0..max``) keeps its rule.
        used = set(_NAME.findall(_STRING.sub("", "\n".join(out))))
        out.extend(f"{name} = {body}" for name, body in simple.items() if name in used)
        out.sort(key=lambda line: not line.startswith(f"{rule} "))
        return "\n".join(out)

    def compile_all(self) -> None:
        """Compile the whole CDDL as written; raise CddlError if it does not compile."""
        import pycddl

        try:
            pycddl.Schema(self.text)
        except Exception as exc:
            raise CddlError(str(exc)) from None

    def references(self, rule: str) -> set[str]:
        """Names of the rules that ``rule``'s definition mentions (as types).

        Bareword member keys (``message: tstr``) are text, not references.
        """
        body = _BAREWORD_KEY.sub("", _STRING.sub("", self.rule_bodies.get(rule, "")))
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

    def type_of(self, rule: str) -> str | None:
        """The literal ``type`` value of a message rule (None if it has none)."""
        match = _TYPE_FIELD.search(self.rule_bodies.get(rule, ""))
        return None if match is None else match.group(1)

    @cached_property
    def rule_for_type(self) -> dict[str, str]:
        """``type`` field value → message rule name."""
        mapping: dict[str, str] = {}
        for rule in self.message_rules:
            match = _TYPE_FIELD.search(self.rule_bodies[rule])
            if match is not None:
                mapping[match.group(1)] = rule
        return mapping

    def schema(self, rule: str) -> Any:
        """The compiled pycddl schema whose root is ``rule`` (cached)."""
        schema = self._schemas.get(rule)
        if schema is None:
            if rule not in self.rule_bodies:
                raise CddlError(f"no rule named {rule!r}")
            import pycddl

            # Fastest first; a rewrite pycddl does not accept falls back to
            # the next, ending with the whole (rewritten) text.
            error: Exception | None = None
            for text in self._schema_texts(rule):
                try:
                    schema = pycddl.Schema(text)
                    break
                except Exception as exc:
                    error = exc
            else:
                raise CddlError(str(error)) from None
            self._schemas[rule] = schema
        return schema

    def _schema_texts(self, rule: str) -> Iterator[str]:
        yield self.inlined_text(rule)
        yield pycddl_text(self.pruned_text(rule))
        yield f"__root = {rule}\n{pycddl_text(self.text)}"

    def validate(self, data: bytes, rule: str) -> str | None:
        """None if ``data`` matches ``rule``, else pycddl's explanation."""
        schema = self.schema(rule)
        try:
            schema.validate_cbor(data)
        except Exception as exc:  # pycddl.ValidationError, or a decoding error
            return str(exc).strip() or type(exc).__name__
        return None
