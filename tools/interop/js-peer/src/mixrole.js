// The mix role of protocol-spec/10-mixnet.md §8 and §14: epoch keys with
// their replay stores (mixnet.js MixKeyring), the descriptor (§10.1)
// published in the DHT (§14.3), packets held for their delay and forwarded
// (§8.2), deliveries (§8.3). The clock and the scheduler are injected; the
// node's DHT and session endpoint carry the messages.
import { decode, encode } from './cbor.js';
import { mldsaSign, randomBytes, ascii } from './crypto.js';
import { issueCert } from './identity.js';
import { encodeMessage } from './messages.js';
import { signedBytes, CONTEXTS } from './records.js';
import { toWireAddr } from './dht.js';
import { geometry, MixKeyring, decodePayload, MixDrop, PAYLOAD_KIND } from './mixnet.js';

export const DESCRIPTOR_SALT = ascii('qdht/v1/mix-descriptor');
export const MIXES_TOPIC = ascii('qdht/v1/mixes');
export const DESCRIPTOR_CONTEXT = 'qdht/v1/mix-descriptor';

/** Network parameters (§9) and the reference limits of §8.2. */
export const MIX_DEFAULTS = Object.freeze({
  hops: 3,
  userPayload: 2048,
  epochPeriod: 1200, // seconds (§8.1)
  republish: 60, // seconds between descriptor publications (§14.3)
  maxHeld: 20000, // packets held at once (§8.2)
  rate: 500, // decapsulations per second per session ...
  burst: 1000, // ... with bursts of (§8.2)
  recordTtl: 3600, // exp of the descriptor record and the set entry
});

const hexOf = (b) => Buffer.from(b).toString('hex');
export const epochOf = (now, period) => Math.floor(now / period);

export class MixRole {
  /**
   * @param {import('./dht.js').DhtNode} node
   * @param {object} o `{ contactAddr, now, schedule, log, layer, ...MIX_DEFAULTS }`
   */
  constructor(node, o = {}) {
    this.node = node;
    this.identity = node.ep.identity;
    this.cfg = { ...MIX_DEFAULTS, ...o };
    this.geo = geometry(this.cfg.hops, this.cfg.userPayload);
    this.now = o.now ?? (() => Date.now() / 1000);
    this.schedule = o.schedule ?? ((ms, fn) => setTimeout(fn, ms));
    this.log = o.log ?? (() => {});
    this.contactAddr = o.contactAddr;
    this.layer = o.layer ?? 0;
    this.ring = new MixKeyring(this.geo);
    this.publicKeys = new Map(); // epoch -> X-Wing public key
    this.buckets = new Map(); // peer hex -> { tokens, at } (§8.2 rate limit)
    this.held = 0;
    this.seq = 0;
    this.lastPublished = -Infinity;
    this.stats = { received: 0, forwarded: 0, delivered: 0, cover: 0, drops: this.ring.drops };
    this.rotate(this.now());
    node.handlers.set('packet', (peerId, m, addr) => this.onPacket(peerId, m.data, addr));
    node.handlers.set('delivery', () => this.drop('unexpected-delivery'));
  }

  drop(reason) {
    this.ring.drops[reason] = (this.ring.drops[reason] ?? 0) + 1;
  }

  /** Hold keys for the current and next epoch, keep the previous, erase older (§8.1). */
  rotate(now) {
    const e = epochOf(now, this.cfg.epochPeriod);
    for (const epoch of [e, e + 1])
      if (!this.publicKeys.has(epoch)) this.publicKeys.set(epoch, this.ring.addKey(epoch, randomBytes(32)));
    this.ring.rotate(e);
    for (const epoch of [...this.publicKeys.keys()]) if (!this.ring.epochs.has(epoch)) this.publicKeys.delete(epoch);
    return e;
  }

  /** The signed descriptor (§10.1) as a message map. */
  descriptor(now) {
    const issued = Math.floor(now);
    const cert = decode(issueCert(this.identity, issued));
    const m = {
      type: 'descriptor',
      v: 1,
      cert,
      contact: { id: this.identity.nodeId, addrs: [toWireAddr(this.contactAddr)] },
      layer: this.layer,
      keys: [...this.publicKeys.keys()].sort((a, b) => a - b).map((epoch) => ({ epoch, key: this.publicKeys.get(epoch) })),
      issued,
    };
    return { ...m, sig: mldsaSign(this.identity.mldsa.sk, encode(m), DESCRIPTOR_CONTEXT) };
  }

