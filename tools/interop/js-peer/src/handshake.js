// pqXX / pqIK handshake messages (protocol-spec/04-handshake.md §2, §3, §5.3, §6).
// Pure functions over explicit randomness so that the spec's transcripts replay.
import { SymmetricState, DecryptFailed } from './noise.js';
import { decodeMessage } from './messages.js';
import { encode, DecodeError } from './cbor.js';
import {
  xwingExpand,
  xwingEncaps,
  xwingDecaps,
  nodeIdFromHashes,
  meetsPuzzle,
  sha3_256,
  blake2b,
  aeadEncrypt,
  aeadDecrypt,
  ascii,
  concat,
  equalBytes,
} from './crypto.js';

export const PROTOCOL_VERSION = 1;
export const NAMES = { XX: 'Noise_pqXX_XWing_ChaChaPoly_BLAKE2b', IK: 'Noise_pqIK_XWing_ChaChaPoly_BLAKE2b' };
export const PK = 1216;
export const CT = 1120;
export const BISCUIT_LEN = 225;

/** A handshake failure with a drop / failure reason of 05-transport.md §8. */
export class HandshakeError extends Error {
  constructor(reason, detail = '') {
    super(`${reason}${detail ? `: ${detail}` : ''}`);
    this.reason = reason;
  }
}

export const prologue = (difficulty) => concat([ascii('qdht-session'), Uint8Array.of(PROTOCOL_VERSION, difficulty)]);

/**
 * Handshake context: `identity` (crypto.identityFromSeeds), `difficulty`,
 * `rng(n)`, `encaps(pk)` -> {ss, ct} (default X-Wing), `now()` seconds.
 */
export function makeCtx(ctx) {
  return { encaps: (pk) => xwingEncaps(pk), now: () => Date.now() / 1000, ...ctx };
}

function helloBytes(ctx, early) {
  const m = { type: 'hello', v: PROTOCOL_VERSION, mldsa: ctx.identity.mldsaHash, nonce: ctx.identity.nonce };
  if (early) m.early = early;
  return encode(m);
}

/** Parse a peer hello and derive its node ID from its static key. */
function readHello(ctx, pt, staticPk, allowEarly) {
  let m;
  try {
    m = decodeMessage(pt, ['session-hello']).msg;
  } catch (e) {
    if (e instanceof DecodeError) throw new HandshakeError('bad-hello', e.message);
    throw e;
  }
  if (!allowEarly && m.early !== undefined) throw new HandshakeError('bad-hello', 'early data outside pqIK message 1');
  if (m.v !== PROTOCOL_VERSION) throw new HandshakeError('version-mismatch');
  const nodeId = nodeIdFromHashes(sha3_256(staticPk), m.mldsa, m.nonce);
  if (!meetsPuzzle(nodeId, ctx.difficulty)) throw new HandshakeError('bad-puzzle');
  return { nodeId, early: m.early ?? null, staticPk };
}

function take(body, off, n) {
  if (off + n > body.length) throw new HandshakeError('bad-handshake', 'truncated');
  return body.subarray(off, off + n);
}

function guard(fn) {
  try {
    return fn();
  } catch (e) {
    if (e instanceof DecryptFailed) throw new HandshakeError('bad-handshake', 'decryption failed');
    if (e instanceof HandshakeError) throw e;
    throw new HandshakeError('bad-handshake', e.message);
  }
}

const randIndex = (rng) => {
  for (;;) {
    const b = rng(4);
    const v = ((b[0] << 24) >>> 0) + (b[1] << 16) + (b[2] << 8) + b[3];
    if (v !== 0) return v;
  }
};

/** The initiator's side of one handshake. */
export class Initiator {
  /**
   * @param ctx handshake context
   * @param {'XX'|'IK'} pattern
   * @param {Uint8Array} peerId expected responder node ID
   * @param {Uint8Array|null} peerStatic responder's X-Wing public key (pqIK)
   */
  constructor(ctx, pattern, peerId, peerStatic = null, early = null) {
    this.ctx = ctx;
    this.pattern = pattern;
    this.peerId = peerId;
    this.rs = peerStatic;
    this.early = early;
    this.sid = randIndex(ctx.rng);
    this.e = xwingExpand(ctx.rng(32));
    this.ss = SymmetricState.initialize(NAMES[pattern]);
    this.ss.mixHash(prologue(ctx.difficulty));
    if (pattern === 'IK') this.ss.mixHash(peerStatic);
  }

