// The mixnet packet format (10-mixnet.md) against protocol-spec/vectors/mix/mix-packet.json
// and protocol-spec/kat/lioness.json, byte for byte, plus round trips built here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import { xwingExpand, xwingDecaps } from '../src/crypto.js';
import { decodeMessage } from '../src/messages.js';
import {
  geometry,
  hopKeys,
  replayTag,
  lionessEncrypt,
  lionessDecrypt,
  createHeader,
  createPacket,
  createSurb,
  useSurb,
  openReply,
  encodePayload,
  decodePayload,
  parseCommands,
  unwrap,
  MixKeyring,
  ReplayFilter,
  MixDrop,
  PAYLOAD_KIND,
} from '../src/mixnet.js';
import { vectorFile, hex, toHex, SPEC_DIR } from './util.js';

const V = vectorFile('mix/mix-packet.json');
const GEO = geometry(V.geometry.hops, V.geometry.user_payload_size);
const MIXES = V.mixes.map((m) => ({ id: hex(m.node_id), key: xwingExpand(hex(m.xwing_seed)) }));
const mixById = (id) => MIXES.find((m) => toHex(m.id) === id);

/** Encapsulation that replays the vector's ciphertexts (flag replay-by-decapsulation). */
const recorded = (cts, path) => (pk, i) => ({ ct: hex(cts[i]), ss: xwingDecaps(path[i].key, hex(cts[i])) });

/** The vector's path: the hops in order, with their public keys and delays. */
function pathOf(section) {
  return section.hops.map((h) => {
    const m = mixById(h.node_id);
    return { id: m.id, pk: m.key.pk, key: m.key, delayMs: h.output.delay_ms };
  });
}

const flip = (b, at) => {
  const c = b.slice();
  c[at] ^= 1;
  return c;
};

test('LIONESS-BLAKE2b-ChaCha20 reproduces its published vector (§4)', () => {
  const kat = JSON.parse(readFileSync(join(SPEC_DIR, 'kat', 'lioness.json'), 'utf8'));
  for (const t of kat.tests) {
    assert.equal(toHex(lionessEncrypt(hex(t.key), hex(t.iv), hex(t.plaintext))), t.ciphertext);
    assert.equal(toHex(lionessDecrypt(hex(t.key), hex(t.iv), hex(t.ciphertext))), t.plaintext);
  }
});

test('geometry: the sizes of the §2 table and the vector digest', () => {
  const g = V.geometry;
  assert.deepEqual(
    [GEO.H, GEO.surb, GEO.P, GEO.packet, toHex(GEO.digest)],
    [g.header_size, g.surb_size, g.payload_size, g.packet_size, g.digest],
  );
  const five = geometry(5);
  assert.deepEqual([five.R, five.H, five.surb, five.P, five.packet], [5950, 7104, 7168, 9219, 16355]);
  assert.deepEqual([GEO.C, GEO.SL, GEO.R], [70, 1190, 3570]);
  assert.notEqual(toHex(five.digest), toHex(GEO.digest));
  assert.throws(() => geometry(4), /L must be 3 or 5/);
});

test('the mixes of the vector: X-Wing public keys from their seeds', () => {
  for (const [i, m] of V.mixes.entries()) assert.equal(toHex(sha256(MIXES[i].key.pk)), m.public_key_sha256);
});

/** Check every hop of a vector section: keys, replay tag, output. */
function checkHops(section, packet) {
  let p = packet;
  for (const h of section.hops) {
    const m = mixById(h.node_id);
    const out = unwrap(GEO, m.key, p);
    assert.equal(toHex(out.tag), h.replay_tag, `hop ${h.hop} replay tag`);
    assert.equal(toHex(out.ss), h.shared_secret, `hop ${h.hop} shared secret`);
    assert.deepEqual(
      {
        mac: toHex(out.keys.mac),
        header_key: toHex(out.keys.headerKey),
        header_iv: toHex(out.keys.headerIv),
        payload_key: toHex(out.keys.payloadKey),
        payload_iv: toHex(out.keys.payloadIv),
      },
      h.keys,
      `hop ${h.hop} keys`,
    );
    assert.equal(out.result, h.output.result, `hop ${h.hop} result`);
    assert.equal(out.delayMs, h.output.delay_ms);
    if (out.result === 'forward') {
      assert.equal(toHex(out.nextHop), h.output.next_hop);
      assert.equal(toHex(out.packet.subarray(0, GEO.H)), h.output.header);
      assert.equal(toHex(sha256(out.packet.subarray(GEO.H))), h.output.payload_sha256);
      assert.equal(toHex(out.packet), h.output.packet, `hop ${h.hop} forwarded packet`);
      p = out.packet;
    } else {
      assert.equal(toHex(out.recipient), h.output.recipient);
      assert.equal(out.surbId === null ? null : toHex(out.surbId), h.output.surb_id);
      assert.equal(toHex(out.payload), h.output.payload, `hop ${h.hop} delivered payload`);
      p = out;
    }
  }
  return p;
}

