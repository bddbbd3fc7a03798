"""Test vectors for the anonymous DHT operations (``protocol-spec/10-mixnet.md`` §14).

Wire-level: the records are those of the DHT vectors (placeholder
signatures), because these messages are checked for shape here and the
asker validates records as 07-records.md says.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from qdht.wire import AnonAnswer, AnonForward, AnonGet, AnonHandoff, AnonHandoffAck, AnonPut, encode
from qdht_lint.vectors._common import Case, Valid, vector_file
from qdht_lint.vectors._dht import _canon, _common_invalid, _records

__all__ = ["vector_files"]

SPEC: Final = "10-mixnet.md"
KEY: Final = hashlib.sha3_256(b"qdht/vectors/anon/key").digest()


def _get() -> dict[str, Any]:
    message = AnonGet(KEY)
    as_map = message.to_cbor()
    valid: list[Valid] = [("typical", [], encode(message))]
    invalid: list[Case] = _common_invalid(as_map)
    invalid += [
        ("key of 31 bytes", ["undersize-field"], _canon(dict(as_map, key=KEY[:31])), "field-size"),
        (
            "key of 33 bytes",
            ["oversize-field"],
            _canon(dict(as_map, key=KEY + b"\0")),
            "field-size",
        ),
        ("key missing", ["missing-field"], _canon({"type": "exit_get"}), "missing-field"),
    ]
    return vector_file("mix-exit_get", SPEC, valid, invalid)


def _put() -> dict[str, Any]:
    records = _records()
    message = AnonPut(records["immutable"])
    as_map = message.to_cbor()
    valid: list[Valid] = [
        ("immutable record", [], encode(message)),
        ("mutable record", [], encode(AnonPut(records["mutable"]))),
        ("tombstone", [], encode(AnonPut(records["tombstone"]))),
    ]
    invalid: list[Case] = _common_invalid(as_map)
    invalid += [
        (
            "a set entry",
            ["wrong-field-type"],
            _canon(dict(as_map, record=records["entry"].to_cbor())),
            "unexpected-type",
        ),
        ("record missing", ["missing-field"], _canon({"type": "exit_put"}), "missing-field"),
        ("record is bytes", ["wrong-field-type"], _canon(dict(as_map, record=b"x")), "not-a-map"),
    ]
    return vector_file("mix-exit_put", SPEC, valid, invalid)


def _answer() -> dict[str, Any]:
    records = _records()
    message = AnonAnswer("found", records["mutable"])
    as_map = message.to_cbor()
    valid: list[Valid] = [
        ("found a mutable record", [], encode(message)),
        ("found an immutable record", [], encode(AnonAnswer("found", records["immutable"]))),
        ("not found", [], encode(AnonAnswer("not-found"))),
        ("stored", [], encode(AnonAnswer("stored"))),
        ("failed", [], encode(AnonAnswer("failed"))),
        ("delivered (a forward, §14.7)", [], encode(AnonAnswer("delivered"))),
        ("too large: three reply blocks needed", [], encode(AnonAnswer("too-large", fragments=3))),
    ]
    invalid: list[Case] = _common_invalid(as_map)
    invalid += [
        ("unknown status", ["bad-value"], _canon(dict(as_map, status="lost")), "field-value"),
        (
            "status is an integer",
            ["wrong-field-type"],
            _canon(dict(as_map, status=1)),
            "field-type",
        ),
        (
            "too large: one fragment",
            ["bad-value"],
            _canon({"type": "exit_answer", "status": "too-large", "fragments": 1}),
            "field-value",
        ),
        (
            "too large: 256 fragments",
            ["bad-value"],
            _canon({"type": "exit_answer", "status": "too-large", "fragments": 256}),
            "field-value",
        ),
    ]
    content = vector_file("mix-exit_answer", SPEC, valid, invalid)
    # The CDDL cannot tie the record to the status: a decoder checks it (§14.4).
    content["decoder_rejects"] = [
        {"comment": comment, "cbor": data.hex(), "reason": "field-value"}
        for comment, data in (
            ("found without a record", _canon({"type": "exit_answer", "status": "found"})),
            ("a record with not-found", _canon(dict(as_map, status="not-found"))),
            ("too-large without fragments", _canon({"type": "exit_answer", "status": "too-large"})),
            (
                "fragments with not-found",
                _canon({"type": "exit_answer", "status": "not-found", "fragments": 3}),
            ),
        )
    ]
    return content


# ---------------------------------------------------------------- forward to a node (§14.7)

NODE: Final = hashlib.sha3_256(b"qdht/vectors/anon/node").digest()
HANDOFF_ID: Final = hashlib.sha3_256(b"qdht/vectors/anon/handoff").digest()[:16]
INNER: Final = _canon({"type": "round_update", "note": "any encoded message"})


def _forward() -> dict[str, Any]:
    message = AnonForward(NODE, INNER)
    as_map = message.to_cbor()
    invalid: list[Case] = _common_invalid(as_map)
    invalid += [
        (
            "node of 31 bytes",
            ["undersize-field"],
            _canon(dict(as_map, node=NODE[:31])),
            "field-size",
        ),
        ("empty message", ["undersize-field"], _canon(dict(as_map, message=b"")), "field-size"),
        (
            "message of 65537 bytes",
            ["oversize-field"],
            _canon(dict(as_map, message=bytes(65537))),
            "field-size",
        ),
        (
            "message missing",
            ["missing-field"],
            _canon({"type": "exit_forward", "node": NODE}),
            "missing-field",
        ),
    ]
    valid: list[Valid] = [("a message for a node", [], encode(message))]
    return vector_file("mix-exit_forward", SPEC, valid, invalid)


def _handoff() -> dict[str, Any]:
    message = AnonHandoff(HANDOFF_ID, INNER)
    as_map = message.to_cbor()
    invalid: list[Case] = _common_invalid(as_map)
    invalid += [
        (
            "id of 15 bytes",
            ["undersize-field"],
            _canon(dict(as_map, id=HANDOFF_ID[:15])),
            "field-size",
        ),
        (
            "id of 17 bytes",
            ["oversize-field"],
            _canon(dict(as_map, id=HANDOFF_ID + b"\0")),
            "field-size",
        ),
        ("empty message", ["undersize-field"], _canon(dict(as_map, message=b"")), "field-size"),
        ("a sender field", ["unknown-field"], _canon(dict(as_map, sender=NODE)), "unknown-field"),
    ]
    valid: list[Valid] = [("a hand-off", [], encode(message))]
    return vector_file("mix-handoff", SPEC, valid, invalid)


def _handoff_ack() -> dict[str, Any]:
    message = AnonHandoffAck(HANDOFF_ID, True)
    as_map = message.to_cbor()
    invalid: list[Case] = _common_invalid(as_map)
    invalid += [
        ("ok is 1", ["wrong-field-type"], _canon(dict(as_map, ok=1)), "field-type"),
        (
            "id of 15 bytes",
            ["undersize-field"],
            _canon(dict(as_map, id=HANDOFF_ID[:15])),
            "field-size",
        ),
        (
            "ok missing",
            ["missing-field"],
            _canon({"type": "handoff_ack", "id": HANDOFF_ID}),
            "missing-field",
        ),
    ]
    valid: list[Valid] = [
        ("accepted", [], encode(message)),
        ("refused", [], encode(AnonHandoffAck(HANDOFF_ID, False))),
    ]
    return vector_file("mix-handoff_ack", SPEC, valid, invalid)


def vector_files() -> dict[str, dict[str, Any]]:
    """``mix/mix-exit_<type>.json`` for the three messages."""
    return {
        "mix/mix-exit_get.json": _get(),
        "mix/mix-exit_put.json": _put(),
        "mix/mix-exit_answer.json": _answer(),
        "mix/mix-exit_forward.json": _forward(),
        "mix/mix-handoff.json": _handoff(),
        "mix/mix-handoff_ack.json": _handoff_ack(),
    }
