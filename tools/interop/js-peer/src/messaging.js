// Direct messaging (protocol-spec/11-messaging.md): prekey checks (§2.3) and,
// on the recipient's side, opening a first message (§3) and its first
// ratchet message (§4).  Written from the spec text.
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { encode, decode } from './cbor.js';
import { checkMessage } from './messages.js';
import { aeadDecrypt, aeadEncrypt, ascii, concat, mldsaVerify, sha3_256, xwingDecaps } from './crypto.js';

const ZERO32 = new Uint8Array(32);
const DAY = 86400;

/** KDF of 11-messaging.md §1.2: HKDF-SHA3-256, info = "qdht/v1/msg-" ‖ label ‖ context. */
export function kdf(ikm, label, { salt = ZERO32, context = new Uint8Array(0), length = 32 } = {}) {
  return hkdf(sha3_256, ikm, salt, concat([ascii('qdht/v1/msg-' + label), context]), length);
}

/** CK (§1.2): [next chain key, message key]. */
export const chainStep = (ck) => [hmac(sha3_256, ck, Uint8Array.of(2)), hmac(sha3_256, ck, Uint8Array.of(1))];

const without = (m, name) => Object.fromEntries(Object.entries(m).filter(([k]) => k !== name));

/** §2.3: null if the record may be used at `now` under the contact's key `signer`, else the reason. */
export function checkPrekeyRecord(record, now, signer) {
  if (Buffer.compare(record.owner, sha3_256(signer)) !== 0) return 'prekeys-signer';
  if (Number(record.exp) <= now) return 'prekeys-expired';
  if (Number(record.issued) > now + 300) return 'prekeys-future';
  if (Number(record.exp) - Number(record.issued) > 8 * DAY) return 'prekeys-lifetime';
  if (!mldsaVerify(signer, encode(without(record, 'sig')), record.sig, 'qdht/v1/msg-prekeys')) return 'prekeys-signature';
  return null;
}

/** th of §3.2. */
export function transcriptHash(record, opk, ctIk, ctSpk, ctOpk) {
  const oneTime = opk ? [opk.id, opk.pk, ctOpk] : [];
  return sha3_256(encode(['qdht/v1/msg-first', record.owner, record.ik, record.spk_id, record.spk, record.rk, ctIk, ctSpk, oneTime]));
}

function unpad(data) {
  let end = data.length;
  while (end > 0 && data[end - 1] === 0) end--;
  if (end === 0 || data[end - 1] !== 0x80) return null;
  return data.subarray(0, end - 1);
}

/** Parse a header plaintext (§4.3). */
function parseHeader(h) {
  const dv = new DataView(h.buffer, h.byteOffset, h.byteLength);
  const kind = h[45];
  const pqLen = [0, 1184, 1088][kind];
  return {
    dh: h.subarray(0, 32),
    pn: dv.getUint32(32),
    n: dv.getUint32(36),
    flags: h[40],
    epoch: dv.getUint32(41),
    kind,
    pqData: h.subarray(46, 46 + pqLen),
  };
}

/** Open an encrypted header `hdr` with header key `hk` (§4.3), or null. */
export function openHeader(hk, ad, hdr) {
  if (!hk) return null;
  const nonce = new DataView(hdr.buffer, hdr.byteOffset, 8).getBigUint64(0, false);
  const plain = aeadDecrypt(hk, nonce, ad, hdr.subarray(8));
  return plain && parseHeader(plain);
}

const u32 = (n) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
};
const hexOf = (b) => Buffer.from(b).toString('hex');
const MAX_EPOCHS = 5;

function kdfRk(root, dhOut) {
  const o = kdf(dhOut, 'rk', { salt: root, length: 96 });
  return [o.slice(0, 32), o.slice(32, 64), o.slice(64)];
}

/** The ratchet's secrets from SK and the sender's envelope (§3.4). */
export function sessionSecrets(sk, th, env) {
  const sender = sha3_256(concat([env.mldsa, env.ik]));
  const out = kdf(sk, 'session', { context: concat([th, sender]), length: 128 });
  return { root: out.slice(0, 32), hka: out.slice(32, 64), nhkb: out.slice(64, 96), pq0: out.slice(96), ad: sha3_256(concat([th, sender])) };
}

function baseState(secrets, pq, draw, kem) {
  return {
    pq, ad: secrets.ad, ckr: null, ns: 0, nr: 0, pn: 0, hkr: null, skipped: new Map(),
    epochs: new Map([[0, secrets.pq0]]), sendEpoch: 0, confirmed: 0, pqSeed: null, pqCt: null, draw, kem,
  };
}

