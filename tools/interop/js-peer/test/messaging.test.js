// protocol-spec/vectors/msg: prekey semantics (11-messaging.md §2.3), the
// known-answer first message (§3) and the ratchet sequence (§4), from the spec alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { encode } from '../src/cbor.js';
import { decodeMessage } from '../src/messages.js';
import { mldsaKeygen, xwingExpand } from '../src/crypto.js';
import { checkPrekeyRecord, initAlice, openFirstMessage, ratchetDecrypt, ratchetEncrypt } from '../src/messaging.js';
import { vectorFile, hex, toHex } from './util.js';

test('msg prekeys semantic cases', () => {
  const f = vectorFile('msg/msg-prekeys.json');
  for (const tc of f.semantic) {
    const record = decodeMessage(hex(tc.cbor)).msg;
    const reason = checkPrekeyRecord(record, tc.now, hex(tc.signer));
    assert.equal(reason, tc.result === 'valid' ? null : tc.reason, tc.comment);
  }
});

/** Randomness replayed from `rng_draws`: the next draw of the size asked for (§4.6). */
const replayDraws = (draws) => {
  const queues = Object.fromEntries(Object.entries(draws).map(([n, list]) => [n, list.map(hex)]));
  return (n) => {
    const next = queues[String(n)]?.shift();
    assert.ok(next, `no recorded draw of ${n} bytes left`);
    return next;
  };
};

test('msg known-answer first message and ratchet sequence', () => {
  const k = vectorFile('msg/msg-first_msg.json').known_answer;
  const [alice, bob] = k.users;
  const record = decodeMessage(hex(k.prekey_record)).msg;
  assert.equal(checkPrekeyRecord(record, k.now, mldsaKeygen(hex(bob.mldsa_seed)).pk), null);
  const s = k.prekey_secrets;
  const keys = {
    ik: xwingExpand(hex(bob.xwing_seed)),
    spk: xwingExpand(hex(s.spk_seed)),
    opks: new Map(s.one_time.map(([id, seed]) => [id, xwingExpand(hex(seed))])),
  };
  // ML-KEM encapsulations are replayed from the recorded ciphertexts: the
  // shared secret is what the offering side decapsulates (§4.4) with the key
  // of one of the 64-byte seeds the parties drew.
  const cts = k.mlkem_ciphertexts.map(hex);
  const offered = new Map();
  for (const party of [k.rng_draws.alice, k.rng_draws.bob])
    for (const seed of party['64'] ?? []) {
      const key = ml_kem768.keygen(hex(seed));
      offered.set(toHex(key.publicKey), key.secretKey);
    }
  const kem = (ek) => {
    const ct = cts.shift();
    const secretKey = offered.get(toHex(ek));
    assert.ok(secretKey, 'no party offered this key');
    return { ss: ml_kem768.decapsulate(ct, secretKey), ct };
  };
  const first = decodeMessage(hex(k.first_msg), ['msg-first_msg']).msg;
  const aliceDraw = replayDraws(k.rng_draws.alice);
  aliceDraw(4); // alice chose the one-time prekey with this draw (§4.6)
  // Alice's side from the same secrets: her first ratchet message, byte for byte.
  const opened = openFirstMessage(first, record, keys, hex(s.ratchet_private), {
    draw: replayDraws(k.rng_draws.bob),
    kem,
  });
  assert.equal(opened.reason, undefined);
  assert.equal(toHex(opened.sk), k.session_key);
  assert.equal(toHex(opened.data), k.plaintext);
  assert.equal(toHex(opened.envelope.mldsa), toHex(mldsaKeygen(hex(alice.mldsa_seed)).pk));
  const aliceState = initAlice(opened.secrets, record.rk, { draw: aliceDraw, kem });
  assert.equal(toHex(encode(ratchetEncrypt(aliceState, hex(k.plaintext)))), toHex(encode(first.msg)));
  const states = { alice: aliceState, bob: opened.state };
  let late = null;
  for (const step of k.sequence) {
    const data = hex(step.plaintext);
    const message = ratchetEncrypt(states[step.from], data);
    assert.equal(toHex(encode(message)), step.cbor, `message from ${step.from}`);
    const receiver = states[step.from === 'alice' ? 'bob' : 'alice'];
    if (Buffer.from(data).toString().startsWith('(lost')) {
      late = [receiver, message, data];
      continue;
    }
    assert.equal(toHex(ratchetDecrypt(receiver, message)), step.plaintext);
  }
  assert.equal(toHex(ratchetDecrypt(late[0], late[1])), toHex(late[2]));
  assert.equal(cts.length, 0);
});
