// The peer as a holder of records: STORE refusals (02-dht-rpc.md §4.3, 07-records.md §6-§8)
// and the VALUE it answers (02 §4.2), through DhtNode without sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DhtNode, immutableKey } from '../src/dht.js';
import { mldsaKeygen, mldsaSign, randomBytes, sha3_256 } from '../src/crypto.js';
import { recordKey, signedBytes, CONTEXTS } from '../src/records.js';
import { checkMessage } from '../src/messages.js';

const NOW = 1_800_000_000;
const fakeEndpoint = () => ({ identity: { nodeId: randomBytes(32) }, onMessage: null, onHandshakeFailed: null, send() {} });
const holder = (o = {}) => new DhtNode(fakeEndpoint(), { now: () => NOW, ...o });
const owner = mldsaKeygen(new Uint8Array(32).fill(7));
const other = mldsaKeygen(new Uint8Array(32).fill(8));

function signed(kind, fields, who = owner) {
  const r = { type: kind, owner: sha3_256(who.pk), exp: NOW + 3600, ...fields };
  return { ...r, pk: who.pk, sig: mldsaSign(who.sk, signedBytes(r), CONTEXTS[kind]) };
}
const mutable = (seq, value, who = owner) => signed('mutable', { salt: new Uint8Array(0), seq, value: Buffer.from(value) }, who);
const entry = (who, value) => signed('set_entry', { topic: Buffer.from('t'), seq: 1, value: Buffer.from(value) }, who);

test('STORE refusals name the reasons the error table maps', () => {
  const n = holder();
  const value = Buffer.from('v');
  const imm = { type: 'immutable', value, exp: NOW + 60 };
  assert.equal(n.storeRecord(randomBytes(32), imm, null), 'key-mismatch');
  assert.equal(n.storeRecord(immutableKey(value), { ...imm, exp: NOW }, null), 'expired');
  assert.equal(n.storeRecord(immutableKey(value), { ...imm, exp: NOW + 10 ** 7 }, null), 'expiry-too-far');
  assert.equal(n.storeRecord(immutableKey(value), imm, null), null);
  const m1 = mutable(1, 'one');
  const key = recordKey(m1);
  const { pk, ...noPk } = m1;
  assert.ok(pk);
  assert.equal(n.storeRecord(key, noPk, null), 'owner-key-unknown');
  assert.equal(n.storeRecord(key, { ...m1, sig: mutable(1, 'other').sig }, null), 'bad-signature');
  assert.equal(n.storeRecord(key, m1, null), null);
  assert.equal(n.storeRecord(key, m1, null), null, 'the same record again: stored');
  assert.equal(n.storeRecord(key, mutable(0, 'zero'), null), 'seq-regression');
  assert.equal(n.storeRecord(key, mutable(2, 'two'), 5), 'cas-mismatch');
  assert.equal(n.storeRecord(key, mutable(2, 'two'), 1), null);
  const answer = n.valueAnswer(key);
  checkMessage({ ...answer, rid: randomBytes(8) });
  assert.equal(Buffer.from(answer.record.value).toString(), 'two');
});

test('a set answers its entries, latest exp first; a full set refuses new publishers', () => {
  const n = holder({ recordLimits: { max_set_entries: 1 } });
  const a = entry(owner, 'a');
  const key = recordKey(a);
  assert.equal(n.storeRecord(key, a, null), null);
  assert.equal(n.storeRecord(key, entry(other, 'b'), null), 'set-full');
  const answer = n.valueAnswer(key);
  assert.equal(answer.records.length, 1);
  checkMessage({ ...answer, rid: randomBytes(8) });
  assert.equal(n.valueAnswer(randomBytes(32)), null);
});

