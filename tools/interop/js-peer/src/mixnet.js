// The mixnet packet format of protocol-spec/10-mixnet.md, written from its
// text: geometry (§2), per-hop keys (§3), LIONESS (§4), routing commands
// (§5), KEM-Sphinx creation and unwrapping over X-Wing (§6), payload framing
// and reply blocks (§7), epoch keys with replay stores (§8.1). Sans-IO: no
// clock, no sockets; randomness (encapsulation, SURB ids and seeds) is
// injectable so the spec's vectors can be reproduced byte for byte.
import { sha256 } from '@noble/hashes/sha2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { chacha20 } from '@noble/ciphers/chacha.js';
import { blake2b, concat, ascii, randomBytes, XWING, xwingEncaps, xwingDecaps, xwingExpand } from './crypto.js';

export const VERSION = Uint8Array.of(0x00, 0x01);
export const COMMANDS_SIZE = 70; // C (§2)
export const MAC_SIZE = 32;
export const TAG_SIZE = 32; // the zero tag in front of every block (§2, §6.2)
export const SURB_ID_SIZE = 16;
export const NODE_ID_SIZE = 32;

const CMD_NEXT_HOP = 0x01;
const CMD_RECIPIENT = 0x02;
const CMD_SURB_REPLY = 0x03;
const CMD_DELAY = 0x80;

export const PAYLOAD_KIND = Object.freeze({ cover: 0, message: 1, request: 2 });

/** A packet (or a payload) dropped for one of the spec's reasons; never escapes `Mix.receive`. */
export class MixDrop extends Error {
  constructor(reason, detail = '') {
    super(detail ? `${reason}: ${detail}` : reason);
    this.reason = reason;
  }
}

