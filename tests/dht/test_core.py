"""The sans-IO DHT core: every RPC, every ERROR path, bad input, rate limits, lookups."""

from __future__ import annotations

import random
from collections.abc import Hashable
from typing import TypeVar

import cbor2
import pytest

from qdht.dht import (
    DhtCore,
    DhtEvent,
    LookupCompleted,
    LookupConfig,
    MemoryRecordStore,
    NodeDiscovered,
    PutCompleted,
    RecordLimits,
    ReputationConfig,
    RequestCompleted,
    RequestFailed,
    RoutingConfig,
    RoutingTableChanged,
    RpcConfig,
    StoreLimits,
    ValidRecord,
    ValueStored,
    distance,
    encoded_size,
)
from qdht.errors import ConfigError, LookupFailedError
from qdht.wire import (
    Address,
    Contact,
    ErrorCode,
    ErrorMessage,
    FindNode,
    FindValue,
    ImmutableRecord,
    Nodes,
    Ping,
    Pong,
    Store,
    Stored,
    Value,
    decode,
    encode,
    immutable_key,
)

RID = b"R" * 8
E = TypeVar("E")
#: Records of these tests expire a day after the cores' Unix time 0.
EXP = 86_400


def immutable(value: bytes, exp: int = EXP) -> ImmutableRecord:
    return ImmutableRecord(value, exp)


def store_of(value: bytes, exp: int = EXP) -> bytes:
    """An encoded STORE of the immutable record of ``value``."""
    return encode(Store.of(RID, immutable(value, exp)))


def make_id(rng: random.Random) -> bytes:
    return rng.randbytes(32)


class Peer:
    """A DhtCore with an address."""

    def __init__(self, net: CoreNet, node_id: bytes, addr: Address, core: DhtCore) -> None:
        self.net = net
        self.node_id = node_id
        self.addr = addr
        self.core = core
        self.events: list[DhtEvent] = []
        #: A liar: its VALUE answers carry a forged record.
        self.forge = False

    @property
    def contact(self) -> Contact:
        return Contact(self.node_id, (self.addr,))