test('a set too big for one answer says more and is read page by page with have (02 §4.2)', () => {
  const n = holder();
  const who = Array.from({ length: 12 }, (_, i) => mldsaKeygen(new Uint8Array(32).fill(20 + i)));
  const entries = who.map((w, i) => signed('set_entry', { topic: Buffer.from('big'), seq: 1, value: Buffer.alloc(4000, i) }, w));
  const key = recordKey(entries[0]);
  for (const e of entries) assert.equal(n.storeRecord(key, e, null), null);
  const read = [];
  let pages = 0;
  for (;;) {
    const have = read.map((r) => Buffer.from(r.owner));
    const answer = n.valueAnswer(key, have);
    if (!answer) break;
    checkMessage({ ...answer, rid: randomBytes(8) });
    for (const r of answer.records) assert.ok(!have.some((o) => o.equals(Buffer.from(r.owner))), 'a listed owner is left out');
    read.push(...answer.records);
    pages += 1;
    if (!answer.more) break;
  }
  assert.equal(pages, 2); // 7 + 5
  assert.deepEqual(read.map((r) => r.value[0]).sort((a, b) => a - b), [...Array(12).keys()]);
  assert.equal(n.valueAnswer(key, entries.map((e) => Buffer.from(e.owner))), null, 'every owner listed: nothing further');
  const m = mutable(1, 'one');
  assert.equal(n.storeRecord(recordKey(m), m, null), null);
  assert.equal(Buffer.from(n.valueAnswer(recordKey(m), [Buffer.from(m.owner)]).record.value).toString(), 'one', 'have is ignored off sets');
});

test('a get reads one set holder in full and asks the others only for what nobody sent (02 §4.2)', async () => {
  const who = Array.from({ length: 12 }, (_, i) => mldsaKeygen(new Uint8Array(32).fill(40 + i)));
  const entries = who.map((w, i) => signed('set_entry', { topic: Buffer.from('paged'), seq: 1, value: Buffer.alloc(4000, i), exp: NOW + 100 + i }, w));
  const key = recordKey(entries[0]);
  const holders = [holder(), holder(), holder()];
  // Each holder lacks a different old entry (never on a first page).
  holders.forEach((h, n) => entries.forEach((e, i) => i !== n && assert.equal(h.storeRecord(key, e, null), null)));
  const getter = holder();
  const byId = new Map(holders.map((h) => [Buffer.from(h.self).toString('hex'), h]));
  const pages = [];
  getter.request = async (id, _addr, msg) => {
    const h = byId.get(Buffer.from(id).toString('hex'));
    if (msg.type === 'store') return h.storeRecord(msg.key, msg.record, null) ? { type: 'error' } : { type: 'stored' };
    if (msg.have) pages.push(msg.have.length);
    return h.valueAnswer(msg.key, msg.have ?? []) ?? { type: 'nodes', nodes: [] };
  };
  for (const h of holders) getter.table.touch(h.self, { address: '127.0.0.1', port: 9 }, NOW);
  const got = await getter.lookup(key, 'find_value');
  assert.deepEqual(got.records.map((r) => r.value[0]).sort((a, b) => a - b), [...Array(12).keys()]);
  // The first holder: one more page after its 7 (have: its own 7 owners); the
  // two others, asked after it with all 11 owners known, send only what is missing.
  assert.deepEqual(pages, [7, 11, 11]);
  // Only the holder read in full is corrected: the others may hold what they did not send.
  await new Promise((r) => setImmediate(r));
  const sizes = holders.map((h) => h.store.get(Buffer.from(key).toString('hex')).entries.size);
  assert.deepEqual(sizes.sort((a, b) => a - b), [11, 11, 12]);
});

test('STOREs over the flood bound of one address are refused before any check', () => {
  const n = holder();
  const addr = { address: '127.0.0.1', port: 9 };
  const reasons = [];
  for (let i = 0; i < 60; i++) reasons.push(n.storeRecord(randomBytes(32), { type: 'immutable', value: new Uint8Array(1), exp: NOW + 1 }, null, addr));
  assert.equal(reasons.filter((r) => r === 'flood').length, 10);
  assert.ok(reasons.slice(0, 50).every((r) => r === 'key-mismatch'));
});

test('a path-cache STORE caches for its lifetime and never demotes a stored entry (07 §10.6)', () => {
  let now = NOW;
  const n = holder({ now: () => now });
  const value = Buffer.from('cached');
  const rec = { type: 'immutable', value, exp: NOW + 3000 };
  const key = immutableKey(value);
  assert.equal(n.storeRecord(key, rec, null, null, 60), null);
  assert.ok(n.valueAnswer(key));
  now += 61;
  assert.equal(n.valueAnswer(key), null, 'gone after `cache` seconds');
  assert.equal(n.storeRecord(key, rec, null), null); // stored for good
  assert.equal(n.storeRecord(key, rec, null, null, 60), null); // a cache STORE does not demote it
  now += 120;
  assert.ok(n.valueAnswer(key), 'still held as a stored entry');
});
