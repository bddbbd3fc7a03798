// Replays the pqXX and pqIK transcripts of protocol-spec/vectors/session/session-hs.json
// byte for byte (04-handshake.md §8), including the decapsulation-based replay of
// the recorded X-Wing ciphertexts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { shake256, identityFromSeeds, xwingDecaps, xwingExpand, ascii, aeadEncrypt, aeadDecrypt } from '../src/crypto.js';
import { Initiator, ResponderSecrets, respondXX1, respondXX3, respondIK1, fragmentHandshake, openBiscuit, BISCUIT_LEN } from '../src/handshake.js';
import { decodeMessage } from '../src/messages.js';
import { encode, concat } from '../src/cbor.js';
import { vectorFile, hex, toHex } from './util.js';

const file = vectorFile('session/session-hs.json');

/** A SHAKE256 stream rng that records its draws. */
function shakeRng(label) {
  const stream = shake256(ascii(label), { dkLen: 4096 });
  let off = 0;
  const draws = [];
  const rng = (n) => {
    const b = stream.slice(off, off + n);
    off += n;
    draws.push(toHex(b));
    return b;
  };
  return { rng, draws };
}

function setup(t) {
  const I = identityFromSeeds(hex(t.initiator.xwing_seed), hex(t.initiator.mldsa_seed), hex(t.initiator.nonce));
  const R = identityFromSeeds(hex(t.responder.xwing_seed), hex(t.responder.mldsa_seed), hex(t.responder.nonce));
  assert.equal(toHex(I.nodeId), t.initiator.node_id);
  assert.equal(toHex(R.nodeId), t.responder.node_id);
  assert.equal(toHex(I.mldsaHash), t.initiator.mldsa_public_hash);
  const ri = shakeRng(`qdht/vectors/session/${t.pattern}/initiator`);
  const rr = shakeRng(`qdht/vectors/session/${t.pattern}/responder`);
  // decapsulation-based replay: the recorded ciphertexts in order; the
  // encapsulator's secret is what the key's holder decapsulates.
  const holders = [I.xwing, R.xwing];
  const cts = t.kem_ciphertexts.map(hex);
  const encaps = (pk) => {
    const ct = cts.shift();
    const holder = holders.find((k) => Buffer.compare(k.pk, pk) === 0);
    assert.ok(holder, 'encapsulation to a known key');
    return { ct, ss: xwingDecaps(holder, ct) };
  };
  const base = { difficulty: t.difficulty, encaps };
  return { I, R, ri, rr, holders, cts, ctxI: { ...base, identity: I, rng: ri.rng }, ctxR: { ...base, identity: R, rng: rr.rng } };
}

const dgrams = (t, from) => t.datagrams.filter((d) => d.from === from).map((d) => d.hex);
const hsBody = (hexes) => concat(hexes.map((h) => decodeMessage(hex(h)).msg.body));

function dataPacket(key, rid, n, frame) {
  const ad = concat([ascii('qdht-data'), Uint8Array.of(rid >>> 24, (rid >> 16) & 0xff, (rid >> 8) & 0xff, rid & 0xff)]);
  return encode({ type: 'data', rid, n, ct: aeadEncrypt(key, n, ad, encode(frame)) });
}

