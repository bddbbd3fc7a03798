// Kademlia over qdht sessions (protocol-spec/02-dht-rpc.md): routing table,
// serving PING / FIND_NODE / FIND_VALUE / STORE, and the client side
// (bootstrap, iterative lookups, put / get).
import { isIPv4, isIPv6 } from 'node:net';
import { decode, encode, DecodeError } from './cbor.js';
import { checkMessage } from './messages.js';
import { sha3_256, ascii, concat, randomBytes, equalBytes } from './crypto.js';
import { DEFAULT_LIMITS, RecordError, mergeRecord, mergeSetEntry, rankCmp, recordKey, validateRecord } from './records.js';
import { WatchHolder, Watcher } from './watch.js';

export const K = 20;
export const ALPHA = 3;
export const LIMITS = Object.freeze({
  maxValues: 10000, // keys held
  maxStoredBytes: 64 << 20, // encoded records held
  valueTtl: 24 * 3600, // exp of the immutable records this peer puts
  maxMessage: 73728, // 00-conventions.md §3: a VALUE must fit
  storeRate: 10, // STOREs per second per source address (07-records.md §6.3) ...
  storeBurst: 50, // ... with bursts of
  floodAddresses: 10000, // source addresses remembered
  getQuorum: 5, // holders with valid answers a mutable/set get waits for
  maxSetPages: 4, // further pages a get asks of a set's holder whose answer said more (02 §4.2)
  maxCached: 1024, // path-cache entries (07-records.md §10.6), least recently stored evicted

  rpcTimeout: 12, // seconds, including a handshake
  maxPendingRpcs: 4096,
});
export const ERR = Object.freeze({
  'bad-request': 1,
  'unknown-request': 2,
  'too-large': 3,
  'rate-limited': 4,
  'storage-full': 5,
  'invalid-value': 6,
  'not-serving': 7,
  internal: 8,
  'owner-key-unknown': 9,
  stale: 10,
  'cas-mismatch': 11,
});
// 02-dht-rpc.md §4.3: the reason a STORE's record was refused -> the ERROR code.
const STORE_ERROR = {
  flood: 'rate-limited',
  'too-large': 'too-large',
  'key-mismatch': 'invalid-value',
  expired: 'invalid-value',
  'expiry-too-far': 'invalid-value',
  'owner-mismatch': 'invalid-value',
  'bad-signature': 'invalid-value',
  'kind-mismatch': 'invalid-value',
  'owner-key-unknown': 'owner-key-unknown',
  'seq-regression': 'stale',
  'seq-conflict': 'stale',
  'write-once': 'stale',
  'cas-mismatch': 'cas-mismatch',
  'set-full': 'storage-full',
  quota: 'storage-full',
};
const FAMILY = { immutable: 'immutable', mutable: 'mutable', tombstone: 'mutable', set_entry: 'set' };
const REQUEST_RULES = ['dht-ping', 'dht-find_node', 'dht-find_value', 'dht-store', 'watch-watch', 'watch-notify'];
const RESPONSE_RULES = ['dht-pong', 'dht-nodes', 'dht-value', 'dht-stored', 'dht-error', 'watch-watching', 'watch-notified'];
const RESPONSE_TYPES = new Set(['pong', 'nodes', 'value', 'stored', 'error', 'watching', 'notified']);
const ALLOWED_RESPONSES = {
  ping: ['pong', 'error'],
  find_node: ['nodes', 'error'],
  find_value: ['value', 'nodes', 'error'],
  store: ['stored', 'error'],
  watch: ['watching', 'error'],
  notify: ['notified', 'error'],
};
// 08 §1: not idempotent, so never acted on as pqIK early data (which can be replayed).
const NOT_EARLY = new Set(['watch', 'notify']);
const IMMUTABLE_PREFIX = ascii('qdht/v1/immutable');

const hexOf = (b) => Buffer.from(b).toString('hex');
export const immutableKey = (value) => sha3_256(concat([IMMUTABLE_PREFIX, value]));