test('forward vector: the 3-hop packet is rebuilt byte for byte (§6.1)', () => {
  const f = V.forward;
  const path = pathOf(f);
  assert.deepEqual(path.map((h) => h.delayMs), f.delays_ms);
  const { packet, firstHop } = createPacket(GEO, path, hex(f.recipient), hex(f.payload), { encaps: recorded(f.ciphertexts, path) });
  assert.equal(toHex(firstHop), f.hops[0].node_id);
  assert.equal(toHex(packet), f.packet);
});

test('forward vector: every hop unwraps to its recorded keys and output (§3, §6.2)', () => {
  const f = V.forward;
  const last = checkHops(f, hex(f.packet));
  // The delivered payload is a request (§7.1) whose reply block is the surb_reply vector's SURB.
  const p = decodePayload(GEO, last.payload);
  assert.equal(p.kind, PAYLOAD_KIND.request);
  assert.equal(toHex(p.surb), V.surb_reply.surb);
  assert.equal(toHex(encodePayload(GEO, p.kind, p.data, p.surb)), f.payload);
});

test('surb_reply vector: the SURB, the reply packet, every hop, the opened payload (§7.2)', () => {
  const r = V.surb_reply;
  const path = pathOf(r);
  const { surb, state } = createSurb(GEO, path, hex(r.creator), {
    encaps: recorded(r.ciphertexts, path),
    surbId: hex(r.surb_id),
    seed: hex(r.key_seed),
  });
  assert.equal(toHex(surb), r.surb);
  const { firstHop, packet } = useSurb(GEO, surb, hex(r.reply_payload));
  assert.equal(toHex(firstHop), r.first_hop);
  assert.equal(toHex(packet), r.packet);
  const last = checkHops(r, packet);
  assert.equal(toHex(last.surbId), r.surb_id);
  const opened = openReply(GEO, state, last.payload);
  assert.equal(toHex(opened), r.opened);
  assert.equal(toHex(opened), r.reply_payload);
  // A block changed on the way does not open.
  assert.throws(() => openReply(GEO, state, flip(last.payload, 500)), (e) => e instanceof MixDrop && e.reason === 'bad-payload');
});

test('the valid mix-packet messages carry the forward and reply packets', () => {
  const valid = V.tests.filter((t) => t.result === 'valid');
  const data = valid.map((t) => toHex(decodeMessage(hex(t.cbor), ['mix-packet']).msg.data));
  assert.deepEqual(data, [V.forward.packet, V.surb_reply.packet]);
});

test('rejected vectors: each dropped at its hop for its stated reason (§2, §6.2, §7.2)', () => {
  for (const v of V.rejected) {
    const base = hex(V[v.base].packet);
    const path = V[v.base].hops;
    const rings = path.map((h) => {
      const ring = new MixKeyring(GEO);
      ring.addKey(0, hex(V.mixes.find((m) => m.node_id === h.node_id).xwing_seed));
      return ring;
    });
    let packet = base;
    if (v.flip !== undefined) packet = flip(base, v.flip);
    if (v.truncate !== undefined) packet = base.slice(0, v.truncate);
    const copies = v.repeat ?? 1;
    let out;
    for (let hop = 0; hop <= v.hop; hop++) {
      for (let c = 0; c < (hop === v.hop ? copies : 1); c++) out = rings[hop].receive(packet);
      if (hop < v.hop) {
        assert.equal(out.result, 'forward', `${v.comment}: hop ${hop} forwards`);
        packet = out.packet;
      }
    }
    assert.deepEqual(out, { result: 'drop', reason: v.reason }, v.comment);
    assert.equal(rings[v.hop].drops[v.reason], 1, v.comment);
  }
});

test('a MAC failure does not enter the replay store (§6.2 step 4)', () => {
  const ring = new MixKeyring(GEO);
  ring.addKey(0, hex(V.mixes[0].xwing_seed));
  const good = hex(V.forward.packet);
  assert.equal(ring.receive(flip(good, 3000)).reason, 'bad-mac'); // same ct, forged routing
  assert.equal(ring.receive(good).result, 'forward');
  assert.equal(ring.receive(good).reason, 'replay');
});

