// Watching keys (protocol-spec/08-watch.md): a holder's subscriptions and
// notifications (§3.1, §3.2, §4.1, §4.3) and a watcher's side (§3.3, §4.2).
// Both run inside a DhtNode, which routes `watch` / `notify` requests here,
// tells the holder of every record it accepts, and calls tick() periodically.
import { ERR } from './dht.js';
import { RecordError, rankCmp, validateRecord } from './records.js';

export const WATCH_LIMITS = Object.freeze({
  // holder (08 §3.1, the defaults of the table there)
  maxTtl: 600,
  maxWatchersPerKey: 64,
  maxKeysPerWatcher: 128,
  maxSubscriptions: 16384,
  maxNotifyFailures: 3,
  expiryCheck: 1, // seconds between looks for records that expired under a watched key
  // watcher (08 §3.3)
  holders: 8, // subscriptions per key, at the closest nodes that answered
  ttl: 600, // lifetime asked for
  renewAfter: 0.75, // of the granted ttl
  retry: 15, // seconds before a key with fewer than `holders` subscriptions is looked up again
});

const hexOf = (b) => Buffer.from(b).toString('hex');
/** 08 §3.2: the `seq` the `since` rule compares; an immutable record has none and counts as 0. */
const seqOf = (r) => BigInt(r.seq ?? 0);

// ---------------------------------------------------------------- holder

export class WatchHolder {
  constructor(node, limits = WATCH_LIMITS) {
    this.node = node;
    this.limits = limits;
    this.subs = new Map(); // key hex -> Map(watcher hex -> {id, key, addr, until, failures})
    this.perWatcher = new Map(); // watcher hex -> keys subscribed
    this.total = 0;
    this.alive = new Map(); // key hex -> something live was held at the last look (for *expired*)
    this.checkedAt = 0;
    this.stats = { subscribed: 0, renewed: 0, unwatched: 0, refused: 0, notifies: 0, notified: 0, stopped: 0, failed: 0, dropped: 0 };
  }

  /** Records held under `key` that have not expired (they were validated when stored). */
  held(kh, now) {
    const held = this.node.store.get(kh);
    if (!held || (held.cacheUntil !== undefined && now >= held.cacheUntil)) return { family: null, records: [] };
    const recs = held.family === 'set' ? [...held.entries.values()] : [held.record];
    return { family: held.family, records: recs.filter((r) => now < Number(r.exp)) };
  }

  /** A `watch` request (08 §3.1); `reply(map)` answers it. */
  onWatch(peerId, addr, m, reply) {
    const L = this.limits;
    const kh = hexOf(m.key);
    const wh = hexOf(peerId);
    const now = this.node.now();
    const old = this.subs.get(kh)?.get(wh);
    if (Number(m.ttl) === 0) {
      // an unwatch needs no room: never refused
      if (old) this.remove(kh, wh);
      this.stats.unwatched += 1;
      return reply({ type: 'watching', ttl: 0 });
    }
    if (!old) {
      const full =
        (this.subs.get(kh)?.size ?? 0) >= L.maxWatchersPerKey || (this.perWatcher.get(wh) ?? 0) >= L.maxKeysPerWatcher || this.total >= L.maxSubscriptions;
      if (full) {
        this.stats.refused += 1;
        return reply({ type: 'error', code: ERR['storage-full'], message: 'watch limit' });
      }
    }
    const ttl = Math.min(Number(m.ttl), L.maxTtl);
    const sub = old ?? { id: peerId, key: m.key, failures: 0 };
    // Notifications go over the watcher's session; should the connection its
    // watch came on close (an inbound WebSocket), at the port its `ws` names.
    sub.addr = this.node.contactAddr(addr, m) ?? addr;
    sub.until = now + ttl;
    if (old) this.stats.renewed += 1;
    else {
      if (!this.subs.has(kh)) this.subs.set(kh, new Map());
      this.subs.get(kh).set(wh, sub);
      this.perWatcher.set(wh, (this.perWatcher.get(wh) ?? 0) + 1);
      this.total += 1;
      this.stats.subscribed += 1;
    }
    reply({ type: 'watching', ttl });
    // 08 §3.2: catch the watcher up.
    const { family, records } = this.held(kh, now);
    if (!this.alive.has(kh)) this.alive.set(kh, records.length > 0);
    if (!records.length) return undefined;
    if (family === 'set') {
      if (!old) for (const r of records) this.notify(kh, sub, r);
      return undefined;
    }
    const r = records[0];
    if (m.since !== undefined) {
      const since = BigInt(m.since);
      if (seqOf(r) < since || (seqOf(r) === since && r.type !== 'tombstone')) return undefined;
    }
    this.notify(kh, sub, r);
    return undefined;
  }

