"""Spec and code cannot drift: CDDL rules, registered classes and vectors agree.

* every message class's encodings (hypothesis) validate against its CDDL rule;
* every CDDL message rule has a registered class with the same ``type``, and
  the other way round;
* every valid vector under ``protocol-spec/vectors/`` (all areas) decodes and
  re-encodes byte for byte; every invalid one is rejected with its reason and
  by the CDDL or the encoding profile;
* the checked-in vector files are exactly what the generators produce.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from qdht_lint._cddl import SpecCddl
from qdht_lint.vectors import all_vector_files, render

from qdht.errors import DecodeError
from qdht.wire import decode, dumps_canonical, encode, loads_canonical, message_types

from .strategies import MESSAGE_STRATEGIES

SPEC_DIR = Path(__file__).resolve().parents[2] / "protocol-spec"
VECTOR_FILES = sorted((SPEC_DIR / "vectors").glob("**/*.json"))

#: Array fields whose elements are maps of another rule.  pycddl 0.6 does not
#: close maps that are array elements, so the tests check those elements
#: against their own rule as well.
NESTED_RULES = {
    "nodes": "contact",
    "contacts": "contact",
    "addrs": "address",
    "records": "records-set_entry",
    "secrets": "grp-secret-ref",
}


@cache
def spec() -> SpecCddl:
    return SpecCddl.from_dir(SPEC_DIR)


def cddl_problem(data: bytes, rule: str) -> str | None:
    """None if ``data`` matches ``rule`` (nested array elements included).

    The nested elements are checked first: pycddl 0.6 panics on an array
    element that is not a map where its rule expects one.
    """
    try:
        obj = loads_canonical(data)
    except DecodeError as exc:
        return str(exc)
    return _nested_problem(obj) or spec().validate(data, rule)


def _nested_problem(obj: Any) -> str | None:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in NESTED_RULES and isinstance(value, list):
                for item in value:
                    if not isinstance(item, dict):
                        return f"{key} element is not a map"
                    problem = spec().validate(dumps_canonical(item), NESTED_RULES[key])
                    if problem is not None:
                        return problem
            problem = _nested_problem(value)
            if problem is not None:
                return problem
    elif isinstance(obj, list):
        for item in obj:
            problem = _nested_problem(item)
            if problem is not None:
                return problem
    return None


# ------------------------------------------------------------ classes vs CDDL


def test_every_cddl_message_rule_has_a_registered_class() -> None:
    registered = message_types()
    for type_name, rule in spec().rule_for_type.items():
        assert type_name in registered, f"CDDL rule {rule} has no message class"


def test_every_registered_class_has_a_cddl_rule() -> None:
    rules = spec().rule_for_type
    for type_name, cls in message_types().items():
        assert type_name in rules, f"{cls.__name__} (type {type_name!r}) has no CDDL rule"
        assert type_name == cls.TYPE


def test_root_rule_unions_every_message_rule() -> None:
    rules = spec().message_rules
    assert len(rules) == len(set(rules)) == len(spec().rule_for_type)
    for rule in rules:
        assert rule in spec().reachable()


def test_dht_rule_names() -> None:
    for cls in MESSAGE_STRATEGIES:
        if cls.__module__ == "qdht.wire._dht":
            assert spec().rule_for_type[cls.TYPE] == f"dht-{cls.TYPE}"


@pytest.mark.parametrize("cls", list(MESSAGE_STRATEGIES), ids=lambda cls: cls.TYPE)
def test_encodings_match_the_cddl_rule(cls: type[Any]) -> None:
    rule = spec().rule_for_type[cls.TYPE]

    @given(MESSAGE_STRATEGIES[cls])
    def check(message: Any) -> None:
        data = encode(message)
        assert cddl_problem(data, rule) is None
        assert cddl_problem(data, "message") is None
        assert decode(data) == message

    check()


# -------------------------------------------------------------------- vectors


def load_vectors() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    cases = []
    for path in VECTOR_FILES:
        content = json.loads(path.read_text(encoding="utf-8"))
        name = str(path.relative_to(SPEC_DIR / "vectors"))
        for test in content["tests"]:
            cases.append((f"{name}#{test['tcId']}", content, test))
    return cases


VECTORS = load_vectors()
VALID = [case for case in VECTORS if case[2]["result"] == "valid"]
INVALID = [case for case in VECTORS if case[2]["result"] == "invalid"]


def test_vector_files_exist() -> None:
    assert any(path.parent.name == "dht" for path in VECTOR_FILES)
    assert VALID
    assert INVALID


def test_every_message_rule_has_valid_and_invalid_vectors() -> None:
    by_rule: dict[str, set[str]] = {}
    for _, content, test in VECTORS:
        by_rule.setdefault(content["rule"], set()).add(test["result"])
    for rule in spec().message_rules:
        assert by_rule.get(rule) == {"valid", "invalid"}, f"{rule} lacks vectors"


@pytest.mark.parametrize(("name", "content", "test"), VALID, ids=[case[0] for case in VALID])
def test_valid_vector(name: str, content: dict[str, Any], test: dict[str, Any]) -> None:
    data = bytes.fromhex(test["cbor"])
    message = decode(data)
    assert encode(message) == data
    rule = content["rule"]
    assert spec().rule_for_type[message.TYPE] == rule
    assert cddl_problem(data, rule) is None


@pytest.mark.parametrize(("name", "content", "test"), INVALID, ids=[case[0] for case in INVALID])
def test_invalid_vector(name: str, content: dict[str, Any], test: dict[str, Any]) -> None:
    data = bytes.fromhex(test["cbor"])
    with pytest.raises(DecodeError) as info:
        decode(data)
    if "reason" in test:
        assert info.value.reason == test["reason"]
    try:
        loads_canonical(data)
    except DecodeError:
        return  # rejected by the encoding profile
    assert cddl_problem(data, content["rule"]) is not None


def test_checked_in_vectors_match_the_generators() -> None:
    generated = all_vector_files()
    on_disk = {str(path.relative_to(SPEC_DIR / "vectors")): path for path in VECTOR_FILES}
    assert sorted(on_disk) == sorted(generated), "run: python -m qdht_lint.vectors protocol-spec"
    for name, content in generated.items():
        assert on_disk[name].read_text(encoding="utf-8") == render(content), name


def test_vector_generation_is_deterministic() -> None:
    assert json.dumps(all_vector_files()) == json.dumps(all_vector_files())


def test_immutable_key_example() -> None:
    content = json.loads((SPEC_DIR / "vectors/dht/dht-store.json").read_text(encoding="utf-8"))
    example = content["immutable_key_example"]
    from qdht.wire import immutable_key

    assert immutable_key(bytes.fromhex(example["value"])).hex() == example["key"]


@given(st.sampled_from([case for case in VALID if case[0].startswith("dht/")]))
def test_valid_dht_vectors_validate_as_message(
    case: tuple[str, dict[str, Any], dict[str, Any]],
) -> None:
    assert cddl_problem(bytes.fromhex(case[2]["cbor"]), "message") is None
