"""Inputs the fuzzers found, kept as regression tests (each crashed or confused a parser)."""

from __future__ import annotations

import random

import cbor2
import pytest

from qdht.dht import DhtCore
from qdht.identity import Identity
from qdht.session import SessionEndpoint
from qdht.wire import (
    Address,
    ErrorCode,
    ErrorMessage,
    decode,
    parse_data_packet,
    parse_frame,
    parse_hs_fragment,
)

#: A handshake fragment whose body claims 2^63 bytes (a 9-byte CBOR head).
HUGE_HS = bytes.fromhex(
    "a96163026169006372696400637369640164626f64795b834f45fe2e2274f12a9b6e27aec2b6c6b84ac58c"
    "dfa0c2aae94cb033e3f6a4b9c046ae80c39487e3c902c12f8e245ce6c78edb3782130f8cd84e6218bf905164"
    "6b696e6401646d6163315092364c8de10ea7870c2b3afb334a0ebe647479706562687365657874726100"
)
#: A transport packet whose ciphertext claims 2^64 - 1 bytes.
HUGE_DATA = bytes.fromhex("a4616e006263745bffffffffffffffff") + bytes(30)
#: A frag frame whose payload claims 2^64 - 1 bytes.
HUGE_FRAG = bytes.fromhex("a561630361690061705bffffffffffffffff") + bytes(30)


@pytest.mark.parametrize("data", [HUGE_HS, HUGE_DATA, HUGE_FRAG])
def test_fast_parsers_reject_lengths_past_the_end(data: bytes) -> None:
    """A 64-bit length head made re.fullmatch raise OverflowError (a remote crash)."""
    assert parse_hs_fragment(data) is None
    assert parse_data_packet(data) is None
    assert parse_frame(data) is None


@pytest.mark.parametrize("data", [HUGE_HS, HUGE_DATA])
def test_a_huge_length_head_is_dropped_by_the_endpoint(data: bytes) -> None:
    endpoint = SessionEndpoint(Identity.generate(difficulty=1))
    endpoint.receive_datagram(data, ("192.0.2.1", 1), 0.0)
    drops = endpoint.stats()["drops"]
    assert "internal-error" not in drops
    assert sum(drops.values()) == 1


def test_fast_frame_parser_accepts_no_frame_the_decoder_refuses() -> None:
    frame = cbor2.dumps({"p": bytes(73_728), "type": "msg"}, canonical=True)
    assert parse_frame(frame) is None


@pytest.mark.parametrize("type_value", [{}, [], b"ping", 7, None])
def test_a_request_with_a_non_text_type_is_a_bad_request(type_value: object) -> None:
    """A map or list as ``type`` reached the core's last-resort handler (unhashable)."""
    core = DhtCore(random.Random(1).randbytes(32), now=0.0)
    sender = random.Random(2).randbytes(32)
    payload = cbor2.dumps({"type": type_value, "rid": b"R" * 8}, canonical=True)
    core.receive_message(sender, Address("udp", "192.0.2.1", 6881), payload, 0.0)
    assert "internal-error" not in core.stats()["drops"]
    answers = [decode(p) for dst, _, p in core.messages_to_send() if dst == sender]
    assert [type(a) for a in answers] == [ErrorMessage]
    assert answers[0].code == ErrorCode.BAD_REQUEST  # type: ignore[attr-defined]
