#!/usr/bin/env node
// What a mixnet packet costs the JS peer (src/mixnet.js, 10-mixnet.md).
//
//   node bench/mix.js [--batches N] [--quick] [--json PATH]
//
// Operations, on the default geometry (3 hops, U = 2048: 11 595-byte packets):
// one X-Wing decapsulation (the baseline: the part no implementation of the
// packet format can avoid), one hop's unwrap (decapsulation, keys, MAC,
// header stream, LIONESS), LIONESS over one block, creating a 3-hop packet,
// and a mix's junk path (a packet failing its MAC: decapsulation and MAC
// only). Figures: the median over batches of the time per operation, and
// the median of its ratio to the baseline in the same batch, in process CPU
// time (process.cpuUsage: the machine is shared, wall time is not ours).
// Pure JavaScript (@noble): every figure is time on the event loop.
import { writeFileSync } from 'node:fs';
import { xwingExpand, xwingDecaps, xwingEncaps } from '../src/crypto.js';
import { geometry, createPacket, encodePayload, unwrap, lionessDecrypt, PAYLOAD_KIND, MixKeyring } from '../src/mixnet.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const quick = args.includes('--quick');
const batches = Number(opt('--batches', quick ? '3' : '11'));
const repeat = quick ? 5 : 40;
const jsonPath = opt('--json', null);

const geo = geometry(3, 2048);
const seed = (i) => new Uint8Array(32).fill(i + 1);
const hops = [0, 1, 2].map((i) => {
  const key = xwingExpand(seed(i));
  return { id: new Uint8Array(32).fill(0x10 + i), pk: key.pk, key, delayMs: 50 };
});
const payload = encodePayload(geo, PAYLOAD_KIND.message, new Uint8Array(100).fill(7));
const { packet } = createPacket(geo, hops, hops[2].id, payload);
const ct = xwingEncaps(hops[0].pk).ct;
const junk = packet.slice();
junk[3000] ^= 1;
const ring = new MixKeyring(geo);
ring.addKey(0, seed(0));
const lkey = new Uint8Array(128).fill(3);
const liv = new Uint8Array(48).fill(4);
const block = packet.subarray(geo.H);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ops = [
  { name: 'X-Wing decapsulation (baseline)', fn: () => xwingDecaps(hops[0].key, ct) },
  { name: 'unwrap one hop (forward)', fn: () => unwrap(geo, hops[0].key, packet) },
  { name: 'junk packet dropped (bad-mac)', fn: () => ring.receive(junk) },
  { name: `LIONESS decrypt (${block.length} B)`, fn: () => lionessDecrypt(lkey, liv, block) },
  { name: 'create a 3-hop packet', fn: () => createPacket(geo, hops, hops[2].id, payload) },
];
const per = ops.map(() => []);
for (let k = -1; k < batches; k++) {
  ops.forEach((op, j) => {
    const t0 = process.cpuUsage();
    for (let r = 0; r < repeat; r++) op.fn();
    const t = process.cpuUsage(t0);
    if (k >= 0) per[j].push((t.user + t.system) / repeat); // k < 0: warm-up
  });
}
const rows = ops.map((op, j) => ({ op: op.name, us: median(per[j]), ratio: median(per[j].map((t, k) => t / per[0][k])) }));

const w = Math.max(...rows.map((r) => r.op.length));
console.log(`mixnet packets on Node ${process.version} (@noble); L = 3, U = 2048, ${geo.packet} B; median of ${batches} batches × ${repeat}`);
console.log(`${'operation'.padEnd(w)}  ${'CPU µs/op'.padStart(9)}  ${'× decaps'.padStart(8)}`);
for (const r of rows) console.log(`${r.op.padEnd(w)}  ${r.us.toFixed(0).padStart(9)}  ${r.ratio.toFixed(2).padStart(8)}`);
if (jsonPath) {
  writeFileSync(jsonPath, `${JSON.stringify({ bench: 'js-peer-mix', node: process.version, batches, repeat, packet_size: geo.packet, rows }, null, 1)}\n`);
  console.log(`wrote ${jsonPath}`);
}