test('pqXX transcript replays byte for byte', () => {
  const t = file.transcripts.find((x) => x.pattern === 'pqXX');
  assert.equal(t.protocol_name, 'Noise_pqXX_XWing_ChaChaPoly_BLAKE2b');
  assert.equal(t.prologue, toHex(concat([ascii('qdht-session'), Uint8Array.of(1, t.difficulty)])));
  const s = setup(t);
  const ini = new Initiator(s.ctxI, 'XX', s.R.nodeId);
  holdersPush(s, ini.e);
  const out = [];
  // message 1
  out.push(...fragmentHandshake(1, ini.sid, 0, ini.message1(), s.R.nodeId).map(toHex));
  // message 2: the responder draws its index, then its biscuit key.
  const body1 = hsBody(dgrams(t, 'initiator').slice(0, 2));
  // Learn `created` and the address hash from the recorded biscuit (both local to the responder).
  const rec2 = hsBody(t.datagrams.slice(2, 5).map((d) => d.hex));
  // The draws are labelled (04 §8); the biscuit's responder-local inputs are in the transcript.
  assert.deepEqual(t.rng_draws.responder.map((d) => d.use), ['sid', 'biscuit_key']);
  const biscuitKey = hex(t.rng_draws.responder.find((d) => d.use === 'biscuit_key').hex);
  const secrets = new ResponderSecrets(null, 0, biscuitKey);
  const opened = openBiscuit(secrets, rec2.subarray(0, BISCUIT_LEN));
  assert.equal(opened.created, t.biscuit.created);
  assert.equal(toHex(opened.addrHash), t.biscuit.address_hash);
  const ctxR = { ...s.ctxR, now: () => t.biscuit.created, addrHash: hex(t.biscuit.address_hash) };
  const r2 = respondXX1(ctxR, secrets, body1, ini.sid, 'transcript');
  // the rng's second draw is the biscuit key (taken after the index)
  s.rr.rng(32);
  out.push(...fragmentHandshake(2, r2.rsid, ini.sid, r2.body2, s.R.nodeId).map(toHex));
  // message 3
  const { body3 } = ini.readMessage2(r2.body2);
  out.push(...fragmentHandshake(3, ini.sid, r2.rsid, body3, s.R.nodeId).map(toHex));
  // message 4
  const r4 = respondXX3(ctxR, secrets, body3, ini.sid, r2.rsid, 'transcript');
  assert.equal(toHex(r4.peer.nodeId), t.initiator.node_id);
  out.push(...fragmentHandshake(4, r2.rsid, ini.sid, r4.body4, s.R.nodeId).map(toHex));
  const done = ini.readMessage4(r4.body4);
  assert.equal(toHex(done.handshakeHash), t.handshake_hash);
  assert.equal(toHex(r4.handshakeHash), t.handshake_hash);
  // first transport packet
  out.push(toHex(dataPacket(done.send, r2.rsid, 0, { type: 'msg', p: hex(t.first_message_hex) })));
  assert.deepEqual(s.ri.draws, t.rng_draws.initiator.map((d) => d.hex));
  assert.deepEqual(s.rr.draws, t.rng_draws.responder.map((d) => d.hex));
  assert.equal(s.cts.length, 0, 'every recorded ciphertext used');
  assert.equal(out.length, t.datagrams.length);
  out.forEach((h, i) => assert.equal(h, t.datagrams[i].hex, `datagram ${i} (${t.datagrams[i].from})`));
  // the responder opens the first packet with its receive key
  const last = decodeMessage(hex(out.at(-1))).msg;
  assert.ok(aeadDecrypt(r4.recv, 0, concat([ascii('qdht-data'), hex(r2.rsid.toString(16).padStart(8, '0'))]), last.ct));
});

function holdersPush(s, key) {
  s.holders.push(key);
}

test('pqIK transcript replays byte for byte', () => {
  const t = file.transcripts.find((x) => x.pattern === 'pqIK');
  assert.equal(t.protocol_name, 'Noise_pqIK_XWing_ChaChaPoly_BLAKE2b');
  const s = setup(t);
  const ini = new Initiator(s.ctxI, 'IK', s.R.nodeId, s.R.xwing.pk);
  holdersPush(s, ini.e);
  const out = [];
  const body1 = ini.message1();
  out.push(...fragmentHandshake(5, ini.sid, 0, body1, s.R.nodeId).map(toHex));
  const r = respondIK1(s.ctxR, body1);
  assert.equal(toHex(r.peer.nodeId), t.initiator.node_id);
  out.push(...fragmentHandshake(6, r.rsid, ini.sid, r.body2, s.R.nodeId).map(toHex));
  const done = ini.readMessage2(r.body2);
  assert.equal(toHex(done.handshakeHash), t.handshake_hash);
  out.push(toHex(dataPacket(done.send, r.rsid, 0, { type: 'msg', p: hex(t.first_message_hex) })));
  assert.deepEqual(s.ri.draws, t.rng_draws.initiator.map((d) => d.hex));
  assert.deepEqual(s.rr.draws, t.rng_draws.responder.map((d) => d.hex));
  assert.equal(s.cts.length, 0);
  assert.equal(out.length, t.datagrams.length);
  out.forEach((h, i) => assert.equal(h, t.datagrams[i].hex, `datagram ${i} (${t.datagrams[i].from})`));
});
