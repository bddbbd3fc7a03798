"""Signed records in the DHT core: STORE validation and merging, FIND_VALUE answers,
gets that pick the winner and correct stale holders, puts with compare-and-swap.

Every refusal is answered with its error code (02-dht-rpc.md §4.3), counted under
``store-<reason>`` and never displaces what the holder had.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.dht import (
    LookupCompleted,
    MemoryRecordStore,
    PutCompleted,
    RecordConfig,
    RecordLimits,
    RecordValidator,
    SqliteRecordStore,
    ValidRecord,
    sign_mutable,
    sign_set_entry,
    sign_tombstone,
)
from qdht.errors import ConfigError, RecordRejectedError
from qdht.wire import (
    AnyRecord,
    ErrorCode,
    ErrorMessage,
    FindValue,
    MutableRecord,
    Nodes,
    SetEntry,
    Store,
    Stored,
    Tombstone,
    Value,
    decode,
    encode,
    set_key,
)

from .test_core import RID, CoreNet, Peer, build, error_code, only, request

EXP = 86_400  # the cores' Unix time starts at 0 (unix_offset 0)


@pytest.fixture(scope="module")
def alice() -> MLDSAPrivateKey:
    return MLDSAPrivateKey.from_seed(bytes(range(32)))


@pytest.fixture(scope="module")
def bob() -> MLDSAPrivateKey:
    return MLDSAPrivateKey.from_seed(bytes(range(32, 64)))


def mutable(key: MLDSAPrivateKey, seq: int, value: bytes, **kw: object) -> MutableRecord:
    options: dict[str, object] = {"salt": b"profile", "expires": EXP, **kw}
    return sign_mutable(key, seq=seq, value=value, **options)  # type: ignore[arg-type]


def store(record: AnyRecord, *, cas: int | None = None) -> bytes:
    return encode(Store.of(RID, record, cas=cas))


def held(peer: Peer, key: bytes) -> list[AnyRecord]:
    return [r.record for r in peer.core.local_records(key, peer.net.now)]


def stored_ok(replies: list[bytes]) -> bool:
    return [decode(r) for r in replies] == [Stored(RID)]


# ------------------------------------------------------------------ STORE


def test_a_valid_mutable_record_is_stored_served_with_pk_and_replaced_by_a_newer(
    alice: MLDSAPrivateKey,
) -> None:
    net = CoreNet(31)
    a, b = net.add(), net.add()
    v1 = mutable(alice, 1, b"one", include_public_key=False)
    [reply] = request(a, b, store(v1))
    assert error_code(reply) == ErrorCode.OWNER_KEY_UNKNOWN  # no pk, no certificate
    assert stored_ok(request(a, b, store(mutable(alice, 1, b"one"))))
    [answer] = request(a, b, encode(FindValue(RID, v1.key())))
    served = decode(answer)
    assert isinstance(served, Value)
    assert isinstance(served.record, MutableRecord)
    assert served.record.value == b"one"
    assert served.record.public_key == alice.public_key_bytes()  # holders always attach pk
    assert stored_ok(request(a, b, store(mutable(alice, 2, b"two"))))
    [record] = held(b, v1.key())
    assert isinstance(record, MutableRecord)
    assert record.seq == 2
    assert b.core.stats()["drops"]["store-owner-key-unknown"] == 1


def test_bad_records_are_refused_counted_and_never_displace_good_data(
    alice: MLDSAPrivateKey, bob: MLDSAPrivateKey
) -> None:
    net = CoreNet(32)
    a = net.add()
    b = net.add(record_limits=RecordLimits(max_value_size=1000, max_set_value_size=100))
    good = mutable(alice, 5, b"good")
    key = good.key()
    assert stored_ok(request(a, b, store(good)))
    signature = bytearray(good.signature)
    signature[100] ^= 1
    forged = MutableRecord(
        good.owner, good.salt, 9, b"evil", EXP, bytes(signature), good.public_key
    )
    someone_elses_pk = MutableRecord(
        good.owner, good.salt, 9, b"evil", EXP, good.signature, bob.public_key_bytes()
    )
    cases: list[tuple[AnyRecord, bytes, int, str]] = [
        (forged, key, ErrorCode.INVALID_VALUE, "bad-signature"),
        (someone_elses_pk, key, ErrorCode.INVALID_VALUE, "owner-mismatch"),
        (mutable(bob, 9, b"evil"), key, ErrorCode.INVALID_VALUE, "key-mismatch"),
        (mutable(alice, 4, b"older"), key, ErrorCode.STALE, "seq-regression"),
        (mutable(alice, 9, b"x", expires=0), key, ErrorCode.INVALID_VALUE, "expired"),
        (mutable(alice, 9, b"x" * 1001), key, ErrorCode.TOO_LARGE, "too-large"),
        (
            mutable(alice, 9, b"x", expires=EXP * 30),
            key,
            ErrorCode.INVALID_VALUE,
            "expiry-too-far",
        ),
    ]
    for record, under, code, reason in cases:
        sender = net.add()  # a forger is soon banned (reputation): one sender per case
        [reply] = request(sender, b, encode(Store(RID, under, record)))
        assert decode(reply) == ErrorMessage(code, reason, RID), reason
    [record] = held(b, key)
    assert record == good  # nothing displaced the good record
    drops = b.core.stats()["drops"]
    for _, _, _, reason in cases:
        assert drops[f"store-{reason}"] == 1
    # Equal seq, different content: the digest tie-break decides, and the
    # loser is told it is stale.
    rival = mutable(alice, 5, b"rival")
    [reply] = request(a, b, store(rival))
    winner = max(good, rival, key=lambda r: b.core.validator.validate(r, key, 0).rank())
    assert held(b, key) == [winner]
    assert (decode(reply) == Stored(RID)) == (winner is rival)


def test_compare_and_swap(alice: MLDSAPrivateKey) -> None:
    net = CoreNet(33)
    a, b = net.add(), net.add()
    three = mutable(alice, 3, b"three")
    assert stored_ok(request(a, b, store(three, cas=2)))  # nothing held: cas not checked
    [reply] = request(a, b, store(mutable(alice, 4, b"four"), cas=2))
    assert error_code(reply) == ErrorCode.CAS_MISMATCH
    assert held(b, three.key()) == [three]
    assert stored_ok(request(a, b, store(mutable(alice, 4, b"four"), cas=3)))
    assert b.core.stats()["drops"]["store-cas-mismatch"] == 1


def test_a_store_flood_from_one_address_is_cut_before_verification(
    alice: MLDSAPrivateKey,
) -> None:
    net = CoreNet(34)
    a = net.add()
    b = net.add(record_config=RecordConfig(store_rate=1.0, store_burst=5))
    good = mutable(alice, 1, b"good")
    answers = [decode(r) for i in range(12) for r in request(a, b, store(good))]
    assert answers[:5] == [Stored(RID)] * 5
    assert [m.code for m in answers[5:] if isinstance(m, ErrorMessage)] == [ErrorCode.RATE_LIMITED]
    assert b.core.stats()["drops"]["store-flood"] == 7
    # Refused before decoding: no signature was checked for the flood.
    assert b.core.validator.stats()["verified"] == 1
    assert held(b, good.key()) == [good]
    net.now += 10.0  # the bucket refills with time
    assert stored_ok(request(a, b, store(mutable(alice, 2, b"later"))))


def test_set_entries_of_several_publishers_share_a_key(
    alice: MLDSAPrivateKey, bob: MLDSAPrivateKey
) -> None:
    net = CoreNet(35)
    a, b = net.add(), net.add()
    entries = [
        sign_set_entry(key, topic=b"mixes", seq=1, value=name, expires=EXP)
        for key, name in ((alice, b"alice"), (bob, b"bob"))
    ]
    for entry in entries:
        assert stored_ok(request(a, b, store(entry)))
    [answer] = request(a, b, encode(FindValue(RID, set_key(b"mixes"))))
    value = decode(answer)
    assert isinstance(value, Value)
    assert sorted(e.value for e in value.records) == [b"alice", b"bob"]


def test_a_set_answer_fits_one_message_latest_expiry_first(alice: MLDSAPrivateKey) -> None:
    net = CoreNet(36)
    a = net.add()
    b = net.add(record_config=RecordConfig(store_burst=100))
    keys = [MLDSAPrivateKey.from_seed(bytes([i]) * 32) for i in range(16)]
    for i, key in enumerate(keys):
        entry = sign_set_entry(key, topic=b"big", seq=1, value=b"v" * 4000, expires=EXP + i)
        assert stored_ok(request(a, b, store(entry)))
    [answer] = request(a, b, encode(FindValue(RID, set_key(b"big"))))
    assert len(answer) <= 73728
    value = decode(answer)
    assert isinstance(value, Value)
    assert 5 <= len(value.records) < 16  # 9.4 KB each with pk: not all fit
    assert value.more  # and the answer says so (02-dht-rpc.md §4.2)
    expiries = [e.expires for e in value.records]
    assert expiries == list(range(EXP + 15, EXP + 15 - len(expiries), -1))


def big_set(topic: bytes, count: int) -> list[SetEntry]:
    """``count`` entries of different publishers, 4000-byte values: 7 fit an answer."""
    return [
        sign_set_entry(
            MLDSAPrivateKey.from_seed(bytes([i]) * 32),
            topic=topic,
            seq=1,
            value=bytes([i]) * 4000,
            expires=EXP + i,
        )
        for i in range(count)
    ]


def test_a_holder_pages_a_set_too_big_for_one_answer() -> None:
    net = CoreNet(38)
    a = net.add()
    b = net.add(record_config=RecordConfig(store_burst=100))
    entries = big_set(b"paged", 16)
    for entry in entries:
        assert stored_ok(request(a, b, store(entry)))
    key = set_key(b"paged")
    seen: list[SetEntry] = []
    pages = 0
    while True:
        have = tuple(sorted(e.owner for e in seen))
        [answer] = request(a, b, encode(FindValue(RID, key, have=have)))
        page = decode(answer)
        if isinstance(page, Nodes):
            break  # nothing further
        assert isinstance(page, Value)
        assert len(answer) <= 73728
        assert not {e.owner for e in page.records} & set(have)  # listed owners left out
        seen.extend(page.records)
        pages += 1
        if not page.more:
            break
    assert pages == 3  # 7 + 7 + 2
    assert sorted(e.value for e in seen) == sorted(e.value for e in entries)
    # Every owner listed: nothing is left, so the holder answers nodes.
    everyone = tuple(sorted(e.owner for e in entries))
    [answer] = request(a, b, encode(FindValue(RID, key, have=everyone)))
    assert isinstance(decode(answer), Nodes)


def test_have_is_ignored_for_a_key_that_is_not_a_set(alice: MLDSAPrivateKey) -> None:
    net = CoreNet(39)
    a, b = net.add(), net.add()
    record = mutable(alice, 1, b"one")
    assert stored_ok(request(a, b, store(record)))
    [answer] = request(a, b, encode(FindValue(RID, record.key(), have=(record.owner,))))
    served = decode(answer)
    assert isinstance(served, Value)
    assert isinstance(served.record, MutableRecord)
    assert served.record.value == b"one"
    assert not served.more


def published_set(
    seed: int, count: int, config: RecordConfig
) -> tuple[CoreNet, list[SetEntry], dict[bytes, list[AnyRecord]], Peer]:
    """40 cores, a set of ``count`` big entries put by one of them: the network,
    the entries, their holders, and a reader that holds none (reads only remote answers)."""
    net = build(40, seed=seed, record_config=config)
    peers = list(net.peers.values())
    entries = big_set(b"crowd", count)
    for entry in entries:
        peers[1].core.start_put_record(entry, net.now)
        net.deliver()
    assert all(p.succeeded for p in puts(peers[1]))
    holders = holders_of(net, set_key(b"crowd"))
    reader = next(p for p in peers if p.node_id not in holders)
    return net, entries, holders, reader


@pytest.mark.parametrize(("pages", "expected"), [(4, 16), (0, 7)])
def test_a_get_reads_every_page_of_a_big_set(pages: int, expected: int) -> None:
    config = RecordConfig(store_burst=200, get_quorum=3, max_set_pages=pages)
    _, entries, _, reader = published_set(47, 16, config)
    done = get(reader, set_key(b"crowd"))
    assert done.succeeded
    assert len(done.records) == expected  # without pages, only what fits one answer
    got = {e.owner: e.value for e in done.records}
    assert all(got[e.owner] == e.value for e in entries if e.owner in got)


def test_pages_cross_the_network_about_once_not_once_per_holder() -> None:
    # The same network twice, without and with pages: what the pages add is
    # one holder's rest of the set (read in full), plus short answers from the
    # other two holders, which are asked only for owners nobody sent.
    received = []
    for pages in (0, 4):
        config = RecordConfig(store_burst=200, get_quorum=3, max_set_pages=pages)
        _, entries, _, reader = published_set(47, 16, config)
        before = reader.core.stats()["bytes_received"]
        assert len(get(reader, set_key(b"crowd")).records) == (16 if pages else 7)
        received.append(reader.core.stats()["bytes_received"] - before)
    whole_set = sum(len(encode(Value(RID, records=[e]))) for e in entries)
    added = received[1] - received[0]
    assert 0.5 * whole_set < added < 0.75 * whole_set  # 9 of 16 entries, once


def test_the_holder_read_in_full_is_corrected_and_the_others_fill_gaps_only() -> None:
    # Two holders, each missing a different old entry (never on a first page).
    # Whichever is read in full (the first to answer) lacks one entry that the
    # other, asked only for owners nobody sent, supplies: the get finds all
    # 12, and corrects the one holder whose whole set it knows.
    config = RecordConfig(store_burst=200, get_quorum=20)
    net, entries, holders, reader = published_set(48, 12, config)
    key = set_key(b"crowd")
    first, second, *others = (net.peers[h] for h in holders)
    for peer in others:
        del peer.core.records._keys[key]  # type: ignore[attr-defined]
    for peer, gone in ((first, entries[0]), (second, entries[1])):
        del peer.core.records._keys[key][gone.owner]  # type: ignore[attr-defined]
    done = get(reader, key)
    assert len(done.records) == 12
    assert reader.core.stats()["records"]["corrections_sent"] == 1
    net.deliver()
    assert sorted(len(held(peer, key)) for peer in (first, second)) == [11, 12]


def test_a_holder_that_still_had_more_is_not_sent_entries_it_may_hold() -> None:
    # With no pages, each holder's answer is its first 7 entries of 12. One
    # holder lacks the newest entry, so its answer holds the 8th instead: the
    # others did not send the 8th, nor it the newest, but each may hold it,
    # so nobody is corrected.
    config = RecordConfig(store_burst=200, get_quorum=20, max_set_pages=0)
    net, entries, holders, reader = published_set(48, 12, config)
    key = set_key(b"crowd")
    lagging = net.peers[next(iter(holders))]
    del lagging.core.records._keys[key][entries[-1].owner]  # type: ignore[attr-defined]
    done = get(reader, key)
    assert len(done.records) == 8
    assert reader.core.stats()["records"]["corrections_sent"] == 0


def test_local_misuse_of_record_apis_raises(alice: MLDSAPrivateKey) -> None:
    net = CoreNet(37)
    a = net.add()
    with pytest.raises(RecordRejectedError) as info:
        a.core.start_put_record(mutable(alice, 1, b"x", expires=0), net.now)
    assert info.value.reason == "expired"
    with pytest.raises(ConfigError):
        a.core.start_put_record(b"not a record", net.now)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        a.core.start_put_record(mutable(alice, 1, b"x"), net.now, cas=-1)
    with pytest.raises(ConfigError):
        net.add(unix_offset="soon")
    with pytest.raises(ConfigError):
        net.add(record_limits=object())


def test_record_expiry_follows_the_unix_offset(alice: MLDSAPrivateKey) -> None:
    net = CoreNet(38)
    a = net.add()
    b = net.add(unix_offset=EXP - 100.0)  # b's clock: 100 s before the record expires
    record = mutable(alice, 1, b"x")
    assert stored_ok(request(a, b, store(record)))
    assert held(b, record.key()) == [record]
    net.now += 100.0
    assert held(b, record.key()) == []
    [answer] = request(a, b, encode(FindValue(RID, record.key())))
    assert isinstance(decode(answer), Nodes)


class _CountingStore(MemoryRecordStore):
    def __init__(self) -> None:
        super().__init__()
        self.sweeps = 0

    def delete_expired(self, now: float) -> int:
        self.sweeps += 1
        return super().delete_expired(now)


def _run_timers(peer: Peer, until: float) -> None:
    """Handle ``peer``'s timers up to ``until``, as its driver would."""
    while (at := peer.core.get_timer()) is not None and at <= until:
        peer.core.handle_timer(at)
        peer.core.messages_to_send()  # nobody answers: lookups and pings time out