/** RatchetInitAliceHE (§4.2) plus the first ML-KEM offer (§4.4). `draw(n)`: randomness of §4.6. */
export function initAlice(secrets, remoteDh, { pq = true, draw, kem }) {
  const st = baseState(secrets, pq, draw, kem);
  st.initiator = true;
  st.dhPriv = draw(32);
  st.dhPub = x25519.getPublicKey(st.dhPriv);
  st.dhRemote = remoteDh;
  [st.root, st.cks, st.nhks] = kdfRk(secrets.root, x25519.getSharedSecret(st.dhPriv, remoteDh));
  st.hks = secrets.hka;
  st.nhkr = secrets.nhkb;
  if (pq) st.pqSeed = draw(64);
  return st;
}

/** RatchetInitBobHE (§4.2), signed mode. */
export function initBob(secrets, dhPriv, { pq = true, draw, kem }) {
  const st = baseState(secrets, pq, draw, kem);
  Object.assign(st, {
    initiator: false, root: secrets.root, dhPriv, dhPub: x25519.getPublicKey(dhPriv), dhRemote: null,
    cks: null, hks: null, nhks: secrets.nhkb, nhkr: secrets.hka,
  });
  return st;
}

function messageKey(st, drMk, epoch, fromInitiator) {
  const salt = kdf(st.epochs.get(epoch), 'pq-send', { context: Uint8Array.of(fromInitiator ? 1 : 0) });
  return kdf(drMk, 'mk', { salt });
}

function epochSecret(previous, shared, epoch, ek, ct) {
  return kdf(shared, 'pq-epoch', { salt: previous, context: concat([u32(epoch), sha3_256(concat([ek, ct]))]) });
}

function newEpoch(st, epoch, secret) {
  st.epochs.set(epoch, secret);
  st.sendEpoch = epoch;
  while (st.epochs.size > MAX_EPOCHS) st.epochs.delete(Math.min(...st.epochs.keys()));
}

/** Encrypt `data` as the next message (§4.3): {type, hdr, body}. */
export function ratchetEncrypt(st, data) {
  let kind = 0;
  let pqData = new Uint8Array(0);
  if (st.pqSeed) [kind, pqData] = [1, ml_kem768.keygen(st.pqSeed).publicKey];
  else if (st.pqCt) [kind, pqData] = [2, st.pqCt];
  const header = concat([st.dhPub, u32(st.pn), u32(st.ns), Uint8Array.of(st.pq ? 1 : 0), u32(st.sendEpoch), Uint8Array.of(kind), pqData]);
  const nonce = st.draw(8);
  const n = new DataView(nonce.buffer, nonce.byteOffset, 8).getBigUint64(0, false);
  const hdr = concat([nonce, aeadEncrypt(st.hks, n, st.ad, header)]);
  let drMk;
  [st.cks, drMk] = chainStep(st.cks);
  st.ns += 1;
  const mk = messageKey(st, drMk, st.sendEpoch, st.initiator);
  const body = aeadEncrypt(mk, 0n, concat([st.ad, hdr]), concat([data, Uint8Array.of(0x80)]));
  return { type: 'ratchet_msg', hdr, body };
}

function skip(st, until) {
  if (!st.ckr || until <= st.nr) return;
  if (until - st.nr > 25000) throw new Error('too-far');
  const key = hexOf(st.hkr);
  const entry = st.skipped.get(key) ?? { hk: st.hkr, keys: new Map() };
  st.skipped.delete(key);
  let ck = st.ckr;
  for (let n = st.nr; n < until; n++) {
    let mk;
    [ck, mk] = chainStep(ck);
    entry.keys.set(n, mk);
  }
  st.ckr = ck;
  st.nr = until;
  st.skipped.set(key, entry);
}

function dhRatchet(st, h) {
  st.pn = st.ns;
  st.ns = 0;
  st.nr = 0;
  st.hks = st.nhks;
  st.hkr = st.nhkr;
  st.dhRemote = h.dh;
  [st.root, st.ckr, st.nhkr] = kdfRk(st.root, x25519.getSharedSecret(st.dhPriv, h.dh));
  st.dhPriv = st.draw(32);
  st.dhPub = x25519.getPublicKey(st.dhPriv);
  [st.root, st.cks, st.nhks] = kdfRk(st.root, x25519.getSharedSecret(st.dhPriv, h.dh));
}

