"""A STORE or a page of a set gets a longer timeout than a small request to the same peer."""

from __future__ import annotations

import os

from qdht.dht import DhtCore, RpcConfig, make_immutable
from qdht.wire import Address, Contact, FindValue


def _deadline_after(core: DhtCore, start: object) -> float:
    assert callable(start)
    start()
    timer = core.get_timer()
    assert timer is not None
    return timer


def test_store_waits_bulk_timeout_factor_times_longer() -> None:
    peer = Contact(os.urandom(32), (Address("udp", "10.0.0.2", 4000),))
    record = make_immutable(b"v", 2_000_000_000)
    cores = [DhtCore(os.urandom(32), now=0.0, rpc=RpcConfig(bulk_timeout_factor=3.0)) for _ in "ab"]
    ping_deadline = _deadline_after(cores[0], lambda: cores[0].ping(peer, 0.0))
    store_deadline = _deadline_after(cores[1], lambda: cores[1].store_at(peer, record, 0.0))
    assert ping_deadline == 1.0  # RoutingConfig.initial_timeout: no RTT measured yet
    assert store_deadline == 3.0
    capped = DhtCore(os.urandom(32), now=0.0, rpc=RpcConfig(bulk_timeout_factor=100.0))
    assert _deadline_after(capped, lambda: capped.store_at(peer, record, 0.0)) == 5.0  # max_timeout


def test_a_page_of_a_set_waits_as_long_as_a_store() -> None:
    # A FIND_VALUE with `have` is answered with up to 72 KB (02-dht-rpc.md §4.2).
    peer = Contact(os.urandom(32), (Address("udp", "10.0.0.2", 4000),))
    key, owner = os.urandom(32), os.urandom(32)
    cores = [DhtCore(os.urandom(32), now=0.0) for _ in "ab"]

    def ask(core: DhtCore, have: tuple[bytes, ...]) -> None:
        core._request(peer, lambda rid: FindValue(rid, key, have=have), 0, 0.0)

    assert _deadline_after(cores[0], lambda: ask(cores[0], ())) == 1.0
    assert _deadline_after(cores[1], lambda: ask(cores[1], (owner,))) == 3.0
