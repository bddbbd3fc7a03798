"""Federated training messages: round trips, CDDL, and the checks CDDL cannot express."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import cbor2
import pytest
from qdht_lint._cddl import SpecCddl

from qdht.errors import ConfigError, DecodeError
from qdht.wire import (
    Address,
    Contact,
    Enrolment,
    GossipModel,
    RoundAnnounce,
    RoundUpdate,
    SecAggForward,
    SecAggKeys,
    SecAggMasked,
    SecAggNeighbours,
    SecAggReveal,
    SecAggSetup,
    SecAggShares,
    SecAggSubmitted,
    SecAggUnlinked,
    SecAggUnmask,
    decode,
    encode,
)

SPEC = SpecCddl.from_dir(Path(__file__).resolve().parents[2] / "protocol-spec")
R, N = bytes(range(32)), bytes(range(1, 33))
PK, CT, BOX, ESC, SH = b"p" * 1216, b"c" * 1120, b"b" * 148, b"e" * 48, b"\x01" * 66
IDS = tuple(bytes([i]) * 32 for i in range(1, 6))

MESSAGES: list[Any] = [
    RoundAnnounce(
        N,
        R,
        3,
        R,
        650,
        5,
        100_000,
        10,
        10**6,
        1000,
        2**31,
        2**31,
        2,
        "krum",
        "topk",
        True,
        sig=b"s" * 3309,
    ),
    RoundUpdate(R, N, 5, 2, "none", struct.pack("<2f", 1, 2)),
    RoundUpdate(R, N, 5, 3, "q8", b"\x00\x01\x02", lo=bytes(4), hi=bytes(4)),
    RoundUpdate(R, N, 5, 9, "topk", bytes(4), idx=struct.pack("<I", 8)),
    SecAggSetup(R, IDS, 4, 3, 16, 8_000_000, 650, R),
    SecAggKeys(R, 1, PK, PK),
    SecAggNeighbours(R, ((2, PK, PK), (5, PK, PK))),
    SecAggShares(R, 1, ((2, CT, BOX), (5, CT, BOX)), ((2, CT, ESC), (5, CT, ESC))),
    SecAggForward(R, ((1, CT, BOX), (3, CT, BOX)), ((1, CT),)),
    SecAggMasked(R, 2, bytes(8)),
    SecAggUnmask(R, (1, 2, 4), (3,)),
    SecAggReveal(R, 2, ((1, SH), (4, SH)), ((3, SH),)),
    GossipModel(R, 7, bytes(12)),
    SecAggUnlinked(R, bytes(8)),
    SecAggSubmitted(R, 2),
    Enrolment(Contact(N, (Address("udp", "::1", 4433),)), R, bytes(8)),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: f"{m.TYPE}")
def test_round_trip_and_cddl(message: Any) -> None:
    data = encode(message)
    assert decode(data) == message
    assert SPEC.validate(data, f"fl-{message.TYPE}") is None
    assert SPEC.validate(data, "message") is None


def _mutated(message: Any, **change: Any) -> bytes:
    obj = message.to_cbor()
    obj.update(change)
    return cbor2.dumps(obj, canonical=True)


@pytest.mark.parametrize(
    ("message", "change", "reason"),
    [
        (MESSAGES[1], {"data": bytes(4)}, "field-size"),  # one value short
        (MESSAGES[1], {"lo": bytes(4)}, "field-size"),  # lo without q8
        (MESSAGES[2], {"hi": bytes(8)}, "field-size"),
        (MESSAGES[4], {"t": 5}, "field-value"),  # t > k
        (MESSAGES[4], {"ids": [IDS[0], *IDS[:4]]}, "field-value"),  # a repeated id
        (MESSAGES[6], {"spks": [PK]}, "field-size"),  # columns of unequal length
        (MESSAGES[8], {"mask_from": [1, 2]}, "field-size"),
        (MESSAGES[9], {"y": bytes(6)}, "field-size"),
        (MESSAGES[13], {"y": bytes(6)}, "field-size"),
        (MESSAGES[10], {"alive": [2, 1]}, "field-value"),
        (MESSAGES[11], {"b_of": [1]}, "field-size"),
        (MESSAGES[12], {"params": bytes(5)}, "field-size"),
    ],
)
def test_semantic_checks_beyond_cddl(message: Any, change: dict[str, Any], reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(_mutated(message, **change))
    assert info.value.reason == reason


def test_constructors_refuse_what_would_not_decode() -> None:
    with pytest.raises(ConfigError):
        RoundUpdate(R, N, 5, 2, "q8", bytes(2))  # no lo / hi
    with pytest.raises(ConfigError):
        SecAggSetup(R, IDS[:2], 2, 2, 16, 1, 1, R)
    with pytest.raises(ConfigError):
        SecAggUnmask(R, (2, 2), ())
    with pytest.raises(ConfigError):
        SecAggNeighbours(R, ((0, PK, PK),))
