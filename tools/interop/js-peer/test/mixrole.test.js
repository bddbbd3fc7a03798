// The mix role (10-mixnet.md §8, §10.1, §14.3) on a stand-in node: injected
// clock and scheduler, captured messages and records; no sockets, no timers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { identityFromSeeds, mldsaVerify, sha3_256, xwingExpand } from '../src/crypto.js';
import { encode } from '../src/cbor.js';
import { decodeMessage } from '../src/messages.js';
import { verifyCertMap } from '../src/identity.js';
import { recordKey, validateRecord } from '../src/records.js';
import { MixRole, DESCRIPTOR_SALT, MIXES_TOPIC, DESCRIPTOR_CONTEXT, epochOf } from '../src/mixrole.js';
import { createPacket, encodePayload, geometry, unwrap, PAYLOAD_KIND } from '../src/mixnet.js';

const T0 = 1_800_000_000; // an epoch boundary plus 0 (1_800_000_000 / 1200 = 1_500_000)
const ME = identityFromSeeds(new Uint8Array(32).fill(1), new Uint8Array(32).fill(2), new Uint8Array(8));
const PROBE = new Uint8Array(32).fill(0xaa);
const PROBE_ADDR = { tr: 'udp', address: '127.0.0.1', port: 4000 };
const hexOf = (b) => Buffer.from(b).toString('hex');

/** A DhtNode stand-in: what MixRole uses of it, with everything captured. */
function harness(o = {}) {
  let ms = T0 * 1000; // integer milliseconds: no rounding in the comparisons
  const timers = [];
  const sent = [];
  const records = [];
  const node = {
    ep: { identity: ME, peers: new Map([[hexOf(PROBE), { addr: PROBE_ADDR }]]) },
    table: { closest: () => [] },
    handlers: new Map(),
    sendMsg: (id, addr, msg) => sent.push({ id, addr, msg }),
    putRecord: async (r) => {
      records.push(r);
      return { key: recordKey(r), stored: 3 };
    },
  };
  const role = new MixRole(node, {
    contactAddr: { tr: 'udp', address: '127.0.0.1', port: 5000 },
    now: () => ms / 1000,
    schedule: (delay, fn) => timers.push({ at: ms + delay, fn }),
    ...o,
  });
  const advance = (s) => {
    ms += Math.round(s * 1000);
    for (const t of timers.filter((x) => x.at <= ms)) {
      timers.splice(timers.indexOf(t), 1);
      t.fn();
    }
  };
  return { node, role, sent, records, timers, advance };
}

/** A 3-hop packet whose first hop is the mix under test and whose next two are the probe. */
function packetThrough(role, delayMs = 400) {
  const geo = role.geo;
  const probeKey = xwingExpand(new Uint8Array(32).fill(9));
  const e = epochOf(T0, role.cfg.epochPeriod);
  const path = [
    { id: ME.nodeId, pk: role.publicKeys.get(e), delayMs },
    { id: PROBE, pk: probeKey.pk, delayMs: 0 },
    { id: PROBE, pk: probeKey.pk, delayMs: 0 },
  ];
  const { packet } = createPacket(geo, path, PROBE, encodePayload(geo, PAYLOAD_KIND.message, Uint8Array.of(1)));
  return { packet, probeKey, geo };
}

test('the descriptor verifies as §10.1 says and is published as §14.3 says', async () => {
  const { role, records } = harness();
  const stored = await role.publish();
  assert.deepEqual(stored, [3, 3]);
  const [record, entry] = records;
  assert.equal(record.type, 'mutable');
  assert.deepEqual(record.salt, DESCRIPTOR_SALT);
  assert.deepEqual(record.owner, sha3_256(ME.mldsa.pk));
  validateRecord(record, recordKey(record), T0);
  assert.equal(entry.type, 'set_entry');
  assert.deepEqual(entry.topic, MIXES_TOPIC);
  assert.equal(entry.value.length, 0);
  validateRecord(entry, recordKey(entry), T0);
  assert.ok(entry.seq > record.seq, 'one increasing seq per publisher');
  const d = decodeMessage(record.value, ['mix-descriptor']).msg;
  assert.deepEqual(verifyCertMap(d.cert, T0, 0), ME.nodeId);
  assert.deepEqual(d.contact.id, ME.nodeId);
  const unsigned = Object.fromEntries(Object.entries(d).filter(([k]) => k !== 'sig'));
  assert.ok(mldsaVerify(d.cert.mldsa, encode(unsigned), d.sig, DESCRIPTOR_CONTEXT));
  const e = epochOf(T0, 1200);
  assert.deepEqual(d.keys.map((k) => Number(k.epoch)), [e, e + 1]);
});

