"""Closed maps inside arrays: the check pycddl 0.6 forgets.

pycddl rejects an unknown key in a message's own map or in a nested map
member, but not in a map that is an element of an array (a contact in
``nodes: [* contact]``, an address in ``addrs: [1*4 address]``).  This module
reads the simple map rules of the spec (``name = { key: type, ? key: type }``)
and, for every member whose type is an array of one such map rule, checks that
each element is a map with no key its rule does not list — recursively.  It
runs before pycddl, which panics on an array element that is not a map.  A
member that is a group choice (``( a: T // b: U )``, as in ``dht-value``)
contributes the keys of every alternative (pycddl checks the choice itself).
Rules outside that shape are left to pycddl.
"""

from __future__ import annotations

import re
from typing import Any, Final

from qdht.errors import DecodeError
from qdht_lint._cddl import SpecCddl

__all__ = ["ClosedMaps"]

_KEY: Final = re.compile(
    r'^\s*(?:\?\s*)?(?:"([^"\\]*)"|([A-Za-z_@$][\w@.$-]*))\s*:(.*)$', re.DOTALL
)
_ARRAY_OF: Final = re.compile(
    r"^\[\s*(?:\d*\s*\*\s*\d*|\+|\?)?\s*([A-Za-z_@$][\w@.$-]*)\s*,?\s*\]$"
)
_NAME: Final = re.compile(r"^[A-Za-z_@$][\w@.$-]*$")


def _split_members(body: str) -> list[str] | None:
    """Top-level comma-separated members of ``{ ... }`` (None if not a plain map)."""
    body = body.strip()
    if not (body.startswith("{") and body.endswith("}")):
        return None
    inner = body[1:-1]
    members: list[str] = []
    depth = 0
    start = 0
    in_string = False
    for i, char in enumerate(inner):
        if in_string:
            in_string = char != '"'
        elif char == '"':
            in_string = True
        elif char in "([{<":
            depth += 1
        elif char in ")]}>":
            depth -= 1
        elif char in ",\n" and depth == 0:
            members.append(inner[start:i])
            start = i + 1
    members.append(inner[start:])
    return [m for m in (m.strip() for m in members) if m]


def _split_top(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` outside brackets and strings."""
    parts: list[str] = []
    depth = 0
    start = 0
    in_string = False
    i = 0
    while i < len(text):
        char = text[i]
        if in_string:
            in_string = char != '"'
        elif char == '"':
            in_string = True
        elif char in "([{<":
            depth += 1
        elif char in ")]}>":
            depth -= 1
        elif depth == 0 and text.startswith(separator, i):
            parts.append(text[start:i])
            start = i + len(separator)
            i = start
            continue
        i += 1
    parts.append(text[start:])
    return [p for p in (p.strip() for p in parts) if p]


def _expand_choices(members: list[str]) -> list[str]:
    """Members with each ``( a: T // b: U, c: V )`` group replaced by all its members."""
    out: list[str] = []
    for member in members:
        if member.startswith("(") and member.endswith(")"):
            for alternative in _split_top(member[1:-1], "//"):
                out.extend(_split_top(alternative, ","))
        else:
            out.append(member)
    return out


#: A plan: key → (element rule's keys, element rule's plan) for arrays of maps,
#: or key → (None, nested plan) for a member that is itself a simple map.
_Plan = dict[str, tuple[frozenset[str] | None, "_Plan"]]


class ClosedMaps:
    """Per-rule checks that maps inside arrays carry only their rule's keys."""

    def __init__(self, cddl: SpecCddl) -> None:
        self._cddl = cddl
        self._keys: dict[str, dict[str, str] | None] = {}
        self._plans: dict[str, _Plan] = {}

    def _map_keys(self, rule: str) -> dict[str, str] | None:
        if rule not in self._keys:
            self._keys[rule] = None
            body = self._cddl.rule_bodies.get(rule)
            members = None if body is None else _split_members(body)
            if members is not None:
                keys: dict[str, str] = {}
                for member in _expand_choices(members):
                    match = _KEY.match(member)
                    if match is None:  # a group name, a computed key, ...: not simple
                        return None
                    keys[match.group(1) or match.group(2)] = match.group(3).strip()
                self._keys[rule] = keys
        return self._keys[rule]

    def plan(self, rule: str, _seen: frozenset[str] = frozenset()) -> _Plan:
        """What to check under ``rule`` (empty: pycddl's own check suffices)."""
        if rule in self._plans:
            return self._plans[rule]
        plan: _Plan = {}
        keys = self._map_keys(rule)
        if keys is not None and rule not in _seen:
            seen = _seen | {rule}
            for key, type_text in keys.items():
                array = _ARRAY_OF.match(type_text)
                if array is not None:
                    element = array.group(1)
                    element_keys = self._map_keys(element)
                    if element_keys is not None:
                        plan[key] = (frozenset(element_keys), self.plan(element, seen))
                elif _NAME.match(type_text) and self._map_keys(type_text) is not None:
                    nested = self.plan(type_text, seen)
                    if nested:
                        plan[key] = (None, nested)
        self._plans[rule] = plan
        return plan

    @staticmethod
    def check(obj: Any, plan: _Plan, path: str = "$") -> None:
        """Raise DecodeError for an array element that is not a map, or has a key
        its rule does not list (``field-type``, ``unknown-field``)."""
        if type(obj) is not dict:
            return
        for key, (element_keys, nested) in plan.items():
            value = obj.get(key)
            if element_keys is None:
                ClosedMaps.check(value, nested, f"{path}.{key}")
                continue
            if type(value) is not list:
                continue
            for index, element in enumerate(value):
                if type(element) is not dict:
                    # Checked before pycddl, which panics on a non-map here.
                    raise DecodeError("not-a-map", f"{path}.{key}[{index}]", "expected a map")
                for element_key in element:
                    if element_key not in element_keys:
                        raise DecodeError(
                            "unknown-field",
                            f"{path}.{key}[{index}].{element_key}",
                            "the map's rule does not list this key",
                        )
                if nested:
                    ClosedMaps.check(element, nested, f"{path}.{key}[{index}]")