  /** First message body (kind 1 or 5). */
  message1() {
    const ss = this.ss;
    const parts = [ss.encryptAndHash(this.e.pk)];
    if (this.pattern === 'XX') {
      parts.push(ss.encryptAndHash(new Uint8Array(0)));
      return concat(parts);
    }
    const { ss: k, ct } = this.ctx.encaps(this.rs);
    parts.push(ss.encryptAndHash(ct));
    ss.mixKey(k);
    parts.push(ss.encryptAndHash(this.ctx.identity.xwing.pk));
    parts.push(ss.encryptAndHash(helloBytes(this.ctx, this.early)));
    return concat(parts);
  }

  /**
   * Read message 2. pqXX: returns {body3} (biscuit echoed ‖ message 3);
   * pqIK: returns {done: true}.
   */
  readMessage2(body) {
    return guard(() => {
      const ss = this.ss;
      if (this.pattern === 'XX') {
        const biscuit = take(body, 0, BISCUIT_LEN);
        let off = BISCUIT_LEN;
        const ct = ss.decryptAndHash(take(body, off, CT));
        off += CT;
        ss.mixKey(xwingDecaps(this.e, ct));
        const rsLen = ss.sealedLen(PK);
        this.rs = ss.decryptAndHash(take(body, off, rsLen));
        off += rsLen;
        const hello = readHello(this.ctx, ss.decryptAndHash(body.subarray(off)), this.rs, false);
        if (!equalBytes(hello.nodeId, this.peerId)) throw new HandshakeError('wrong-identity');
        this.peer = hello;
        // message 3: skem, s
        const { ss: k, ct: ct3 } = this.ctx.encaps(this.rs);
        const parts = [biscuit, ss.encryptAndHash(ct3)];
        ss.mixKey(k);
        parts.push(ss.encryptAndHash(this.ctx.identity.xwing.pk));
        parts.push(ss.encryptAndHash(helloBytes(this.ctx, null)));
        return { body3: concat(parts) };
      }
      let off = 0;
      const n1 = ss.sealedLen(CT);
      ss.mixKey(xwingDecaps(this.e, ss.decryptAndHash(take(body, off, n1))));
      off += n1;
      const n2 = ss.sealedLen(CT);
      ss.mixKey(xwingDecaps(this.ctx.identity.xwing, ss.decryptAndHash(take(body, off, n2))));
      off += n2;
      const hello = readHello(this.ctx, ss.decryptAndHash(body.subarray(off)), this.rs, false);
      if (!equalBytes(hello.nodeId, this.peerId)) throw new HandshakeError('wrong-identity');
      this.peer = hello;
      return this.finish();
    });
  }

  /** Read pqXX message 4. */
  readMessage4(body) {
    return guard(() => {
      const ss = this.ss;
      const n1 = ss.sealedLen(CT);
      ss.mixKey(xwingDecaps(this.ctx.identity.xwing, ss.decryptAndHash(take(body, 0, n1))));
      const pt = ss.decryptAndHash(body.subarray(n1));
      if (pt.length !== 0) throw new HandshakeError('bad-handshake', 'non-empty message 4 payload');
      return this.finish();
    });
  }

  finish() {
    const [k1, k2] = this.ss.split();
    return { done: true, send: k1, recv: k2, handshakeHash: this.ss.h, peer: this.peer };
  }
}

// ---------------------------------------------------------------- responder

/**
 * Responder secrets: biscuit keys (epoch -> key), a monotonically increasing
 * biscuit counter. `ctx.rng` draws indices.
 */
