"""The message linter: one verdict per encoded message, from the spec alone.

Pipeline for one message (``protocol-spec/00-conventions.md`` §2 and §5):

1. the strict profile decoder (:func:`qdht.wire.loads_canonical`): size
   limit, not CBOR, duplicate keys, indefinite lengths, floats, tags,
   non-text keys, depth and count limits, trailing bytes → INVALID; a
   non-deterministic encoding is decoded again permissively and carried on;
2. the ``type`` field picks the CDDL rule (unknown type → INVALID);
3. maps inside arrays must be maps with only their rule's keys
   (:mod:`qdht_lint._closed`, which pycddl 0.6 misses);
4. pycddl validates the rule — the authority for INVALID; the reason and path
   come from qdht's own decoder when it knows the type (only on failure, to
   keep the fast path fast), else from pycddl's message;
5. a valid but non-deterministic encoding → NON-DETERMINISTIC;
6. SHOULD checks (:mod:`qdht_lint._should`) → NON-STRICT.

Precedence: INVALID > NON-DETERMINISTIC > NON-STRICT > OK.
"""

from __future__ import annotations

import gc
import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import attrs
import cbor2

from qdht.errors import DecodeError
from qdht.wire import DEFAULT_LIMITS, CborLimits, decode_object, loads_canonical, message_types
from qdht_lint._cddl import SpecCddl, default_spec_dir
from qdht_lint._closed import ClosedMaps
from qdht_lint._should import ShouldCheck, breaches, checks_for

__all__ = [
    "INVALID",
    "NON_DETERMINISTIC",
    "NON_STRICT",
    "OK",
    "VERDICTS",
    "Linter",
    "Verdict",
]

OK: Final = "OK"
NON_STRICT: Final = "NON-STRICT"
NON_DETERMINISTIC: Final = "NON-DETERMINISTIC"
INVALID: Final = "INVALID"
#: Every verdict, best first.
VERDICTS: Final = (OK, NON_STRICT, NON_DETERMINISTIC, INVALID)

_PYCDDL_LOCATION = re.compile(r"at cbor location ([^:]*):\s*(.*)", re.DOTALL)
_PYCDDL_STEP = re.compile(r'/(?:"((?:[^"\\]|\\.)*)"|(\d+))')
# pycddl's message text → the protocol's reason codes (first match wins).
_PYCDDL_REASONS: Final = (
    ("missing key", "missing-field"),
    ("requires entry key", "missing-field"),
    ("unexpected key", "unknown-field"),
    ("length to be in the range", "field-size"),
    (".size", "field-size"),
    ("got Bytes", "field-size"),
    ("got Text", "field-size"),
    ("array to have", "field-size"),
    ("expected type", "field-type"),
    ("expected map", "not-a-map"),
    ("expected array", "field-type"),
    ("expected value", "field-value"),
    ("expected integer", "field-value"),
    ("to be in range", "field-value"),
)
_PYCDDL_KEY = re.compile(r'(?:missing key: ""|unexpected key Text\(")((?:[^"\\]|\\.)*)"')


@attrs.frozen
class Verdict:
    """What the linter says about one message."""

    #: ``OK``, ``NON-STRICT``, ``NON-DETERMINISTIC`` or ``INVALID``.
    verdict: str
    #: The CDDL rule the message was checked against (None if none applies).
    rule: str | None = None
    #: Reason code (``protocol-spec/00-conventions.md``), None when OK.
    reason: str | None = None
    #: Where in the message, as ``$.field[index]`` (None when OK).
    path: str | None = None
    #: Human-readable explanation.
    detail: str = ""
    #: IDs of the SHOULD rules broken (``S-DHT-1``, ...), in order found.
    should: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.verdict == OK

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "rule": self.rule,
            "reason": self.reason,
            "path": self.path,
            "detail": self.detail,
            "should": list(self.should),
        }


def pycddl_path(message: str) -> str:
    """pycddl's ``/"nodes"/0/"id"`` location rendered as ``$.nodes[0].id``."""
    match = _PYCDDL_LOCATION.search(message)
    if match is None:
        return "$"
    out = ["$"]
    for key, index in _PYCDDL_STEP.findall(match.group(1)):
        out.append(f"[{index}]" if index else f".{key}")
    # A missing or unknown map key is reported at the map: name the key too.
    key_match = _PYCDDL_KEY.search(match.group(2))
    if key_match is not None:
        out.append(f".{key_match.group(1)}")
    return "".join(out)