test('a valid packet is forwarded to the next hop after its delay, and unwraps there (§6.2, §8.2)', () => {
  const h = harness();
  const { packet, probeKey, geo } = packetThrough(h.role, 400);
  h.node.handlers.get('packet')(PROBE, { type: 'packet', data: packet }, PROBE_ADDR);
  assert.equal(h.sent.length, 0);
  h.advance(0.399);
  assert.equal(h.sent.length, 0, 'held for its delay');
  h.advance(0.001);
  assert.equal(h.sent.length, 1);
  const { id, addr, msg } = h.sent[0];
  assert.deepEqual([id, addr, msg.type], [PROBE, PROBE_ADDR, 'packet']);
  assert.equal(unwrap(geo, probeKey, msg.data).result, 'forward');
  assert.equal(h.role.held, 0);
  // The same packet again is a replay; junk is dropped by its reason; nothing throws.
  const on = (data) => h.role.onPacket(PROBE, data, PROBE_ADDR);
  on(packet);
  on(packet.subarray(1));
  const tampered = packet.slice();
  tampered[100] ^= 1;
  on(tampered);
  h.advance(1);
  assert.equal(h.sent.length, 1);
  assert.deepEqual({ ...h.role.stats.drops }, { replay: 1, 'wrong-size': 1, 'bad-mac': 1 });
});

test('limits: a full queue and the per-session rate drop packets (§8.2)', () => {
  const h = harness({ maxHeld: 1, burst: 2, rate: 1 });
  const one = packetThrough(h.role).packet;
  const two = packetThrough(h.role).packet;
  h.role.onPacket(PROBE, two.subarray(1), PROBE_ADDR); // wrong size: no decapsulation, no token
  h.role.onPacket(PROBE, one, PROBE_ADDR);
  h.role.onPacket(PROBE, two, PROBE_ADDR); // one is held: no room
  assert.equal(h.role.stats.drops['queue-full'], 1);
  h.role.onPacket(PROBE, two, PROBE_ADDR); // the burst of 2 is spent
  assert.equal(h.role.stats.drops['rate-limited'], 1);
  assert.equal(h.role.stats.drops['wrong-size'], 1);
  h.advance(1); // one token back, and room again
  h.role.onPacket(PROBE, two, PROBE_ADDR);
  h.advance(1);
  assert.equal(h.sent.length, 2);
});

test('epoch rotation: keys for current and next, the previous kept, older erased (§8.1)', async () => {
  const h = harness();
  const e = epochOf(T0, 1200);
  const { packet } = packetThrough(h.role);
  assert.deepEqual([...h.role.publicKeys.keys()], [e, e + 1]);
  h.advance(1200);
  const p = h.role.tick();
  assert.ok(p, 'a rotation republishes');
  await p;
  assert.deepEqual([...h.role.publicKeys.keys()].sort(), [e, e + 1, e + 2]);
  h.advance(1200);
  h.role.tick();
  assert.deepEqual([...h.role.publicKeys.keys()].sort(), [e + 1, e + 2, e + 3]);
  // A packet for the erased epoch no longer verifies.
  h.role.onPacket(PROBE, packet, PROBE_ADDR);
  assert.equal(h.role.stats.drops['bad-mac'], 1);
});

test('deliveries: to the mix itself are decoded and dropped, others go to the recipient (§8.3)', () => {
  const h = harness();
  const geo = geometry();
  h.role.deliver({ recipient: ME.nodeId, surbId: null, payload: encodePayload(geo, PAYLOAD_KIND.cover, new Uint8Array(0)) });
  h.role.deliver({ recipient: ME.nodeId, surbId: new Uint8Array(16), payload: new Uint8Array(geo.P + 32) });
  h.role.deliver({ recipient: new Uint8Array(32).fill(3), surbId: null, payload: new Uint8Array(geo.P) });
  h.role.deliver({ recipient: PROBE, surbId: new Uint8Array(16).fill(4), payload: new Uint8Array(geo.P + 32) });
  assert.equal(h.role.stats.cover, 1);
  assert.deepEqual({ ...h.role.stats.drops }, { 'unexpected-delivery': 1, 'unknown-recipient': 1 });
  assert.equal(h.sent.length, 1);
  assert.deepEqual(h.sent[0].msg.surb, new Uint8Array(16).fill(4));
  h.node.handlers.get('delivery')(PROBE, { type: 'delivery', payload: new Uint8Array(1024) }, PROBE_ADDR);
  assert.equal(h.role.stats.drops['unexpected-delivery'], 2);
});