const u8 = (n) => Uint8Array.of(n & 0xff);
const u16 = (n) => Uint8Array.of((n >>> 8) & 0xff, n & 0xff);
const u32 = (n) => Uint8Array.of((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
const readU16 = (b, o) => (b[o] << 8) | b[o + 1];
const readU32 = (b, o) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

function xor(a, b) {
  if (a.length !== b.length) throw new RangeError(`xor of ${a.length} and ${b.length} bytes`);
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}

function isZero(b) {
  let acc = 0;
  for (let i = 0; i < b.length; i++) acc |= b[i];
  return acc === 0;
}

/** Constant-time comparison of two equal-length byte strings. */
function equalCt(a, b) {
  if (a.length !== b.length) return false;
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i] ^ b[i];
  return acc === 0;
}

function bytesOf(name, b, n) {
  if (!(b instanceof Uint8Array)) throw new TypeError(`${name}: bytes expected`);
  if (n !== undefined && b.length !== n) throw new RangeError(`${name}: ${n} bytes expected, got ${b.length}`);
  return b;
}

function delayOf(name, ms) {
  if (!Number.isInteger(ms) || ms < 0 || ms > 0xffffffff) throw new RangeError(`${name}: u32 milliseconds expected`);
  return ms;
}

// ---------------------------------------------------------------- §1 primitives

/** S(k, iv, m): m ⊕ ChaCha20 keystream (RFC 8439, block counter 0). */
export const stream = (key, iv, m) => chacha20(key, iv, m);
/** MAC(k, m): HMAC-SHA256. */
export const mac = (key, m) => hmac(sha256, key, m);

// ---------------------------------------------------------------- §2 geometry

/**
 * The sizes and digest of a geometry: `hops` (L, 3 or 5) and `userPayload`
 * (U, 2048 by default). Frozen; every other function takes it first.
 */
export function geometry(hops = 3, userPayload = 2048) {
  if (hops !== 3 && hops !== 5) throw new RangeError(`geometry: L must be 3 or 5, got ${hops}`);
  if (!Number.isInteger(userPayload) || userPayload < 0 || userPayload > 0xffff)
    throw new RangeError(`geometry: U must fit a u16 length, got ${userPayload}`);
  const C = COMMANDS_SIZE;
  const CT = XWING.ct;
  const SL = C + CT;
  const R = hops * SL;
  const H = VERSION.length + CT + R + MAC_SIZE;
  const surb = H + NODE_ID_SIZE + 32;
  const P = 3 + surb + userPayload;
  const digest = sha256(
    concat([ascii('qdht/mix/geometry/v1'), ascii('X-Wing'), u16(1), u8(hops), u16(C), u16(MAC_SIZE), u32(userPayload)]),
  );
  return Object.freeze({ hops, U: userPayload, C, CT, SL, R, H, surb, P, packet: H + TAG_SIZE + P, digest });
}

// ---------------------------------------------------------------- §3 keys

/** The five per-hop keys of §3 from a hop's 32-byte shared secret. */
export function hopKeys(geo, ss) {
  const k = hkdf(sha256, bytesOf('ss', ss, 32), geo.digest, ascii('qdht/mix/v1/hop'), 252);
  return {
    mac: k.slice(0, 32),
    headerKey: k.slice(32, 64),
    headerIv: k.slice(64, 76),
    payloadKey: k.slice(76, 204),
    payloadIv: k.slice(204, 252),
  };
}

/** The replay tag of a packet's KEM ciphertext (§6.2 step 2). */
export const replayTag = (ct) => sha256(concat([ascii('qdht/mix/v1/replay'), ct]));

// ---------------------------------------------------------------- §4 LIONESS

const lionessH = (k, iv, m) => blake2b(m, { key: concat([k, iv]), dkLen: 32 });

function lionessParts(key, iv, block) {
  bytesOf('LIONESS key', key, 128);
  bytesOf('LIONESS iv', iv, 48);
  if (bytesOf('LIONESS block', block).length < 33) throw new RangeError('LIONESS block: at least 33 bytes');
  const k = [0, 1, 2, 3].map((i) => key.subarray(32 * i, 32 * i + 32));
  const v = [0, 1, 2, 3].map((i) => iv.subarray(12 * i, 12 * i + 12));
  return { k, v, lh: block.slice(0, 32), rh: block.slice(32) };
}

/** LIONESS-BLAKE2b-ChaCha20 encryption of `block` (key 128 bytes, iv 48 bytes). */
export function lionessEncrypt(key, iv, block) {
  let { k, v, lh, rh } = lionessParts(key, iv, block);
  rh = stream(xor(lh, k[0]), v[0], rh);
  lh = xor(lh, lionessH(k[1], v[1], rh));
  rh = stream(xor(lh, k[2]), v[2], rh);
  lh = xor(lh, lionessH(k[3], v[3], rh));
  return concat([lh, rh]);
}

/** LIONESS-BLAKE2b-ChaCha20 decryption: the four steps in reverse. */
export function lionessDecrypt(key, iv, block) {
  let { k, v, lh, rh } = lionessParts(key, iv, block);
  lh = xor(lh, lionessH(k[3], v[3], rh));
  rh = stream(xor(lh, k[2]), v[2], rh);
  lh = xor(lh, lionessH(k[1], v[1], rh));
  rh = stream(xor(lh, k[0]), v[0], rh);
  return concat([lh, rh]);
}

// ---------------------------------------------------------------- §5 commands

function forwardCommands(nextId, nextMac, delayMs) {
  return concat([u8(CMD_NEXT_HOP), bytesOf('next hop id', nextId, 32), nextMac, u8(CMD_DELAY), u32(delayMs)]);
}

function terminalCommands(geo, recipient, delayMs, surbId) {
  const parts = [u8(CMD_RECIPIENT), bytesOf('recipient', recipient, 32), u8(CMD_DELAY), u32(delayMs)];
  if (surbId !== undefined) parts.push(u8(CMD_SURB_REPLY), bytesOf('SURB id', surbId, SURB_ID_SIZE));
  const cmds = concat(parts);
  return concat([cmds, new Uint8Array(geo.C - cmds.length)]);
}

/**
 * Parse a decrypted slot's commands (§5), in whatever order they come.
 * Returns `{ nextHop, nextMac, delayMs }` or `{ recipient, delayMs, surbId }`;
 * a slot breaking §5's rules raises MixDrop('bad-commands').
 */
export function parseCommands(cmds) {
  const seen = new Map();
  let o = 0;
  const body = { [CMD_NEXT_HOP]: 64, [CMD_RECIPIENT]: 32, [CMD_SURB_REPLY]: SURB_ID_SIZE, [CMD_DELAY]: 4 };
  while (o < cmds.length && cmds[o] !== 0x00) {
    const code = cmds[o];
    const n = body[code];
    if (n === undefined) throw new MixDrop('bad-commands', `unknown command 0x${code.toString(16)}`);
    if (seen.has(code)) throw new MixDrop('bad-commands', `command 0x${code.toString(16)} twice`);
    if (o + 1 + n > cmds.length) throw new MixDrop('bad-commands', 'command body past the commands');
    seen.set(code, cmds.subarray(o + 1, o + 1 + n));
    o += 1 + n;
  }
  if (!isZero(cmds.subarray(o))) throw new MixDrop('bad-commands', 'non-zero bytes after the end of the commands');
  // The rules of §5, in any order: one of 01 and 02, one 80, 03 only with 02.
  const hop = seen.has(CMD_NEXT_HOP);
  if (hop === seen.has(CMD_RECIPIENT)) throw new MixDrop('bad-commands', 'exactly one of next hop and recipient');
  if (!seen.has(CMD_DELAY)) throw new MixDrop('bad-commands', 'no delay');
  if (hop && seen.has(CMD_SURB_REPLY)) throw new MixDrop('bad-commands', 'SURB reply on a forwarding slot');
  const delayMs = readU32(seen.get(CMD_DELAY), 0);
  if (hop) {
    const b = seen.get(CMD_NEXT_HOP);
    return { nextHop: b.slice(0, 32), nextMac: b.slice(32, 64), delayMs };
  }
  const surb = seen.get(CMD_SURB_REPLY);
  return { recipient: seen.get(CMD_RECIPIENT).slice(), delayMs, surbId: surb ? surb.slice() : null };
}

// ---------------------------------------------------------------- §6.1 creation

/**
 * Build a header along `path` (L entries `{ id, pk, delayMs }`) whose last
 * hop is told to deliver to `recipient` (with `surbId` for a reply block).
 * `encaps(pk, i)` returns `{ ss, ct }` (X-Wing encapsulation by default).
 * Returns `{ header, keys }`: the header bytes and every hop's keys.
 */
export function createHeader(geo, path, recipient, { surbId, encaps = (pk) => xwingEncaps(pk) } = {}) {
  const L = geo.hops;
  if (!Array.isArray(path) || path.length !== L) throw new RangeError(`path: ${L} hops expected`);
  const { R, SL, CT } = geo;
  const hops = path.map((h, i) => {
    bytesOf(`hop ${i} id`, h.id, 32);
    bytesOf(`hop ${i} key`, h.pk, XWING.pk);
    delayOf(`hop ${i} delay`, h.delayMs);
    const { ss, ct } = encaps(h.pk, i);
    bytesOf(`hop ${i} ct`, ct, CT);
    const keys = hopKeys(geo, ss);
    const s = stream(keys.headerKey, keys.headerIv, new Uint8Array(R + SL));
    return { ...h, ss, ct, keys, s };
  });
  let filler = new Uint8Array(0);
  for (let j = 0; j < L - 1; j++) filler = xor(concat([filler, new Uint8Array(SL)]), hops[j].s.subarray(R - j * SL, R + SL));
  const last = hops[L - 1];
  const terminal = concat([terminalCommands(geo, recipient, last.delayMs, surbId), new Uint8Array(CT)]);
  let routing = concat([xor(terminal, last.s.subarray(0, SL)), filler]);
  let tag = mac(last.keys.mac, concat([VERSION, last.ct, routing]));
  for (let i = L - 2; i >= 0; i--) {
    const next = hops[i + 1];
    const slot = concat([forwardCommands(next.id, tag, hops[i].delayMs), next.ct]);
    routing = xor(concat([slot, routing.subarray(0, R - SL)]), hops[i].s.subarray(0, R));
    tag = mac(hops[i].keys.mac, concat([VERSION, hops[i].ct, routing]));
  }
  const header = concat([VERSION, hops[0].ct, routing, tag]);
  return { header, keys: hops.map((h) => ({ ss: h.ss, ct: h.ct, ...h.keys })) };
}

/** Encrypt `0^32 ‖ payload` for a packet: hop L−1's key first, hop 0's last (§6.1). */
function wrapBlock(geo, keys, payload) {
  let block = concat([new Uint8Array(TAG_SIZE), bytesOf('payload', payload, geo.P)]);
  for (let i = keys.length - 1; i >= 0; i--) block = lionessEncrypt(keys[i].payloadKey, keys[i].payloadIv, block);
  return block;
}

/**
 * A forward packet along `path` to `recipient` carrying `payload` (P bytes,
 * see encodePayload). Returns `{ packet, firstHop, keys }`; the packet goes to `firstHop`.
 */
export function createPacket(geo, path, recipient, payload, { encaps } = {}) {
  const { header, keys } = createHeader(geo, path, recipient, { encaps });
  return { packet: concat([header, wrapBlock(geo, keys, payload)]), firstHop: path[0].id, keys };
}

// ---------------------------------------------------------------- §7.1 payload

/** `kind ‖ length ‖ surb slot ‖ data ‖ 0^(U − length)` (§7.1). */
export function encodePayload(geo, kind, data, surb) {
  if (![0, 1, 2].includes(kind)) throw new RangeError(`payload kind ${kind}: 0, 1 or 2 expected`);
  bytesOf('data', data);
  if (data.length > geo.U) throw new RangeError(`data of ${data.length} bytes: at most U = ${geo.U}`);
  if ((kind === PAYLOAD_KIND.request) !== (surb !== undefined && surb !== null))
    throw new RangeError('a reply block goes with a request (kind 2) and only with it');
  const slot = surb ? bytesOf('SURB', surb, geo.surb) : new Uint8Array(geo.surb);
  return concat([u8(kind), u16(data.length), slot, data, new Uint8Array(geo.U - data.length)]);
}

/** Decode a delivered payload; MixDrop('bad-framing') if §7.1 is broken. */
export function decodePayload(geo, payload) {
  if (payload.length !== geo.P) throw new MixDrop('bad-framing', `payload of ${payload.length} bytes`);
  const kind = payload[0];
  const length = readU16(payload, 1);
  if (kind > PAYLOAD_KIND.request) throw new MixDrop('bad-framing', `kind ${kind}`);
  if (length > geo.U) throw new MixDrop('bad-framing', `length ${length} > U`);
  const start = 3 + geo.surb;
  if (!isZero(payload.subarray(start + length))) throw new MixDrop('bad-framing', 'non-zero padding');
  const slot = payload.subarray(3, start);
  // A request's slot holds a reply block (its header's version first); any other kind's is zero.
  if (kind === PAYLOAD_KIND.request ? slot[0] !== VERSION[0] || slot[1] !== VERSION[1] : !isZero(slot))
    throw new MixDrop('bad-framing', kind === PAYLOAD_KIND.request ? 'reply block of another version' : 'non-zero SURB slot');
  return {
    kind,
    surb: kind === PAYLOAD_KIND.request ? slot.slice() : null,
    data: payload.slice(start, start + length),
  };
}

// ---------------------------------------------------------------- §7.2 SURBs

/**
 * A single-use reply block along `path` back to `creator`. Returns
 * `{ surb, state }`: the SURB bytes (for a request's payload) and what the
 * creator keeps to open the reply (`openReply`).
 */
export function createSurb(geo, path, creator, { encaps, surbId = randomBytes(SURB_ID_SIZE), seed = randomBytes(32) } = {}) {
  bytesOf('SURB id', surbId, SURB_ID_SIZE);
  bytesOf('SURB seed', seed, 32);
  const { header, keys } = createHeader(geo, path, creator, { surbId, encaps });
  const surb = concat([header, path[0].id, seed]);
  const state = { surbId: surbId.slice(), seed: seed.slice(), keys: keys.map((k) => ({ payloadKey: k.payloadKey, payloadIv: k.payloadIv })) };
  return { surb, state };
}

const surbKey = (geo, seed) => {
  const k = hkdf(sha256, seed, geo.digest, ascii('qdht/mix/v1/surb'), 176);
  return { key: k.slice(0, 128), iv: k.slice(128, 176) };
};

/** The replier's side: `{ firstHop, packet }` answering `surb` with `payload` (P bytes). */
export function useSurb(geo, surb, payload) {
  bytesOf('SURB', surb, geo.surb);
  const header = surb.subarray(0, geo.H);
  const firstHop = surb.slice(geo.H, geo.H + 32);
  const { key, iv } = surbKey(geo, surb.subarray(geo.H + 32));
  const block = lionessEncrypt(key, iv, concat([new Uint8Array(TAG_SIZE), bytesOf('payload', payload, geo.P)]));
  return { firstHop, packet: concat([header, block]) };
}

/** The creator opens a delivered reply block; MixDrop('bad-payload') unless its zero tag holds. */
export function openReply(geo, state, block) {
  if (block.length !== TAG_SIZE + geo.P) throw new MixDrop('bad-payload', `block of ${block.length} bytes`);
  let b = block;
  for (let i = state.keys.length - 1; i >= 0; i--) b = lionessEncrypt(state.keys[i].payloadKey, state.keys[i].payloadIv, b);
  const { key, iv } = surbKey(geo, state.seed);
  b = lionessDecrypt(key, iv, b);
  if (!isZero(b.subarray(0, TAG_SIZE))) throw new MixDrop('bad-payload', 'zero tag');
  return b.slice(TAG_SIZE);
}

// ---------------------------------------------------------------- §6.2 unwrapping

/** Steps 1 of §6.2: split a packet, MixDrop on size or version. */
export function splitPacket(geo, packet) {
  if (!(packet instanceof Uint8Array) || packet.length !== geo.packet) throw new MixDrop('wrong-size', `${packet?.length} bytes`);
  if (packet[0] !== VERSION[0] || packet[1] !== VERSION[1]) throw new MixDrop('bad-version');
  const ctEnd = 2 + geo.CT;
  const routingEnd = ctEnd + geo.R;
  return {
    ct: packet.subarray(2, ctEnd),
    routing: packet.subarray(ctEnd, routingEnd),
    mac: packet.subarray(routingEnd, geo.H),
    block: packet.subarray(geo.H),
  };
}

/** Steps 3: decapsulate with one expanded X-Wing key and check the MAC; null if it fails. */
function tryKey(geo, key, parts) {
  let ss;
  try {
    ss = xwingDecaps(key, parts.ct);
  } catch {
    throw new MixDrop('bad-kem'); // a low-order X25519 part: the same under every key
  }
  const keys = hopKeys(geo, ss);
  const expect = mac(keys.mac, concat([VERSION, parts.ct, parts.routing]));
  return equalCt(expect, parts.mac) ? { ss, keys } : null;
}

/** Steps 5–9 of §6.2 once the MAC verified. */
function unwrapVerified(geo, parts, keys) {
  const { SL, C, R } = geo;
  const clear = stream(keys.headerKey, keys.headerIv, concat([parts.routing, new Uint8Array(SL)]));
  const cmd = parseCommands(clear.subarray(0, C));
  const nextCt = clear.subarray(C, SL);
  const nextRouting = clear.subarray(SL, SL + R);
  const block = lionessDecrypt(keys.payloadKey, keys.payloadIv, parts.block);
  if (cmd.nextHop) {
    const packet = concat([VERSION, nextCt, nextRouting, cmd.nextMac, block]);
    return { result: 'forward', nextHop: cmd.nextHop, delayMs: cmd.delayMs, packet };
  }
  if (cmd.surbId) return { result: 'deliver', recipient: cmd.recipient, delayMs: cmd.delayMs, surbId: cmd.surbId, payload: block };
  if (!isZero(block.subarray(0, TAG_SIZE))) throw new MixDrop('bad-payload', 'zero tag');
  return { result: 'deliver', recipient: cmd.recipient, delayMs: cmd.delayMs, surbId: null, payload: block.slice(TAG_SIZE) };
}

/**
 * Unwrap one packet with one X-Wing key (no replay store): the whole of
 * §6.2 but step 2 and 4. Returns the output with `tag`, `ss` and `keys`; MixDrop otherwise.
 */
export function unwrap(geo, key, packet) {
  const parts = splitPacket(geo, packet);
  const ok = tryKey(geo, key, parts);
  if (!ok) throw new MixDrop('bad-mac');
  return { tag: replayTag(parts.ct), ss: ok.ss, keys: ok.keys, ...unwrapVerified(geo, parts, ok.keys) };
}

/**
 * The replay store of one epoch key (§8.1): a Bloom filter sized for `n`
 * tags at false-positive rate `p`, `k` positions from the tag by double
 * hashing (the tag is a SHA-256 output: its first two 32-bit words).
 */
export class ReplayFilter {
  constructor(n = 1_000_000, p = 1e-6) {
    this.m = Math.ceil((-n * Math.log(p)) / Math.LN2 ** 2);
    this.k = Math.max(1, Math.round((this.m / n) * Math.LN2));
    this.bits = new Uint8Array(Math.ceil(this.m / 8));
  }

  #positions(tag) {
    const h1 = readU32(tag, 0);
    const h2 = (readU32(tag, 4) | 1) >>> 0;
    const out = [];
    for (let i = 0; i < this.k; i++) out.push((h1 + i * h2) % this.m);
    return out;
  }

  has(tag) {
    return this.#positions(tag).every((b) => (this.bits[b >>> 3] & (1 << (b & 7))) !== 0);
  }

  add(tag) {
    for (const b of this.#positions(tag)) this.bits[b >>> 3] |= 1 << (b & 7);
  }
}

/**
 * A mix's epoch keys (§8.1), each with its own replay store, and the
 * per-reason drop counters (§8.2). `receive` never throws on remote input.
 * `replay` sizes each store (`{ n, p }`, the reference's by default).
 */
export class MixKeyring {
  constructor(geo, replay = {}) {
    this.geo = geo;
    this.replay = { n: 1_000_000, p: 1e-6, ...replay };
    /** epoch → { key (expanded X-Wing), replay (ReplayFilter) } */
    this.epochs = new Map();
    this.drops = Object.create(null);
    this.processed = 0;
  }

  /** Hold the X-Wing key of `epoch` (32-byte seed); returns its public key. */
  addKey(epoch, seed) {
    if (!Number.isInteger(epoch) || epoch < 0) throw new RangeError('epoch: a non-negative integer expected');
    if (this.epochs.has(epoch)) throw new Error(`epoch ${epoch}: key already held`);
    const key = xwingExpand(seed);
    this.epochs.set(epoch, { key, replay: new ReplayFilter(this.replay.n, this.replay.p) });
    return key.pk;
  }

  /** Keep only the keys of `current − 1 .. current + 1`, erasing the others with their stores. */
  rotate(current) {
    for (const e of [...this.epochs.keys()]) if (e < current - 1 || e > current + 1) this.epochs.delete(e);
  }

  /** The order of §6.2 step 3: current, next, previous, then any other held. */
  #order(current) {
    const es = [...this.epochs.keys()];
    const rank = (e) => (e === current ? 0 : e === current + 1 ? 1 : e === current - 1 ? 2 : 3);
    return es.sort((a, b) => rank(a) - rank(b) || b - a).map((e) => this.epochs.get(e));
  }

  #drop(reason) {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
    return { result: 'drop', reason };
  }

  /** Process one packet: `{ result: 'forward' | 'deliver', ... }` or `{ result: 'drop', reason }`. */
  receive(packet, current = Math.max(-1, ...this.epochs.keys())) {
    try {
      const parts = splitPacket(this.geo, packet);
      const tag = replayTag(parts.ct);
      const held = this.#order(current);
      if (held.some((h) => h.replay.has(tag))) return this.#drop('replay');
      for (const h of held) {
        const ok = tryKey(this.geo, h.key, parts);
        if (!ok) continue;
        h.replay.add(tag); // step 4: only with the MAC verified
        const out = unwrapVerified(this.geo, parts, ok.keys);
        this.processed++;
        return { tag, ...out };
      }
      return this.#drop('bad-mac');
    } catch (e) {
      if (e instanceof MixDrop) return this.#drop(e.reason);
      return this.#drop('internal');
    }
  }
}
