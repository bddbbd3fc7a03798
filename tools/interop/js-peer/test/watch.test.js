// Watching keys (08-watch.md) between DhtNodes joined by an in-memory
// network (no sessions): the holder's subscriptions, catch-up, notifications
// and limits, and the watcher's validation, de-duplication and expiry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DhtNode, immutableKey } from '../src/dht.js';
import { mldsaKeygen, mldsaSign, randomBytes, sha3_256 } from '../src/crypto.js';
import { decode } from '../src/cbor.js';
import { checkMessage } from '../src/messages.js';
import { recordKey, signedBytes, CONTEXTS } from '../src/records.js';
import { WATCH_LIMITS } from '../src/watch.js';

const NOW = 1_800_000_000;
const hexOf = (b) => Buffer.from(b).toString('hex');
const owner = mldsaKeygen(new Uint8Array(32).fill(3));
// Messages in flight on the in-memory network (every test makes one network at a time).
let inFlight = 0;
/** Until the network is quiet: nothing in flight for a few event-loop turns (however slow the CPU). */
async function settle() {
  for (let quiet = 0; quiet < 5; ) {
    await new Promise((r) => setImmediate(r));
    quiet = inFlight ? 0 : quiet + 1;
  }
}

function signed(kind, fields, exp = NOW + 3600) {
  const r = { type: kind, owner: sha3_256(owner.pk), exp, ...fields };
  return { ...r, pk: owner.pk, sig: mldsaSign(owner.sk, signedBytes(r), CONTEXTS[kind]) };
}
const mutable = (seq, value, exp) => signed('mutable', { salt: Buffer.from('w'), seq, value: Buffer.from(value) }, exp);
const tombstone = (seq) => signed('tombstone', { salt: Buffer.from('w'), seq });
const KEY = recordKey(mutable(1, 'x'));

/** Nodes that deliver each other's messages in order; every message is checked against its rule on the way. */
function network() {
  const clock = { now: NOW };
  const nodes = new Map();
  const sent = [];
  const make = ({ drop = () => false, limits } = {}) => {
    const id = randomBytes(32);
    const addr = { tr: 'udp', address: '127.0.0.1', port: 1000 + nodes.size };
    const events = [];
    const ep = {
      identity: { nodeId: id },
      peers: new Map(),
      onMessage: null,
      send(peerId, _addr, bytes) {
        const { msg } = checkMessage(decode(bytes));
        sent.push({ from: hexOf(id), to: hexOf(peerId), msg });
        const to = nodes.get(hexOf(peerId));
        if (to && !drop(msg)) {
          inFlight += 1;
          setImmediate(() => {
            inFlight -= 1;
            to.ep.onMessage(id, bytes, addr, { early: false });
          });
        }
      },
    };
    const node = new DhtNode(ep, { now: () => clock.now, onWatchEvent: (k, e, r) => events.push({ key: k, event: e, r }) });
    if (limits) node.holder.limits = { ...WATCH_LIMITS, ...limits };
    Object.assign(node, { addr, events });
    nodes.set(hexOf(id), node);
    return node;
  };
  const link = (a, b) => {
    a.table.touch(b.self, b.addr, clock.now);
    b.table.touch(a.self, a.addr, clock.now);
  };
  return { clock, make, link, sent };
}
const watchReq = (n, holder, fields) => n.request(holder.self, holder.addr, { type: 'watch', key: KEY, ttl: 600, ...fields });

test('a holder catches a new watcher up, notifies updates and deletions, and honours unwatch', async () => {
  const { make, link } = network();
  const h = make();
  const w = make();
  link(h, w);
  assert.equal(h.storeRecord(KEY, mutable(1, 'one'), null), null);
  assert.equal(await w.watcher.watch(KEY), 1);
  await settle();
  assert.deepEqual(w.events.map((e) => [e.event, e.r.seq]), [['update', 1]], 'catch-up (08 §3.2)');
  assert.equal(h.storeRecord(KEY, mutable(2, 'two'), null), null);
  await settle();
  assert.equal(h.storeRecord(KEY, mutable(1, 'one'), null), 'seq-regression', 'a refused STORE notifies nothing');
  assert.equal(h.storeRecord(KEY, tombstone(3), null), null);
  await settle();
  assert.deepEqual(w.events.map((e) => [e.event, e.r.type, e.r.seq]), [['update', 'mutable', 1], ['update', 'mutable', 2], ['deleted', 'tombstone', 3]]);
  assert.deepEqual({ ...h.holder.stats, notifies: undefined }, { ...h.holder.stats, notifies: undefined, subscribed: 1, notified: 3 });
  // a renewal with since = the tombstone's seq gets the tombstone again (since
  // cannot say "I hold the tombstone"): reported once all the same
  assert.equal((await watchReq(w, h, { since: 3 })).ttl, 600);
  await settle();
  assert.equal(h.holder.stats.renewed, 1);
  assert.equal(h.holder.stats.notifies, 4);
  assert.equal(w.watcher.stats.duplicates, 1);
  assert.equal(w.events.length, 3);
  assert.equal(w.watcher.unwatch(KEY), 1);
  await settle();
  assert.equal(h.holder.total, 0);
  assert.equal(h.storeRecord(KEY, tombstone(4), null), null);
  await settle();
  assert.equal(h.holder.stats.notifies, 4, 'none after the unwatch');
});

