// Noise (rev 34) symmetric state with BLAKE2b / ChaChaPoly and the KEM tokens of
// PQNoise, as protocol-spec/04-handshake.md §2 uses them.
import { hmac } from '@noble/hashes/hmac.js';
import { blake2b } from '@noble/hashes/blake2.js';
import { aeadEncrypt, aeadDecrypt, ascii, concat } from './crypto.js';

export const HASHLEN = 64;
const EMPTY = new Uint8Array(0);
const hash = (data) => blake2b(data, { dkLen: HASHLEN });
const hmacHash = (key, data) => hmac(blake2b, key, data);

/** Noise HKDF(ck, ikm, n) (§4.3). */
export function hkdf(ck, ikm, n) {
  const temp = hmacHash(ck, ikm);
  const out1 = hmacHash(temp, Uint8Array.of(1));
  const out2 = hmacHash(temp, concat([out1, Uint8Array.of(2)]));
  if (n === 2) return [out1, out2];
  return [out1, out2, hmacHash(temp, concat([out2, Uint8Array.of(3)]))];
}

export class DecryptFailed extends Error {}

export class SymmetricState {
  /** @param {string} protocolName */
  static initialize(protocolName) {
    const s = new SymmetricState();
    const name = ascii(protocolName);
    if (name.length <= HASHLEN) {
      s.h = new Uint8Array(HASHLEN);
      s.h.set(name);
    } else s.h = hash(name);
    s.ck = s.h.slice();
    s.k = null;
    s.n = 0n;
    return s;
  }
  static restore(ck, h, k, n) {
    const s = new SymmetricState();
    Object.assign(s, { ck, h, k, n });
    return s;
  }
  mixHash(data) {
    this.h = hash(concat([this.h, data]));
  }
  mixKey(ikm) {
    const [ck, tk] = hkdf(this.ck, ikm, 2);
    this.ck = ck;
    this.k = tk.slice(0, 32);
    this.n = 0n;
  }
  encryptAndHash(pt) {
    let ct = pt;
    if (this.k) {
      ct = aeadEncrypt(this.k, this.n, this.h, pt);
      this.n += 1n;
    }
    this.mixHash(ct);
    return ct;
  }
  decryptAndHash(ct) {
    let pt = ct;
    if (this.k) {
      pt = aeadDecrypt(this.k, this.n, this.h, ct);
      if (!pt) throw new DecryptFailed('bad tag');
      this.n += 1n;
    }
    this.mixHash(ct);
    return pt;
  }
  /** Length of an encrypted field of `n` plaintext bytes under the current state. */
  sealedLen(n) {
    return n + (this.k ? 16 : 0);
  }
  split() {
    const [a, b] = hkdf(this.ck, EMPTY, 2);
    return [a.slice(0, 32), b.slice(0, 32)];
  }
}
