// Session endpoint: handshakes (04-handshake.md) and transport (05-transport.md)
// over any datagram socket. Sans-IO: the owner feeds `receive(bytes, addr, now)`,
// calls `tick(now)` periodically and sends what `sendDatagram(bytes, addr)` gets.
import { decodeMessage } from './messages.js';
import { encode, DecodeError, concat } from './cbor.js';
import { aeadEncrypt, aeadDecrypt, ascii, blake2b, randomBytes, sha3_256, equalBytes } from './crypto.js';
import {
  Initiator,
  ResponderSecrets,
  respondXX1,
  respondXX3,
  respondIK1,
  fragmentHandshake,
  macInput,
  mac1Key,
  mac1 as computeMac1,
  mac2 as computeMac2,
  cookieBoxKeyBase,
  HandshakeError,
  makeCtx,
} from './handshake.js';

export const DEFAULT_CONFIG = Object.freeze({
  datagramSize: 1200,
  maxMessageSize: 73728,
  replayWindow: 2048,
  rekeyAfterTime: 120,
  rekeyAfterMessages: 2 ** 20,
  rejectAfterTime: 180,
  reassemblyTimeout: 10,
  reassemblyPeerBytes: 1 << 20,
  reassemblyPeerMessages: 64,
  reassemblyGlobalBytes: 16 << 20,
  handshakeReassemblySlots: 256,
  handshakeReassemblyBytes: 1 << 20,
  handshakeTimeout: 10,
  handshakeRetry: 1,
  sendQueueMessages: 64,
  underLoadHandshakesPerS: 50,
  secretRotation: 120,
  amplificationFactor: 3,
  maxSessions: 100000,
  biscuitReplayEntries: 65536,
  staticKeyCache: 256,
  msg4Cache: 1024,
});

const hexOf = (b) => Buffer.from(b).toString('hex');
const be32 = (v) => Uint8Array.of(v >>> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff);
const DATA_AD = ascii('qdht-data');
const RESPONDER_KINDS = new Set([1, 3, 5]);
const AWAIT_NEXT = { 1: 2, 3: 4, 5: 6 };

/**
 * `addr` = {tr?, address, port}; its key is the canonical "host:port" text,
 * prefixed "ws:" for a WebSocket address (05 §9.2: a TCP source address is
 * not the UDP one of the same numbers). A local choice (04 §5.2).
 */
