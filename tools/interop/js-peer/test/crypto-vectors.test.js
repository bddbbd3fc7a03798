// X-Wing (draft-08 vectors), identities, puzzle and the semantic vectors of
// protocol-spec/vectors/{identity,bootstrap}.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { xwingExpand, xwingEncaps, xwingDecaps, identityFromSeeds, meetsPuzzle, nodeIdFromHashes, sha3_256, ascii, concat } from '../src/crypto.js';
import { verifyCert, verifySuccessor, verifyRevocation, unsealKeyfile, readKeyfile, verifyContactList, VerifyError } from '../src/identity.js';
import { vectorFile, hex, toHex } from './util.js';

// draft-connolly-cfrg-xwing-kem-08 Appendix C, vectors 1 and 2 (seed, eseed, ss; the
// shared secret hashes pk_X and ct_X and, through ML-KEM's K, the whole pk_M).
const XWING_DRAFT = [
  {
    sk: '7f9c2ba4e88f827d616045507605853ed73b8093f6efbc88eb1a6eacfa66ef26',
    pkPrefix: 'e2236b35a8c24b39b10aa1323a96a919',
    pkSuffix: '23593d4ba32d9abac8cd049040ef6534',
    eseed: '3cb1eea988004b93103cfb0aeefd2a686e01fa4a58e8a3639ca8a1e3f9ae57e235b8cc873c23dc62b8d260169afa2f75ab916a58d974918835d25e6a435085b2',
    ctPrefix: 'b83aa828d4d62b9a83ceffe1d3d3bb1e',
    ctSuffix: '7f31ed6f7cb1600de56f17576740ce2a32fc5145030145cfb97e63e0e41d354274a079d3e6fb2e15',
    ss: 'd2df0522128f09dd8e2c92b1e905c793d8f57a54c3da25861f10bf4ca613e384',
  },
  {
    sk: 'badfd6dfaac359a5efbb7bcc4b59d538df9a04302e10c8bc1cbf1a0b3a5120ea',
    pkPrefix: '0333285fa253661508c9fb444852caa4',
    pkSuffix: '43f1c89c62',
    eseed: '17cda7cfad765f5623474d368ccca8af0007cd9f5e4c849f167a580b14aabdefaee7eef47cb0fca9767be1fda69419dfb927e9df07348b196691abaeb580b32d',
    ctPrefix: 'c93beb22326705699bbc3d1d0aa6339b',
    ctSuffix: 'ea155b67',
    ss: 'f2e86241c64d60f6649fbc6c5b7d17180b780a3f34355e64a85749949c45f150',
  },
];

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