  remove(kh, wh) {
    const subs = this.subs.get(kh);
    if (!subs?.delete(wh)) return;
    if (!subs.size) {
      this.subs.delete(kh);
      this.alive.delete(kh);
    }
    const n = this.perWatcher.get(wh) - 1;
    if (n) this.perWatcher.set(wh, n);
    else this.perWatcher.delete(wh);
    this.total -= 1;
  }

  /** Send `notify` (without `record`: an expiry) and act on the answer (08 §4.3). */
  notify(kh, sub, record) {
    const wh = hexOf(sub.id);
    this.stats.notifies += 1;
    const current = () => this.subs.get(kh)?.get(wh) === sub;
    const failed = () => {
      if (!current()) return;
      this.stats.failed += 1;
      if (++sub.failures >= this.limits.maxNotifyFailures) {
        this.stats.dropped += 1;
        this.remove(kh, wh);
      }
    };
    this.node.request(sub.id, sub.addr, { type: 'notify', key: sub.key, ...(record ? { record } : {}) }).then((r) => {
      if (r.type !== 'notified') return failed();
      if (!current()) return undefined;
      this.stats.notified += 1;
      sub.failures = 0;
      if (r.stop) {
        this.stats.stopped += 1;
        this.remove(kh, wh);
      }
      return undefined;
    }, failed);
  }

  /** Every live subscription of `kh`. */
  live(kh, now) {
    return [...(this.subs.get(kh)?.values() ?? [])].filter((s) => s.until > now);
  }

  /** The node accepted `record` under `key` (07 §7 outcomes store / replace): *update* or *deleted* (08 §4.1). */
  changed(key, record) {
    const kh = hexOf(key);
    if (!this.subs.has(kh)) return;
    this.alive.set(kh, true);
    for (const s of this.live(kh, this.node.now())) this.notify(kh, s, record);
  }

  /** Expire subscriptions; tell watchers of keys whose last live record expired (*expired*). */
  tick(now) {
    if (now - this.checkedAt < this.limits.expiryCheck) return;
    this.checkedAt = now;
    for (const [kh, subs] of [...this.subs]) {
      for (const [wh, s] of [...subs]) if (s.until <= now) this.remove(kh, wh);
      if (!this.subs.has(kh)) continue;
      const alive = this.held(kh, now).records.length > 0;
      if (this.alive.get(kh) && !alive) for (const s of this.live(kh, now)) this.notify(kh, s, null);
      this.alive.set(kh, alive);
    }
  }
}

// ---------------------------------------------------------------- watcher

export class Watcher {
  /**
   * @param {object} node the DhtNode
   * @param {(keyHex: string, event: 'update'|'deleted'|'expired', record: object) => void} onEvent
   */
  constructor(node, onEvent = () => {}, limits = WATCH_LIMITS) {
    this.node = node;
    this.onEvent = onEvent;
    this.limits = limits;
    // key hex -> {key, holders: Map(hex -> {id, addr, until}), asking: Set(hex), refused: Map(hex -> until),
    //             reported: Map(slot -> {record, expired}), renewAt, busy}
    this.watched = new Map();
    this.stats = { reported: 0, duplicates: 0, hints: 0, invalid: 0, stray: 0 };
  }

  /** Subscribe to `key` at the closest holders; resolves with how many accepted. */
  async watch(key) {
    const kh = hexOf(key);
    let w = this.watched.get(kh);
    if (!w) {
      w = { key, holders: new Map(), asking: new Set(), refused: new Map(), reported: new Map(), renewAt: Infinity, busy: false };
      this.watched.set(kh, w);
    }
    await this.round(w);
    return w.holders.size;
  }

  /** Stop watching `key`: unwatch (ttl 0) at every holder. */
  unwatch(key) {
    const w = this.watched.get(hexOf(key));
    if (!w) return 0;
    this.watched.delete(hexOf(key));
    for (const h of w.holders.values()) this.send(h, w.key, 0);
    return w.holders.size;
  }

  send(holder, key, ttl, since) {
    const msg = { type: 'watch', key, ttl, ...(since === undefined ? {} : { since }) };
    return this.node.request(holder.id, holder.addr, msg);
  }

  /** 08 §3.2: the highest `seq` reported for a non-set key, else absent. */
  since(w) {
    const single = w.reported.get('record');
    return single ? seqOf(single.record) : undefined;
  }

