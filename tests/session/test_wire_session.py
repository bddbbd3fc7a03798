"""Session packets and frames: round trips and fuzzed parsers (only DecodeError)."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qdht.errors import ConfigError, DecodeError
from qdht.wire import (
    CloseFrame,
    CookieReply,
    DataPacket,
    FragmentFrame,
    HandshakeFragment,
    Hello,
    HsView,
    KeepaliveFrame,
    MessageFrame,
    decode,
    encode,
    encode_data_packet,
    encode_frag_frame,
    encode_hs_fragment,
    encode_msg_frame,
    parse_data_packet,
    parse_frame,
    parse_hello,
    parse_hs_fragment,
)

CLASSES = (
    HandshakeFragment,
    CookieReply,
    DataPacket,
    Hello,
    MessageFrame,
    FragmentFrame,
    KeepaliveFrame,
    CloseFrame,
)

u32 = st.integers(1, 2**32 - 1)
messages = st.one_of(
    st.builds(
        lambda k, s, r, c, b, m, m2: HandshakeFragment(k, s, r, c - 1, c, b, m, m2),
        st.integers(1, 6),
        u32,
        st.integers(0, 2**32 - 1),
        st.integers(1, 16),
        st.binary(max_size=1100),
        st.binary(min_size=16, max_size=16),
        st.none() | st.binary(min_size=16, max_size=16),
    ),
    st.builds(
        CookieReply, u32, st.binary(min_size=16, max_size=16), st.binary(min_size=32, max_size=32)
    ),
    st.builds(DataPacket, u32, st.integers(0, 2**64 - 2), st.binary(min_size=16, max_size=1100)),
    st.builds(
        Hello,
        st.integers(1, 255),
        st.binary(min_size=32, max_size=32),
        st.binary(min_size=8, max_size=8),
        st.none() | st.binary(max_size=100),
    ),
    st.builds(MessageFrame, st.binary(max_size=2000)),
    st.builds(
        lambda i, c, p, n: FragmentFrame(i, n % c, c, p),
        st.integers(0, 2**64 - 1),
        st.integers(2, 4096),
        st.binary(min_size=1, max_size=100),
        st.integers(0, 10_000),
    ),
    st.just(KeepaliveFrame()),
    st.just(CloseFrame()),
)


def _verdict(data: bytes) -> str:
    """The decoded message's type, or "rejected"; anything but DecodeError propagates."""
    try:
        return decode(data, expect=CLASSES).TYPE
    except DecodeError as exc:
        return "rejected" if exc.reason else "no-reason"


@given(messages)
def test_every_session_message_round_trips(message: object) -> None:
    data = encode(message)  # type: ignore[arg-type]
    assert decode(data) == message


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_decode_error(data: bytes) -> None:
    assert _verdict(data) in (*[c.TYPE for c in CLASSES], "rejected")


@given(messages, st.data())
def test_mutated_maps_raise_only_decode_error(message: object, data: st.DataObject) -> None:
    obj = message.to_cbor()  # type: ignore[attr-defined]
    key = data.draw(st.sampled_from(sorted(obj)))
    value = data.draw(
        st.one_of(
            st.integers(-(2**64), 2**64), st.binary(max_size=40), st.text(max_size=5), st.none()
        )
    )
    obj[key] = value
    assert _verdict(cbor2.dumps(obj, canonical=True)) in (*[c.TYPE for c in CLASSES], "rejected")


def test_constructors_reject_bad_fields_locally() -> None:
    with pytest.raises(ConfigError):
        HandshakeFragment(1, 1, 0, 2, 2, b"", bytes(16))
    with pytest.raises(ConfigError):
        DataPacket(1, 0, bytes(15))
    with pytest.raises(ConfigError):
        FragmentFrame(0, 0, 1, b"x")
    with pytest.raises(DecodeError) as info:
        decode(cbor2.dumps({"type": "frag", "id": 0, "i": 2, "c": 2, "p": b"x"}, canonical=True))
    assert info.value.reason == "field-value"


