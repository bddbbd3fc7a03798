"""Where a group's data lives in the DHT (12-groups.md §12): names, splitting, framing."""

from __future__ import annotations

import pytest

from qdht.dht import WRITE_ONCE_PREFIX
from qdht.errors import ConfigError
from qdht.groups import (
    APP_DATA,
    APP_PROPOSAL,
    PART_SIZE,
    frame,
    join_parts,
    message_name,
    record_salt,
    sealed_name,
    slot_part_name,
    split_slot,
    unframe,
)


def test_a_slot_splits_into_records_and_joins_back() -> None:
    for size in (0, 1, PART_SIZE, PART_SIZE + 1, 3 * PART_SIZE + 5):
        slot = bytes(i % 251 for i in range(size))
        parts = split_slot(slot)
        assert parts[0][0] == len(parts)
        assert all(len(p) <= PART_SIZE + 1 for p in parts)
        assert join_parts(parts[0], parts[1:]) == slot
        if len(parts) > 1:
            assert join_parts(parts[0], parts[2:]) is None  # a piece missing
    assert join_parts(b"", []) is None
    assert join_parts(b"\x00abc", []) is None
    with pytest.raises(ConfigError):
        split_slot(bytes(256 * 2), part_size=2)


def test_names_are_write_once_and_name_no_member() -> None:
    assert record_salt(b"slot").startswith(WRITE_ONCE_PREFIX)
    assert len(record_salt(b"sealed/" + bytes(20))) <= 64  # the salt limit
    x = bytes(32)
    names = {message_name(x, s, n) for s in range(4) for n in range(4)}
    assert len(names) == 16  # one per sender and number
    assert message_name(bytes([1]) * 32, 0, 0) != message_name(x, 0, 0)  # per epoch
    assert sealed_name(b"a", 1) != sealed_name(b"b", 1)  # per commit: racers never collide
    assert slot_part_name(b"a", 1) != slot_part_name(b"a", 2)


def test_framing_keeps_the_kind_and_refuses_unknown_ones() -> None:
    assert unframe(frame(APP_DATA, b"hi")) == (APP_DATA, b"hi")
    assert unframe(frame(APP_PROPOSAL, b"p")) == (APP_PROPOSAL, b"p")
    assert unframe(b"") is None
    assert unframe(b"\x07x") is None