export class ResponderSecrets {
  constructor(rng, epoch = 0, key = null) {
    this.rng = rng;
    this.epoch = epoch;
    this.keys = new Map([[epoch, key ?? rng(32)]]);
    this.counter = 0n;
  }
  rotate() {
    const e = (this.epoch + 1) & 0xff;
    this.keys.set(e, this.rng(32));
    for (const k of this.keys.keys()) if (k !== e && k !== this.epoch) this.keys.delete(k);
    this.epoch = e;
  }
}

const be32 = (v) => Uint8Array.of(v >>> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff);
const readBe32 = (b, o) => ((b[o] << 24) >>> 0) + (b[o + 1] << 16) + (b[o + 2] << 8) + b[o + 3];
export const addrHash = (addrKey) => blake2b(ascii(addrKey), { dkLen: 16 });

function sealBiscuit(secrets, ss, isid, rsid, created, addrKey, ctxAddrHash = null) {
  secrets.counter += 1n;
  const ctr = new Uint8Array(8);
  new DataView(ctr.buffer).setBigUint64(0, secrets.counter);
  const n8 = new Uint8Array(8);
  new DataView(n8.buffer).setBigUint64(0, ss.n);
  const t = new Uint8Array(8);
  new DataView(t.buffer).setFloat64(0, created);
  const ah = ctxAddrHash ?? addrHash(addrKey);
  const state = concat([ss.ck, ss.h, ss.k, n8, be32(isid), be32(rsid), t, ah]);
  const head = concat([Uint8Array.of(secrets.epoch), ctr]);
  return concat([head, aeadEncrypt(secrets.keys.get(secrets.epoch), secrets.counter, head, state)]);
}

/** Open a biscuit; returns its fields or throws HandshakeError('bad-biscuit'). */
export function openBiscuit(secrets, biscuit) {
  const epoch = biscuit[0];
  const key = secrets.keys.get(epoch);
  if (!key) throw new HandshakeError('bad-biscuit', 'unknown epoch');
  const counter = new DataView(biscuit.buffer, biscuit.byteOffset + 1, 8).getBigUint64(0);
  const st = aeadDecrypt(key, counter, biscuit.subarray(0, 9), biscuit.subarray(9, BISCUIT_LEN));
  if (!st) throw new HandshakeError('bad-biscuit');
  const dv = new DataView(st.buffer, st.byteOffset);
  return {
    counter,
    ck: st.slice(0, 64),
    h: st.slice(64, 128),
    k: st.slice(128, 160),
    n: dv.getBigUint64(160),
    isid: readBe32(st, 168),
    rsid: readBe32(st, 172),
    created: dv.getFloat64(176),
    addrHash: st.slice(184, 200),
  };
}

/** pqXX message 1 -> message 2 body; the responder keeps no state. */
export function respondXX1(ctx, secrets, body, isid, addrKey) {
  return guard(() => {
    const ss = SymmetricState.initialize(NAMES.XX);
    ss.mixHash(prologue(ctx.difficulty));
    const re = ss.decryptAndHash(take(body, 0, PK));
    const payload = ss.decryptAndHash(body.subarray(PK));
    if (payload.length !== 0) throw new HandshakeError('bad-handshake', 'message 1 payload not empty');
    const rsid = randIndex(ctx.rng);
    const { ss: k, ct } = ctx.encaps(re);
    const parts = [ss.encryptAndHash(ct)];
    ss.mixKey(k);
    parts.push(ss.encryptAndHash(ctx.identity.xwing.pk));
    parts.push(ss.encryptAndHash(helloBytes(ctx, null)));
    const biscuit = sealBiscuit(secrets, ss, isid, rsid, ctx.now(), addrKey, ctx.addrHash);
    return { rsid, body2: concat([biscuit, ...parts]) };
  });
}

/**
 * pqXX message 3 -> keys and message 4 body. The caller checks biscuit replay
 * and age with the returned `biscuit` fields before using the result.
 */
