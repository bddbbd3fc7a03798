// X-Wing (draft-08 vectors), identities, puzzle and the semantic vectors of
// protocol-spec/vectors/{identity,bootstrap}.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { xwingExpand, xwingEncaps, xwingDecaps, identityFromSeeds, meetsPuzzle, nodeIdFromHashes, sha3_256, ascii, concat } from '../src/crypto.js';
import { verifyCert, verifySuccessor, verifyRevocation, unsealKeyfile, readKeyfile, verifyContactList, VerifyError } from '../src/identity.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { vectorFile, hex, toHex, SPEC_DIR } from './util.js';

// draft-connolly-cfrg-xwing-kem-08 Appendix C, as the spec publishes them
// (protocol-spec/kat/xwing.json, 03-identity.md §1.2).
const XWING_DRAFT = JSON.parse(readFileSync(join(SPEC_DIR, 'kat', 'xwing.json'), 'utf8')).tests.map((v) => ({
  sk: v.seed,
  pkPrefix: v.pk,
  pkSuffix: v.pk,
  eseed: v.eseed,
  ctPrefix: v.ct,
  ctSuffix: v.ct,
  ss: v.ss,
}));

test('X-Wing reproduces the draft-08 vectors', () => {
  for (const v of XWING_DRAFT) {
    const key = xwingExpand(hex(v.sk));
    const pk = toHex(key.pk);
    assert.ok(pk.startsWith(v.pkPrefix) && pk.endsWith(v.pkSuffix), 'public key');
    const { ss, ct } = xwingEncaps(key.pk, hex(v.eseed));
    assert.ok(toHex(ct).startsWith(v.ctPrefix) && toHex(ct).endsWith(v.ctSuffix), 'ciphertext');
    assert.equal(toHex(ss), v.ss);
    assert.equal(toHex(xwingDecaps(key, ct)), v.ss);
  }
});

test('immutable key example (02-dht-rpc.md §4.1)', () => {
  const f = vectorFile('dht/dht-store.json');
  const key = sha3_256(concat([ascii('qdht/v1/immutable'), hex(f.immutable_key_example.value)]));
  assert.equal(toHex(key), f.immutable_key_example.key);
});

test('identity vectors: node IDs from seeds, nonces are the first solutions', () => {
  const seen = new Map();
  for (const rel of ['identity/identity-cert.json', 'identity/identity-keyfile.json', 'bootstrap/bootstrap-contact_list.json']) {
    const f = vectorFile(rel);
    for (const k of f.keys ?? f.nodes) {
      const id = identityFromSeeds(hex(k.xwing_seed), hex(k.mldsa_seed), hex(k.nonce));
      assert.equal(toHex(id.nodeId), k.node_id, `${rel} ${k.name}`);
      assert.ok(meetsPuzzle(id.nodeId, 8));
      // first little-endian counter value that solves difficulty 8
      const first = new DataView(hex(k.nonce).buffer).getBigUint64(0, true);
      const xh = sha3_256(id.xwing.pk);
      for (let c = 0n; c < first; c++) {
        const nonce = new Uint8Array(8);
        new DataView(nonce.buffer).setBigUint64(0, c, true);
        assert.ok(!meetsPuzzle(nodeIdFromHashes(xh, id.mldsaHash, nonce), 8), `${k.name}: counter ${c} already solves`);
      }
      seen.set(k.name, k.node_id);
    }
  }
  assert.ok(seen.has('alice') && seen.has('bob'));
});

function semantic(rel, verify) {
  const f = vectorFile(rel);
  for (const tc of f.semantic) {
    const label = `${rel} semantic ${tc.tcId} (${tc.comment})`;
    let err = null;
    try {
      verify(hex(tc.cbor), tc, f);
    } catch (e) {
      if (!(e instanceof VerifyError)) throw e;
      err = e;
    }
    if (tc.result === 'valid') assert.equal(err, null, `${label}: ${err?.message}`);
    else assert.equal(err?.error, tc.error, label);
  }
}

test('identity-cert semantic vectors', () => semantic('identity/identity-cert.json', (b, tc) => verifyCert(b, tc.now, tc.difficulty)));
test('identity-successor semantic vectors', () => semantic('identity/identity-successor.json', (b) => verifySuccessor(b)));
test('identity-revocation semantic vectors', () => semantic('identity/identity-revocation.json', (b) => verifyRevocation(b)));
test('identity-keyfile_sealed semantic vectors', () =>
  semantic('identity/identity-keyfile_sealed.json', (b, tc, f) => {
    const pt = unsealKeyfile(b, f.passphrase);
    assert.equal(toHex(pt), f.plaintext);
    readKeyfile(pt);
  }));
test('identity-keyfile valid vectors hold a solved puzzle', () => {
  const f = vectorFile('identity/identity-keyfile.json');
  for (const tc of f.tests.filter((t) => t.result === 'valid')) assert.ok(readKeyfile(hex(tc.cbor)).nodeId.length === 32);
});
test('bootstrap-contact_list semantic vectors', () =>
  semantic('bootstrap/bootstrap-contact_list.json', (b, tc) => verifyContactList(b, tc.now, tc.difficulty, tc.signer ? hex(tc.signer) : null)));

test("noble's ml_kem768_x25519 is the same X-Wing (draft-08) as src/crypto.js", async () => {
  const { ml_kem768_x25519: xw } = await import('@noble/post-quantum/hybrid.js');
  for (const v of XWING_DRAFT) {
    const k = xw.keygen(hex(v.sk));
    assert.equal(toHex(k.publicKey), toHex(xwingExpand(hex(v.sk)).pk));
    const e = xw.encapsulate(k.publicKey, hex(v.eseed));
    assert.equal(toHex(e.sharedSecret), v.ss);
    assert.equal(toHex(e.cipherText), toHex(xwingEncaps(k.publicKey, hex(v.eseed)).ct));
  }
});
