"""What a publisher's republish costs: lookups and messages per republished record.

A core-level simulation (:class:`qdht.testing.CoreNetwork`: production
``DhtCore`` s, sessions not run) of ``nodes`` nodes; one publisher stores
``records`` immutable records again, batched by keyspace region
(``DhtCore.republish_records``: one FIND_NODE lookup per region, then each
record to its k closest, paced), and, as the baseline of the same run, one
full put per record (``start_put_record``: a lookup and k STOREs each).
Counted at the publisher: lookups started and DHT messages sent (requests,
STOREs included); and the fraction of records held by at least k/2 nodes
afterwards (the holders' stores are emptied first, so only the republish
can have put them back).
"""

from __future__ import annotations

from qdht.dht import MemoryRecordStore, make_immutable
from qdht.testing import CoreNetwork

__all__ = ["republish_cost"]

UNIX = 1_800_000_000
K = 20


def _sent(net: CoreNetwork, index: int) -> int:
    return sum(net.nodes[index].core.sent.values())


def _lookups(net: CoreNetwork, index: int) -> int:
    kinds = net.nodes[index].core.stats()["lookups"]["by_kind"]
    return sum(kind["started"] for kind in kinds.values())


def republish_cost(nodes: int, records: int, *, batched: bool, seed: int) -> dict[str, float]:
    """Lookups and messages per record for one publisher's republish of ``records``."""
    net = CoreNetwork(seed=seed, core_options={"unix_offset": float(UNIX)})
    net.build(nodes, join_interval=0.05, settle=30.0)
    publisher = net.alive[0]
    index = publisher.index
    expires = UNIX + int(net.now) + 86_400
    batch = [make_immutable(b"republished %d" % i, expires) for i in range(records)]
    for node in net.alive:
        node.core.records = MemoryRecordStore()  # only the republish can restore them
        node.core.replication.store = node.core.records
    sent, lookups = _sent(net, index), _lookups(net, index)
    if batched:
        # As the node does (``Node._upkeep``): a batch as large as the queue
        # takes, the next one once it has left.
        replication = publisher.core.replication
        taken = 0
        while taken < records:
            if replication.own_waiting == 0:
                room = replication.own_room
                taken += net.republish_records(publisher, batch[taken : taken + room])
            net.run_until(net.now + 5.0)
        net.run_while(lambda: replication.own_waiting > 0 or replication.queued > 0)
    else:
        limit = publisher.core.rpc_config.max_lookups
        for start in range(0, records, limit):
            net.wait(net.start_put_record(publisher, r) for r in batch[start : start + limit])
    net.run_until(net.now + 5.0)
    held = sum(1 for r in batch if len(net.holders(r.key())) >= K // 2)
    return {
        "lookups_per_record": (_lookups(net, index) - lookups) / records,
        "messages_per_record": (_sent(net, index) - sent) / records,
        "held": held / records,
    }
