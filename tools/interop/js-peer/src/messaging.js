// Direct messaging (protocol-spec/11-messaging.md): prekey checks (§2.3) and,
// on the recipient's side, opening a first message (§3) and its first
// ratchet message (§4).  Written from the spec text.
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { encode, decode } from './cbor.js';
import { checkMessage } from './messages.js';
import { aeadDecrypt, ascii, concat, mldsaVerify, sha3_256, xwingDecaps } from './crypto.js';

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
  const nonce = new DataView(hdr.buffer, hdr.byteOffset, 8).getBigUint64(0, false);
  const plain = aeadDecrypt(hk, nonce, ad, hdr.subarray(8));
  return plain && parseHeader(plain);
}

/**
 * Bob opens a first message (§3.5 without the replay state, §4.2 for its
 * ratchet message).  `keys`: {ik, spk, opks: Map(id -> key)} expanded X-Wing
 * keys, `ratchetPrivate` the X25519 secret of `rk`, `record` the published
 * prekey record.
 */
export function openFirstMessage(first, record, keys, ratchetPrivate) {
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
  if ('sig' in env && !mldsaVerify(env.mldsa, concat([th, encode(without(env, 'sig'))]), env.sig, 'qdht/v1/msg-first'))
    return { reason: 'first-signature' };
  const sender = sha3_256(concat([env.mldsa, env.ik]));
  const out = kdf(sk, 'session', { context: concat([th, sender]), length: 128 });
  const [root, hka, pq0] = [out.subarray(0, 32), out.subarray(32, 64), out.subarray(96)];
  const ad = sha3_256(concat([th, sender]));
  // Bob's NHKr is hka: the first message needs a DH ratchet step (§4.2).
  const msg = first.msg;
  const header = openHeader(hka, ad, msg.hdr);
  if (!header) return { reason: 'header' };
  const dhOut = x25519.getSharedSecret(ratchetPrivate, header.dh);
  const ckr = kdf(dhOut, 'rk', { salt: root, length: 96 }).subarray(32, 64);
  let ck = ckr;
  let drMk = null;
  for (let i = 0; i <= header.n; i++) [ck, drMk] = chainStep(ck);
  const mk = kdf(drMk, 'mk', { salt: kdf(pq0, 'pq-send', { context: Uint8Array.of(1) }) });
  const body = aeadDecrypt(mk, 0n, concat([ad, msg.hdr]), msg.body);
  if (!body) return { reason: 'body' };
  return { sk, envelope: env, header, data: unpad(body) };
}
