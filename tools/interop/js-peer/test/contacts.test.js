// Contact URIs and addresses (01-contacts.md §2-§3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseContactUri, formatContactUri, toWireAddr, fromWireAddr, RoutingTable } from '../src/dht.js';

const ID = '8f4ad3c1ab1e1b9b0a5e3c2f4d6e8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f';

test('the spec examples parse and print canonically', () => {
  for (const uri of [`qdht+udp://198.51.100.7:6881/${ID}`, `qdht+udp://[2001:db8::1]:6881/${ID}`, `qdht+ws://203.0.113.9:443/${ID}`]) {
    const c = parseContactUri(uri);
    assert.equal(formatContactUri(c.id, c.addr, c.transport), uri);
  }
  assert.equal(formatContactUri(Buffer.from(ID, 'hex'), { address: '2001:0db8:0:0:0:0:0:0001', port: 1 }), `qdht+udp://[2001:db8::1]:1/${ID}`);
  for (const bad of [`qdht+udp://example.org:6881/${ID}`, `qdht+udp://1.2.3.4/${ID}`, `qdht+udp://1.2.3.4:0/${ID}`, `qdht+udp://1.2.3.4:06881/${ID}`, `qdht+udp://1.2.3.4:6881/${ID.toUpperCase()}`, `qdht+tcp://1.2.3.4:6881/${ID}`])
    assert.throws(() => parseContactUri(bad), /contact URI/, bad);
});

test('wire addresses round-trip', () => {
  for (const a of [{ tr: 'udp', address: '127.0.0.1', port: 6881 }, { tr: 'udp', address: '::1', port: 1 }, { tr: 'ws', address: '2001:db8::5:0:1', port: 65535 }]) {
    const w = toWireAddr(a);
    assert.equal(w.ip.length, a.address.includes(':') ? 16 : 4);
    assert.equal(w.tr, a.tr);
    assert.deepEqual(fromWireAddr(w, ['udp', 'ws']), a);
  }
  assert.equal(fromWireAddr(toWireAddr({ tr: 'ws', address: '127.0.0.1', port: 1 }), ['udp']), null, 'a transport we cannot send on');
});

test('routing table: k-buckets by XOR prefix, closest first, full buckets keep old entries', () => {
  const self = new Uint8Array(32);
  const t = new RoutingTable(self, 2);
  const id = (b0, b31 = 0) => Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? b0 : i === 31 ? b31 : 0));
  const a = { address: '127.0.0.1', port: 1 };
  assert.ok(t.touch(id(0x80, 1), a, 0));
  assert.ok(t.touch(id(0x80, 2), a, 0));
  assert.ok(!t.touch(id(0x80, 3), a, 0), 'bucket 0 is full');
  assert.ok(t.touch(id(0x01), a, 0));
  assert.ok(!t.touch(self, a, 0), 'never itself');
  assert.deepEqual(t.closest(id(0x80, 3), 3).map((e) => e.id[31] + e.id[0]), [0x80 + 2, 0x80 + 1, 1]);
});