def test_records_are_swept_when_they_expire_not_every_interval(alice: MLDSAPrivateKey) -> None:
    # A record living a day is deleted at its expiry, by one sweep: a holder does
    # not wake every expire_interval (60 s) for nothing.
    swept = _CountingStore()
    net = CoreNet(39)
    a, b = net.add(), net.add(records=swept)
    record = mutable(alice, 1, b"x")  # expires at EXP (b's clock: Unix time = now)
    assert stored_ok(request(a, b, store(record)))
    _run_timers(b, EXP - 1.0)
    assert swept.sweeps == 0
    assert len(swept) == 1
    _run_timers(b, EXP + 61.0)
    assert swept.sweeps == 1
    assert len(swept) == 0


def test_a_store_loaded_with_records_is_swept_from_the_start(alice: MLDSAPrivateKey) -> None:
    # Records a node held before a restart expire like any other, before any new STORE.
    loaded = _CountingStore()
    record = mutable(alice, 1, b"x", expires=600)
    valid = RecordValidator(RecordLimits()).validate(record, record.key(), 0.0)
    loaded.put(valid, source="disk", cached=False, now=0.0)
    net = CoreNet(40)
    b = net.add(records=loaded)
    _run_timers(b, 700.0)
    assert loaded.sweeps == 1
    assert len(loaded) == 0