test('replay store: the reference sizing of §8.1, no false negative, few false positives', () => {
  const ref = new ReplayFilter();
  assert.deepEqual([ref.m, ref.k], [28755176, 20]); // ≈ 3.6 MB, k = 20
  const f = new ReplayFilter(1000, 1e-3);
  const tags = Array.from({ length: 1000 }, (_, i) => sha256(Uint8Array.of(i >> 8, i & 0xff)));
  for (const t of tags) f.add(t);
  assert.ok(tags.every((t) => f.has(t)));
  const fresh = Array.from({ length: 5000 }, (_, i) => sha256(Uint8Array.of(1, i >> 8, i & 0xff)));
  assert.ok(fresh.filter((t) => f.has(t)).length < 25, 'about p = 0.1 % of fresh tags');
});

test('epoch keys: current, next and previous unwrap; an erased key fails the MAC (§8.1)', () => {
  const ring = new MixKeyring(GEO);
  ring.addKey(7, hex(V.mixes[0].xwing_seed));
  ring.addKey(8, hex(V.mixes[1].xwing_seed));
  ring.addKey(9, hex(V.mixes[2].xwing_seed));
  // The mix 0 packet under the "previous" key while epoch 8 is current.
  assert.equal(ring.receive(hex(V.forward.packet), 8).result, 'forward');
  ring.rotate(9); // keeps 8, 9 (and 10): 7 is erased with its store
  assert.deepEqual([...ring.epochs.keys()], [8, 9]);
  assert.equal(ring.receive(hex(V.forward.packet), 9).reason, 'bad-mac');
});

test('a low-order X25519 part is bad-kem; junk of any size never throws', () => {
  const ring = new MixKeyring(GEO);
  ring.addKey(0, hex(V.mixes[0].xwing_seed));
  const p = hex(V.forward.packet);
  p.fill(0, 2 + 1088, 2 + 1120); // the X25519 ciphertext is the zero point
  assert.equal(ring.receive(p).reason, 'bad-kem');
  assert.equal(ring.receive(new Uint8Array(0)).reason, 'wrong-size');
  assert.equal(ring.receive('not bytes').reason, 'wrong-size');
  assert.equal(ring.receive(new Uint8Array(GEO.packet)).reason, 'bad-version');
});

/** Keys of five fresh mixes, and a path through the first L of them. */
function freshPath(geo, delays) {
  return delays.map((delayMs, i) => {
    const key = xwingExpand(sha256(Uint8Array.of(geo.hops, i)));
    return { id: sha256(Uint8Array.of(0xee, i)), pk: key.pk, key, delayMs };
  });
}

for (const L of [3, 5]) {
  test(`round trip, ${L} hops: JS builds a request with a SURB, JS unwraps it and the reply`, () => {
    const geo = geometry(L, 1024);
    const path = freshPath(geo, [3, 1, 4, 1, 5].slice(0, L));
    const back = freshPath(geo, [9, 2, 6, 5, 3].slice(0, L)).reverse();
    const client = sha256(Uint8Array.of(1));
    const exit = path[L - 1].id;
    const { surb, state } = createSurb(geo, back, client);
    const request = encodePayload(geo, PAYLOAD_KIND.request, new TextEncoder().encode('exit_get'), surb);
    const { packet } = createPacket(geo, path, exit, request);
    assert.equal(packet.length, geo.packet);
    let p = packet;
    for (const [i, hop] of path.entries()) {
      const out = unwrap(geo, hop.key, p);
      assert.equal(out.delayMs, hop.delayMs);
      if (i < L - 1) {
        assert.equal(out.result, 'forward');
        assert.equal(toHex(out.nextHop), toHex(path[i + 1].id));
        assert.equal(out.packet.length, geo.packet); // the same size at every hop
        p = out.packet;
      } else {
        assert.equal(out.result, 'deliver');
        assert.equal(toHex(out.recipient), toHex(exit));
        p = out.payload;
      }
    }
    const req = decodePayload(geo, p);
    assert.equal(new TextDecoder().decode(req.data), 'exit_get');
    const answer = encodePayload(geo, PAYLOAD_KIND.message, Uint8Array.of(1, 2, 3));
    const reply = useSurb(geo, req.surb, answer);
    assert.equal(toHex(reply.firstHop), toHex(back[0].id));
    const rings = back.map((h) => {
      const ring = new MixKeyring(geo);
      ring.addKey(0, sha256(Uint8Array.of(geo.hops, back.length - 1 - back.indexOf(h))));
      return ring;
    });
    p = reply.packet;
    let out;
    for (const ring of rings) {
      out = ring.receive(p);
      p = out.packet;
    }
    assert.equal(out.result, 'deliver');
    assert.equal(toHex(out.recipient), toHex(client));
    assert.equal(toHex(out.surbId), toHex(state.surbId));
    assert.deepEqual(decodePayload(geo, openReply(geo, state, out.payload)).data, Uint8Array.of(1, 2, 3));
    // Single use: the reply block again is a replay at its first hop.
    assert.equal(rings[0].receive(reply.packet).reason, 'replay');
    // A packet for this geometry is the wrong size for the other.
    assert.equal(new MixKeyring(geometry(L === 3 ? 5 : 3, 1024)).receive(packet).reason, 'wrong-size');
  });
}

