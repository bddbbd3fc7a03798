"""The msg wire classes: encodings match their CDDL rules; sizes are checked both ways."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qdht_lint._cddl import SpecCddl

from qdht.errors import ConfigError, DecodeError
from qdht.wire import (
    FirstEnvelope,
    FirstMessage,
    IntroEntry,
    OneTimePrekey,
    PrekeyRecord,
    RatchetMessage,
    SlotDelete,
    SlotRecord,
    decode,
    dumps_canonical,
    encode,
)

SPEC_DIR = Path(__file__).resolve().parents[2] / "protocol-spec"


@cache
def spec() -> SpecCddl:
    return SpecCddl.from_dir(SPEC_DIR)


def sized(n: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=n, max_size=n)


times = st.integers(0, 2**40 - 1)
ids = st.integers(0, 2**32 - 1)
ratchet = st.builds(
    RatchetMessage, st.binary(min_size=70, max_size=300), st.binary(min_size=16, max_size=300)
)
one_time = st.one_of(st.just((None, None)), st.tuples(ids, sized(1120)))
first = st.builds(
    lambda spk_id, ct_ik, ct_spk, env, msg, opk: FirstMessage(
        spk_id, ct_ik, ct_spk, env, msg, opk_id=opk[0], ct_opk=opk[1]
    ),
    ids,
    sized(1120),
    sized(1120),
    st.binary(min_size=16, max_size=200),
    ratchet,
    one_time,
)
STRATEGIES: dict[type[Any], st.SearchStrategy[Any]] = {
    PrekeyRecord: st.builds(
        PrekeyRecord,
        sized(32),
        sized(1216),
        ids,
        sized(1216),
        sized(32),
        sized(32),
        st.lists(
            st.builds(OneTimePrekey, ids, sized(1216)), max_size=3, unique_by=lambda o: o.id
        ).map(tuple),
        times,
        times,
        sized(3309),
    ),
    FirstMessage: first,
    FirstEnvelope: st.builds(
        FirstEnvelope, sized(1952), sized(1216), st.booleans(), sig=st.none() | sized(3309)
    ),
    RatchetMessage: ratchet,
    SlotRecord: st.builds(
        SlotRecord, sized(32), st.binary(min_size=256, max_size=600), sized(32), times
    ),
    SlotDelete: st.builds(SlotDelete, sized(32), sized(32)),
    IntroEntry: st.builds(IntroEntry, sized(32), first, times, st.integers(0, 2**64 - 1)),
}


@pytest.mark.parametrize("cls", list(STRATEGIES), ids=lambda cls: cls.TYPE)
def test_encodings_match_the_cddl_rule_and_decode_back(cls: type[Any]) -> None:
    rule = f"msg-{cls.TYPE}"

    @settings(
        max_examples=15, deadline=None, suppress_health_check=[HealthCheck.large_base_example]
    )
    @given(STRATEGIES[cls])
    def check(message: Any) -> None:
        data = encode(message)
        assert spec().validate(data, rule) is None
        assert spec().validate(data, "message") is None
        assert decode(data) == message

    check()


def test_constructors_refuse_what_could_not_be_encoded() -> None:
    with pytest.raises(ConfigError):
        RatchetMessage(b"x" * 69, b"y" * 16)
    with pytest.raises(ConfigError):
        SlotRecord(b"t" * 32, b"b" * 255, b"d" * 32, 0)
    with pytest.raises(ConfigError):
        OneTimePrekey(2**32, b"k" * 1216)
    ratchet_message = RatchetMessage(b"x" * 70, b"y" * 16)
    with pytest.raises(ConfigError):
        FirstMessage(1, b"a" * 1120, b"b" * 1120, b"e" * 16, ratchet_message, opk_id=3)
    with pytest.raises(ConfigError):
        PrekeyRecord(
            b"o" * 32,
            b"i" * 1216,
            1,
            b"s" * 1216,
            b"r" * 32,
            b"n" * 32,
            (OneTimePrekey(1, b"k" * 1216),) * 2,
            0,
            0,
            b"s" * 3309,
        )


def test_decoder_refuses_half_a_one_time_prekey() -> None:
    message = FirstMessage(
        1, b"a" * 1120, b"b" * 1120, b"e" * 16, RatchetMessage(b"x" * 70, b"y" * 16)
    )
    obj = dict(message.to_cbor(), opk_id=3)
    with pytest.raises(DecodeError) as info:
        decode(dumps_canonical(obj))
    assert info.value.reason == "field-value"
