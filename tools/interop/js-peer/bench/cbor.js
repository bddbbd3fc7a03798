#!/usr/bin/env node
// What the qdht profile layer (src/cbor.js) costs on top of cborg.
//
//   node bench/cbor.js [--batches N] [--json PATH]
//
// Inputs: every valid wire vector of protocol-spec/vectors/ (one batch decodes
// each once) and a STORE of a 64 KiB immutable value (the largest message).
// Figures: the median over batches of the time per message, and the median
// of its ratio to plain cborg decoding / encoding in the same batch (the
// baseline: no limits, no profile, no determinism check).
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { decode as cborgDecode, encode as cborgEncode, rfc8949EncodeOptions } from 'cborg';
import { decode, encode } from '../src/cbor.js';
import { decodeMessage } from '../src/messages.js';
import { vectorFiles, hex } from '../test/util.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const batches = Number(opt('--batches', '11'));
const jsonPath = opt('--json', null);

const vectors = vectorFiles()
  .filter(([name]) => !name.startsWith('session/session-hs')) // its transcripts are not single messages
  .flatMap(([, f]) => f.tests.filter((t) => t.result === 'valid').map((t) => hex(t.cbor)));
const big = new Uint8Array(65536).fill(7);
const store = encode({ type: 'store', rid: new Uint8Array(8), key: new Uint8Array(32), record: { type: 'immutable', value: big, exp: 1_900_000_000 } });

const RAW = { useMaps: true, allowIndefinite: false, allowUndefined: false };

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Each batch runs every operation in turn over `inputs` (so load from other
 * processes hits them alike); per operation: the median µs per message, and
 * the median over batches of its ratio to the baseline of the same batch.
 */
function measure(inputs, ops, repeat) {
  const per = ops.map(() => []);
  for (let k = -2; k < batches; k++) {
    ops.forEach((op, j) => {
      const t0 = performance.now();
      for (let r = 0; r < repeat; r++) for (let i = 0; i < inputs.length; i++) op.fn(inputs[i], i);
      if (k >= 0) per[j].push(((performance.now() - t0) * 1000) / (repeat * inputs.length)); // k < 0: warm-up
    });
  }
  return ops.map((op, j) => ({
    op: op.name,
    us: median(per[j]),
    ratio: median(per[j].map((t, k) => t / per[op.base][k])),
  }));
}

const sets = [
  { name: `spec vectors (${vectors.length})`, inputs: vectors, repeat: 20 },
  { name: 'STORE of a 64 KiB value', inputs: [store], repeat: 400 },
];
const rows = [];
for (const s of sets) {
  const items = s.inputs.map((b) => decode(b));
  const ops = [
    { name: 'decode: cborg alone (baseline)', base: 0, fn: (b) => cborgDecode(b, RAW) },
    { name: 'decode: qdht profile', base: 0, fn: (b) => decode(b) },
    { name: 'decode + message check', base: 0, fn: (b) => decodeMessage(b) },
    { name: 'encode: cborg alone (baseline)', base: 3, fn: (_, i) => cborgEncode(items[i], rfc8949EncodeOptions) },
    { name: 'encode: qdht profile', base: 3, fn: (_, i) => encode(items[i]) },
  ];
  for (const r of measure(s.inputs, ops, s.repeat)) rows.push({ set: s.name, ...r });
}

const w = [Math.max(...rows.map((r) => r.set.length)), Math.max(...rows.map((r) => r.op.length))];
console.log(`CBOR on Node ${process.version}, cborg; median of ${batches} batches`);
console.log(`${'inputs'.padEnd(w[0])}  ${'operation'.padEnd(w[1])}  ${'µs/msg'.padStart(9)}  ${'× base'.padStart(7)}`);
for (const r of rows) console.log(`${r.set.padEnd(w[0])}  ${r.op.padEnd(w[1])}  ${r.us.toFixed(2).padStart(9)}  ${r.ratio.toFixed(2).padStart(7)}`);
if (jsonPath) {
  writeFileSync(jsonPath, `${JSON.stringify({ bench: 'js-peer-cbor', node: process.version, batches, rows }, null, 1)}\n`);
  console.log(`wrote ${jsonPath}`);
}