def pycddl_reason(message: str) -> str:
    """The protocol reason code that best names pycddl's complaint."""
    for needle, reason in _PYCDDL_REASONS:
        if needle in message:
            return reason
    return "schema"


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Linter:
    """Lints encoded messages against one spec (its CDDL and SHOULD rules)."""

    def __init__(
        self,
        spec_dir: Path | None = None,
        *,
        cddl: SpecCddl | None = None,
        limits: CborLimits = DEFAULT_LIMITS,
    ) -> None:
        if cddl is None:
            cddl = SpecCddl.from_dir(default_spec_dir() if spec_dir is None else spec_dir)
        self.cddl = cddl
        self.limits = limits
        self._rule_for_type = dict(cddl.rule_for_type)
        # Verdicts are immutable: one OK verdict per rule serves every message.
        self._ok: dict[str, Verdict] = {}
        # Compile every message rule up front: a bad spec fails here, not mid-file.
        self._validators = {
            rule: cddl.schema(rule).validate_cbor for rule in self._rule_for_type.values()
        }
        # pycddl 0.6 does not reject unknown keys in maps inside arrays (a
        # contact in NODES, an address in a contact): check those here.
        closed = ClosedMaps(cddl)
        self._closed = closed
        self._plans = {rule: closed.plan(rule) for rule in self._rule_for_type.values()}
        # SHOULD checks per rule: by its type, and by the rules it can contain.
        self._checks: dict[str, tuple[ShouldCheck, ...]] = {
            rule: checks_for(type_name, cddl.reachable(rule))
            for type_name, rule in self._rule_for_type.items()
        }

    def lint(self, data: bytes, rule: str | None = None) -> Verdict:
        """The verdict on one encoded message; never raises for any ``data``.

        ``rule`` forces a CDDL rule (for vectors of non-message rules such as
        contacts); by default the message's ``type`` field picks it.
        """
        data = bytes(data)
        deterministic = True
        try:
            obj = loads_canonical(data, self.limits)
        except DecodeError as exc:
            if exc.reason != "non-deterministic":
                return Verdict(INVALID, rule, exc.reason, exc.path, exc.detail)
            deterministic = False
            try:
                obj, end = _permissive_item(data)
            except Exception as again:  # pragma: no cover - loads_canonical decoded it
                return Verdict(INVALID, rule, "malformed", "$", str(again))
            if end < len(data):
                return Verdict(
                    INVALID, rule, "trailing-bytes", "$", f"{len(data) - end} bytes after the item"
                )
        if rule is None:
            picked = self._pick_rule(obj)
            if isinstance(picked, Verdict):
                return picked
            rule = picked
        plan = self._plans.get(rule)
        if plan is None:
            plan = self._plans[rule] = self._closed.plan(rule)
        if plan:
            try:
                ClosedMaps.check(obj, plan)
            except DecodeError as exc:
                return Verdict(INVALID, rule, exc.reason, exc.path, exc.detail)
        validate = self._validators.get(rule)
        if validate is None:
            validate = self._validators[rule] = self.cddl.schema(rule).validate_cbor
        try:
            validate(data)
        except Exception as exc:  # pycddl.ValidationError (or its decoding errors)
            return self._invalid(obj, rule, str(exc))
        except BaseException as exc:  # a pycddl panic (pyo3 PanicException)
            if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
                raise
            return self._invalid(obj, rule, f"pycddl could not validate: {exc}")
        if not deterministic:
            return Verdict(
                NON_DETERMINISTIC,
                rule,
                "non-deterministic",
                "$",
                "valid content, but not the core deterministic encoding",
            )
        checks = self._checks.get(rule)
        if checks is None:  # a forced rule outside the message rules
            checks = self._checks[rule] = checks_for(None, self.cddl.reachable(rule))
        if checks and type(obj) is dict:
            found = breaches(obj, checks)
            if found:
                first = found[0]
                return Verdict(
                    NON_STRICT,
                    rule,
                    first.rule_id,
                    first.path,
                    "; ".join(f"{b.rule_id} at {b.path}: {b.detail}" for b in found),
                    tuple(dict.fromkeys(b.rule_id for b in found)),
                )
        ok = self._ok.get(rule)
        if ok is None:
            ok = self._ok[rule] = Verdict(OK, rule)
        return ok

    def lint_many(self, messages: Iterable[bytes]) -> list[Verdict]:
        """The verdicts on a batch of messages, in order.

        Linting allocates many short-lived containers and no reference
        cycles, so the cyclic garbage collector is paused for the batch: on
        100,000 messages it otherwise costs 10-15% of the time.
        """
        enabled = gc.isenabled()
        gc.disable()
        try:
            lint = self.lint
            return [lint(data) for data in messages]
        finally:
            if enabled:
                gc.enable()

    def _pick_rule(self, obj: object) -> str | Verdict:
        if type(obj) is not dict:
            return Verdict(INVALID, None, "not-a-map", "$", "a message body must be a map")
        type_name = obj.get("type")
        if type_name is None:
            return Verdict(INVALID, None, "missing-type", "$.type", "no type field")
        if type(type_name) is not str:
            return Verdict(INVALID, None, "field-type", "$.type", "type must be a text string")
        rule = self._rule_for_type.get(type_name)
        if rule is None:
            return Verdict(
                INVALID, None, "unknown-type", "$.type", f"no message rule has type {type_name!r}"
            )
        return rule

    def _invalid(self, obj: object, rule: str, message: str) -> Verdict:
        detail = _short(message)
        type_name = obj.get("type") if type(obj) is dict else None
        # qdht's decoder names the reason and path best, but only speaks for
        # the rule its type maps to (not for a rule forced by the caller).
        if (
            type(type_name) is str
            and self._rule_for_type.get(type_name) == rule
            and type_name in message_types()
        ):
            try:
                decode_object(obj)
            except DecodeError as exc:
                return Verdict(INVALID, rule, exc.reason, exc.path, exc.detail or detail)
        return Verdict(INVALID, rule, pycddl_reason(message), pycddl_path(message), detail)


def _permissive_item(data: bytes) -> tuple[Any, int]:
    """Decode the first item of ``data`` as it is encoded; return it and its end offset."""
    fp = io.BytesIO(data)
    obj = cbor2.CBORDecoder(fp).decode()
    return obj, fp.tell()
