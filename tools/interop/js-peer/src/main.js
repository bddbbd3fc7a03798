#!/usr/bin/env node
// qdht JS peer: the interop harness contract.
//
// Environment:
//   QDHT_LISTEN      udp://HOST:PORT and/or ws://HOST:PORT, space-separated
//                    (default udp://127.0.0.1:0)
//   QDHT_BOOTSTRAP   space-separated contact URIs (may be empty)
//   QDHT_DIFFICULTY  network puzzle difficulty (default 19)
//   QDHT_KEYLOGFILE  optional: append session keys (one line per keypair)
//   QDHT_MIX         1: run the mix role (10-mixnet.md §8, §14), publishing
//                    the descriptor once bootstrapped
//
// stdout: one line per listen address with this node's contact URI there
// (line 1 is the first address's); then one line per answered
// stdin command (see README.md). Logs go to stderr. SIGTERM/SIGINT exit 0.
import { appendFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { generateIdentity } from './crypto.js';
import { Endpoint } from './session.js';
import { DhtNode, parseContactUri, formatContactUri } from './dht.js';
import { Transports } from './transport.js';
import { MixRole } from './mixrole.js';

const log = (...a) => process.stderr.write(`[js-peer] ${a.join(' ')}\n`);
const hexOf = (b) => Buffer.from(b).toString('hex');

function parseListen(s) {
  const m = /^(udp|ws):\/\/(\[[0-9a-fA-F:.]+\]|[0-9.]+):([0-9]{1,5})$/.exec(s);
  if (!m) throw new Error(`QDHT_LISTEN: expected udp://HOST:PORT or ws://HOST:PORT, got ${JSON.stringify(s)}`);
  return { tr: m[1], host: m[2].replace(/^\[|\]$/g, ''), port: Number(m[3]) };
}

async function main() {
  const listen = (process.env.QDHT_LISTEN || 'udp://127.0.0.1:0').split(/\s+/).filter(Boolean).map(parseListen);
  if (new Set(listen.map((l) => l.tr)).size !== listen.length) throw new Error('QDHT_LISTEN: at most one address per transport');
  const difficulty = Number.parseInt(process.env.QDHT_DIFFICULTY ?? '19', 10);
  if (!Number.isInteger(difficulty) || difficulty < 0 || difficulty > 255) throw new Error('QDHT_DIFFICULTY: integer 0..255 expected');
  const bootstrap = (process.env.QDHT_BOOTSTRAP ?? '').split(/\s+/).filter(Boolean).map(parseContactUri);
  const keylog = process.env.QDHT_KEYLOGFILE || null;
  const verbose = !!process.env.QDHT_JS_VERBOSE;

  const t0 = Date.now();
  const identity = generateIdentity(difficulty);
  log(`identity minted at difficulty ${difficulty} in ${Date.now() - t0} ms`);

  let ep = null;
  const transports = new Transports({
    onDatagram: (bytes, addr) => ep.receive(bytes, addr),
    onAddressGone: (addr) => ep.forgetAddress(addr),
    log,
  });
  const bound = [];
  for (const l of listen) bound.push(await (l.tr === 'udp' ? transports.listenUdp(l.host, l.port) : transports.listenWs(l.host, l.port)));

  ep = new Endpoint({
    identity,
    difficulty,
    sendDatagram: (bytes, addr) => transports.send(bytes, addr),
    onMessage: () => {},
    log: verbose ? (s) => log(s) : () => {},
    keyLog: keylog ? (line) => appendFileSync(keylog, `${line}\n`, { mode: 0o600 }) : null,
  });
  const wsPort = bound.find((b) => b.tr === 'ws')?.port ?? null;
  // 08 §4.2: each change a watched key reports, as one stdout line
  const onWatchEvent = (keyHex, event, r) =>
    process.stdout.write(`event ${keyHex} ${event} ${r.type} ${r.seq ?? '-'} ${r.value === undefined ? '-' : hexOf(r.value)}\n`);
  const node = new DhtNode(ep, { log, kinds: transports.kinds, wsPort, onWatchEvent });
  const udp = bound.find((b) => b.tr === 'udp');
  const mix = process.env.QDHT_MIX === '1' && udp ? new MixRole(node, { contactAddr: udp, log, layer: 0 }) : null;
  let mixStarted = false;
  const timer = setInterval(() => {
    ep.tick();
    node.tick();
    if (mixStarted) mix.tick();
    transports.tick((addr) => node.watcher.usesAddress(addr));
  }, 200);

  for (const b of bound) {
    process.stdout.write(`${formatContactUri(identity.nodeId, b)}\n`);
    log(`listening on ${b.tr}://${b.address}:${b.port}`);
  }

  let closing = false;
  const shutdown = (sig) => {
    if (closing) return;
    closing = true;
    log(`${sig}: shutting down (${node.table.size()} contacts, ${node.store.size} values, drops ${JSON.stringify(ep.stats.drops)})`);
    clearInterval(timer);
    for (const p of [...ep.peers.values()]) ep.closePeer(p.id);
    setImmediate(() => transports.close().then(() => process.exit(0)));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  const ready = bootstrap.length
    ? node.bootstrap(bootstrap).then(
        (ok) => log(`bootstrap: ${ok}/${bootstrap.length} contacts answered; routing table ${node.table.size()}`),
        (e) => log(`bootstrap failed: ${e.message}`),
      )
    : Promise.resolve();
  if (mix) ready.then(() => (mixStarted = true));

  // stdin commands: "put <hex>", "get <hex key>", "ping <uri>", "find-node <hex id>",
  // "watch <hex key>", "unwatch <hex key>", "stats"
  const rl = createInterface({ input: process.stdin, terminal: false });
  rl.on('line', async (line) => {
    const [cmd, arg = ''] = line.trim().split(/\s+/, 2);
    await ready;
    try {
      if (cmd === 'put') {
        const r = await node.put(Uint8Array.from(Buffer.from(arg, 'hex')));
        process.stdout.write(`stored ${hexOf(r.key)} ${r.stored}\n`);
      } else if (cmd === 'get') {
        const v = await node.get(Uint8Array.from(Buffer.from(arg, 'hex')));
        process.stdout.write(v ? `value ${arg} ${hexOf(v)}\n` : `notfound ${arg}\n`);
      } else if (cmd === 'ping') {
        const c = parseContactUri(arg);
        const r = await node.ping(c.id, c.addr);
        process.stdout.write(`${r.type} ${hexOf(c.id)}\n`);
      } else if (cmd === 'find-node') {
        const nodes = await node.lookup(Uint8Array.from(Buffer.from(arg, 'hex')), 'find_node');
        process.stdout.write(`nodes ${arg} ${nodes.map((n) => formatContactUri(n.id, n.addr)).join(' ')}\n`);
      } else if (cmd === 'watch') {
        const n = await node.watcher.watch(Uint8Array.from(Buffer.from(arg, 'hex')));
        process.stdout.write(`watching ${arg} ${n}\n`);
      } else if (cmd === 'unwatch') {
        const n = node.watcher.unwatch(Uint8Array.from(Buffer.from(arg, 'hex')));
        process.stdout.write(`unwatched ${arg} ${n}\n`);
      } else if (cmd === 'stats') {
        process.stdout.write(`stats ${JSON.stringify({ contacts: node.table.size(), values: node.store.size, session: ep.stats, transport: transports.stats, dht: node.stats, mix: mix?.stats ?? null, watch: { holder: node.holder.stats, watcher: node.watcher.stats } })}\n`);
      } else if (cmd) process.stdout.write(`error unknown command ${cmd}\n`);
    } catch (e) {
      process.stdout.write(`error ${cmd} ${e.message}\n`);
    }
  });
  rl.on('close', () => {}); // stdin closing does not stop the node
}

main().catch((e) => {
  log(`fatal: ${e.stack ?? e}`);
  process.exit(1);
});
