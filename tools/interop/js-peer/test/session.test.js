// Two in-process endpoints over a simulated network: pqXX and pqIK in both
// roles, fragmentation, replay protection, cookies, rekeying, failures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Endpoint } from '../src/session.js';
import { generateIdentity, randomBytes } from '../src/crypto.js';
import { decodeMessage } from '../src/messages.js';
import { encode } from '../src/cbor.js';

const D = 4;
const A_ADDR = { address: '127.0.0.1', port: 1001 };
const B_ADDR = { address: '127.0.0.1', port: 1002 };
const idA = generateIdentity(D);
const idB = generateIdentity(D);

function net(opts = {}) {
  const clock = { t: 1000 };
  const wire = [];
  const got = { A: [], B: [] };
  const mk = (name, identity, addr) =>
    new Endpoint({
      identity,
      difficulty: opts.difficulty?.[name] ?? D,
      now: () => clock.t,
      config: opts.config,
      sendDatagram: (bytes, to) => wire.push({ from: addr, to, bytes }),
      onMessage: (peer, msg, from, info) => got[name].push({ peer, msg, info }),
    });
  const A = mk('A', idA, A_ADDR);
  const B = mk('B', idB, B_ADDR);
  const deliver = (filter = () => true) => {
    let n = 0;
    while (wire.length) {
      const d = wire.shift();
      if (!filter(d)) continue;
      n++;
      (d.to.port === A_ADDR.port ? A : B).receive(d.bytes, d.from);
    }
    return n;
  };
  return { A, B, wire, got, clock, deliver };
}

test('pqXX handshake, both directions, fragmentation', () => {
  const n = net();
  n.A.send(idB.nodeId, B_ADDR, Uint8Array.of(1, 2, 3));
  n.deliver();
  assert.deepEqual([...n.got.B[0].msg], [1, 2, 3]);
  assert.ok(n.A.hasSession(idB.nodeId) && n.B.hasSession(idA.nodeId));
  const big = randomBytes(65536);
  n.B.send(idA.nodeId, A_ADDR, big);
  n.A.send(idB.nodeId, B_ADDR, big.subarray(0, 1089));
  n.deliver();
  assert.ok(Buffer.from(n.got.A[0].msg).equals(Buffer.from(big)));
  assert.equal(n.got.B[1].msg.length, 1089);
  assert.equal(n.A.stats.handshakes + n.B.stats.handshakes, 1);
});

test('replayed and forged transport packets are dropped', () => {
  const n = net();
  n.A.send(idB.nodeId, B_ADDR, Uint8Array.of(9));
  const log = [];
  while (n.wire.length) {
    const d = n.wire.shift();
    log.push(d);
    (d.to.port === A_ADDR.port ? n.A : n.B).receive(d.bytes, d.from);
  }
  const data = log.filter((d) => decodeMessage(d.bytes).msg.type === 'data' && d.to.port === B_ADDR.port);
  n.B.receive(data[0].bytes, A_ADDR);
  assert.equal(n.B.stats.drops.replayed, 1);
  const m = decodeMessage(data[0].bytes).msg;
  m.n = 5;
  n.B.receive(encode(m), A_ADDR);
  assert.equal(n.B.stats.drops['bad-tag'], 1);
  assert.equal(n.got.B.length, 1);
});

test('a responder with another identity is refused (mac1), wrong difficulty fails', () => {
  const n = net();
  n.A.send(randomBytes(32), B_ADDR, Uint8Array.of(1));
  n.deliver();
  assert.equal(n.B.stats.drops['bad-mac1'], 2);
  const m = net({ difficulty: { B: D + 1 } });
  m.A.send(idB.nodeId, B_ADDR, Uint8Array.of(1));
  m.deliver();
  assert.equal(m.got.B.length, 0);
  assert.ok(!m.A.hasSession(idB.nodeId));
});

test('handshake timeout fails the peer and drops its queue', () => {
  const n = net();
  const failed = [];
  n.A.onHandshakeFailed = (peer, reason) => failed.push(reason);
  n.A.send(idB.nodeId, B_ADDR, Uint8Array.of(1));
  for (let i = 0; i < 12; i++) {
    n.clock.t += 1;
    n.A.tick();
  }
  assert.deepEqual(failed, ['timeout']);
  const firsts = n.wire.filter((d) => decodeMessage(d.bytes).msg.i === 0);
  assert.ok(firsts.length >= 4, 'retransmitted with backoff');
});

