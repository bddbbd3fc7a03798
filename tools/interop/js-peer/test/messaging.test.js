// protocol-spec/vectors/msg: prekey semantics (11-messaging.md §2.3) and the
// known-answer first message (§3), opened from the spec alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage } from '../src/messages.js';
import { mldsaKeygen, xwingExpand } from '../src/crypto.js';
import { checkPrekeyRecord, openFirstMessage } from '../src/messaging.js';
import { vectorFile, hex, toHex } from './util.js';

test('msg prekeys semantic cases', () => {
  const f = vectorFile('msg/msg-prekeys.json');
  for (const tc of f.semantic) {
    const record = decodeMessage(hex(tc.cbor)).msg;
    const reason = checkPrekeyRecord(record, tc.now, hex(tc.signer));
    assert.equal(reason, tc.result === 'valid' ? null : tc.reason, tc.comment);
  }
});

test('msg known-answer first message opens with its session key', () => {
  const k = vectorFile('msg/msg-first_msg.json').known_answer;
  const [alice, bob] = k.users;
  const record = decodeMessage(hex(k.prekey_record)).msg;
  const bobMldsa = mldsaKeygen(hex(bob.mldsa_seed));
  assert.equal(checkPrekeyRecord(record, k.now, bobMldsa.pk), null);
  const s = k.prekey_secrets;
  const keys = {
    ik: xwingExpand(hex(bob.xwing_seed)),
    spk: xwingExpand(hex(s.spk_seed)),
    opks: new Map(s.one_time.map(([id, seed]) => [id, xwingExpand(hex(seed))])),
  };
  const first = decodeMessage(hex(k.first_msg), ['msg-first_msg']).msg;
  const opened = openFirstMessage(first, record, keys, hex(s.ratchet_private));
  assert.equal(opened.reason, undefined);
  assert.equal(toHex(opened.sk), k.session_key);
  assert.equal(toHex(opened.data), k.plaintext);
  assert.equal(toHex(opened.envelope.mldsa), toHex(mldsaKeygen(hex(alice.mldsa_seed)).pk));
  assert.equal(toHex(opened.envelope.ik), toHex(xwingExpand(hex(alice.xwing_seed)).pk));
  assert.equal(opened.header.kind, 1); // the initiator offers the ML-KEM key of epoch 1
});
