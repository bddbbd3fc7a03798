// Primitives (protocol-spec/03-identity.md §1): X-Wing, ML-DSA-65, hashes, node IDs, puzzle.
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { sha3_256, shake256 } from '@noble/hashes/sha3.js';
import { blake2b } from '@noble/hashes/blake2.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { randomBytes as nodeRandomBytes } from 'node:crypto';
import { concat } from './cbor.js';

export { sha3_256, shake256, blake2b, concat };

export const ascii = (s) => new TextEncoder().encode(s);
export const randomBytes = (n) => new Uint8Array(nodeRandomBytes(n));
export const equalBytes = (a, b) => a.length === b.length && Buffer.compare(a, b) === 0;

// ---------------------------------------------------------------- X-Wing (draft-connolly-cfrg-xwing-kem-08)
const XWING_LABEL = Uint8Array.of(0x5c, 0x2e, 0x2f, 0x2f, 0x5e, 0x5c);
export const XWING = Object.freeze({ pk: 1216, ct: 1120, ss: 32, sk: 32 });

/** Expanded X-Wing decapsulation key from the 32-byte seed. */
export function xwingExpand(sk) {
  if (!(sk instanceof Uint8Array) || sk.length !== 32) throw new TypeError('sk: 32 bytes expected');
  const expanded = shake256(sk, { dkLen: 96 });
  const m = ml_kem768.keygen(expanded.subarray(0, 64));
  const skX = expanded.slice(64, 96);
  const pkX = x25519.getPublicKey(skX);
  return { seed: sk, skM: m.secretKey, pkM: m.publicKey, skX, pkX, pk: concat([m.publicKey, pkX]) };
}

function combiner(ssM, ssX, ctX, pkX) {
  return sha3_256(concat([ssM, ssX, ctX, pkX, XWING_LABEL]));
}

/**
 * Encapsulate to an X-Wing public key; `eseed` (64 bytes, optional) is the
 * draft's derandomisation: ML-KEM coins ‖ X25519 ephemeral secret.
 */
export function xwingEncaps(pk, eseed = randomBytes(64)) {
  if (!(pk instanceof Uint8Array) || pk.length !== XWING.pk) throw new TypeError('pk: 1216 bytes expected');
  const pkM = pk.subarray(0, 1184);
  const pkX = pk.subarray(1184);
  const ekX = eseed.subarray(32, 64);
  const ctX = x25519.getPublicKey(ekX);
  const ssX = x25519.getSharedSecret(ekX, pkX);
  const { cipherText: ctM, sharedSecret: ssM } = ml_kem768.encapsulate(pkM, eseed.subarray(0, 32));
  return { ss: combiner(ssM, ssX, ctX, pkX), ct: concat([ctM, ctX]) };
}

/** Decapsulate with an expanded key (xwingExpand). */
export function xwingDecaps(key, ct) {
  if (!(ct instanceof Uint8Array) || ct.length !== XWING.ct) throw new TypeError('ct: 1120 bytes expected');
  const ctM = ct.subarray(0, 1088);
  const ctX = ct.subarray(1088);
  const ssM = ml_kem768.decapsulate(ctM, key.skM);
  const ssX = x25519.getSharedSecret(key.skX, ctX);
  return combiner(ssM, ssX, ctX, key.pkX);
}

// ---------------------------------------------------------------- ML-DSA-65
export function mldsaKeygen(seed) {
  const k = ml_dsa65.keygen(seed);
  return { seed, sk: k.secretKey, pk: k.publicKey };
}
export const mldsaSign = (sk, msg, context) => ml_dsa65.sign(msg, sk, { context: ascii(context) });
export function mldsaVerify(pk, msg, sig, context) {
  try {
    return ml_dsa65.verify(sig, msg, pk, { context: ascii(context) });
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- node IDs and puzzle (§3, §4)
const NODE_ID_PREFIX = ascii('qdht/v1/node-id');

/** node_id from SHA3-256(xwing_pk) (or the pk), SHA3-256(mldsa_pk) and the nonce. */
export function nodeIdFromHashes(xwingHash, mldsaHash, nonce) {
  return sha3_256(concat([NODE_ID_PREFIX, xwingHash, mldsaHash, nonce]));
}
export const computeNodeId = (xwingPk, mldsaPk, nonce) => nodeIdFromHashes(sha3_256(xwingPk), sha3_256(mldsaPk), nonce);

/** Number of leading zero bits of `b`. */
export function leadingZeroBits(b) {
  let n = 0;
  for (const x of b) {
    if (x === 0) {
      n += 8;
      continue;
    }
    return n + Math.clz32(x) - 24;
  }
  return n;
}
export const meetsPuzzle = (nodeId, d) => leadingZeroBits(sha3_256(nodeId)) >= d;

/** Mint a nonce (8 bytes, a little-endian counter from `start`). */
export function mintNonce(xwingPk, mldsaPk, d, start = 0n) {
  const xh = sha3_256(xwingPk);
  const mh = sha3_256(mldsaPk);
  const nonce = new Uint8Array(8);
  const dv = new DataView(nonce.buffer);
  for (let c = start; ; c = (c + 1n) & 0xffffffffffffffffn) {
    dv.setBigUint64(0, c, true);
    const id = nodeIdFromHashes(xh, mh, nonce);
    if (meetsPuzzle(id, d)) return { nonce: nonce.slice(), nodeId: id };
  }
}

/** A node identity from its two seeds and nonce. */
export function identityFromSeeds(xwingSeed, mldsaSeed, nonce) {
  const xw = xwingExpand(xwingSeed);
  const ds = mldsaKeygen(mldsaSeed);
  const mldsaHash = sha3_256(ds.pk);
  return { xwing: xw, mldsa: ds, mldsaHash, nonce, nodeId: nodeIdFromHashes(sha3_256(xw.pk), mldsaHash, nonce) };
}

/** Generate a fresh identity at difficulty d. */
export function generateIdentity(d) {
  const xwingSeed = randomBytes(32);
  const mldsaSeed = randomBytes(32);
  const xw = xwingExpand(xwingSeed);
  const ds = mldsaKeygen(mldsaSeed);
  const start = new DataView(randomBytes(8).buffer).getBigUint64(0, true);
  const { nonce } = mintNonce(xw.pk, ds.pk, d, start);
  return identityFromSeeds(xwingSeed, mldsaSeed, nonce);
}

// ---------------------------------------------------------------- AEAD
export function nonce96(n) {
  const out = new Uint8Array(12);
  new DataView(out.buffer).setBigUint64(4, BigInt(n), true);
  return out;
}
export const aeadEncrypt = (key, n, ad, pt) => chacha20poly1305(key, nonce96(n), ad).encrypt(pt);
/** Returns null when the tag does not verify. */
export function aeadDecrypt(key, n, ad, ct) {
  try {
    return chacha20poly1305(key, nonce96(n), ad).decrypt(ct);
  } catch {
    return null;
  }
}