# ------------------------------------------------------------------ put and get


def puts(peer: Peer) -> list[PutCompleted]:
    peer.net.collect(peer)
    return only(peer.events, PutCompleted)


def gets(peer: Peer) -> list[LookupCompleted]:
    peer.net.collect(peer)
    return [e for e in only(peer.events, LookupCompleted) if e.kind == "get"]


def get(peer: Peer, key: bytes) -> LookupCompleted:
    before = len(gets(peer))
    peer.core.start_lookup(key, peer.net.now, kind="get")
    peer.net.deliver()
    done = gets(peer)
    assert len(done) == before + 1
    return done[-1]


def holders_of(net: CoreNet, key: bytes) -> dict[bytes, list[AnyRecord]]:
    found = {}
    for peer in net.peers.values():
        records = held(peer, key)
        if records:
            found[peer.node_id] = records
    return found


def test_a_republish_of_an_old_sequence_loses_to_a_newer_one_at_every_holder(
    alice: MLDSAPrivateKey,
) -> None:
    net = build(30, seed=40)
    peers = list(net.peers.values())
    new, old = mutable(alice, 7, b"new"), mutable(alice, 6, b"old")
    peers[3].core.start_put_record(new, net.now)
    net.deliver()
    [first] = puts(peers[3])
    assert len(first.stored_at) >= 20
    assert not first.errors
    before = holders_of(net, new.key())
    assert all(records == [new] for records in before.values())
    peers[9].core.start_put_record(old, net.now)  # a stale republish
    net.deliver()
    [second] = puts(peers[9])
    # Every holder of the newer version refused it (a node that held nothing
    # may take it: it can not know better, and a get corrects it).
    assert set(second.stored_at).isdisjoint(before)
    assert set(second.errors) == {"stale"}
    assert second.errors["stale"] >= 18
    after = holders_of(net, new.key())
    assert all(after[holder] == [new] for holder in before)
    done = get(peers[20], new.key())
    assert done.succeeded
    assert done.value == b"new"
    assert done.record is not None
    assert done.record.seq == 7


