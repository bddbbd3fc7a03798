// The WebSocket binding (05-transport.md §9.2) over loopback: two Transports
// objects exchange datagrams; the rules a server applies to what it is sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { WebSocket } from 'ws';
import { Transports, WS_PATH } from '../src/transport.js';

const until = async (cond, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

function pair() {
  const got = { a: [], b: [] };
  const gone = [];
  const a = new Transports({ onDatagram: (bytes, addr) => got.a.push({ bytes, addr }), onAddressGone: (addr) => gone.push(addr) });
  const b = new Transports({ onDatagram: (bytes, addr) => got.b.push({ bytes, addr }) });
  return { a, b, got, gone };
}

test('datagrams both ways; replies go back on the inbound connection; a closed one is forgotten', async () => {
  const { a, b, got, gone } = pair();
  const server = await a.listenWs('127.0.0.1', 0);
  try {
    assert.equal(server.tr, 'ws');
    const to = { tr: 'ws', address: '127.0.0.1', port: server.port };
    // queued while the connection opens, delivered in order, one message per datagram
    for (let i = 0; i < 5; i++) b.send(Uint8Array.of(i, i, i), to);
    await until(() => got.a.length === 5);
    assert.deepEqual(got.a.map((d) => [...d.bytes]), [0, 1, 2, 3, 4].map((i) => [i, i, i]));
    const from = got.a[0].addr;
    assert.equal(from.inbound, true);
    assert.equal(from.address, '127.0.0.1');
    assert.notEqual(from.port, server.port, "the client's ephemeral port");
    // a reply to the source address goes back on that connection: no dial
    a.send(Uint8Array.of(9), from);
    await until(() => got.b.length === 1);
    assert.deepEqual(got.b[0].addr, to, 'datagrams on a dialled connection come from the dialled address');
    assert.equal(a.stats.wsDialled, 0);
    assert.equal(a.stats.wsAccepted, 1);
    assert.equal(b.stats.wsDialled, 1);
    // when the connection closes the address is forgotten, never dialled
    for (const c of b.outbound.values()) c.ws.close();
    await until(() => gone.length === 1);
    assert.deepEqual(gone[0], from);
    a.send(Uint8Array.of(1), from);
    assert.equal(a.stats.drops['ws-connection-gone'], 1);
    assert.equal(a.outbound.size, 0);
  } finally {
    await a.close();
    await b.close();
  }
});

test('other paths are refused before the upgrade; text messages are ignored and counted', async () => {
  const { a, got } = pair();
  const server = await a.listenWs('127.0.0.1', 0);
  try {
    const status = (path, upgrade) =>
      new Promise((resolve) => {
        const headers = upgrade ? { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' } : {};
        const req = http.get({ host: '127.0.0.1', port: server.port, path, headers });
        req.on('response', (res) => resolve(res.statusCode));
        req.on('upgrade', (res, socket) => {
          socket.destroy();
          resolve(res.statusCode);
        });
        req.on('error', (e) => resolve(e.code));
      });
    assert.equal(await status('/other', true), 404);
    assert.equal(await status(`${WS_PATH}/x`, true), 404);
    assert.equal(await status(WS_PATH, true), 101);
    assert.equal(a.stats.wsRefused, 2);

    const ws = new WebSocket(`ws://127.0.0.1:${server.port}${WS_PATH}`);
    await new Promise((r) => ws.once('open', r));
    ws.send('not a datagram');
    ws.send(Uint8Array.of(1, 2), { binary: true });
    await until(() => got.a.length === 1);
    assert.deepEqual([...got.a[0].bytes], [1, 2]);
    assert.equal(a.stats.drops['ws-text-message'], 1);
    // repeated text messages close the connection (05 §9.2: MAY)
    const closed = new Promise((r) => ws.once('close', (code) => r(code)));
    for (let i = 0; i < 20; i++) ws.send('again');
    assert.equal(await closed, 1008);
  } finally {
    await a.close();
  }
});

test('a dial that fails drops what it queued', async () => {
  const { b } = pair();
  const probe = await new Transports({ onDatagram: () => {} });
  const s = await probe.listenWs('127.0.0.1', 0);
  await probe.close(); // nothing listens there now
  b.send(Uint8Array.of(1), { tr: 'ws', address: '127.0.0.1', port: s.port });
  await until(() => b.stats.drops['ws-dial-failed'] === 1);
  assert.equal(b.outbound.size, 0);
  await b.close();
});

test('idle dialled connections close, unless a subscription runs through them', async () => {
  const clock = { t: 0 };
  const a = new Transports({ onDatagram: () => {} });
  const b = new Transports({ onDatagram: () => {}, now: () => clock.t });
  const server = await a.listenWs('127.0.0.1', 0);
  try {
    const to = { tr: 'ws', address: '127.0.0.1', port: server.port };
    b.send(Uint8Array.of(1), to);
    await until(() => a.inbound.size === 1);
    clock.t = 181;
    b.tick((addr) => addr.port === server.port);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(b.outbound.size, 1, 'kept: a watch runs through it');
    b.tick();
    await until(() => b.outbound.size === 0 && a.inbound.size === 0);
  } finally {
    await a.close();
    await b.close();
  }
});
