"""The session key log (protocol-spec/09-keylog.md) at the sans-IO endpoint: one line per
installed keypair — every session and every rekey — written before a packet uses the keys."""

from __future__ import annotations

import os
from collections.abc import Callable

from qdht.identity import Identity
from qdht.session import KeyLogEntry, SessionEndpoint, SessionEstablished, parse_keylog
from qdht.wire import loads_canonical


def _entries(lines: list[str]) -> list[KeyLogEntry]:
    entries, skipped = parse_keylog("\n".join(lines))
    assert skipped == []
    return entries


def _pump(
    ends: dict[str, tuple[SessionEndpoint, list[str]]],
    now: float,
    check: Callable[[str, bytes], None],
) -> None:
    """Deliver every datagram until both sides are quiet (addresses are the names)."""
    moved = True
    while moved:
        moved = False
        for name, (endpoint, _) in ends.items():
            for data, to in endpoint.datagrams_to_send(now):
                moved = True
                check(str(to), data)
                ends[str(to)][0].receive_datagram(data, name, now)


def test_one_line_per_session_and_per_rekey_before_first_use() -> None:
    alice, bob = Identity.generate(4), Identity.generate(4)
    logs: dict[str, list[str]] = {"alice": [], "bob": []}
    ends = {
        "alice": (SessionEndpoint(alice, keylog=logs["alice"].append), logs["alice"]),
        "bob": (SessionEndpoint(bob, keylog=logs["bob"].append), logs["bob"]),
    }
    data_packets = 0

    def keys_logged_first(to: str, data: bytes) -> None:
        nonlocal data_packets
        packet = loads_canonical(data)
        if packet["type"] != "data":
            return
        data_packets += 1
        # The receiver logged the keys of this rid before the packet arrived,
        # and so did the sender before it sealed it.
        sender = "bob" if to == "alice" else "alice"
        assert packet["rid"] in {e.local_index for e in _entries(logs[to])}
        assert packet["rid"] in {e.peer_index for e in _entries(logs[sender])}

    now = 1000.0
    alice_end = ends["alice"][0]
    alice_end.send_message(bob.node_id, b"hello", now, addr="bob")
    _pump(ends, now, keys_logged_first)
    assert [len(logs["alice"]), len(logs["bob"])] == [1, 1]
    # Past rekey_after_time the next message starts a new handshake (05 §6).
    now += alice_end.config.rekey_after_time + 1
    alice_end.send_message(bob.node_id, os.urandom(3000), now, addr="bob")
    _pump(ends, now, keys_logged_first)
    assert data_packets >= 4
    established = []
    while (event := alice_end.next_event()) is not None:
        if isinstance(event, SessionEstablished):
            established.append(event)
    assert [e.pattern for e in established] == ["pqXX", "pqIK"]
    a, b = _entries(logs["alice"]), _entries(logs["bob"])
    assert [len(a), len(b)] == [2, 2]
    for mine, theirs, event in zip(a, b, established, strict=True):
        # Both ends describe the same keys from their own side.
        assert (mine.local_index, mine.peer_index) == (theirs.peer_index, theirs.local_index)
        assert (mine.send_key, mine.recv_key) == (theirs.recv_key, theirs.send_key)
        assert mine.handshake_hash == theirs.handshake_hash == event.handshake_hash
        assert mine.peer_id == bob.node_id
        assert theirs.peer_id == alice.node_id
    assert a[0].send_key != a[1].send_key


def test_a_failing_hook_does_not_break_the_session() -> None:
    alice, bob = Identity.generate(4), Identity.generate(4)

    def broken(line: str) -> None:
        raise OSError("disk full")

    ends: dict[str, tuple[SessionEndpoint, list[str]]] = {
        "alice": (SessionEndpoint(alice, keylog=broken), []),
        "bob": (SessionEndpoint(bob), []),
    }
    ends["alice"][0].send_message(bob.node_id, b"still delivered", 0.0, addr="bob")
    _pump(ends, 0.0, lambda to, data: None)
    received = []
    while (event := ends["bob"][0].next_event()) is not None:
        received.append(getattr(event, "payload", None))
    assert b"still delivered" in received