/** XOR distance as a comparable hex string. */
function distance(a, b) {
  const d = new Uint8Array(32);
  for (let i = 0; i < 32; i++) d[i] = a[i] ^ b[i];
  return d;
}
const cmpBytes = (a, b) => Buffer.compare(a, b);
function bucketIndex(self, id) {
  for (let i = 0; i < 32; i++) {
    const x = self[i] ^ id[i];
    if (x) return i * 8 + Math.clz32(x) - 24;
  }
  return -1;
}

// ---------------------------------------------------------------- addresses

/** transport address ({tr, address, port}) -> CBOR address map (01 §2) */
export function toWireAddr(a) {
  let ip;
  if (isIPv4(a.address)) ip = Uint8Array.from(a.address.split('.').map(Number));
  else ip = ipv6Bytes(a.address);
  return { tr: a.tr ?? 'udp', ip, port: a.port };
}
function ipv6Bytes(s) {
  const [head, tail = null] = s.split('::');
  const parse = (x) => (x ? x.split(':') : []);
  let h = parse(head);
  let t = tail === null ? [] : parse(tail);
  const expand = (parts) => {
    const out = [];
    for (const p of parts) {
      if (p.includes('.')) {
        const v4 = p.split('.').map(Number);
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else out.push(parseInt(p, 16));
    }
    return out;
  };
  h = expand(h);
  t = expand(t);
  const words = tail === null ? h : [...h, ...Array(8 - h.length - t.length).fill(0), ...t];
  const b = new Uint8Array(16);
  words.forEach((w, i) => {
    b[2 * i] = w >> 8;
    b[2 * i + 1] = w & 0xff;
  });
  return b;
}
/** CBOR address map -> transport address, or null if `kinds` (transports we can send on) lacks its transport */
export function fromWireAddr(w, kinds = ['udp']) {
  if (!kinds.includes(w.tr)) return null;
  let address;
  if (w.ip.length === 4) address = [...w.ip].join('.');
  else {
    const words = [];
    for (let i = 0; i < 16; i += 2) words.push(((w.ip[i] << 8) | w.ip[i + 1]).toString(16));
    address = compressV6(words);
  }
  return { tr: w.tr, address, port: Number(w.port) };
}
function compressV6(words) {
  // RFC 5952: longest run (>= 2) of zero words becomes "::"
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return words.join(':');
  return `${words.slice(0, best).join(':')}::${words.slice(best + bestLen).join(':')}`;
}

/** Parse a contact URI (01-contacts.md §3). */
export function parseContactUri(uri) {
  const m = /^qdht\+(udp|ws):\/\/(\[[0-9a-fA-F:.]+\]|[0-9.]+):([0-9]{1,5})\/([0-9a-f]{64})$/.exec(uri);
  if (!m) throw new Error(`not a qdht contact URI: ${uri}`);
  const host = m[2].startsWith('[') ? m[2].slice(1, -1) : m[2];
  if (!isIPv4(host) && !isIPv6(host)) throw new Error(`contact URI: bad host ${m[2]}`);
  const port = Number(m[3]);
  if (port < 1 || port > 65535 || String(port) !== m[3]) throw new Error(`contact URI: bad port ${m[3]}`);
  return { transport: m[1], id: Uint8Array.from(Buffer.from(m[4], 'hex')), addr: { tr: m[1], address: host, port } };
}
export function formatContactUri(id, addr, transport = addr.tr ?? 'udp') {
  let host = addr.address;
  if (isIPv6(host)) {
    const b = ipv6Bytes(host);
    const words = [];
    for (let i = 0; i < 16; i += 2) words.push(((b[i] << 8) | b[i + 1]).toString(16));
    host = `[${compressV6(words)}]`;
  }
  return `qdht+${transport}://${host}:${addr.port}/${hexOf(id)}`;
}

// ---------------------------------------------------------------- routing table

export class RoutingTable {
  constructor(self, k = K) {
    this.self = self;
    this.k = k;
    this.buckets = Array.from({ length: 256 }, () => []);
  }
  /** Add or refresh a verified contact; returns false when the bucket is full. */
  touch(id, addr, now) {
    const i = bucketIndex(this.self, id);
    if (i < 0) return false;
    const b = this.buckets[i];
    const j = b.findIndex((e) => equalBytes(e.id, id));
    if (j >= 0) {
      const [e] = b.splice(j, 1);
      e.addr = addr;
      e.seen = now;
      b.push(e);
      return true;
    }
    if (b.length >= this.k) return false;
    b.push({ id, addr, seen: now });
    return true;
  }
  /** Least recently seen entry of the bucket `id` falls in. */
  oldestIn(id) {
    const i = bucketIndex(this.self, id);
    return i < 0 ? null : this.buckets[i][0] ?? null;
  }
  remove(id) {
    const i = bucketIndex(this.self, id);
    if (i < 0) return;
    const b = this.buckets[i];
    const j = b.findIndex((e) => equalBytes(e.id, id));
    if (j >= 0) b.splice(j, 1);
  }
  closest(target, n = this.k, exclude = null) {
    const all = [];
    for (const b of this.buckets) for (const e of b) if (!exclude || !equalBytes(e.id, exclude)) all.push(e);
    all.sort((a, b) => cmpBytes(distance(a.id, target), distance(b.id, target)));
    return all.slice(0, n);
  }
  size() {
    return this.buckets.reduce((a, b) => a + b.length, 0);
  }
}

// ---------------------------------------------------------------- the node

export class DhtNode {
  /**
   * @param {import('./session.js').Endpoint} endpoint
   * @param {object} o
   */
  constructor(endpoint, o = {}) {
    this.ep = endpoint;
    this.self = endpoint.identity.nodeId;
    this.table = new RoutingTable(this.self);
    // key hex -> {family, record} (immutable, mutable, tombstone) or {family: 'set', entries: Map owner hex -> entry}
    this.store = new Map();
    this.storedBytes = 0;
    this.limits = { ...DEFAULT_LIMITS, ...(o.recordLimits ?? {}) };
    this.floods = new Map(); // source address -> {tokens, at} (07-records.md §6.3)
    this.cached = new Set(); // key hex of path-cache entries, oldest first (07-records.md §10.6)
    this.pending = new Map(); // peerHex|ridHex -> {type, resolve, reject, timer}
    this.log = o.log ?? (() => {});
    this.now = o.now ?? (() => Date.now() / 1000);
    this.kinds = o.kinds ?? ['udp']; // transports this node can send on (05 §9)
    this.wsPort = o.wsPort ?? null; // the port it accepts WebSocket connections on (02 §1.3)
    this.stats = { served: Object.create(null), dropped: Object.create(null) };
    this.accepted = null; // the record the last STORE stored or replaced with (08 §4.1)
    this.holder = new WatchHolder(this);
    this.watcher = new Watcher(this, o.onWatchEvent);
    // type -> (peerId, msg, addr, info): one-way messages of other layers (10-mixnet.md §14.1)
    this.handlers = new Map();
    endpoint.onMessage = (peerId, bytes, addr, info) => this.onMessage(peerId, bytes, addr, info);
    endpoint.onHandshakeFailed = (peerHex, reason) => this.onHandshakeFailed(peerHex, reason);
  }

  count(kind, reason) {
    this.stats[kind][reason] = (this.stats[kind][reason] ?? 0) + 1;
  }

  onHandshakeFailed(peerHex, reason) {
    this.log(`handshake with ${peerHex.slice(0, 16)} failed: ${reason}`);
    for (const [k, p] of this.pending)
      if (k.startsWith(`${peerHex}|`)) {
        this.pending.delete(k);
        clearTimeout(p.timer);
        p.reject(new Error(`handshake failed: ${reason}`));
      }
  }

  sendMsg(peerId, addr, msg) {
    this.ep.send(peerId, addr, encode(msg));
  }

  onMessage(peerId, bytes, addr, info) {
    let item;
    try {
      item = decode(bytes);
    } catch (e) {
      if (e instanceof DecodeError) return this.count('dropped', e.reason);
      throw e;
    }
    const type = item && typeof item === 'object' && !Array.isArray(item) && !(item instanceof Uint8Array) ? item.type : undefined;
    const rid = type !== undefined && item.rid instanceof Uint8Array && item.rid.length === 8 ? item.rid : null;
    if (RESPONSE_TYPES.has(type)) return this.onResponse(peerId, item, addr);
    const handler = typeof type === 'string' ? this.handlers.get(type) : undefined;
    if (handler) {
      try {
        checkMessage(item);
      } catch (e) {
        if (!(e instanceof DecodeError)) throw e;
        return this.count('dropped', e.reason);
      }
      this.count('served', type);
      return handler(peerId, item, addr, info);
    }
    let req;
    try {
      req = checkMessage(item, REQUEST_RULES);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      this.count('dropped', e.reason);
      if (!rid || info.early) return;
      // A type this peer does not serve as a request (another layer's, or a
      // response type) is an unknown request too (02-dht-rpc.md §5).
      const unknown = e.reason === 'unknown-type' || e.reason === 'unexpected-type';
      const code = unknown ? ERR['unknown-request'] : ERR['bad-request'];
      return this.sendMsg(peerId, addr, { type: 'error', rid, code, message: e.reason });
    }
    const m = req.msg;
    if (info.early && NOT_EARLY.has(m.type)) return this.count('dropped', `early-${m.type}`);
    const contact = this.contactAddr(addr, m);
    if (!m.ro && !info.early && contact) this.table.touch(peerId, contact, this.now());
    this.count('served', m.type);
    this.serve(peerId, addr, m);
  }

  /**
   * Where a requester can be reached (for the routing table): its source
   * address, except on an inbound WebSocket connection, whose source port is
   * ephemeral: there the port its `ws` field names (02 §1.3), or nowhere.
   * `ws` over any other transport is ignored.
   */
  contactAddr(addr, m) {
    if (!addr.inbound) return addr;
    return m.ws === undefined ? null : { tr: 'ws', address: addr.address, port: Number(m.ws) };
  }

  serve(peerId, addr, m) {
    const reply = (r) => this.sendMsg(peerId, addr, { ...r, rid: m.rid });
    switch (m.type) {
      case 'ping':
        return reply({ type: 'pong' });
      case 'find_node':
        return reply({ type: 'nodes', nodes: this.contactsNear(m.target, peerId) });
      case 'find_value': {
        const answer = this.valueAnswer(m.key, m.have ?? []);
        if (answer) return reply(answer);
        return reply({ type: 'nodes', nodes: this.contactsNear(m.key, peerId) });
      }
      case 'store': {
        const reason = this.storeRecord(m.key, m.record, m.cas ?? null, addr, m.cache ?? null);
        if (reason) {
          this.count('dropped', `store-${reason}`);
          return reply({ type: 'error', code: ERR[STORE_ERROR[reason]], message: reason });
        }
        return reply({ type: 'stored' });
      }
      case 'watch':
        return this.holder.onWatch(peerId, addr, m, reply);
      case 'notify':
        return this.watcher.onNotify(peerId, m, reply);
      default:
        return undefined;
    }
  }

  /** Periodic work: watch subscriptions, expiries and renewals (08). */
  tick(now = this.now()) {
    this.holder.tick(now);
    this.watcher.tick(now);
  }

  contactsNear(target, requester) {
    return this.table
      .closest(target, K, requester)
      .map((e) => ({ id: e.id, addrs: [toWireAddr(e.addr)] }));
  }

  /**
   * 07-records.md §6.3: a token bucket per source IP address (loopback sources
   * told apart by port, so several nodes on one host are not one source);
   * false = over the bound.
   */
  floodOk(addr) {
    const loopback = addr.address === '::1' || addr.address.startsWith('127.');
    const a = loopback ? `${addr.address}|${addr.port}` : addr.address;
    const now = this.now();
    let b = this.floods.get(a);
    if (!b) {
      if (this.floods.size >= LIMITS.floodAddresses) this.floods.delete(this.floods.keys().next().value);
      b = { tokens: LIMITS.storeBurst, at: now };
      this.floods.set(a, b);
    }
    b.tokens = Math.min(LIMITS.storeBurst, b.tokens + (now - b.at) * LIMITS.storeRate);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /**
   * A STORE (02-dht-rpc.md §4.3): flood bound, validation (07 §6), merge (07 §7);
   * with `cache` a path-cache STORE (07 §10.6). Returns null when stored (or
   * already held), else the reason of the refusal.
   */
  storeRecord(key, record, cas, addr = null, cache = null) {
    const h = hexOf(key);
    const now = this.now();
    const before = this.store.get(h);
    const wasStored = before !== undefined && before.cacheUntil === undefined && this.liveRecords(key, before, now).length > 0;
    this.accepted = null;
    const reason = this.mergeStore(key, record, cas, addr);
    if (reason === null) this.noteCache(h, cache, now, wasStored);
    if (reason === null && this.accepted) this.holder.changed(key, this.accepted); // 08 §4.1
    return reason;
  }

  /**
   * 07-records.md §10.6: a cache STORE of a key held as a stored entry leaves it
   * stored; otherwise the entry is cached for `cache` seconds (in its own bounded
   * budget). A STORE without `cache` makes the entry a stored one.
   */
  noteCache(h, cache, now, wasStored) {
    const held = this.store.get(h);
    if (!held) return;
    if (cache === null) {
      delete held.cacheUntil;
      this.cached.delete(h);
      return;
    }
    if (wasStored) return;
    held.cacheUntil = Math.max(held.cacheUntil ?? 0, now + Number(cache));
    this.cached.delete(h);
    this.cached.add(h);
    while (this.cached.size > LIMITS.maxCached) this.forget(this.cached.values().next().value);
  }

  mergeStore(key, record, cas, addr) {
    if (addr && !this.floodOk(addr)) return 'flood';
    const now = this.now();
    try {
      validateRecord(record, key, now, this.limits);
    } catch (e) {
      if (e instanceof RecordError) return e.reason;
      throw e;
    }
    const h = hexOf(key);
    const size = encode(record).length;
    let held = this.store.get(h);
    if (held && held.family !== FAMILY[record.type]) {
      if (this.liveRecords(key, held, now).length) return 'kind-mismatch';
      this.forget(h);
      held = undefined;
    }
    if (record.type === 'set_entry') {
      const entries = held ? held.entries : new Map();
      const owner = hexOf(record.owner);
      const r = mergeSetEntry([...entries.values()], record, now, cas, this.limits);
      if (r.outcome === 'reject') return r.reason;
      if (r.outcome === 'unchanged') return null;
      const old = entries.get(owner);
      const grow = size - (old ? encode(old).length : 0);
      if (!held && this.store.size >= LIMITS.maxValues) return 'quota';
      if (this.storedBytes + grow > LIMITS.maxStoredBytes) return 'quota';
      entries.set(owner, record);
      this.storedBytes += grow;
      if (!held) this.store.set(h, { family: 'set', entries });
      this.accepted = record;
      return null;
    }
    const existing = held ? held.record : null;
    const r = mergeRecord(existing, record, now, cas);
    if (r.outcome === 'reject') return r.reason;
    if (r.outcome === 'unchanged') return null;
    const grow = size - (existing ? encode(existing).length : 0);
    if (!held && this.store.size >= LIMITS.maxValues) return 'quota';
    if (this.storedBytes + grow > LIMITS.maxStoredBytes) return 'quota';
    this.store.set(h, { family: FAMILY[record.type], record });
    this.storedBytes += grow;
    this.accepted = record;
    return null;
  }

  forget(h) {
    const held = this.store.get(h);
    this.cached.delete(h);
    if (!held) return;
    const recs = held.family === 'set' ? [...held.entries.values()] : [held.record];
    for (const r of recs) this.storedBytes -= encode(r).length;
    this.store.delete(h);
  }

  /** The held records of `key` that still validate now (02 §4.2: re-validated before serving). */
  liveRecords(key, held, now) {
    if (held.cacheUntil !== undefined && now >= held.cacheUntil) return [];
    const recs = held.family === 'set' ? [...held.entries.values()] : [held.record];
    return recs.filter((r) => {
      try {
        validateRecord(r, key, now, this.limits);
        return true;
      } catch (e) {
        if (e instanceof RecordError) return false;
        throw e;
      }
    });
  }

  /**
   * The VALUE answer for `key` (without rid), or null to answer NODES.
   * For a set, the entries of owners not in `have` (a getter paging through
   * it), as many as fit, with `more` if any were left out (02-dht-rpc.md §4.2).
   */
  valueAnswer(key, have = []) {
    const h = hexOf(key);
    const held = this.store.get(h);
    if (!held) return null;
    let live = this.liveRecords(key, held, this.now());
    if (!live.length) {
      this.forget(h);
      return null;
    }
    if (held.family !== 'set') return { type: 'value', record: live[0] };
    if (have.length) {
      const skip = new Set(have.map(hexOf));
      live = live.filter((r) => !skip.has(hexOf(r.owner)));
      if (!live.length) return null; // nothing further: answered with nodes
    }
    // 02-dht-rpc.md §4.2: latest exp first, ties by owner ascending; as many as fit.
    live.sort((a, b) => (Number(b.exp) - Number(a.exp)) || Buffer.compare(a.owner, b.owner));
    const records = [];
    let size = 64; // the map around them: rid, type, `more`
    for (const r of live.slice(0, 64)) {
      const n = encode(r).length + 5;
      if (size + n > LIMITS.maxMessage) break;
      records.push(r);
      size += n;
    }
    return records.length < live.length ? { type: 'value', records, more: true } : { type: 'value', records };
  }

  /** The value of an immutable or mutable record held locally (for `get`), or null. */
  lookupLocal(key) {
    const answer = this.valueAnswer(key);
    const r = answer?.record;
    return r && r.type !== 'tombstone' ? r.value : null;
  }

  onResponse(peerId, item, addr) {
    const rid = item.rid instanceof Uint8Array ? item.rid : null;
    if (!rid) return this.count('dropped', 'response-without-rid');
    const key = `${hexOf(peerId)}|${hexOf(rid)}`;
    const p = this.pending.get(key);
    if (!p) return this.count('dropped', 'unmatched-response');
    let r;
    try {
      r = checkMessage(item, RESPONSE_RULES);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      return this.count('dropped', e.reason);
    }
    if (!ALLOWED_RESPONSES[p.type].includes(r.msg.type)) return this.count('dropped', 'wrong-response-type');
    this.pending.delete(key);
    clearTimeout(p.timer);
    if (!addr.inbound) this.table.touch(peerId, addr, this.now());
    p.resolve(r.msg);
  }

  /** Send one request; resolves with the response map (may be `error`). */
  request(peerId, addr, msg) {
    if (this.pending.size >= LIMITS.maxPendingRpcs) return Promise.reject(new Error('too many outstanding requests'));
    let rid;
    let key;
    do {
      rid = randomBytes(8);
      key = `${hexOf(peerId)}|${hexOf(rid)}`;
    } while (this.pending.has(key));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(key);
        reject(new Error('timeout'));
      }, LIMITS.rpcTimeout * 1000);
      timer.unref?.();
      this.pending.set(key, { type: msg.type, resolve, reject, timer });
      // 02 §1.3: over WebSocket, say which port we accept connections on.
      const via = this.ep.peers.get(hexOf(peerId))?.addr ?? addr;
      const ws = via.tr === 'ws' && this.wsPort !== null && !msg.ro ? { ws: this.wsPort } : {};
      this.sendMsg(peerId, addr, { ...msg, ...ws, rid });
    });
  }

  ping(peerId, addr) {
    return this.request(peerId, addr, { type: 'ping' });
  }

  /** Contact the bootstrap contacts, then look up our own ID. */
  async bootstrap(contacts) {
    const results = await Promise.allSettled(contacts.map((c) => this.ping(c.id, c.addr)));
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    results.forEach((r, i) => r.status === 'rejected' && this.log(`bootstrap ${hexOf(contacts[i].id).slice(0, 16)}: ${r.reason.message}`));
    if (ok) await this.lookup(this.self, 'find_node');
    return ok;
  }

  /**
   * Iterative lookup. `kind` 'find_node' returns the k closest contacts;
   * 'find_value' returns {value} as soon as a node returns a matching one.
   */
  async lookup(target, kind = 'find_node') {
    const short = new Map(); // hex -> {id, addr, state}
    const add = (id, addr) => {
      const h = hexOf(id);
      if (equalBytes(id, this.self) || short.has(h)) return;
      short.set(h, { id, addr, state: 'new', d: distance(id, target) });
    };
    for (const e of this.table.closest(target, K)) add(e.id, e.addr);
    const answers = []; // find_value: valid answers of mutable and set keys (07-records.md §7.3)
    let pager = null; // a set's first holder that said more, being read in full (02 §4.2)
    const sorted = () => [...short.values()].filter((e) => e.state !== 'failed').sort((a, b) => cmpBytes(a.d, b.d));
    for (;;) {
      const top = sorted().slice(0, K);
      const todo = top.filter((e) => e.state === 'new').slice(0, ALPHA);
      const inflight = top.filter((e) => e.state === 'asked');
      if (!todo.length && !inflight.length) break;
      if (!todo.length) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      const rounds = todo.map(async (e) => {
        e.state = 'asked';
        try {
          const msg = kind === 'find_node' ? { type: 'find_node', target } : { type: 'find_value', key: target };
          const r = await this.request(e.id, e.addr, msg);
          if (r.type === 'value') {
            const valid = this.validRecords(r.records ?? [r.record], target);
            if (!valid.length) {
              this.count('dropped', 'invalid-value');
              e.state = 'failed';
              return null;
            }
            e.state = 'done';
            if (valid[0].type === 'immutable') return { value: valid[0].value, records: valid, final: true };
            let partial = false; // may hold entries it did not send (07 §7.3)
            if (valid[0].type === 'set_entry' && r.more === true) {
              if (!pager) {
                pager = this.readPages(e, target, valid, () => valid);
                partial = await pager;
              } else {
                // The others wait for it, then send only what nobody did.
                await pager;
                const everyone = () => [...answers.flatMap((a) => a.records), ...valid];
                await this.readPages(e, target, valid, everyone);
                partial = true;
              }
            }
            answers.push({ holder: e, records: valid, partial });
            return answers.length >= LIMITS.getQuorum ? { final: true } : null;
          }
          if (r.type === 'error') {
            e.state = 'failed';
            return null;
          }
          e.state = 'done';
          const seen = new Set();
          for (const c of r.nodes) {
            const h = hexOf(c.id);
            if (seen.has(h)) continue;
            seen.add(h);
            const a = c.addrs.map((w) => fromWireAddr(w, this.kinds)).find((x) => x);
            if (a) add(c.id, a);
          }
        } catch {
          e.state = 'failed';
        }
        return null;
      });
      const res = await Promise.all(rounds);
      const hit = res.find((x) => x && x.final);
      if (hit?.value !== undefined) return hit;
      if (hit) break;
    }
    if (kind === 'find_value') return this.resolveAnswers(answers);
    return sorted()
      .filter((e) => e.state === 'done')
      .slice(0, K);
  }

  /** The records of a VALUE answer that validate against `key` now (07-records.md §6.2). */
  validRecords(records, key) {
    return records.filter((rec) => {
      try {
        validateRecord(rec, key, this.now(), this.limits);
        return true;
      } catch (err) {
        if (err instanceof RecordError) return false;
        throw err;
      }
    });
  }

  /**
   * 02-dht-rpc.md §4.2: ask a set's holder whose answer said `more` for the
   * rest, page by page, listing in `have` the owners of `known()` (what it
   * sent, or what anyone sent); its valid entries are appended to `entries`.
   * True if its last answer still said more (or a page failed).
   */
  async readPages(holder, key, entries, known) {
    for (let page = 0; page < LIMITS.maxSetPages; page++) {
      const have = [...new Set(known().map((r) => hexOf(r.owner)))].sort().slice(0, 64).map((x) => Buffer.from(x, 'hex'));
      let r;
      try {
        r = await this.request(holder.id, holder.addr, { type: 'find_value', key, have });
      } catch {
        return true;
      }
      if (r.type === 'nodes') return false; // nothing further
      if (r.type !== 'value' || !r.records) return true;
      const valid = this.validRecords(r.records, key);
      if (!valid.length) {
        this.count('dropped', 'invalid-value');
        return true;
      }
      entries.push(...valid);
      if (!r.more) return false;
    }
    return true;
  }

  /**
   * 07-records.md §7.3: the winner among holders' answers (mutable/tombstone),
   * or per publisher for a set; stale holders get the winner (entry correction).
   */
  resolveAnswers(answers) {
    if (!answers.length) return { value: null };
    const all = answers.flatMap((a) => a.records);
    const correct = (holder, rec) => {
      this.count('served', 'entry-correction');
      this.request(holder.id, holder.addr, { type: 'store', key: recordKey(rec), record: rec }).catch(() => {});
    };
    if (all[0].type === 'set_entry') {
      const best = new Map();
      for (const r of all) {
        const o = hexOf(r.owner);
        if (!best.has(o) || rankCmp(r, best.get(o)) > 0) best.set(o, r);
      }
      for (const a of answers)
        for (const [o, w] of best) {
          const mine = a.records.find((r) => hexOf(r.owner) === o);
          // A partial holder may hold what it did not send.
          if (mine ? rankCmp(w, mine) > 0 : !a.partial) correct(a.holder, w);
        }
      return { value: null, records: [...best.values()] };
    }
    const winner = all.reduce((w, r) => (rankCmp(r, w) > 0 ? r : w));
    for (const a of answers) if (rankCmp(winner, a.records[0]) > 0) correct(a.holder, winner);
    return { value: winner.type === 'tombstone' ? null : winner.value, records: [winner] };
  }

  /** Store an immutable value on the k closest nodes; returns {key, stored: count}. */
  put(value) {
    return this.putRecord({ type: 'immutable', value, exp: Math.floor(this.now()) + LIMITS.valueTtl });
  }

  /** Store a record (this node's own, already signed) here and on the k closest nodes; returns {key, stored: count}. */
  async putRecord(record) {
    const key = recordKey(record);
    this.storeRecord(key, record, null);
    const nodes = await this.lookup(key, 'find_node');
    const res = await Promise.allSettled(nodes.map((n) => this.request(n.id, n.addr, { type: 'store', key, record })));
    const stored = res.filter((r) => r.status === 'fulfilled' && r.value.type === 'stored').length;
    return { key, stored };
  }

  /** Fetch a value by key: local store first, then the network. */
  async get(key) {
    const local = this.lookupLocal(key);
    if (local) return local;
    const r = await this.lookup(key, 'find_value');
    return r.value;
  }
}