  /** One lookup, then subscribe (or renew) at the closest, unwatch those that left (08 §3.3). */
  async round(w) {
    if (w.busy) return;
    w.busy = true;
    try {
      const now = this.node.now();
      for (const [h, until] of w.refused) if (until <= now) w.refused.delete(h);
      const found = await this.node.lookup(w.key, 'find_node');
      const closest = found.filter((c) => !w.refused.has(hexOf(c.id))).slice(0, this.limits.holders);
      const want = new Set(closest.map((c) => hexOf(c.id)));
      for (const [h, holder] of w.holders)
        if (!want.has(h)) {
          w.holders.delete(h);
          this.send(holder, w.key, 0).catch(() => {});
        }
      const since = this.since(w);
      let lost = false;
      await Promise.all(
        closest.map(async (c) => {
          const h = hexOf(c.id);
          w.asking.add(h); // a catch-up notify may overtake the answer
          try {
            const r = await this.send(c, w.key, this.limits.ttl, since);
            const at = this.node.now();
            if (r.type === 'watching' && r.ttl > 0) {
              const ttl = Number(r.ttl);
              w.holders.set(h, { id: c.id, addr: c.addr, until: at + ttl, renewAt: at + this.limits.renewAfter * ttl });
            } else {
              w.holders.delete(h);
              w.refused.set(h, at + this.limits.ttl); // not asked again for one lifetime
              lost = true;
            }
          } catch {
            w.holders.delete(h); // lost: found again at the next round
            lost = true;
          } finally {
            w.asking.delete(h);
          }
        }),
      );
      // The next round: the earliest renewal, sooner if a holder was lost
      // (replace it, with backoff) or none accepted.
      const renew = Math.min(...[...w.holders.values()].map((h) => h.renewAt));
      w.renewAt = lost || !w.holders.size ? Math.min(renew, this.node.now() + this.limits.retry) : renew;
    } finally {
      w.busy = false;
    }
  }

  /** A `notify` request (08 §4.2); `reply(map)` answers it. */
  onNotify(peerId, m, reply) {
    const h = hexOf(peerId);
    const w = this.watched.get(hexOf(m.key));
    if (!w || !(w.holders.has(h) || w.asking.has(h))) {
      this.stats.stray += 1;
      return reply({ type: 'notified', stop: true });
    }
    if (m.record === undefined) {
      // an expiry hint: our own clock decides (tick)
      this.stats.hints += 1;
      return reply({ type: 'notified' });
    }
    try {
      validateRecord(m.record, m.key, this.node.now(), this.node.limits);
    } catch (e) {
      if (!(e instanceof RecordError)) throw e;
      this.stats.invalid += 1;
      const holder = w.holders.get(h);
      w.holders.delete(h);
      w.refused.set(h, Infinity); // never again for this key
      if (holder) this.send(holder, w.key, 0).catch(() => {});
      w.renewAt = Math.min(w.renewAt, this.node.now());
      return reply({ type: 'error', code: ERR['invalid-value'], message: e.reason });
    }
    this.offer(w, m.record);
    return reply({ type: 'notified' });
  }

  /** Report `r` if it ranks above what was reported for its slot (08 §4.2 rule 3). */
  offer(w, r) {
    const slot = r.type === 'set_entry' ? hexOf(r.owner) : 'record';
    const held = w.reported.get(slot);
    if (held) {
      if (r.type === 'immutable' && held.record.type === 'immutable') {
        // the same value (the key is its hash): a later exp only extends our copy
        if (Number(r.exp) > Number(held.record.exp)) {
          const revived = held.expired;
          held.record = r;
          held.expired = false;
          if (revived) this.report(w, 'update', r);
          else this.stats.duplicates += 1;
        } else this.stats.duplicates += 1;
        return;
      }
      if (rankCmp(r, held.record) <= 0) {
        this.stats.duplicates += 1;
        return;
      }
    }
    w.reported.set(slot, { record: r, expired: false });
    this.report(w, r.type === 'tombstone' ? 'deleted' : 'update', r);
  }

  report(w, event, r) {
    this.stats.reported += 1;
    this.onEvent(hexOf(w.key), event, r);
  }

  /** Whether a subscription runs through `addr` (a connection we dialled must stay open for it). */
  usesAddress(addr) {
    for (const w of this.watched.values())
      for (const h of w.holders.values()) if (h.addr.tr === addr.tr && h.addr.address === addr.address && h.addr.port === addr.port) return true;
    return false;
  }

  /** Expiry on our own clock (08 §4.2 rule 4); renewals and replacements (§3.3). */
  tick(now) {
    for (const w of this.watched.values()) {
      for (const held of w.reported.values())
        if (!held.expired && held.record.type !== 'tombstone' && Number(held.record.exp) <= now) {
          held.expired = true;
          this.report(w, 'expired', held.record);
        }
      for (const [h, holder] of w.holders) if (holder.until <= now) w.holders.delete(h);
      if (now >= w.renewAt && !w.busy) this.round(w).catch(() => {});
    }
  }
}