def test_get_picks_the_newest_and_corrects_stale_holders(alice: MLDSAPrivateKey) -> None:
    net = build(24, seed=41, record_config=RecordConfig(get_quorum=20))
    peers = list(net.peers.values())
    v1, v2 = mutable(alice, 1, b"v1"), mutable(alice, 2, b"v2")
    peers[0].core.start_put_record(v1, net.now)
    net.deliver()
    holders = list(holders_of(net, v1.key()))
    # v2 reaches only some holders (the others were away): they are stale.
    updated = holders[: len(holders) // 2]
    for node_id in updated:
        assert stored_ok(request(peers[0], net.peers[node_id], store(v2)))
    stale = [h for h in holders if h not in updated]
    [reader, *_] = [p for p in peers if p.node_id not in holders]
    done = get(reader, v1.key())
    assert done.value == b"v2"
    assert done.record is not None
    assert done.record.seq == 2
    sent = reader.core.stats()["records"]["corrections_sent"]
    assert sent >= 1
    net.deliver()
    # Entry correction brought the stale holders that answered up to date.
    corrected = [h for h in stale if held(net.peers[h], v1.key()) == [v2]]
    assert len(corrected) == sent
    assert holders_of(net, v1.key()).keys() == set(holders)


def test_cas_put_succeeds_then_reports_cas_mismatch(alice: MLDSAPrivateKey) -> None:
    net = build(24, seed=42)
    peers = list(net.peers.values())
    peers[2].core.start_put_record(mutable(alice, 1, b"one"), net.now)
    net.deliver()
    peers[2].core.start_put_record(mutable(alice, 2, b"two"), net.now, cas=1)
    net.deliver()
    peers[2].core.start_put_record(mutable(alice, 3, b"three"), net.now, cas=1)
    net.deliver()
    first, second, third = puts(peers[2])
    assert len(second.stored_at) >= 20
    assert not second.errors
    assert third.stored_at == ()
    assert set(third.errors) == {"cas-mismatch"}
    assert get(peers[5], first.key).value == b"two"


def _update_after_joins(
    alice: MLDSAPrivateKey, update_holders: int, *, then_other_key: bool = False
) -> tuple[set[bytes], dict[bytes, list[AnyRecord]], PutCompleted]:
    """Put seq 1 from one node, let 15 nodes join (some closer to the key than
    some of its holders), put seq 2: (seq 1's holders, the holders now, the put)."""
    config = RecordConfig(update_holders=update_holders)
    net = build(30, seed=45, record_config=config)
    publisher, *_ = peers = list(net.peers.values())
    v1, v2 = mutable(alice, 1, b"v1"), mutable(alice, 2, b"v2")
    publisher.core.start_put_record(v1, net.now)
    net.deliver()
    if then_other_key:
        publisher.core.start_put_record(mutable(alice, 1, b"x", salt=b"other"), net.now)
        net.deliver()
    old = set(holders_of(net, v1.key()))
    for _ in range(15):
        peer = net.add(record_config=config)
        peer.core.ping(peers[1].contact, net.now)
        net.deliver()
        peer.core.start_lookup(peer.node_id, net.now, kind="bootstrap")
        net.deliver()
    publisher.core.start_put_record(v2, net.now)
    net.deliver()
    return old, holders_of(net, v1.key()), puts(publisher)[-1]


def test_an_update_also_goes_to_the_holders_of_the_previous_put(
    alice: MLDSAPrivateKey,
) -> None:
    def seq_1(old: set[bytes], held_now: dict[bytes, list[AnyRecord]]) -> set[bytes]:
        return {h for h in old if [getattr(r, "seq", None) for r in held_now[h]] == [1]}

    # Without the memory, the update's lookup finds the new k closest and
    # holders of seq 1 beyond them keep serving it (07-records.md §10.2).
    old, held_now, put = _update_after_joins(alice, update_holders=0)
    left_behind = seq_1(old, held_now)
    assert left_behind
    stores = len(put.stored_at)
    old, held_now, put = _update_after_joins(alice, update_holders=1024)
    assert not seq_1(old, held_now)
    assert all(h in put.stored_at for h in left_behind)
    assert len(put.stored_at) == stores + len(left_behind)
    assert not put.errors
    # The memory is bounded: with room for one key, a put of another forgets it.
    old, held_now, put = _update_after_joins(alice, update_holders=1, then_other_key=True)
    assert seq_1(old, held_now)
    with pytest.raises(ConfigError, match="update_holders"):
        RecordConfig(update_holders=-1)


def test_a_tombstone_makes_get_report_the_key_deleted(alice: MLDSAPrivateKey) -> None:
    net = build(24, seed=43)
    peers = list(net.peers.values())
    record = mutable(alice, 1, b"doomed")
    peers[1].core.start_put_record(record, net.now)
    net.deliver()
    assert get(peers[8], record.key()).value == b"doomed"
    tombstone = sign_tombstone(alice, salt=b"profile", seq=2, expires=EXP)
    peers[1].core.start_put_record(tombstone, net.now)
    net.deliver()
    done = get(peers[8], record.key())
    assert done.succeeded
    assert done.value is None
    assert done.record is not None
    assert done.record.deleted
    assert isinstance(done.record.record, Tombstone)
    # The deleted version can not come back by a republish.
    peers[4].core.start_put_record(record, net.now)
    net.deliver()
    assert set(puts(peers[4])[-1].errors) == {"stale"}


def test_set_entries_from_several_publishers_merge_in_a_get(
    alice: MLDSAPrivateKey, bob: MLDSAPrivateKey
) -> None:
    net = build(24, seed=44, record_config=RecordConfig(get_quorum=20))
    peers = list(net.peers.values())
    for publisher, (key, name) in enumerate(((alice, b"alice"), (bob, b"bob"))):
        entry = sign_set_entry(key, topic=b"mixes", seq=1, value=name, expires=EXP)
        peers[publisher + 1].core.start_put_record(entry, net.now)
        net.deliver()
    # One holder missed bob's entry: the get's merge still has both, and corrects it.
    topic_key = set_key(b"mixes")
    holders = holders_of(net, topic_key)
    lagging = net.peers[next(iter(holders))]
    bob_owner = sign_set_entry(bob, topic=b"mixes", seq=1, value=b"", expires=EXP).owner
    rows = lagging.core.records._keys[topic_key]  # type: ignore[attr-defined]
    del rows[bob_owner]
    reader = next(p for p in peers if p is not lagging)
    done = get(reader, topic_key)
    assert done.succeeded
    assert done.value is None
    assert sorted(e.value or b"" for e in done.records) == [b"alice", b"bob"]
    assert all(isinstance(e.record, SetEntry) for e in done.records)
    assert reader.core.stats()["records"]["corrections_sent"] == 1
    net.deliver()
    assert len(held(lagging, topic_key)) == 2


def test_immutable_put_and_get_carry_records_with_a_ttl() -> None:
    net = build(20, seed=45, record_config=RecordConfig(immutable_ttl=3600))
    peers = list(net.peers.values())
    peers[0].core.start_put(b"plain", net.now)
    net.deliver()
    [put] = puts(peers[0])
    assert put.succeeded
    done = get(peers[7], put.key)
    assert done.value == b"plain"
    assert isinstance(done.record, ValidRecord)
    assert done.record.expires == 3600
    net.advance(3601.0)
    assert not get(peers[7], put.key).succeeded  # expired everywhere


def test_corrupted_storage_is_never_served(alice: MLDSAPrivateKey) -> None:
    net = CoreNet(46)
    a, b = net.add(), net.add()
    record = mutable(alice, 1, b"genuine")
    assert stored_ok(request(a, b, store(record)))
    row = b.core.records._keys[record.key()][b""]  # type: ignore[attr-defined]
    tampered = MutableRecord(
        record.owner, record.salt, 1, b"bit rot", EXP, record.signature, record.public_key
    )
    row.record = ValidRecord(tampered, record.key(), row.record.digest)
    [answer] = request(a, b, encode(FindValue(RID, record.key())))
    assert isinstance(decode(answer), Nodes)
    assert b.core.stats()["drops"]["serve-bad-signature"] == 1
    assert held(b, record.key()) == []


@pytest.fixture(scope="module")
def versions(alice: MLDSAPrivateKey) -> list[AnyRecord]:
    """Versions of one key: seq 1..4, a rival at seq 3, a tombstone at seq 4."""
    out: list[AnyRecord] = [mutable(alice, seq, b"v%d" % seq) for seq in range(1, 5)]
    out.append(mutable(alice, 3, b"rival"))
    out.append(sign_tombstone(alice, salt=b"profile", seq=4, expires=EXP))
    return out


@settings(max_examples=40, deadline=None)
@given(order=st.lists(st.integers(0, 5), min_size=1, max_size=12))
def test_holders_converge_on_the_highest_rank_whatever_the_order(
    versions: list[AnyRecord], order: list[int]
) -> None:
    net = CoreNet(47)
    a, b = net.add(), net.add()
    for index in order:
        request(a, b, store(versions[index]))
    key = versions[0].key()
    sent = [b.core.validator.validate(versions[i], key, 0) for i in order]
    best = max(sent, key=lambda r: r.rank())
    assert held(b, key) == [best.record]


def test_records_survive_a_restart_in_sqlite(alice: MLDSAPrivateKey, tmp_path: Path) -> None:
    net = CoreNet(48)
    a = net.add()
    path = tmp_path / "records.sqlite"
    with SqliteRecordStore(path) as disk:
        b = net.add(records=disk)
        record = mutable(alice, 1, b"durable")
        # "stored" waits until the change is saved (02-dht-rpc.md §4.3).
        assert request(a, b, store(record)) == []
        ticket = disk.unsaved
        assert ticket is not None
        assert disk.save() == ticket
        b.core.records_saved(ticket)
        assert disk.unsaved is None
        assert stored_ok([p for dst, _a, p in b.core.messages_to_send() if dst == a.node_id])
    with SqliteRecordStore(path) as disk:
        again = net.add(records=disk)
        [answer] = request(a, again, encode(FindValue(RID, record.key())))
        assert decode(answer) == Value(RID, record)
        assert again.core.stats()["storage"]["records"] == 1


def test_a_get_stops_at_its_quorum_of_holders(alice: MLDSAPrivateKey) -> None:
    record = mutable(alice, 1, b"quorum")
    rpcs = {}
    for quorum in (2, 20):
        net = build(30, seed=49, record_config=RecordConfig(get_quorum=quorum))
        peers = list(net.peers.values())
        peers[0].core.start_put_record(record, net.now)
        net.deliver()
        done = get(peers[1], record.key())
        assert done.value == b"quorum"
        rpcs[quorum] = done.trace.rpcs
        late = peers[1].core.stats()["drops"]
        assert "internal-error" not in late  # answers after the end are simply ignored
    assert rpcs[2] < rpcs[20]
