"""The hand-written NODES codec agrees byte for byte with the general one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qdht.errors import DecodeError
from qdht.wire import Address, Contact, Nodes, Ping, decode, encode, encode_nodes, parse_nodes

from .strategies import MESSAGE_STRATEGIES

nodes_messages = MESSAGE_STRATEGIES[Nodes]


@given(nodes_messages)
def test_fast_codec_round_trips_exactly(message: Nodes) -> None:
    data = encode(message)
    assert encode_nodes(message) == data
    assert parse_nodes(data) == message


def sample() -> bytes:
    contacts = [
        Contact(
            bytes([i]) * 32, (Address("udp", f"10.0.0.{i}", 6881 + i), Address("ws", "::1", i + 20))
        )
        for i in range(1, 4)
    ]
    return encode(Nodes(b"rrrrrrrr", contacts))


@given(st.data())
def test_fast_parser_never_accepts_what_the_decoder_rejects(data: st.DataObject) -> None:
    base = sample()
    position = data.draw(st.integers(0, len(base) - 1))
    mutated = data.draw(
        st.one_of(
            st.integers(1, 255).map(
                lambda x: base[:position] + bytes([base[position] ^ x]) + base[position + 1 :]
            ),
            st.just(base[:position]),
            st.just(base + b"\x00"),
            st.binary(max_size=200).map(lambda tail: base[:position] + tail),
        )
    )
    fast = parse_nodes(mutated)
    if fast is None:
        return
    try:
        general = decode(mutated)
    except DecodeError as exc:  # pragma: no cover - the failure this test looks for
        raise AssertionError(f"fast parser accepted bytes the decoder rejects: {exc}") from None
    assert general == fast


def test_fast_parser_declines_other_messages() -> None:
    assert parse_nodes(encode(Ping(b"rrrrrrrr"))) is None
    assert parse_nodes(b"") is None
    assert parse_nodes(sample()[:-1]) is None