export function respondXX3(ctx, secrets, body, sid, rid, addrKey) {
  const b = openBiscuit(secrets, take(body, 0, BISCUIT_LEN));
  if (b.isid !== sid || b.rsid !== rid) throw new HandshakeError('bad-biscuit', 'indices');
  if (!equalBytes(b.addrHash, ctx.addrHash ?? addrHash(addrKey))) throw new HandshakeError('bad-biscuit', 'address');
  return guard(() => {
    const ss = SymmetricState.restore(b.ck, b.h, b.k, b.n);
    let off = BISCUIT_LEN;
    const n1 = ss.sealedLen(CT);
    ss.mixKey(xwingDecaps(ctx.identity.xwing, ss.decryptAndHash(take(body, off, n1))));
    off += n1;
    const n2 = ss.sealedLen(PK);
    const rs = ss.decryptAndHash(take(body, off, n2));
    off += n2;
    const peer = readHello(ctx, ss.decryptAndHash(body.subarray(off)), rs, false);
    const { ss: k, ct } = ctx.encaps(rs);
    const parts = [ss.encryptAndHash(ct)];
    ss.mixKey(k);
    parts.push(ss.encryptAndHash(new Uint8Array(0)));
    const [k1, k2] = ss.split();
    return { biscuit: b, peer, body4: concat(parts), send: k2, recv: k1, handshakeHash: ss.h };
  });
}

/** pqIK message 1 -> keys and message 2 body. */
export function respondIK1(ctx, body) {
  return guard(() => {
    const ss = SymmetricState.initialize(NAMES.IK);
    ss.mixHash(prologue(ctx.difficulty));
    ss.mixHash(ctx.identity.xwing.pk);
    let off = 0;
    const re = ss.decryptAndHash(take(body, off, PK));
    off += PK;
    const ct1 = ss.decryptAndHash(take(body, off, CT));
    off += CT;
    ss.mixKey(xwingDecaps(ctx.identity.xwing, ct1));
    const n2 = ss.sealedLen(PK);
    const rs = ss.decryptAndHash(take(body, off, n2));
    off += n2;
    const peer = readHello(ctx, ss.decryptAndHash(body.subarray(off)), rs, true);
    const rsid = randIndex(ctx.rng);
    const a = ctx.encaps(re);
    const parts = [ss.encryptAndHash(a.ct)];
    ss.mixKey(a.ss);
    const b = ctx.encaps(rs);
    parts.push(ss.encryptAndHash(b.ct));
    ss.mixKey(b.ss);
    parts.push(ss.encryptAndHash(helloBytes(ctx, null)));
    const [k1, k2] = ss.split();
    return { rsid, peer, body2: concat(parts), send: k2, recv: k1, handshakeHash: ss.h };
  });
}

// ---------------------------------------------------------------- fragments and MACs (§4, §5)

const HS_LABEL = ascii('qdht-hs');
export const mac1Key = (responderId) => blake2b(concat([ascii('qdht-mac1'), responderId]), { dkLen: 32 });
export const cookieBoxKeyBase = (responderId) => blake2b(concat([ascii('qdht-cookie'), responderId]), { dkLen: 32 });

export function macInput(kind, sid, rid, i, c, body) {
  return concat([HS_LABEL, Uint8Array.of(kind), be32(sid), be32(rid), Uint8Array.of(i, c), body]);
}
export const mac1 = (key, m) => blake2b(m, { key, dkLen: 16 });
export const mac2 = (cookie, m, m1) => blake2b(concat([m, m1]), { key: cookie, dkLen: 16 });

/**
 * Split a handshake body into encoded `session-hs` datagrams.
 * @param {Uint8Array|null} cookie mac2 cookie, when the responder asked for one
 */
export function fragmentHandshake(kind, sid, rid, body, responderId, datagramSize = 1200, cookie = null) {
  const max = datagramSize - 112;
  const c = Math.max(1, Math.ceil(body.length / max));
  if (c > 16) throw new RangeError('handshake message too long');
  const key = mac1Key(responderId);
  const out = [];
  for (let i = 0; i < c; i++) {
    const part = body.subarray(i * max, Math.min(body.length, (i + 1) * max));
    const m = macInput(kind, sid, rid, i, c, part);
    const msg = { type: 'hs', kind, sid, rid, i, c, body: part, mac1: mac1(key, m) };
    if (cookie) msg.mac2 = mac2(cookie, m, msg.mac1);
    out.push(encode(msg));
  }
  return out;
}