export const addrKey = (a) => `${a.tr === 'ws' ? 'ws:' : ''}${a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`}`;

/** Bounded LRU map. */
class Lru extends Map {
  constructor(limit) {
    super();
    this.limit = limit;
  }
  put(k, v) {
    this.delete(k);
    this.set(k, v);
    while (this.size > this.limit) this.delete(this.keys().next().value);
    return v;
  }
}

/** Sliding replay window over 64-bit counters (05-transport.md §2). */
class ReplayWindow {
  constructor(size) {
    this.size = BigInt(size);
    this.highest = -1n;
    this.seen = new Set();
  }
  /** 'ok' | 'replayed' | 'out-of-window' (no state change) */
  check(n) {
    if (this.highest >= 0n && n + this.size <= this.highest) return 'out-of-window';
    if (this.seen.has(n)) return 'replayed';
    return 'ok';
  }
  mark(n) {
    this.seen.add(n);
    if (n > this.highest) {
      this.highest = n;
      if (this.seen.size > Number(this.size) * 2)
        for (const x of this.seen) if (x + this.size <= this.highest) this.seen.delete(x);
    }
  }
}

export class Endpoint {
  /**
   * @param {object} o
   * @param o.identity crypto.identityFromSeeds(...) result
   * @param {number} o.difficulty network puzzle difficulty
   * @param {(bytes: Uint8Array, addr: object) => void} o.sendDatagram
   * @param {(peerId: Uint8Array, msg: Uint8Array, addr: object, info: object) => void} o.onMessage
   * @param {(peerHex: string, reason: string) => void} [o.onHandshakeFailed]
   * @param {(peerId: Uint8Array, addr: object) => void} [o.onEstablished]
   */
  constructor(o) {
    this.identity = o.identity;
    this.difficulty = o.difficulty;
    this.cfg = { ...DEFAULT_CONFIG, ...(o.config ?? {}) };
    this.sendDatagram = o.sendDatagram;
    this.onMessage = o.onMessage;
    this.onHandshakeFailed = o.onHandshakeFailed ?? (() => {});
    this.onEstablished = o.onEstablished ?? (() => {});
    this.log = o.log ?? (() => {});
    this.keyLog = o.keyLog ?? null;
    this.rng = o.rng ?? randomBytes;
    this.now = o.now ?? (() => Date.now() / 1000);
    this.ctx = makeCtx({ identity: this.identity, difficulty: this.difficulty, rng: this.rng, now: this.now });
    this.secrets = new ResponderSecrets(this.rng);
    this.cookieSecrets = [this.rng(32), this.rng(32)];
    this.lastRotation = this.now();
    this.mac1Own = mac1Key(this.identity.nodeId);
    this.cookieBoxOwn = cookieBoxKeyBase(this.identity.nodeId);
    this.keypairs = new Map(); // local index -> keypair
    this.peers = new Map(); // peer hex -> peer
    this.initiators = new Map(); // local sid -> pending initiator handshake
    this.hsBuffer = new Lru(this.cfg.handshakeReassemblySlots); // responder-bound reassembly
    this.hsBufferBytes = 0;
    this.biscuitSeen = new Lru(this.cfg.biscuitReplayEntries);
    this.biscuitFloor = 0n;
    this.msg4Cache = new Lru(this.cfg.msg4Cache);
    this.staticKeys = new Lru(this.cfg.staticKeyCache);
    this.loadSecond = 0;
    this.loadCount = 0;
    this.reassemblyGlobal = 0;
    this.stats = { drops: Object.create(null), handshakes: 0, sent: 0, received: 0 };
  }

  drop(reason, detail = '') {
    this.stats.drops[reason] = (this.stats.drops[reason] ?? 0) + 1;
    this.log(`drop ${reason}${detail ? ` (${detail})` : ''}`);
  }

  // ------------------------------------------------------------ sending

  peer(peerHex) {
    let p = this.peers.get(peerHex);
    if (!p) {
      p = { hex: peerHex, id: Buffer.from(peerHex, 'hex'), addr: null, current: null, previous: null, pending: null, queue: [], fragId: null };
      this.peers.set(peerHex, p);
      if (this.peers.size > this.cfg.maxSessions) {
        const oldest = this.peers.keys().next().value;
        this.forget(oldest);
      }
    }
    return p;
  }

  /** Whether an established, confirmed session exists with the peer. */
  hasSession(peerId) {
    const p = this.peers.get(hexOf(peerId));
    return !!(p && p.current && this.usable(p.current));
  }

  usable(kp) {
    return kp.confirmed && this.now() - kp.created < this.cfg.rejectAfterTime && kp.sendN < 2n ** 64n - 1n;
  }

  /**
   * Send an application message to `peerId` at `addr` (handshake first if needed).
   * @param {Uint8Array} peerId
   * @param {{address: string, port: number}} addr
   * @param {Uint8Array} msg
   */
  send(peerId, addr, msg) {
    if (msg.length > this.cfg.maxMessageSize) throw new RangeError('msg: longer than max_message_size');
    const p = this.peer(hexOf(peerId));
    if (!p.addr || !p.current) p.addr = addr;
    if (p.current && this.usable(p.current)) {
      this.sendOn(p, p.current, msg);
      this.maybeRekey(p);
      return;
    }
    p.queue.push(msg);
    if (p.queue.length > this.cfg.sendQueueMessages) {
      p.queue.shift();
      this.drop('send-queue-full');
    }
    // Keys we installed as responder wait for the initiator's first packet
    // (04-handshake.md §7): queue behind them instead of starting a handshake.
    if (!p.pending && !this.awaitingConfirmation(p)) this.startHandshake(p, addr);
  }

  awaitingConfirmation(p) {
    const now = this.now();
    for (const kp of this.keypairs.values()) if (kp.peer === p && !kp.confirmed && now - kp.created < this.cfg.handshakeTimeout) return true;
    return false;
  }

  maybeRekey(p) {
    const kp = p.current;
    if (p.pending || !kp) return;
    const age = this.now() - kp.created;
    const limit = this.cfg.rekeyAfterTime + (kp.initiator ? 0 : 10);
    if (age >= limit || kp.sendN >= BigInt(this.cfg.rekeyAfterMessages)) this.startHandshake(p, p.addr);
  }

  /** Start a handshake (pqIK when the peer's static key is cached); `early` only with pqIK. */
  startHandshake(p, addr, early = null) {
    const staticPk = this.staticKeys.get(p.hex) ?? null;
    const pattern = staticPk ? 'IK' : 'XX';
    const hs = new Initiator(this.ctx, pattern, p.id, staticPk, pattern === 'IK' ? early : null);
    p.addr ??= addr;
    const kind = pattern === 'XX' ? 1 : 5;
    const pend = { hs, peer: p, addr, kind, await: AWAIT_NEXT[kind], started: this.now(), retryAt: 0, interval: this.cfg.handshakeRetry, frags: null, datagrams: null, cookie: null };
    pend.body = hs.message1();
    pend.datagrams = fragmentHandshake(kind, hs.sid, 0, pend.body, p.id, this.cfg.datagramSize);
    p.pending = pend;
    this.initiators.set(hs.sid, pend);
    this.stats.handshakes += 1;
    this.transmit(pend);
  }

  transmit(pend) {
    for (const d of pend.datagrams) this.sendDatagram(d, pend.addr);
    pend.retryAt = this.now() + pend.interval;
    pend.interval *= 2;
  }

  sendOn(p, kp, msg) {
    const max = this.cfg.datagramSize - 112;
    if (msg.length <= max) {
      this.sendFrame(kp, { type: 'msg', p: msg });
      return;
    }
    const c = Math.ceil(msg.length / max);
    // 05 §4: ids per peer, continuing across rekeys, from a random start (so a
    // restarted node does not reuse the id of a receiver's stale partial message).
    if (p.fragId === null) p.fragId = Buffer.from(this.rng(4)).readUInt32BE(0);
    const id = p.fragId++;
    for (let i = 0; i < c; i++) this.sendFrame(kp, { type: 'frag', id, i, c, p: msg.subarray(i * max, Math.min(msg.length, (i + 1) * max)) });
  }

  sendFrame(kp, frame) {
    if (!kp.peer.addr) return this.drop('no-address');
    const n = kp.sendN;
    kp.sendN += 1n;
    const ad = concat([DATA_AD, be32(kp.peerIndex)]);
    const ct = aeadEncrypt(kp.send, n, ad, encode(frame));
    const pkt = encode({ type: 'data', rid: kp.peerIndex, n, ct });
    this.stats.sent += 1;
    this.sendDatagram(pkt, kp.peer.addr);
  }

  /**
   * The transport forgot `addr` (05 §9.2: an inbound WebSocket connection
   * closed): sessions sending there wait for the next send() to name an
   * address (a dialable one, from the routing table).
   */
  forgetAddress(addr) {
    const k = addrKey(addr);
    for (const p of this.peers.values()) if (p.addr && addrKey(p.addr) === k) p.addr = null;
  }

  /** Close every session with the peer (sends `close`). */
  closePeer(peerId) {
    const p = this.peers.get(hexOf(peerId));
    if (!p) return;
    if (p.current && this.usable(p.current)) this.sendFrame(p.current, { type: 'close' });
    this.forget(p.hex);
  }

  forget(peerHex) {
    const p = this.peers.get(peerHex);
    if (!p) return;
    for (const [idx, kp] of this.keypairs) if (kp.peer === p) this.keypairs.delete(idx);
    if (p.pending) this.initiators.delete(p.pending.hs.sid);
    this.peers.delete(peerHex);
  }

  // ------------------------------------------------------------ receiving

  /** Feed one received datagram. */
  receive(bytes, addr) {
    if (bytes.length > this.cfg.datagramSize) return this.drop('oversized');
    let m;
    try {
      m = decodeMessage(bytes, ['session-hs', 'session-cookie', 'session-data']);
    } catch (e) {
      if (e instanceof DecodeError) return this.drop('malformed', e.message);
      throw e;
    }
    try {
      if (m.rule === 'session-data') return this.onData(m.msg, addr);
      if (m.rule === 'session-hs') return this.onHs(m.msg, addr, bytes.length);
      return this.onCookie(m.msg);
    } catch (e) {
      if (e instanceof HandshakeError) return this.drop(e.reason, e.message);
      this.drop('internal-error', e.stack);
    }
  }

  onData(m, addr) {
    const kp = this.keypairs.get(m.rid);
    if (!kp) return this.drop('unknown-index');
    const now = this.now();
    if (now - kp.created >= this.cfg.rejectAfterTime) return this.drop('expired-keys');
    const n = BigInt(m.n);
    const w = kp.window.check(n);
    if (w !== 'ok') return this.drop(w);
    const pt = aeadDecrypt(kp.recv, n, concat([DATA_AD, be32(kp.localIndex)]), m.ct);
    if (!pt) return this.drop('bad-tag');
    kp.window.mark(n);
    this.stats.received += 1;
    const p = kp.peer;
    p.addr = addr; // roaming
    if (!kp.confirmed) this.confirm(kp);
    let f;
    try {
      f = decodeMessage(pt, ['session-msg', 'session-frag', 'session-keepalive', 'session-close']);
    } catch (e) {
      if (e instanceof DecodeError) return this.drop('bad-frame', e.message);
      throw e;
    }
    const info = { early: false };
    if (f.rule === 'session-msg') this.onMessage(p.id, f.msg.p, addr, info);
    else if (f.rule === 'session-frag') this.onFrag(kp, f.msg, addr);
    else if (f.rule === 'session-close') this.forget(p.hex);
  }

  confirm(kp) {
    const p = kp.peer;
    kp.confirmed = true;
    if (p.current !== kp) {
      p.previous = p.current;
      p.current = kp;
    }
    this.onEstablished(p.id, p.addr);
    this.flush(p);
  }

  flush(p) {
    const q = p.queue;
    p.queue = [];
    for (const msg of q) this.sendOn(p, p.current, msg);
  }

  onFrag(kp, f, addr) {
    const p = kp.peer;
    p.reasm ??= new Map();
    p.reasmBytes ??= 0;
    const key = String(f.id);
    let e = p.reasm.get(key);
    const c = Number(f.c);
    if (!e) {
      if (c * (this.cfg.datagramSize - 112) > this.cfg.maxMessageSize + this.cfg.datagramSize) return this.drop('oversized');
      e = { c, parts: new Map(), bytes: 0, t: this.now() };
      p.reasm.set(key, e);
      while (p.reasm.size > this.cfg.reassemblyPeerMessages) this.evictOldest(p, 'reassembly-evicted');
    }
    if (e.c !== c) return this.drop('bad-fragment');
    const i = Number(f.i);
    if (e.parts.has(i)) return this.drop('duplicate-fragment');
    if (e.bytes + f.p.length > this.cfg.maxMessageSize) {
      this.removeReasm(p, key);
      return this.drop('oversized');
    }
    while (p.reasmBytes + f.p.length > this.cfg.reassemblyPeerBytes || this.reassemblyGlobal + f.p.length > this.cfg.reassemblyGlobalBytes) {
      if (p.reasm.keys().next().value === key) return this.drop('reassembly-full');
      this.evictOldest(p, 'reassembly-evicted');
    }
    e.parts.set(i, f.p);
    e.bytes += f.p.length;
    p.reasmBytes += f.p.length;
    this.reassemblyGlobal += f.p.length;
    if (e.parts.size === e.c) {
      const msg = concat([...Array(e.c).keys()].map((j) => e.parts.get(j)));
      this.removeReasm(p, key);
      this.onMessage(p.id, msg, addr, { early: false });
    }
  }

  removeReasm(p, key) {
    const e = p.reasm.get(key);
    if (!e) return;
    p.reasm.delete(key);
    p.reasmBytes -= e.bytes;
    this.reassemblyGlobal -= e.bytes;
  }

  evictOldest(p, reason) {
    const k = p.reasm.keys().next().value;
    this.removeReasm(p, k);
    this.drop(reason);
  }

  // ------------------------------------------------------------ handshakes

  onHs(m, addr, size) {
    const kind = Number(m.kind);
    const M = macInput(kind, Number(m.sid), Number(m.rid), Number(m.i), Number(m.c), m.body);
    if (RESPONDER_KINDS.has(kind)) {
      if (!equalBytes(computeMac1(this.mac1Own, M), m.mac1)) return this.drop('bad-mac1');
      if ((kind === 1 || kind === 5) && m.rid !== 0) return this.drop('bad-handshake', 'rid of a first message');
      return this.onResponderFragment(m, kind, addr, size, M);
    }
    const pend = this.initiators.get(Number(m.rid));
    if (!pend) return this.drop('unknown-index', 'no such handshake');
    if (!equalBytes(computeMac1(mac1Key(pend.peer.id), M), m.mac1)) return this.drop('bad-mac1');
    if (kind !== pend.await) return this.drop('bad-handshake', `unexpected kind ${kind}`);
    const c = Number(m.c);
    if (!pend.frags || pend.frags.sid !== m.sid || pend.frags.c !== c) pend.frags = { sid: m.sid, c, parts: new Map() };
    if (pend.frags.parts.has(m.i)) return this.drop('duplicate-fragment');
    pend.frags.parts.set(m.i, m.body);
    if (pend.frags.parts.size < c) return;
    const body = concat([...Array(c).keys()].map((j) => pend.frags.parts.get(j)));
    pend.frags = null;
    this.onInitiatorMessage(pend, kind, Number(m.sid), body, addr);
  }

  onInitiatorMessage(pend, kind, rsid, body, addr) {
    const p = pend.peer;
    let res;
    try {
      res = kind === 2 ? pend.hs.readMessage2(body) : kind === 4 ? pend.hs.readMessage4(body) : pend.hs.readMessage2(body);
    } catch (e) {
      if (e instanceof HandshakeError && e.reason === 'wrong-identity') {
        this.failHandshake(pend, 'wrong-identity');
        return this.drop('bad-handshake', 'wrong-identity');
      }
      throw e;
    }
    if (kind === 2) {
      pend.rsid = rsid;
      pend.kind = 3;
      pend.await = 4;
      pend.datagrams = fragmentHandshake(3, pend.hs.sid, rsid, res.body3, p.id, this.cfg.datagramSize);
      pend.interval = this.cfg.handshakeRetry;
      this.transmit(pend);
      return;
    }
    // complete (kind 4 or 6)
    this.initiators.delete(pend.hs.sid);
    p.pending = null;
    p.addr = addr;
    this.staticKeys.put(p.hex, pend.hs.rs);
    const kp = this.installKeys(p, pend.hs.sid, rsid, res.send, res.recv, true, res.handshakeHash);
    kp.confirmed = true;
    p.previous = p.current;
    p.current = kp;
    this.onEstablished(p.id, addr);
    if (p.queue.length) this.flush(p);
    else this.sendFrame(kp, { type: 'keepalive' });
  }

  failHandshake(pend, reason) {
    const p = pend.peer;
    this.initiators.delete(pend.hs.sid);
    if (p.pending === pend) p.pending = null;
    if (!p.current) p.queue = [];
    this.onHandshakeFailed(p.hex, reason);
  }

  installKeys(p, localIndex, peerIndex, send, recv, initiator, hh) {
    const kp = { peer: p, localIndex, peerIndex, send, recv, sendN: 0n, created: this.now(), confirmed: false, initiator, window: new ReplayWindow(this.cfg.replayWindow) };
    this.keypairs.set(localIndex, kp);
    if (this.keyLog) this.keyLog(`QDHT_SESSION ${p.hex} ${localIndex} ${peerIndex} ${hexOf(send)} ${hexOf(recv)} ${hexOf(hh)}`);
    return kp;
  }

  underLoad() {
    const sec = Math.floor(this.now());
    if (sec !== this.loadSecond) {
      this.loadSecond = sec;
      this.loadCount = 0;
    }
    return this.loadCount > this.cfg.underLoadHandshakesPerS;
  }

  cookieFor(ak, secret) {
    return blake2b(ascii(ak), { key: secret, dkLen: 16 });
  }

  onResponderFragment(m, kind, addr, size, M) {
    const ak = addrKey(addr);
    let validated = false;
    if ((kind === 1 || kind === 5) && m.i === 0) {
      this.underLoad(); // roll the per-second counter
      this.loadCount += 1; // this fragment counts: under load once the count exceeds the limit
      const loaded = this.underLoad();
      const ok = m.mac2 && this.cookieSecrets.some((s) => equalBytes(computeMac2(this.cookieFor(ak, s), M, m.mac1), m.mac2));
      if (ok) validated = true;
      else if (loaded) {
        const salt = this.rng(16);
        const boxKey = blake2b(concat([salt, m.mac1]), { key: this.cookieBoxOwn, dkLen: 32 });
        const box = aeadEncrypt(boxKey, 0, m.mac1, this.cookieFor(ak, this.cookieSecrets[0]));
        this.sendDatagram(encode({ type: 'cookie', rid: m.sid, salt, box }), addr);
        return this.drop('cookie-required');
      }
    }
    const key = `${ak}|${m.sid}|${kind}`;
    let e = this.hsBuffer.get(key);
    const c = Number(m.c);
    if (!e) {
      e = { c, parts: new Map(), bytes: 0, rx: 0, t: this.now(), validated: false };
      this.hsBuffer.put(key, e);
    }
    if (e.c !== c) return this.drop('bad-fragment');
    if (e.parts.has(m.i)) return this.drop('duplicate-fragment');
    e.parts.set(m.i, m.body);
    e.bytes += m.body.length;
    e.rx += size;
    e.validated ||= validated;
    this.hsBufferBytes += m.body.length;
    while (this.hsBufferBytes > this.cfg.handshakeReassemblyBytes && this.hsBuffer.size) {
      const [k0, e0] = this.hsBuffer.entries().next().value;
      this.hsBuffer.delete(k0);
      this.hsBufferBytes -= e0.bytes;
      this.drop('handshake-buffer-evicted');
      if (k0 === key) return;
    }
    if (e.parts.size < c) return;
    this.hsBuffer.delete(key);
    this.hsBufferBytes -= e.bytes;
    const body = concat([...Array(c).keys()].map((j) => e.parts.get(j)));
    const sid = Number(m.sid);
    if (kind === 1) {
      const r = respondXX1(this.ctx, this.secrets, body, sid, ak);
      this.sendLimited(fragmentHandshake(2, r.rsid, sid, r.body2, this.identity.nodeId, this.cfg.datagramSize), addr, e);
    } else if (kind === 3) {
      this.onMessage3(body, sid, Number(m.rid), addr, ak);
    } else {
      const r = respondIK1(this.ctx, body);
      const sent = this.sendLimited(fragmentHandshake(6, r.rsid, sid, r.body2, this.identity.nodeId, this.cfg.datagramSize), addr, e);
      if (!sent) return;
      this.acceptPeer(r, sid, addr);
      if (r.peer.early) this.onMessage(r.peer.nodeId, r.peer.early, addr, { early: true });
    }
  }

  sendLimited(datagrams, addr, e) {
    const total = datagrams.reduce((a, d) => a + d.length, 0);
    if (!e.validated && total > this.cfg.amplificationFactor * e.rx) {
      this.drop('amplification-limit');
      return false;
    }
    for (const d of datagrams) this.sendDatagram(d, addr);
    return true;
  }

  onMessage3(body, sid, rid, addr, ak) {
    const digest = hexOf(sha3_256(body));
    const cached = this.msg4Cache.get(digest);
    if (cached) {
      for (const d of cached) this.sendDatagram(d, addr);
      return;
    }
    const r = respondXX3(this.ctx, this.secrets, body, sid, rid, ak);
    const b = r.biscuit;
    if (this.now() - b.created > this.cfg.handshakeTimeout || b.created > this.now() + 1) return this.drop('expired-biscuit');
    if (b.counter <= this.biscuitFloor || this.biscuitSeen.has(b.counter)) return this.drop('replayed-biscuit');
    if (this.biscuitSeen.size >= this.cfg.biscuitReplayEntries) {
      const ev = this.biscuitSeen.keys().next().value;
      if (ev > this.biscuitFloor) this.biscuitFloor = ev;
    }
    this.biscuitSeen.put(b.counter, this.now());
    const d4 = fragmentHandshake(4, rid, sid, r.body4, this.identity.nodeId, this.cfg.datagramSize);
    this.msg4Cache.put(digest, d4);
    for (const d of d4) this.sendDatagram(d, addr);
    this.acceptPeer({ ...r, rsid: rid }, sid, addr);
  }

  /** Responder installs keys; they are confirmed by the first authenticated packet. */
  acceptPeer(r, isid, addr) {
    const p = this.peer(hexOf(r.peer.nodeId));
    p.addr = addr;
    this.staticKeys.put(p.hex, r.peer.staticPk);
    this.installKeys(p, r.rsid, isid, r.send, r.recv, false, r.handshakeHash);
  }

  onCookie(m) {
    const pend = this.initiators.get(Number(m.rid));
    if (!pend || (pend.kind !== 1 && pend.kind !== 5)) return this.drop('bad-cookie', 'no such handshake');
    const first = decodeMessage(pend.datagrams[0]).msg;
    const boxKey = blake2b(concat([m.salt, first.mac1]), { key: cookieBoxKeyBase(pend.peer.id), dkLen: 32 });
    const cookie = aeadDecrypt(boxKey, 0, first.mac1, m.box);
    if (!cookie) return this.drop('bad-cookie');
    pend.datagrams = fragmentHandshake(pend.kind, pend.hs.sid, 0, pend.body, pend.peer.id, this.cfg.datagramSize, cookie);
    for (const d of pend.datagrams) this.sendDatagram(d, pend.addr);
  }

  // ------------------------------------------------------------ timers

  tick() {
    const now = this.now();
    for (const pend of [...this.initiators.values()]) {
      if (now - pend.started >= this.cfg.handshakeTimeout) this.failHandshake(pend, 'timeout');
      else if (now >= pend.retryAt) this.transmit(pend);
    }
    for (const [k, e] of this.hsBuffer) {
      if (now - e.t < this.cfg.handshakeTimeout) break;
      this.hsBuffer.delete(k);
      this.hsBufferBytes -= e.bytes;
      this.drop('handshake-reassembly-timeout');
    }
    for (const [idx, kp] of this.keypairs) {
      if (now - kp.created >= this.cfg.rejectAfterTime) {
        this.keypairs.delete(idx);
        const p = kp.peer;
        if (p.current === kp) p.current = null;
        if (p.previous === kp) p.previous = null;
      }
    }
    for (const p of this.peers.values()) {
      if (p.reasm) for (const [k, e] of p.reasm) if (now - e.t >= this.cfg.reassemblyTimeout) {
        this.removeReasm(p, k);
        this.drop('reassembly-timeout');
      }
      if (!p.current && !p.pending && !p.queue.length && ![...this.keypairs.values()].some((kp) => kp.peer === p)) this.peers.delete(p.hex);
    }
    if (now - this.lastRotation >= this.cfg.secretRotation) {
      this.lastRotation = now;
      this.secrets.rotate();
      this.cookieSecrets = [this.rng(32), this.cookieSecrets[0]];
    }
  }
}