  /** A signed record of this node (07-records.md §4): `fields` without owner, pk, seq, exp, sig. */
  signedRecord(fields, now) {
    this.seq = Math.max(this.seq + 1, Math.floor(now));
    const r = { ...fields, owner: this.identity.mldsaHash, pk: this.identity.mldsa.pk, seq: this.seq, exp: Math.floor(now) + this.cfg.recordTtl };
    return { ...r, sig: mldsaSign(this.identity.mldsa.sk, signedBytes(r), CONTEXTS[r.type]) };
  }

  /** Publish the descriptor and the set entry (§14.3); resolves to the holders that stored each. */
  async publish(now = this.now()) {
    this.lastPublished = now;
    const value = encodeMessage(this.descriptor(now));
    const record = this.signedRecord({ type: 'mutable', salt: DESCRIPTOR_SALT, value }, now);
    const entry = this.signedRecord({ type: 'set_entry', topic: MIXES_TOPIC, value: new Uint8Array(0) }, now);
    const [a, b] = await Promise.all([this.node.putRecord(record), this.node.putRecord(entry)]);
    this.log(`mix: descriptor for epochs ${[...this.publicKeys.keys()].join(',')} stored on ${a.stored}, set entry on ${b.stored}`);
    return [a.stored, b.stored];
  }

  /** Periodic work: rotate at epoch boundaries, republish (§14.3). Returns the publish promise if one started. */
  tick(now = this.now()) {
    const before = [...this.publicKeys.keys()].join();
    this.rotate(now);
    const rotated = before !== [...this.publicKeys.keys()].join();
    if (rotated || now - this.lastPublished >= this.cfg.republish) return this.publish(now).catch((e) => this.log(`mix: publish failed: ${e.message}`));
    return null;
  }

  /** The per-session decapsulation limit (§8.2). */
  allow(peerHex, now) {
    let b = this.buckets.get(peerHex);
    if (!b) {
      if (this.buckets.size >= 10000) this.buckets.delete(this.buckets.keys().next().value);
      b = { tokens: this.cfg.burst, at: now };
      this.buckets.set(peerHex, b);
    }
    b.tokens = Math.min(this.cfg.burst, b.tokens + (now - b.at) * this.cfg.rate);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** A `packet` from a peer (§6.2, §8.2). Never throws. */
  onPacket(peerId, data, _addr, now = this.now()) {
    this.stats.received++;
    // Only a packet that would be decapsulated spends a token (§8.2).
    const costly = data.length === this.geo.packet;
    if (costly && !this.allow(hexOf(peerId), now)) return this.drop('rate-limited');
    if (this.held >= this.cfg.maxHeld) return this.drop('queue-full');
    const out = this.ring.receive(data, epochOf(now, this.cfg.epochPeriod));
    if (out.result === 'drop') return undefined;
    this.held++;
    this.schedule(out.delayMs, () => {
      this.held--;
      if (out.result === 'forward') this.forward(out.nextHop, out.packet);
      else this.deliver(out);
    });
    return undefined;
  }

  /** Where a node can be reached: its session's address, else the routing table's. */
  addressOf(id) {
    const p = this.node.ep.peers.get(hexOf(id));
    if (p?.addr) return p.addr;
    return this.node.table.closest(id, 1).find((e) => hexOf(e.id) === hexOf(id))?.addr ?? null;
  }

  forward(nextHop, packet) {
    const addr = this.addressOf(nextHop);
    if (!addr) return this.drop('unknown-next-hop');
    this.stats.forwarded++;
    this.node.sendMsg(nextHop, addr, { type: 'packet', data: packet });
    return undefined;
  }

  /** §8.3: to this mix itself (decoded, §7.1), or a `delivery` over the recipient's session. */
  deliver(out) {
    if (hexOf(out.recipient) === hexOf(this.identity.nodeId)) {
      if (out.surbId) return this.drop('unexpected-delivery');
      try {
        const p = decodePayload(this.geo, out.payload);
        // Cover is discarded (§7.1). This peer is no exit (§14.4): it drops requests and messages.
        if (p.kind === PAYLOAD_KIND.cover) this.stats.cover++;
        else this.drop('not-an-exit');
        return undefined;
      } catch (e) {
        return this.drop(e instanceof MixDrop ? e.reason : 'internal');
      }
    }
    const addr = this.addressOf(out.recipient);
    if (!addr) return this.drop('unknown-recipient');
    const msg = { type: 'delivery', payload: out.payload };
    if (out.surbId) msg.surb = out.surbId;
    this.stats.delivered++;
    this.node.sendMsg(out.recipient, addr, msg);
    return undefined;
  }
}
