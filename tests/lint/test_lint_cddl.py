"""The CDDL helper: rule discovery, reachability and the pycddl rewrites."""

from __future__ import annotations

import cbor2
import pytest
from qdht_lint._cddl import CddlError, SpecCddl, pycddl_text

CDDL = """
message = a-message
a-message = a-ping / a-note
a-ping = { type: "ping", rid: rid }       ; `rid: rid`: key and rule share a name
a-note = { type: "note", message: tstr }  ; `message:` is a key, not the root
rid = bstr .size 8
orphan = uint
"""


def test_message_rules_and_types() -> None:
    cddl = SpecCddl(CDDL)
    assert cddl.message_rules == ["a-ping", "a-note"]
    assert cddl.rule_for_type == {"ping": "a-ping", "note": "a-note"}
    assert cddl.type_of("a-note") == "note"
    assert cddl.type_of("rid") is None


def test_bareword_keys_are_not_references() -> None:
    cddl = SpecCddl(CDDL)
    assert cddl.references("a-note") == set()
    assert cddl.references("a-ping") == {"rid"}
    assert "orphan" not in cddl.reachable()


def test_pruned_schema_starts_with_its_rule() -> None:
    text = SpecCddl(CDDL).pruned_text("a-ping")
    assert text.splitlines()[0].startswith("a-ping =")
    assert "orphan" not in text
    assert "rid = bstr .size 8" in text


def test_pycddl_text_quotes_keys_and_types_sizes() -> None:
    text = pycddl_text('x = { a: bstr .size 8, "b:c": tstr .size (0..4), ? d : uint }')
    assert text == (
        'x = { "a": (bstr .size 8) .and bstr, "b:c": (tstr .size (0..4)) .and tstr, ? "d" : uint }'
    )


def test_unknown_rule_and_broken_cddl_raise_cddl_error() -> None:
    with pytest.raises(CddlError, match="no rule named"):
        SpecCddl(CDDL).schema("nope")
    with pytest.raises(CddlError):
        SpecCddl("message = { a: }\n").compile_all()


def test_validate_explains_failures() -> None:
    cddl = SpecCddl(CDDL)
    assert cddl.validate(cbor2.dumps({"type": "ping", "rid": bytes(8)}), "a-ping") is None
    problem = cddl.validate(cbor2.dumps({"type": "pong", "rid": bytes(8)}), "a-ping")
    assert problem is not None
    assert '"type"' in problem


def test_inlining_keeps_rules_it_cannot_substitute() -> None:
    cddl = SpecCddl(
        'message = a-x\na-x = { type: "x", n: 0..max-n, b: bstr .size len }\nmax-n = 10\nlen = 4\n'
    )
    text = cddl.inlined_text("a-x")
    assert "(bstr .size (4)) .and bstr" in text
    assert "max-n = 10" in text
    assert "len = 4" not in text
    assert cddl.schema("a-x") is not None


def test_inlined_schema_validates_like_the_spec() -> None:
    cddl = SpecCddl(CDDL)
    assert "rid =" not in cddl.inlined_text("a-ping")
    assert cddl.validate(cbor2.dumps({"type": "ping", "rid": bytes(8)}), "a-ping") is None
    assert cddl.validate(cbor2.dumps({"type": "ping", "rid": bytes(7)}), "a-ping") is not None
    assert cddl.validate(cbor2.dumps({"type": "ping", "rid": 5}), "a-ping") is not None
