// Records (protocol-spec/07-records.md): keys, validation (§6.2) and merge rules (§7).
import { encode } from './cbor.js';
import { sha3_256, ascii, concat, mldsaVerify, equalBytes } from './crypto.js';

export const DEFAULT_LIMITS = Object.freeze({ max_value_size: 65536, max_set_value_size: 4096, max_set_entries: 32, max_ttl: 604800, clock_skew: 300 });
export const CONTEXTS = Object.freeze({ mutable: 'qdht/v1/mutable-record', tombstone: 'qdht/v1/record-tombstone', set_entry: 'qdht/v1/set-entry' });
const FAMILY = { immutable: 'immutable', mutable: 'mutable', tombstone: 'mutable', set_entry: 'set' };

export class RecordError extends Error {
  constructor(reason) {
    super(reason);
    this.reason = reason;
  }
}

/** The DHT key a record lives under (§3). */
export function recordKey(r) {
  if (r.type === 'immutable') return sha3_256(concat([ascii('qdht/v1/immutable'), r.value]));
  if (r.type === 'set_entry') return sha3_256(concat([ascii('qdht/v1/set'), r.topic]));
  return sha3_256(concat([ascii('qdht/v1/mutable'), r.owner, r.salt]));
}

/** Deterministic encoding of the map without `sig` and `pk` (§4). */
export function signedBytes(r) {
  const o = Object.create(null);
  for (const k of Object.keys(r)) if (k !== 'sig' && k !== 'pk') o[k] = r[k];
  return encode(o);
}

/**
 * Validate a decoded record offered under `key` (§6.2).
 * @param {(owner: Uint8Array) => Uint8Array|null} resolveKey held certificates' ML-DSA keys by owner
 */
export function validateRecord(r, key, now, limits = DEFAULT_LIMITS, resolveKey = () => null) {
  const maxValue = r.type === 'set_entry' ? limits.max_set_value_size : limits.max_value_size;
  if (r.value !== undefined && r.value.length > maxValue) throw new RecordError('too-large');
  if (!equalBytes(recordKey(r), key)) throw new RecordError('key-mismatch');
  const exp = Number(r.exp);
  if (!(now < exp)) throw new RecordError('expired');
  if (exp > now + limits.max_ttl + limits.clock_skew) throw new RecordError('expiry-too-far');
  if (r.type === 'immutable') return r;
  const pk = r.pk ?? resolveKey(r.owner);
  if (!pk) throw new RecordError('owner-key-unknown');
  if (!equalBytes(sha3_256(pk), r.owner)) throw new RecordError('owner-mismatch');
  if (!mldsaVerify(pk, signedBytes(r), r.sig, CONTEXTS[r.type])) throw new RecordError('bad-signature');
  return r;
}

const live = (r, now) => r && now < Number(r.exp);
/**
 * Rank of a mutable record, tombstone or set entry (§7.1 rule 7: `seq`, then
 * tombstone, then the digest of the signed bytes), for sorting.
 */
export function rankCmp(a, b) {
  const sa = BigInt(a.seq);
  const sb = BigInt(b.seq);
  if (sa !== sb) return sa < sb ? -1 : 1;
  const ta = a.type === 'tombstone' ? 1 : 0;
  const tb = b.type === 'tombstone' ? 1 : 0;
  if (ta !== tb) return ta - tb;
  return Buffer.compare(sha3_256(signedBytes(a)), sha3_256(signedBytes(b)));
}

/** Merge one incoming record with what is held (§7.1): {outcome, reason?}. */
export function mergeRecord(existing, incoming, now, cas = null) {
  if (!live(existing, now)) return { outcome: 'store' };
  if (FAMILY[existing.type] !== FAMILY[incoming.type]) return { outcome: 'reject', reason: 'kind-mismatch' };
  if (incoming.type === 'immutable') return Number(incoming.exp) > Number(existing.exp) ? { outcome: 'replace' } : { outcome: 'unchanged' };
  // §7.1 step 3a: a salt starting with "qdht/v1/once/" can be written once.
  if (FAMILY[existing.type] === 'mutable' && Buffer.from(existing.salt).subarray(0, 13).equals(Buffer.from('qdht/v1/once/'))
      && !equalBytes(signedBytes(existing), signedBytes(incoming))) return { outcome: 'reject', reason: 'write-once' };
  if (BigInt(incoming.seq) < BigInt(existing.seq)) return { outcome: 'reject', reason: 'seq-regression' };
  if (cas !== null && cas !== undefined && BigInt(existing.seq) !== BigInt(cas)) return { outcome: 'reject', reason: 'cas-mismatch' };
  if (equalBytes(signedBytes(existing), signedBytes(incoming))) return { outcome: 'unchanged' };
  return rankCmp(incoming, existing) > 0 ? { outcome: 'replace' } : { outcome: 'reject', reason: 'seq-conflict' };
}

/** Merge a set entry into the held entries of its set (§7.2). */
export function mergeSetEntry(entries, incoming, now, cas = null, limits = DEFAULT_LIMITS) {
  const alive = entries.filter((e) => live(e, now));
  const mine = alive.find((e) => equalBytes(e.owner, incoming.owner)) ?? null;
  if (!mine && alive.length >= limits.max_set_entries) return { outcome: 'reject', reason: 'set-full' };
  return mergeRecord(mine, incoming, now, cas);
}