class CoreNet:
    """Cores wired together by hand: messages move only when :meth:`deliver` runs."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        self.peers: dict[bytes, Peer] = {}
        self.by_addr: dict[Hashable, Peer] = {}
        self.dead: set[bytes] = set()
        #: Hook to tamper with payloads: (src, dst, payload) -> payload or None (drop).
        self.tamper: dict[bytes, bytes] = {}

    def add(self, **options: object) -> Peer:
        node_id = make_id(self.rng)
        n = len(self.peers) + 1
        addr = Address("udp", f"10.{n >> 8}.{n & 255}.1", 6881)  # one /24 each
        core = DhtCore(node_id, now=self.now, rng=self.rng.randbytes, **options)  # type: ignore[arg-type]
        peer = Peer(self, node_id, addr, core)
        self.peers[node_id] = peer
        self.by_addr[addr] = peer
        return peer

    def deliver(self, rounds: int = 1000) -> None:
        for _ in range(rounds):
            moved = False
            for peer in list(self.peers.values()):
                for dst_id, _addr, payload in peer.core.messages_to_send():
                    moved = True
                    if dst_id in self.dead or peer.node_id in self.dead:
                        continue
                    dst = self.peers[dst_id]
                    payload = self.tamper.get(payload, payload)
                    if peer.forge:
                        payload = forged(payload)
                    dst.core.receive_message(peer.node_id, peer.addr, payload, self.now)
                self.collect(peer)
            if not moved:
                return

    def collect(self, peer: Peer) -> None:
        while (event := peer.core.next_event()) is not None:
            peer.events.append(event)

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        self.deliver()
        while True:
            timers = [t for p in self.peers.values() if (t := p.core.get_timer()) is not None]
            step = min([end, *timers])
            self.now = max(self.now, step)
            for peer in self.peers.values():
                timer = peer.core.get_timer()
                if timer is not None and timer <= self.now:
                    peer.core.handle_timer(self.now)
            self.deliver()
            if self.now >= end:
                return

    def join_all(self) -> None:
        """Every node pings the first, then looks itself up."""
        first, *rest = list(self.peers.values())
        for peer in rest:
            peer.core.ping(first.contact, self.now)
            self.deliver()
        for peer in rest:
            peer.core.start_lookup(peer.node_id, self.now, kind="bootstrap")
            self.deliver()


def forged(payload: bytes) -> bytes:
    """``payload`` with the value of an immutable record in a VALUE answer replaced."""
    message = decode(payload)
    if isinstance(message, Value) and isinstance(message.record, ImmutableRecord):
        return encode(Value(message.rid, immutable(b"forged!", message.record.expires)))
    return payload


def only(events: list[DhtEvent], cls: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, cls)]


def lookups(peer: Peer, kind: str) -> list[LookupCompleted]:
    return [e for e in collect(peer) if isinstance(e, LookupCompleted) and e.kind == kind]


def error_code(payload: bytes) -> int:
    message = decode(payload)
    assert isinstance(message, ErrorMessage)
    return message.code


def rid_of(payload: bytes) -> bytes:
    message = decode(payload)
    assert isinstance(message, Ping | FindNode | FindValue | Store)
    return message.rid


def request(sender: Peer, receiver: Peer, payload: bytes) -> list[bytes]:
    """Feed ``payload`` from ``sender`` to ``receiver``; return the responses it sent back.

    Requests the receiver sends on its own (a PING back to check an
    unsolicited requester) are left out.
    """
    receiver.core.receive_message(sender.node_id, sender.addr, payload, sender.net.now)
    return [
        p
        for dst, _a, p in receiver.core.messages_to_send()
        if dst == sender.node_id and not isinstance(decode(p), Ping | FindNode | FindValue | Store)
    ]


# ------------------------------------------------------------------ the four RPCs


def test_ping_is_answered_and_both_tables_learn_each_other() -> None:
    net = CoreNet()
    plain = RoutingConfig(outbound_first=0)  # plain Kademlia: requesters join at once
    a, b = net.add(routing=plain), net.add(routing=plain)
    handle = a.core.ping(b.contact, net.now)
    net.deliver()
    done = only(a.events, RequestCompleted)
    assert [e.handle for e in done] == [handle]
    assert b.node_id in a.core.routing
    assert a.node_id in b.core.routing  # a UDP requester is dialable at its source address
    assert only(a.events, NodeDiscovered) == [NodeDiscovered(b.contact)]
    changed = only(a.events, RoutingTableChanged)
    assert changed == [RoutingTableChanged(b.contact, None, 1)]
    assert a.core.stats()["rpcs_sent"] == {"ping": 1}
    assert b.core.stats()["rpcs_sent"] == {"pong": 1}


def test_find_node_answers_the_closest_contacts_without_the_requester() -> None:
    net = CoreNet(1)
    a, b = net.add(), net.add()
    others = [net.add() for _ in range(30)]
    for other in others:
        b.core.routing.update_verified(other.contact, net.now)
    b.core.routing.update_verified(a.contact, net.now)
    target = make_id(net.rng)
    [reply] = request(a, b, encode(FindNode(RID, target)))
    nodes = decode(reply)
    assert isinstance(nodes, Nodes)
    assert nodes.rid == RID
    ids = [c.node_id for c in nodes.nodes]
    assert a.node_id not in ids
    assert len(ids) == 20
    expected = sorted((o.node_id for o in others), key=lambda i: distance(i, target))[:20]
    assert ids == expected


def test_find_value_returns_the_value_or_nodes() -> None:
    net = CoreNet(2)
    a, b = net.add(), net.add()
    value = b"some value"
    key = immutable_key(value)
    [miss] = request(a, b, encode(FindValue(RID, key)))
    assert isinstance(decode(miss), Nodes)
    [stored] = request(a, b, store_of(value))
    assert decode(stored) == Stored(RID)
    [hit] = request(a, b, encode(FindValue(RID, key)))
    assert decode(hit) == Value(RID, immutable(value))
    [event] = only(collect(b), ValueStored)
    assert event == ValueStored(key, len(value), a.node_id)
    assert event.record is not None
    assert event.record.record == immutable(value)


def collect(peer: Peer) -> list[DhtEvent]:
    peer.net.collect(peer)
    return peer.events


def test_store_refusals_are_answered_with_error_codes() -> None:
    net = CoreNet(3)
    a = net.add()
    room = 2 * encoded_size(ValidRecord(immutable(b"one"), b"", b""))
    b = net.add(
        records=MemoryRecordStore(StoreLimits(max_bytes=room)),
        record_limits=RecordLimits(max_value_size=100, max_set_value_size=100),
    )
    wrong = encode(Store(RID, b"\x00" * 32, immutable(b"value")))
    [reply] = request(a, b, wrong)
    assert decode(reply) == ErrorMessage(ErrorCode.INVALID_VALUE, "key-mismatch", RID)
    [reply] = request(a, b, store_of(b"x" * 101))
    assert error_code(reply) == ErrorCode.TOO_LARGE
    for value in (b"one", b"two"):
        [reply] = request(a, b, store_of(value))
        assert decode(reply) == Stored(RID)
    [reply] = request(a, b, store_of(b"six"))
    assert error_code(reply) == ErrorCode.STORAGE_FULL
    # Storing a record already held is not an error.
    [reply] = request(a, b, store_of(b"one"))
    assert decode(reply) == Stored(RID)
    drops = b.core.stats()["drops"]
    assert drops["store-key-mismatch"] == 1
    assert drops["store-too-large"] == 1
    assert drops["store-quota-total"] == 1
    assert b.core.stats()["storage"]["records"] == 2


def test_records_expire_at_their_exp() -> None:
    net = CoreNet(4)
    a, b = net.add(), net.add()
    request(a, b, store_of(b"short-lived", exp=60))
    key = immutable_key(b"short-lived")
    assert b.core.local_value(key, net.now) == b"short-lived"
    net.advance(59.0)
    [hit] = request(a, b, encode(FindValue(RID, key)))
    assert isinstance(decode(hit), Value)
    net.advance(2.0)
    assert b.core.local_value(key, net.now) is None
    [miss] = request(a, b, encode(FindValue(RID, key)))
    assert isinstance(decode(miss), Nodes)  # never served once expired
    net.advance(60.0)
    assert b.core.stats()["storage"]["expired"] == 1
    assert b.core.stats()["storage"]["records"] == 0
    assert b.core.get_timer() != 120.0  # nothing held: no more sweeps


# ------------------------------------------------------------------ bad input


def test_unknown_request_type_is_answered_unknown_request() -> None:
    net = CoreNet(5)
    a, b = net.add(), net.add()
    [reply] = request(a, b, cbor2.dumps({"type": "find_everything", "rid": RID}, canonical=True))
    assert decode(reply) == ErrorMessage(ErrorCode.UNKNOWN_REQUEST, "unknown request type", RID)
    # A message of another layer is no DHT request either.
    hello = cbor2.dumps({"type": "hello", "rid": RID}, canonical=True)
    [reply] = request(a, b, hello)
    assert error_code(reply) == ErrorCode.UNKNOWN_REQUEST
    assert b.core.stats()["drops"]["unknown-request"] == 2


def test_malformed_requests_get_bad_request_or_silence() -> None:
    net = CoreNet(6)
    a, b = net.add(), net.add()
    short = cbor2.dumps({"type": "find_node", "rid": RID, "target": b"t" * 31}, canonical=True)
    [reply] = request(a, b, short)
    error = decode(reply)
    assert isinstance(error, ErrorMessage)
    assert error.code == ErrorCode.BAD_REQUEST
    assert error.rid == RID
    assert request(a, b, b"\xff\x00 not cbor") == []
    no_rid = cbor2.dumps({"type": "ping"}, canonical=True)
    [reply] = request(a, b, no_rid)
    assert decode(reply) == ErrorMessage(ErrorCode.BAD_REQUEST, "missing-field at $.rid", None)
    drops = b.core.stats()["drops"]
    assert drops["malformed"] == 1
    assert drops["bad-request"] == 2
    assert a.node_id not in b.core.routing  # nothing valid came from a


def test_responses_are_never_answered() -> None:
    net = CoreNet(7)
    a, b = net.add(), net.add()
    for message in (Pong(RID), Stored(RID), ErrorMessage(ErrorCode.INTERNAL, "", RID)):
        assert request(a, b, encode(message)) == []
    bad_nodes = cbor2.dumps({"type": "nodes", "rid": RID, "nodes": 5}, canonical=True)
    assert request(a, b, bad_nodes) == []
    drops = b.core.stats()["drops"]
    assert drops["unsolicited-response"] == 3
    assert drops["bad-response"] == 1


def test_response_from_the_wrong_peer_is_dropped() -> None:
    net = CoreNet(8)
    a, b, mallory = net.add(), net.add(), net.add()
    handle = a.core.ping(b.contact, net.now)
    [(_, _, payload)] = a.core.messages_to_send()
    rid = rid_of(payload)
    a.core.receive_message(mallory.node_id, mallory.addr, encode(Pong(rid)), net.now)
    assert a.core.stats()["drops"]["wrong-peer"] == 1
    assert only(collect(a), RequestCompleted) == []
    assert mallory.node_id not in a.core.routing
    # The right peer's answer still completes the request.
    a.core.receive_message(b.node_id, b.addr, encode(Pong(rid)), net.now)
    [done] = only(collect(a), RequestCompleted)
    assert done.handle == handle
    # A second answer to the same request is unsolicited.
    a.core.receive_message(b.node_id, b.addr, encode(Pong(rid)), net.now)
    assert a.core.stats()["drops"]["unsolicited-response"] == 1


def test_response_of_the_wrong_type_is_dropped() -> None:
    net = CoreNet(9)
    a, b = net.add(), net.add()
    a.core.ping(b.contact, net.now)
    [(_, _, payload)] = a.core.messages_to_send()
    rid = rid_of(payload)
    a.core.receive_message(b.node_id, b.addr, encode(Nodes(rid, ())), net.now)
    assert a.core.stats()["drops"]["unexpected-response-type"] == 1
    assert a.core.stats()["pending_requests"] == 1


def test_error_answer_fails_the_request_with_its_code() -> None:
    net = CoreNet(10)
    a, b = net.add(), net.add()
    handle = a.core.ping(b.contact, net.now)
    [(_, _, payload)] = a.core.messages_to_send()
    rid = rid_of(payload)
    a.core.receive_message(b.node_id, b.addr, encode(ErrorMessage(99, "odd", rid)), net.now)
    [failed] = only(collect(a), RequestFailed)
    assert failed == RequestFailed(handle, b.node_id, "error", 99)
    assert a.core.messages_to_send() == []  # an error is never answered


def oversized_nodes(rid: bytes, count: int, rng: random.Random) -> bytes:
    contacts = [
        {"id": rng.randbytes(32), "addrs": [{"tr": "udp", "ip": bytes([10, 9, 0, i]), "port": 1}]}
        for i in range(count)
    ]
    return cbor2.dumps({"type": "nodes", "rid": rid, "nodes": contacts}, canonical=True)


def unparsable_address(rid: bytes, rng: random.Random) -> bytes:
    contact = {"id": rng.randbytes(32), "addrs": [{"tr": "udp", "ip": b"\x0a\x00\x00", "port": 1}]}
    return cbor2.dumps({"type": "nodes", "rid": rid, "nodes": [contact]}, canonical=True)


@pytest.mark.parametrize("bad", ["33 contacts", "unparsable address"])
def test_invalid_nodes_answer_fails_the_request_at_once(bad: str) -> None:
    net = CoreNet(11)
    a, b = net.add(), net.add()
    a.core.routing.update_verified(b.contact, net.now)
    handle = a.core.start_lookup(make_id(net.rng), net.now)
    [(_, _, payload)] = a.core.messages_to_send()
    rid = rid_of(payload)
    if bad == "33 contacts":
        answer = oversized_nodes(rid, 33, net.rng)
    else:
        answer = unparsable_address(rid, net.rng)
    a.core.receive_message(b.node_id, b.addr, answer, net.now)
    assert a.core.messages_to_send() == []  # never answered
    assert a.core.stats()["drops"]["bad-response"] == 1
    [done] = only(collect(a), LookupCompleted)
    assert done.handle == handle
    assert done.contacts == ()
    assert a.core.stats()["pending_requests"] == 0


def test_nodes_beyond_k_and_bad_contacts_are_counted() -> None:
    net = CoreNet(12)
    a, b = net.add(), net.add()
    a.core.routing.update_verified(b.contact, net.now)
    a.core.start_lookup(make_id(net.rng), net.now)
    [(_, _, payload)] = a.core.messages_to_send()
    rid = rid_of(payload)
    good = [Contact(net.rng.randbytes(32), (Address("udp", "10.1.1.1", 7),)) for _ in range(22)]
    wildcard = Contact(net.rng.randbytes(32), (Address("udp", "0.0.0.0", 7),))
    websocket_only = Contact(net.rng.randbytes(32), (Address("ws", "10.1.1.2", 8),))
    nodes = Nodes(rid, [wildcard, good[0], good[0], a.contact, *good[1:], websocket_only][:32])
    a2 = DhtCore(a.node_id, now=0.0, transports=("udp",))  # this core speaks only UDP
    a2.routing.update_verified(b.contact, 0.0)
    a2.start_lookup(make_id(net.rng), 0.0)
    [(_, _, p2)] = a2.messages_to_send()
    rid2 = rid_of(p2)
    a2.receive_message(b.node_id, b.addr, encode(Nodes(rid2, nodes.nodes)), 0.0)
    drops = a2.stats()["drops"]
    assert drops["nodes-oversized"] == 1
    assert drops["contact-duplicate"] == 1
    assert drops["contact-bad-address"] == 1
    assert drops["contact-no-usable-address"] == 1
    sent_to = {dst for dst, _a, _p in a2.messages_to_send()}
    assert a.node_id not in sent_to
    assert wildcard.node_id not in sent_to
    assert sent_to <= {c.node_id for c in good}


def test_find_node_flood_is_rate_limited_and_recovers() -> None:
    net = CoreNet(13)
    a = net.add()
    # The rate limit alone (no reputation penalty, so the flooder is not banned).
    b = net.add(
        rpc=RpcConfig(rate_limit=10.0, rate_burst=20), reputation=ReputationConfig(flood=0.0)
    )
    replies = []
    for i in range(100):
        rid = i.to_bytes(8, "big")
        replies += request(a, b, encode(FindNode(rid, make_id(net.rng))))
    answers = [decode(r) for r in replies]
    assert sum(isinstance(m, Nodes) for m in answers) == 20
    limited = [m for m in answers if isinstance(m, ErrorMessage)]
    assert [m.code for m in limited] == [ErrorCode.RATE_LIMITED]  # one notice, then silence
    assert b.core.stats()["drops"]["rate-limited"] == 80
    # Another peer is not affected, and the flooder recovers with time.
    c = net.add()
    [ok] = request(c, b, encode(Ping(RID)))
    assert decode(ok) == Pong(RID)
    net.now += 1.0
    answered = [decode(r) for i in range(15) for r in request(a, b, encode(Ping(RID)))]
    assert sum(isinstance(m, Pong) for m in answered) == 10
    # A second later the flooder is told once more, then silence again.
    notices = [m.code for m in answered if isinstance(m, ErrorMessage)]
    assert notices == [ErrorCode.RATE_LIMITED]


# ------------------------------------------------------------------ timeouts and identity


def test_timeout_then_late_answer() -> None:
    net = CoreNet(14)
    a, b = net.add(), net.add()
    handle = a.core.ping(b.contact, net.now)
    [(_, _, payload)] = a.core.messages_to_send()
    rid = rid_of(payload)
    timer = a.core.get_timer()
    assert timer == pytest.approx(1.0)  # RoutingConfig.initial_timeout
    net.now = 1.0
    a.core.handle_timer(net.now)
    assert only(collect(a), RequestFailed) == [RequestFailed(handle, b.node_id, "timeout")]
    assert a.core.reputation.score(b.node_id, 1.0) < 0  # charged for the timeout ...
    a.core.receive_message(b.node_id, b.addr, encode(Pong(rid)), 1.5)
    assert a.core.stats()["late_responses"] == 1
    assert b.node_id in a.core.routing  # it is alive after all
    assert a.core.reputation.score(b.node_id, 1.5) >= 0  # ... and the charge is taken back


def test_an_answer_after_the_late_window_is_unsolicited() -> None:
    # Timed-out requests are remembered for late_window after their timeout
    # (RpcConfig): an answer within it counts, one after it does not.
    net = CoreNet(16)
    a, b, c = net.add(), net.add(), net.add()
    window = a.core.rpc_config.late_window
    rids = []
    for peer in (b, c):
        a.core.ping(peer.contact, net.now)
        [(_, _, payload)] = a.core.messages_to_send()
        rids.append(rid_of(payload))
    net.now = 1.0
    a.core.handle_timer(net.now)  # both time out
    collect(a)
    # A later timeout makes room: the window is counted from each deadline.
    a.core.ping(b.contact, 1.0 + window)
    a.core.messages_to_send()
    net.now = 2.0 + window + 0.5
    a.core.handle_timer(net.now)
    a.core.receive_message(c.node_id, c.addr, encode(Pong(rids[1])), net.now)
    assert a.core.stats()["late_responses"] == 0
    assert a.core.stats()["drops"].get("unsolicited-response") == 1


def test_wrong_identity_fails_requests_and_removes_the_peer() -> None:
    net = CoreNet(15)
    a, b = net.add(), net.add()
    a.core.routing.update_verified(b.contact, net.now)
    handle = a.core.ping(b.contact, net.now)
    a.core.peer_unreachable(b.node_id, net.now, "wrong-identity")
    failed = only(collect(a), RequestFailed)
    assert failed == [RequestFailed(handle, b.node_id, "wrong-identity")]
    assert b.node_id not in a.core.routing
    assert a.core.stats()["drops"]["wrong-identity"] == 1


# ------------------------------------------------------------------ client mode


def test_client_mode_requests_are_read_only_and_not_served() -> None:
    net = CoreNet(16)
    server = net.add()
    client = net.add(client_mode=True)
    client.core.ping(server.contact, net.now)
    [(_, _, payload)] = client.core.messages_to_send()
    assert decode(payload) == Ping(rid_of(payload), ro=True)
    server.core.receive_message(client.node_id, client.addr, payload, net.now)
    net.deliver()
    assert only(collect(client), RequestCompleted)
    assert client.node_id not in server.core.routing  # read-only: kept out of the table
    assert server.node_id in client.core.routing  # the client still routes
    [reply] = request(server, client, encode(FindNode(RID, make_id(net.rng))))
    assert decode(reply) == ErrorMessage(ErrorCode.NOT_SERVING, "client mode", RID)


def test_not_serving_answer_removes_the_peer_from_the_table() -> None:
    net = CoreNet(17)
    a, client = net.add(), net.add(client_mode=True)
    a.core.routing.update_verified(client.contact, net.now)
    a.core.ping(client.contact, net.now)
    net.deliver()
    assert client.node_id not in a.core.routing


# ------------------------------------------------------------------ lookups, put and get


def build(n: int, seed: int, **options: object) -> CoreNet:
    net = CoreNet(seed)
    for _ in range(n):
        net.add(**options)
    net.join_all()
    return net


def test_put_then_get_from_every_node() -> None:
    net = build(40, seed=18)
    peers = list(net.peers.values())
    handle = peers[5].core.start_put(b"the value", net.now)
    net.deliver()
    [put] = only(peers[5].events, PutCompleted)
    assert put.handle == handle
    assert len(put.stored_at) >= 20
    key = immutable_key(b"the value")
    for peer in peers:
        peer.core.start_lookup(key, net.now, kind="get")
    net.deliver()
    for peer in peers:
        [done] = lookups(peer, "get")
        assert done.value == b"the value"
        assert done.succeeded
    stats = peers[0].core.stats()["lookups"]
    assert stats["by_kind"]["get"] == {"started": 1, "succeeded": 1, "failed": 0}
    assert stats["success_rate"] == 1.0


def test_find_node_finds_the_true_closest() -> None:
    net = build(40, seed=19)
    peers = list(net.peers.values())
    target = make_id(net.rng)
    peers[7].core.start_lookup(target, net.now)
    net.deliver()
    [done] = lookups(peers[7], "find_node")
    expected = sorted(
        (p.node_id for p in peers if p is not peers[7]), key=lambda i: distance(i, target)
    )[:20]
    assert [c.node_id for c in done.contacts] == expected
    assert done.trace.rpcs >= 3


def test_forged_value_is_counted_and_the_lookup_goes_on() -> None:
    net = build(12, seed=20)
    peers = list(net.peers.values())
    value = b"genuine"
    key = immutable_key(value)
    peers[1].core.start_put(value, net.now)
    net.deliver()
    # Half the holders now answer with a forgery for the key.
    holders = [p for p in peers if p.core.local_value(key, net.now) is not None]
    assert len(holders) >= 2
    for holder in holders[: len(holders) // 2]:
        holder.forge = True
    reader = holders[0]  # a lookup never asks the node itself
    reader.core.start_lookup(key, net.now, kind="get")
    net.deliver()
    [done] = lookups(reader, "get")
    assert done.value == value
    assert reader.core.stats()["drops"]["forged-value"] >= 1


def test_lookups_survive_dead_nodes_by_timeouts() -> None:
    net = build(30, seed=21)
    peers = list(net.peers.values())
    for dead in peers[10:20]:
        net.dead.add(dead.node_id)
    peers[0].core.start_lookup(make_id(net.rng), net.now)
    net.advance(30.0)
    [done] = [
        e for e in peers[0].events if isinstance(e, LookupCompleted) and e.kind == "find_node"
    ]
    ids = {c.node_id for c in done.contacts}
    assert ids
    assert not ids & net.dead
    assert done.trace.timeouts >= 1


def test_put_with_no_peers_fails_and_get_finds_nothing() -> None:
    net = CoreNet(22)
    lonely = net.add(client_mode=True)
    lonely.core.start_put(b"v", net.now)
    lonely.core.start_lookup(immutable_key(b"v"), net.now, kind="get")
    events = collect(lonely)
    [put] = only(events, PutCompleted)
    assert not put.succeeded
    [get] = only(events, LookupCompleted)
    assert get.value is None
    assert not get.succeeded


def test_idle_buckets_are_refreshed() -> None:
    net = build(10, seed=23, routing=RoutingConfig(refresh_interval=60.0))
    peers = list(net.peers.values())
    before = peers[3].core.stats()["lookups"]["by_kind"]["refresh"]["started"]
    net.advance(61.0)
    after = peers[3].core.stats()["lookups"]["by_kind"]["refresh"]["started"]
    assert after > before


def test_local_misuse_raises() -> None:
    net = CoreNet(24)
    a = net.add(rpc=RpcConfig(max_lookups=1))
    with pytest.raises(ConfigError, match="target"):
        a.core.start_lookup(b"short", net.now)
    with pytest.raises(ConfigError, match="kind"):
        a.core.start_lookup(bytes(32), net.now, kind="dance")
    with pytest.raises(ConfigError, match="itself"):
        a.core.ping(a.contact, net.now)
    b = net.add()
    a.core.routing.update_verified(b.contact, net.now)
    a.core.start_lookup(bytes(32), net.now)
    with pytest.raises(LookupFailedError, match="max_lookups"):
        a.core.start_lookup(bytes(32), net.now)


def test_full_bucket_pings_its_stale_head_and_replaces_it_when_silent() -> None:
    net = CoreNet(25)
    a = net.add(
        routing=RoutingConfig(k=2, stale_after=10.0, replace_after_failures=1, outbound_first=0),
        lookup=LookupConfig(k=2),
    )
    # Fill a's buckets, then let the entries go stale.
    others = [net.add() for _ in range(12)]
    for other in others:
        a.core.routing.update_verified(other.contact, net.now)
    before = set(a.core.routing)
    net.now = 20.0
    silent = {c.node_id for c in before}
    for node_id in silent:
        net.dead.add(node_id)
    newcomers = [net.add() for _ in range(12)]
    for newcomer in newcomers:
        a.core.receive_message(newcomer.node_id, newcomer.addr, encode(Ping(RID)), net.now)
    pings = [m for m in a.core.messages_to_send() if m[0] in silent]
    assert pings  # ping-before-evict: the stale heads are asked
    assert all(isinstance(decode(p), Ping) for _, _, p in pings)
    net.advance(10.0)  # the pings time out
    after = {c.node_id for c in a.core.routing}
    assert after - silent  # silent heads gave way to fresh, verified peers
    assert a.core.routing.stats()["replaced"] >= 1


def test_contacts_decoded_by_different_cores_are_shared() -> None:
    net = CoreNet(26)
    a, b, c = net.add(), net.add(), net.add()
    shared = Contact(net.rng.randbytes(32), (Address("udp", "10.200.0.1", 4000),))
    held = []
    for asker in (a, b):
        asker.core.routing.update_verified(c.contact, net.now)
        asker.core.start_lookup(make_id(net.rng), net.now)
        [(_, _, payload)] = asker.core.messages_to_send()
        answer = encode(Nodes(rid_of(payload), [shared]))
        asker.core.receive_message(c.node_id, c.addr, answer, net.now)
        [(next_hop, _, _)] = asker.core.messages_to_send()
        assert next_hop == shared.node_id
        [op] = asker.core._ops.values()
        held.append(op.lookup.in_flight[0])  # type: ignore[union-attr]
    assert held[0] == shared
    assert held[0] is held[1]  # one object for both nodes' lookups


def test_per_peer_storage_quota() -> None:
    net = CoreNet(27)
    quota = encoded_size(ValidRecord(immutable(b"second"), b"", b""))
    a = net.add()
    b = net.add(records=MemoryRecordStore(StoreLimits(max_bytes_per_source=quota)))
    [first] = request(a, b, store_of(b"first"))
    [second] = request(a, b, store_of(b"second"))
    assert decode(first) == Stored(RID)
    assert error_code(second) == ErrorCode.STORAGE_FULL
    c = net.add()
    [other] = request(c, b, store_of(b"second"))
    assert decode(other) == Stored(RID)  # another source address has its own quota
    assert b.core.stats()["drops"]["store-quota-source"] == 1