test('the since rule, the ttl cap, and a stray watcher told to stop', async () => {
  const { make, link } = network();
  const h = make({ limits: { maxTtl: 60 } });
  const w = make();
  link(h, w);
  h.storeRecord(KEY, mutable(5, 'five'), null);
  // w does not watch KEY itself, so each catch-up notify is answered stop: true (08 §4.2 rule 1)
  assert.equal((await watchReq(w, h, { since: 5 })).ttl, 60, 'granted: capped by the holder');
  await settle();
  assert.equal(h.holder.stats.notifies, 0, 'seq == since, not a tombstone: the watcher has it');
  assert.equal(h.holder.total, 1);
  await watchReq(w, h, { since: 4 }); // a renewal: the record again, by the same rule
  await settle();
  assert.equal(h.holder.stats.notifies, 1);
  assert.equal(h.holder.stats.stopped, 1);
  assert.equal(h.holder.total, 0, 'stop: true drops the subscription');
  assert.equal(w.watcher.stats.stray, 1);
  h.storeRecord(KEY, tombstone(5), null);
  await watchReq(w, h, { since: 5 });
  await settle();
  assert.equal(h.holder.stats.notifies, 2, 'a tombstone outranks the mutable record of its seq');
});

test('limits refuse new subscriptions with storage-full, never evicting; unwatch is never refused', async () => {
  const { make, link } = network();
  const h = make({ limits: { maxWatchersPerKey: 1, maxKeysPerWatcher: 2 } });
  const [w1, w2] = [make(), make()];
  link(h, w1);
  link(h, w2);
  assert.equal((await watchReq(w1, h)).type, 'watching');
  const refused = await watchReq(w2, h);
  assert.deepEqual([refused.type, refused.code], ['error', 5]);
  assert.equal((await watchReq(w1, h)).type, 'watching', 'a renewal fits');
  assert.equal((await watchReq(w1, h, { key: randomBytes(32) })).type, 'watching');
  assert.equal((await watchReq(w1, h, { key: randomBytes(32) })).code, 5, 'max_keys_per_watcher');
  assert.equal((await watchReq(w2, h, { ttl: 0 })).ttl, 0);
  assert.equal(h.holder.total, 2);
});

test('the watcher validates, reports each change once, and reports expiry on its own clock', async () => {
  const { clock, make, link, sent } = network();
  const [h1, h2] = [make(), make()];
  const w = make();
  link(h1, w);
  link(h2, w);
  link(h1, h2);
  assert.equal(await w.watcher.watch(KEY), 2);
  const exp = NOW + 100;
  for (const h of [h1, h2]) h.storeRecord(KEY, mutable(1, 'one', exp), null);
  await settle();
  assert.deepEqual(w.events.map((e) => e.event), ['update'], 'two holders, one report');
  assert.equal(w.watcher.stats.duplicates, 1);
  // expiry: the holders' hints are not reports; the watcher's clock is
  clock.now = exp + 1;
  h1.tick();
  await settle();
  assert.equal(w.watcher.stats.hints, 1);
  assert.ok(sent.some((s) => s.msg.type === 'notify' && s.msg.record === undefined));
  w.tick();
  assert.deepEqual(w.events.map((e) => e.event), ['update', 'expired']);
  // a record that does not validate (signature) is answered invalid-value; that holder is unwatched
  clock.now = NOW + 200;
  const bad = { ...mutable(2, 'two'), value: Buffer.from('forged') };
  const r = await h2.request(w.self, w.addr, { type: 'notify', key: KEY, record: bad });
  assert.deepEqual([r.type, r.code], ['error', 6]);
  await settle();
  assert.equal(w.watcher.stats.invalid, 1);
  assert.equal(h2.holder.total, 0, 'unwatched (ttl 0)');
  assert.deepEqual(w.events.map((e) => e.event), ['update', 'expired']);
});

test('watch and notify arriving as pqIK early data are dropped (08 §1)', async () => {
  const { make } = network();
  const h = make();
  const bytes = (await import('../src/cbor.js')).encode({ type: 'watch', rid: randomBytes(8), key: KEY, ttl: 10 });
  h.ep.onMessage(randomBytes(32), bytes, { tr: 'udp', address: '127.0.0.1', port: 9 }, { early: true });
  assert.equal(h.stats.dropped['early-watch'], 1);
  assert.equal(h.holder.total, 0);
  const imm = { type: 'immutable', value: Buffer.from('i'), exp: NOW + 60 };
  assert.equal(h.storeRecord(immutableKey(imm.value), imm, null), null);
});

test('the watcher renews after three quarters of the granted lifetime, with a new lookup', async () => {
  const { clock, make, link } = network();
  const h = make({ limits: { maxTtl: 60 } });
  const w = make();
  link(h, w);
  assert.equal(await w.watcher.watch(KEY), 1);
  clock.now = NOW + 44;
  w.tick();
  await settle();
  assert.equal(h.holder.stats.renewed, 0);
  clock.now = NOW + 46;
  w.tick();
  await settle();
  assert.equal(h.holder.stats.renewed, 1, 'renewed at 3/4 of 60 s');
  assert.equal(h.holder.total, 1);
  assert.ok(w.watcher.usesAddress(h.addr));
  assert.equal(w.watcher.unwatch(KEY), 1);
  assert.ok(!w.watcher.usesAddress(h.addr));
});