function receivePq(st, h, drMk) {
  if (st.pq) {
    const latest = Math.max(...st.epochs.keys());
    if (h.kind === 2 && h.epoch === latest + 1) {
      const key = ml_kem768.keygen(st.pqSeed);
      const shared = ml_kem768.decapsulate(h.pqData, key.secretKey);
      newEpoch(st, h.epoch, epochSecret(st.epochs.get(latest), shared, h.epoch, key.publicKey, h.pqData));
      st.pqSeed = null;
    }
    if (!st.epochs.has(h.epoch)) throw new Error('pq-epoch');
    if (h.epoch > st.confirmed) st.confirmed = h.epoch;
    if (st.pqCt && st.confirmed === st.sendEpoch) {
      st.pqCt = null;
      st.pqSeed = st.draw(64);
    }
    if (h.kind === 1 && h.epoch === Math.max(...st.epochs.keys()) && !st.pqSeed && !st.pqCt) {
      const { ss, ct } = st.kem(h.pqData);
      newEpoch(st, h.epoch + 1, epochSecret(st.epochs.get(h.epoch), ss, h.epoch + 1, h.pqData, ct));
      st.pqCt = ct;
    }
  }
  return messageKey(st, drMk, h.epoch, !st.initiator);
}

/** Decrypt a ratchet message (§4.3), or null; throws on a refusal this peer names. */
export function ratchetDecrypt(st, msg) {
  for (const [key, entry] of st.skipped) {
    const h = openHeader(entry.hk, st.ad, msg.hdr);
    if (h && entry.keys.has(h.n)) {
      const drMk = entry.keys.get(h.n);
      entry.keys.delete(h.n);
      if (entry.keys.size === 0) st.skipped.delete(key);
      return openBody(st, receivePq(st, h, drMk), msg);
    }
  }
  let h = openHeader(st.hkr, st.ad, msg.hdr);
  if (h) {
    if (h.n < st.nr) return null;
    skip(st, h.n);
  } else {
    h = openHeader(st.nhkr, st.ad, msg.hdr);
    if (!h) return null;
    skip(st, h.pn);
    dhRatchet(st, h);
    skip(st, h.n);
  }
  let drMk;
  [st.ckr, drMk] = chainStep(st.ckr);
  st.nr += 1;
  return openBody(st, receivePq(st, h, drMk), msg);
}

function openBody(st, mk, msg) {
  const body = aeadDecrypt(mk, 0n, concat([st.ad, msg.hdr]), msg.body);
  return body && unpad(body);
}

/**
 * Bob opens a first message (§3.5 without the replay state) and sets up his
 * ratchet.  `keys`: {ik, spk, opks: Map(id -> key)} expanded X-Wing keys,
 * `ratchetPrivate` the X25519 secret of `rk`, `record` the published prekey
 * record; `draw` and `kem` as for initBob.
 */
export function openFirstMessage(first, record, keys, ratchetPrivate, { draw, kem } = {}) {
  const ssIk = xwingDecaps(keys.ik, first.ct_ik);
  const ssSpk = xwingDecaps(keys.spk, first.ct_spk);
  let opk = null;
  let ssOpk = new Uint8Array(0);
  if ('opk_id' in first) {
    const key = keys.opks.get(Number(first.opk_id));
    opk = { id: first.opk_id, pk: key.pk };
    ssOpk = xwingDecaps(key, first.ct_opk);
  }
  const th = transcriptHash(record, opk, first.ct_ik, first.ct_spk, first.ct_opk);
  const sk = kdf(concat([ssIk, ssSpk, ssOpk]), 'sk', { context: th });
  const plain = aeadDecrypt(kdf(sk, 'env'), 0n, th, first.env);
  if (!plain) return { reason: 'first-envelope' };
  const env = checkMessage(decode(plain), ['msg-first_env']).msg;
  if (!('sig' in env)) return { reason: 'deniable mode is not implemented here' };
  if (!mldsaVerify(env.mldsa, concat([th, encode(without(env, 'sig'))]), env.sig, 'qdht/v1/msg-first'))
    return { reason: 'first-signature' };
  const secrets = sessionSecrets(sk, th, env);
  const state = initBob(secrets, ratchetPrivate, { pq: env.pq, draw: draw ?? (() => { throw new Error('no randomness'); }), kem });
  const data = ratchetDecrypt(state, first.msg);
  if (!data) return { reason: 'first-ratchet' };
  return { sk, th, envelope: env, secrets, state, data };
}
