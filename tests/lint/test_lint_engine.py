"""The message linter's verdicts: every verdict and every kind of defect."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from qdht_lint._cddl import SpecCddl
from qdht_lint.engine import INVALID, NON_DETERMINISTIC, NON_STRICT, OK, Linter

from ._support import ADDRESS, CONTACT, RID, enc, nodes, ping


def raw_map(*pairs: tuple[bytes, bytes], header: bytes | None = None) -> bytes:
    """A map encoded pair by pair as given (any order, any encoding)."""
    head = bytes([0xA0 + len(pairs)]) if header is None else header
    return head + b"".join(k + v for k, v in pairs)


def item(obj: Any) -> bytes:
    return cbor2.dumps(obj)


def test_valid_message_is_ok(linter: Linter) -> None:
    verdict = linter.lint(enc(ping()))
    assert verdict.verdict == OK
    assert verdict.ok
    assert verdict.rule == "dht-ping"
    assert verdict.reason is None
    assert verdict.should == ()


def test_rule_is_picked_by_type(linter: Linter) -> None:
    assert linter.lint(enc(nodes(CONTACT))).rule == "dht-nodes"
    assert linter.lint(enc({"type": "probe", "data": b"hi"})).rule == "test-probe"


# ---------------------------------------------------------------- SHOULD rules


def test_too_many_contacts_is_non_strict(linter: Linter) -> None:
    contacts = [{"id": bytes([i]) * 32, "addrs": [ADDRESS]} for i in range(21)]
    verdict = linter.lint(enc(nodes(*contacts)))
    assert verdict.verdict == NON_STRICT
    assert verdict.should == ("S-DHT-1",)
    assert verdict.path == "$.nodes"


def test_twenty_contacts_are_ok(linter: Linter) -> None:
    contacts = [{"id": bytes([i]) * 32, "addrs": [ADDRESS]} for i in range(20)]
    assert linter.lint(enc(nodes(*contacts))).verdict == OK


def test_repeated_node_id_is_non_strict(linter: Linter) -> None:
    verdict = linter.lint(enc(nodes(CONTACT, CONTACT)))
    assert verdict.verdict == NON_STRICT
    assert verdict.should == ("S-DHT-2",)
    assert verdict.path == "$.nodes[1].id"


def test_repeated_address_is_non_strict(linter: Linter) -> None:
    verdict = linter.lint(enc(nodes({"id": b"\x01" * 32, "addrs": [ADDRESS, ADDRESS]})))
    assert verdict.verdict == NON_STRICT
    assert verdict.should == ("S-CONTACT-1",)
    assert verdict.path == "$.nodes[0].addrs[1]"


def test_repeated_address_in_a_lone_contact_is_non_strict(linter: Linter) -> None:
    verdict = linter.lint(enc({"id": b"\x01" * 32, "addrs": [ADDRESS, ADDRESS]}), rule="contact")
    assert (verdict.verdict, verdict.should, verdict.path) == (
        NON_STRICT,
        ("S-CONTACT-1",),
        "$.addrs[1]",
    )


def test_long_error_text_is_non_strict(linter: Linter) -> None:
    verdict = linter.lint(enc({"type": "error", "code": 1, "message": "é" * 65}))
    assert verdict.verdict == NON_STRICT
    assert verdict.should == ("S-DHT-3",)
    assert "130 bytes" in verdict.detail


def test_several_should_rules_are_all_reported(linter: Linter) -> None:
    twice = {"id": b"\x02" * 32, "addrs": [ADDRESS, ADDRESS]}
    verdict = linter.lint(enc(nodes(twice, twice)))
    assert verdict.verdict == NON_STRICT
    assert set(verdict.should) == {"S-CONTACT-1", "S-DHT-2"}


# ---------------------------------------------------------------- encodings


def test_unsorted_map_keys_are_non_deterministic(linter: Linter) -> None:
    data = raw_map((item("type"), item("ping")), (item("rid"), item(RID)))
    verdict = linter.lint(data)
    assert verdict.verdict == NON_DETERMINISTIC
    assert verdict.rule == "dht-ping"
    assert verdict.reason == "non-deterministic"


def test_non_shortest_integer_is_non_deterministic(linter: Linter) -> None:
    data = raw_map(
        (item("n"), b"\x18\x05"), (item("data"), item(b"")), (item("type"), item("probe"))
    )
    assert linter.lint(data).verdict == NON_DETERMINISTIC


def test_non_shortest_length_is_non_deterministic(linter: Linter) -> None:
    data = raw_map((item("rid"), b"\x58\x08" + RID), (item("type"), item("ping")))
    assert linter.lint(data).verdict == NON_DETERMINISTIC


def test_non_deterministic_and_invalid_is_invalid(linter: Linter) -> None:
    data = raw_map((item("type"), item("ping")), (item("rid"), item(b"short")))
    verdict = linter.lint(data)
    assert verdict.verdict == INVALID
    assert verdict.path == "$.rid"


def test_duplicate_key_is_invalid(linter: Linter) -> None:
    data = raw_map((item("rid"), item(RID)), (item("rid"), item(RID)), (item("type"), item("ping")))
    verdict = linter.lint(data)
    assert (verdict.verdict, verdict.reason) == (INVALID, "duplicate-key")


def test_indefinite_length_is_invalid(linter: Linter) -> None:
    data = raw_map((item("rid"), item(RID)), (item("type"), item("ping")), header=b"\xbf") + b"\xff"
    verdict = linter.lint(data)
    assert (verdict.verdict, verdict.reason) == (INVALID, "indefinite-length")


def test_trailing_bytes_are_invalid(linter: Linter) -> None:
    verdict = linter.lint(enc(ping()) + b"\x00")
    assert (verdict.verdict, verdict.reason) == (INVALID, "trailing-bytes")


def test_trailing_bytes_after_a_non_deterministic_item_are_invalid(linter: Linter) -> None:
    data = raw_map((item("type"), item("ping")), (item("rid"), item(RID))) + b"\x00"
    verdict = linter.lint(data)
    assert (verdict.verdict, verdict.reason) == (INVALID, "trailing-bytes")


def test_over_the_size_limit_is_invalid(linter: Linter) -> None:
    verdict = linter.lint(enc({"type": "probe", "data": b"x" * 80_000}))
    assert (verdict.verdict, verdict.reason) == (INVALID, "too-large")


def test_float_is_invalid(linter: Linter) -> None:
    verdict = linter.lint(enc({"type": "probe", "data": b"", "n": 1.5}))
    assert (verdict.verdict, verdict.reason, verdict.path) == (INVALID, "unsupported-type", "$.n")


def test_tag_is_invalid(linter: Linter) -> None:
    verdict = linter.lint(enc({"type": "probe", "data": b"", "n": cbor2.CBORTag(99, 1)}))
    assert (verdict.verdict, verdict.reason) == (INVALID, "unsupported-type")


def test_not_cbor_is_invalid(linter: Linter) -> None:
    verdict = linter.lint(b"\xff\xfe")
    assert (verdict.verdict, verdict.reason) == (INVALID, "malformed")


def test_empty_message_is_invalid(linter: Linter) -> None:
    assert linter.lint(b"").reason == "empty"


def test_too_deep_is_invalid(linter: Linter) -> None:
    nested: Any = 0
    for _ in range(20):
        nested = [nested]
    verdict = linter.lint(enc({"type": "probe", "data": b"", "n": nested}))
    assert (verdict.verdict, verdict.reason) == (INVALID, "too-deep")


def test_too_many_entries_is_invalid(linter: Linter) -> None:
    big = {"type": "probe", "data": b"", **{f"k{i}": 0 for i in range(1030)}}
    verdict = linter.lint(enc(big))
    assert (verdict.verdict, verdict.reason) == (INVALID, "too-many-items")


def test_non_text_key_is_invalid(linter: Linter) -> None:
    verdict = linter.lint(enc({"type": "probe", "data": b"", 1: 2}))
    assert (verdict.verdict, verdict.reason) == (INVALID, "non-text-key")


# ---------------------------------------------------------------- content


def test_unknown_type_is_invalid(linter: Linter) -> None:
    verdict = linter.lint(enc({"type": "zap", "rid": RID}))
    assert (verdict.verdict, verdict.reason, verdict.path) == (INVALID, "unknown-type", "$.type")
    assert verdict.rule is None


@pytest.mark.parametrize(
    ("obj", "reason"),
    [(["ping"], "not-a-map"), ({"rid": RID}, "missing-type"), ({"type": 7}, "field-type")],
)
def test_message_without_a_usable_type_is_invalid(linter: Linter, obj: object, reason: str) -> None:
    verdict = linter.lint(enc(obj))
    assert (verdict.verdict, verdict.reason) == (INVALID, reason)


def test_wrong_field_type_is_invalid(linter: Linter) -> None:
    verdict = linter.lint(enc({"type": "probe", "data": 5}))
    assert (verdict.verdict, verdict.reason, verdict.path) == (INVALID, "field-type", "$.data")


def test_text_where_sized_bytes_are_expected_is_invalid(linter: Linter) -> None:
    # pycddl 0.6 alone accepts any type for `bstr .size N`; the linter must not.
    verdict = linter.lint(enc({"type": "ping", "rid": "r" * 8}))
    assert (verdict.verdict, verdict.path) == (INVALID, "$.rid")


def test_oversize_field_is_invalid(linter: Linter) -> None:
    verdict = linter.lint(enc({"type": "probe", "data": b"x" * 17}))
    assert (verdict.verdict, verdict.reason, verdict.path) == (INVALID, "field-size", "$.data")


def test_missing_field_is_invalid(linter: Linter) -> None:
    verdict = linter.lint(enc({"type": "probe"}))
    assert (verdict.verdict, verdict.reason, verdict.path) == (INVALID, "missing-field", "$.data")


def test_unknown_field_is_invalid(linter: Linter) -> None:
    verdict = linter.lint(enc({"type": "probe", "data": b"", "extra": 1}))
    assert (verdict.verdict, verdict.reason, verdict.path) == (INVALID, "unknown-field", "$.extra")


def test_unknown_field_in_a_map_inside_an_array_is_invalid(linter: Linter) -> None:
    contact = {"id": b"\x01" * 32, "addrs": [{**ADDRESS, "path": "/"}]}
    verdict = linter.lint(enc(nodes(contact)))
    assert (verdict.verdict, verdict.reason) == (INVALID, "unknown-field")
    assert verdict.path == "$.nodes[0].addrs[0].path"


def test_array_element_that_is_not_a_map_is_invalid(linter: Linter) -> None:
    not_a_map: Any = [b"\x01" * 32, [ADDRESS]]
    verdict = linter.lint(enc(nodes(not_a_map)))
    assert (verdict.verdict, verdict.path) == (INVALID, "$.nodes[0]")


def test_nested_error_has_its_cbor_path(linter: Linter) -> None:
    contact = {"id": b"\x01" * 31, "addrs": [ADDRESS]}
    verdict = linter.lint(enc(nodes(contact)))
    assert (verdict.verdict, verdict.reason, verdict.path) == (
        INVALID,
        "field-size",
        "$.nodes[0].id",
    )


def test_value_out_of_range_is_invalid(linter: Linter) -> None:
    contact = {"id": b"\x01" * 32, "addrs": [{**ADDRESS, "port": 0}]}
    verdict = linter.lint(enc(nodes(contact)))
    assert verdict.verdict == INVALID
    assert verdict.path == "$.nodes[0].addrs[0].port"


def test_too_many_elements_is_invalid(linter: Linter) -> None:
    contacts = [{"id": bytes([i]) * 32, "addrs": [ADDRESS]} for i in range(33)]
    verdict = linter.lint(enc(nodes(*contacts)))
    assert (verdict.verdict, verdict.path) == (INVALID, "$.nodes")


def test_forced_rule_checks_a_non_message_rule(linter: Linter) -> None:
    assert linter.lint(enc(CONTACT), rule="contact").verdict == OK
    assert linter.lint(enc({"id": b""}), rule="contact").verdict == INVALID


def test_verdict_json_has_every_field(linter: Linter) -> None:
    assert linter.lint(enc({"type": "probe"})).to_json() == {
        "verdict": INVALID,
        "rule": "test-probe",
        "reason": "missing-field",
        "path": "$.data",
        "detail": linter.lint(enc({"type": "probe"})).detail,
        "should": [],
    }


def test_lint_many_keeps_order_and_restores_gc(linter: Linter) -> None:
    import gc

    verdicts = linter.lint_many([enc(ping()), b"\xff", enc(nodes(CONTACT, CONTACT))])
    assert [v.verdict for v in verdicts] == [OK, INVALID, NON_STRICT]
    assert gc.isenabled()


def test_linter_accepts_a_spec_given_as_text() -> None:
    cddl = SpecCddl('message = x-hi\nx-hi = { type: "hi" }\n')
    linter = Linter(cddl=cddl)
    assert linter.lint(enc({"type": "hi"})).verdict == OK
    assert linter.lint(enc({"type": "hi", "x": 1})).verdict == INVALID


def test_real_spec_lints_qdht_messages() -> None:
    from qdht.wire import Address, Contact, Nodes, Ping, encode

    linter = Linter()
    contact = Contact(b"\x05" * 32, [Address("udp", "192.0.2.1", 6881)])
    assert linter.lint(encode(Ping(rid=RID))).verdict == OK
    assert linter.lint(encode(Nodes(rid=RID, nodes=[contact]))).verdict == OK
    verdict = linter.lint(encode(Nodes(rid=RID, nodes=[contact, contact])))
    assert verdict.should == ("S-DHT-2",)


def test_benchmark_messages_are_deterministic_and_ok() -> None:
    from qdht_bench.lint import make_messages

    messages = make_messages(18)
    assert messages == make_messages(18)
    verdicts = Linter().lint_many(messages)
    types = [
        "ping",
        "pong",
        "find_node",
        "nodes",
        "find_value",
        "value",
        "store",
        "stored",
        "error",
    ]
    assert {v.rule for v in verdicts} == {f"dht-{t}" for t in types}
    assert all(v.ok for v in verdicts)