test('a geometry digest salts the keys: same size, other U digest fails the MAC', () => {
  const a = geometry(3, 1024);
  const b = { ...a, digest: geometry(3, 1025).digest };
  const path = freshPath(a, [1, 1, 1]);
  const { packet } = createPacket(a, path, path[2].id, encodePayload(a, 0, new Uint8Array(0)));
  assert.throws(() => unwrap(b, path[0].key, packet), (e) => e.reason === 'bad-mac');
  assert.notEqual(toHex(hopKeys(a, new Uint8Array(32)).mac), toHex(hopKeys(b, new Uint8Array(32)).mac));
});

test('routing commands: the rules of §5, in any order', () => {
  const id = new Uint8Array(32).fill(7);
  const pad = (b) => Uint8Array.from([...b, ...new Array(70 - b.length).fill(0)]);
  const fwd = [1, ...id, ...id, 0x80, 0, 0, 1, 0];
  assert.equal(parseCommands(Uint8Array.from(fwd)).delayMs, 256);
  const term = [2, ...id, 0x80, 0, 0, 0, 5];
  assert.equal(parseCommands(pad(term)).surbId, null);
  assert.equal(parseCommands(pad([...term, 3, ...new Array(16).fill(9)])).surbId.length, 16);
  const bad = (b, why) => assert.throws(() => parseCommands(pad(b)), (e) => e instanceof MixDrop && e.reason === 'bad-commands', why);
  // The layouts of §5 are what a sender writes; a receiver checks the rules (10-mixnet.md §5, findings).
  assert.equal(parseCommands(pad([0x80, 0, 0, 0, 5, 2, ...id])).delayMs, 5);
  assert.equal(parseCommands(pad([3, ...new Array(16).fill(9), 2, ...id, 0x80, 0, 0, 0, 5])).surbId[0], 9);
  bad([2, ...id], 'no delay');
  // With C = 70, 01 leaves room for 80 only: 01 with 02 or 03 runs past the commands.
  bad([0x80, 0, 0, 0, 5, 3, ...new Array(16).fill(9), 1, ...id, ...id].slice(0, 70), 'SURB reply and next hop: past C');
  bad([2, ...id, 0x80, 0, 0, 0, 5, 0x80, 0, 0, 0, 5], 'delay twice');
  bad([2, ...id, 0x80, 0, 0, 0, 5, 0, 1], 'non-zero after the end');
  bad([2, ...id, 0x80, 0, 0, 0, 5, 0x42], 'unknown code');
  bad([], 'empty');
  bad([3, ...new Array(16).fill(9), 0x80, 0, 0, 0, 5], 'SURB reply without recipient');
});

test('payload framing (§7.1): kinds, lengths, padding', () => {
  const geo = geometry(3, 256);
  const drop = (p, why) => assert.throws(() => decodePayload(geo, p), (e) => e.reason === 'bad-framing', why);
  const ok = encodePayload(geo, PAYLOAD_KIND.message, Uint8Array.of(5, 6));
  assert.deepEqual(decodePayload(geo, ok), { kind: 1, surb: null, data: Uint8Array.of(5, 6) });
  const k3 = ok.slice();
  k3[0] = 3;
  drop(k3, 'kind 3');
  const long = ok.slice();
  long[1] = 0x01; // 258 > U
  long[2] = 0x02;
  drop(long, 'length > U');
  drop(flip(ok, ok.length - 1), 'padding');
  drop(ok.subarray(1), 'size');
  drop(flip(ok, 100), 'a non-zero SURB slot in a message');
  const req = encodePayload(geo, PAYLOAD_KIND.request, new Uint8Array(0), new Uint8Array(geo.surb));
  drop(req, 'a request whose reply block is not version 1');
  assert.throws(() => encodePayload(geo, PAYLOAD_KIND.request, new Uint8Array(0)), /reply block/);
  assert.throws(() => encodePayload(geo, PAYLOAD_KIND.message, new Uint8Array(257)), /at most U/);
});

test('local misuse raises a clear error', () => {
  const path = freshPath(GEO, [1, 2, 3]);
  assert.throws(() => createPacket(GEO, path.slice(0, 2), path[0].id, new Uint8Array(GEO.P)), /3 hops expected/);
  assert.throws(() => createPacket(GEO, path, path[0].id, new Uint8Array(10)), /payload: 6839 bytes expected/);
  const neg = path.map((h) => ({ ...h, delayMs: -1 }));
  assert.throws(() => createHeader(GEO, neg, path[0].id), /u32 milliseconds/);
  assert.equal(toHex(replayTag(new Uint8Array(1120))).length, 64);
});