test('under load the responder requires a cookie, and the initiator supplies it', () => {
  const n = net({ config: { underLoadHandshakesPerS: 0 } });
  n.A.send(idB.nodeId, B_ADDR, Uint8Array.of(7));
  n.deliver();
  assert.equal(n.B.stats.drops['cookie-required'], 1);
  assert.deepEqual([...n.got.B[0].msg], [7]);
});

test('rekeying after rekey_after_time uses pqIK and keeps the session', () => {
  const n = net();
  n.A.send(idB.nodeId, B_ADDR, Uint8Array.of(1));
  n.deliver();
  n.clock.t += 121;
  n.A.send(idB.nodeId, B_ADDR, Uint8Array.of(2));
  const kinds = n.wire.map((d) => decodeMessage(d.bytes).msg).filter((m) => m.type === 'hs').map((m) => m.kind);
  assert.ok(kinds.includes(5), 'pqIK first message');
  n.deliver();
  n.A.send(idB.nodeId, B_ADDR, Uint8Array.of(3));
  n.deliver();
  assert.deepEqual(n.got.B.map((g) => g.msg[0]), [1, 2, 3]);
  assert.equal(n.A.peers.get(Buffer.from(idB.nodeId).toString('hex')).current.initiator, true);
  n.clock.t += 200;
  n.A.tick();
  n.B.tick();
  assert.ok(n.A.hasSession(idB.nodeId) === false);
});

test('pqIK early data reaches the responder, flagged, and its answer waits for key confirmation', () => {
  const n = net();
  n.A.send(idB.nodeId, B_ADDR, Uint8Array.of(1));
  n.deliver();
  // A knows B's static key now; start a pqIK handshake carrying early data by hand
  const pA = n.A.peers.get(Buffer.from(idB.nodeId).toString('hex'));
  n.A.forget(pA.hex);
  n.B.forget(Buffer.from(idA.nodeId).toString('hex'));
  n.B.onMessage = (peer, msg, from, info) => {
    n.got.B.push({ msg, info });
    n.B.send(peer, from, Uint8Array.of(msg[0] + 1));
  };
  n.A.staticKeys.put(pA.hex, idB.xwing.pk);
  n.A.startHandshake(n.A.peer(pA.hex), B_ADDR, Uint8Array.of(41));
  n.deliver();
  assert.deepEqual(n.got.B.map((g) => [g.msg[0], g.info.early]), [[1, false], [41, true]]);
  assert.deepEqual(n.got.A.map((g) => g.msg[0]), [42]);
  assert.equal(n.A.stats.handshakes + n.B.stats.handshakes, 2, 'the answer did not start another handshake');
});

test('a forgotten address (an inbound WebSocket connection closed): the next send names the one to use', () => {
  const n = net();
  // A reaches B from an "inbound connection" address; B answers there, then forgets it
  const inbound = { tr: 'ws', address: '127.0.0.1', port: 1001, inbound: true };
  n.A.send(idB.nodeId, B_ADDR, Uint8Array.of(1));
  n.deliver((d) => {
    if (d.from === A_ADDR) d.from = inbound;
    return true;
  });
  assert.equal(n.got.B.length, 1);
  n.B.forgetAddress({ tr: 'udp', address: '127.0.0.1', port: 1001 });
  assert.equal(n.B.peers.get(Buffer.from(idA.nodeId).toString('hex')).addr, inbound, 'a UDP address of the same numbers is another address');
  n.B.forgetAddress(inbound);
  const dialable = { tr: 'ws', address: '127.0.0.1', port: 1001 };
  n.B.send(idA.nodeId, dialable, Uint8Array.of(2));
  assert.equal(n.wire.at(-1).to, dialable, 'sent on the same keys to the dialable address');
  n.deliver();
  assert.deepEqual([...n.got.A[0].msg], [2]);
  assert.equal(n.A.stats.handshakes + n.B.stats.handshakes, 1, 'no new handshake');
});