@given(
    st.integers(1, 2**32 - 1),
    st.integers(0, 2**64 - 2),
    st.binary(min_size=16, max_size=1500),
    st.integers(0, 2**64 - 1),
    st.integers(2, 4096),
    st.data(),
)
def test_hot_path_codec_is_byte_identical_to_the_general_one(
    rid: int, n: int, ct: bytes, msg_id: int, count: int, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, count - 1))
    payload = ct[: data.draw(st.integers(1, len(ct)))]
    packet = encode_data_packet(rid, n, ct)
    assert packet == encode(DataPacket(rid, n, ct))
    assert parse_data_packet(packet) == (rid, n, ct)
    frag = encode_frag_frame(msg_id, index, count, payload)
    assert frag == encode(FragmentFrame(msg_id, index, count, payload))
    assert parse_frame(frag) == (msg_id, index, count, payload)
    assert encode_msg_frame(ct) == encode(MessageFrame(ct))
    assert parse_frame(encode_msg_frame(ct)) == (0, 0, 1, ct)


@given(st.sampled_from([0, 1, 2]), st.binary(min_size=16, max_size=64), st.data())
def test_hot_path_parsers_accept_only_what_the_general_decoder_accepts(
    which: int, ct: bytes, data: st.DataObject
) -> None:
    sample = [
        encode_data_packet(7, 300, ct),
        encode_frag_frame(70_000, 1, 3, ct),
        encode_msg_frame(ct),
    ][which]
    position = data.draw(st.integers(0, len(sample) - 1))
    mutated = data.draw(
        st.one_of(
            st.integers(1, 255).map(
                lambda x: sample[:position] + bytes([sample[position] ^ x]) + sample[position + 1 :]
            ),
            st.just(sample[:position]),
            st.binary(max_size=80),
        )
    )
    fast = parse_data_packet(mutated) if which == 0 else parse_frame(mutated)
    general = _verdict(mutated)
    if fast is not None:  # the fast path never accepts what the strict decoder rejects
        assert general == ("data", "frag", "msg")[which]
        if which == 0:
            rid, n, ct_ = parse_data_packet(mutated) or (0, 0, b"")
            assert decode(mutated) == DataPacket(rid, n, ct_)
    else:  # whatever it declines, the strict decoder judges
        assert general in {*(c.TYPE for c in CLASSES), "rejected"}


@given(
    st.integers(1, 6),
    u32,
    st.integers(0, 2**32 - 1),
    st.integers(1, 16),
    st.binary(max_size=1100),
    st.none() | st.binary(min_size=16, max_size=16),
    st.data(),
)
def test_hot_path_handshake_fragments_match_the_general_codec(
    kind: int,
    sid: int,
    rid: int,
    count: int,
    body: bytes,
    mac2: bytes | None,
    data: st.DataObject,
) -> None:
    index = data.draw(st.integers(0, count - 1))
    mac1 = data.draw(st.binary(min_size=16, max_size=16))
    view = HsView(kind, sid, rid, index, count, body, mac1, mac2)
    general = HandshakeFragment(kind, sid, rid, index, count, body, mac1, mac2)
    wire_bytes = encode_hs_fragment(view)
    assert wire_bytes == encode(general)
    assert parse_hs_fragment(wire_bytes) == view
    assert view.mac_input() == general.mac_input()
    position = data.draw(st.integers(0, len(wire_bytes) - 1))
    flipped = bytearray(wire_bytes)
    flipped[position] ^= data.draw(st.integers(1, 255))
    if parse_hs_fragment(bytes(flipped)) is not None:
        assert _verdict(bytes(flipped)) == "hs"


@given(
    st.builds(
        Hello,
        st.integers(1, 255),
        st.binary(min_size=32, max_size=32),
        st.binary(min_size=8, max_size=8),
        st.none() | st.binary(max_size=40),
    ),
    st.data(),
)
def test_hot_path_hello_parser_agrees_with_the_general_decoder(
    hello: Hello, data: st.DataObject
) -> None:
    wire_bytes = encode(hello)
    expected = None if hello.early is not None else (hello.version, hello.mldsa, hello.nonce)
    assert parse_hello(wire_bytes) == expected
    position = data.draw(st.integers(0, len(wire_bytes) - 1))
    mutated = data.draw(
        st.one_of(
            st.integers(1, 255).map(
                lambda x: (
                    wire_bytes[:position]
                    + bytes([wire_bytes[position] ^ x])
                    + wire_bytes[position + 1 :]
                )
            ),
            st.just(wire_bytes[:position]),
            st.just(wire_bytes + b"\x00"),
        )
    )
    fast = parse_hello(mutated)
    if fast is not None:  # the fast path never accepts what the strict decoder rejects
        general = decode(mutated, expect=(Hello,))
        assert isinstance(general, Hello)
        assert (general.version, general.mldsa, general.nonce, general.early) == (*fast, None)
