// Semantic and merge vectors of protocol-spec/vectors/records (07-records.md §6, §7).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage } from '../src/messages.js';
import { validateRecord, mergeRecord, mergeSetEntry, RecordError, DEFAULT_LIMITS } from '../src/records.js';
import { mldsaKeygen, sha3_256 } from '../src/crypto.js';
import { vectorFiles, hex, toHex } from './util.js';

const rec = (h) => (h ? decodeMessage(hex(h)).msg : null);

for (const [name, f] of vectorFiles().filter(([n]) => n.startsWith('records/'))) {
  const owners = new Map((f.keys ?? []).map((k) => {
    const pk = mldsaKeygen(hex(k.mldsa_seed)).pk;
    assert.equal(toHex(sha3_256(pk)), k.owner, `${name}: owner of ${k.name}`);
    return [k.owner, pk];
  }));
  test(`records semantic ${name}`, () => {
    for (const tc of f.semantic ?? []) {
      const limits = { ...DEFAULT_LIMITS, ...(f.limits ?? {}), ...(tc.limits ?? {}) };
      const resolve = tc.owner_known ? (o) => owners.get(toHex(o)) ?? null : () => null;
      let reason = null;
      try {
        validateRecord(rec(tc.cbor), hex(tc.key), tc.now, limits, resolve);
      } catch (e) {
        if (!(e instanceof RecordError)) throw e;
        reason = e.reason;
      }
      assert.equal(reason, tc.result === 'valid' ? null : tc.reason, `${name} semantic ${tc.tcId} (${tc.comment})`);
    }
  });
  test(`records merge ${name}`, () => {
    for (const tc of f.merge ?? []) {
      const limits = { ...DEFAULT_LIMITS, ...(f.limits ?? {}), ...(tc.limits ?? {}) };
      const incoming = rec(tc.incoming);
      const r = tc.entries
        ? mergeSetEntry(tc.entries.map(rec), incoming, tc.now, tc.cas ?? null, limits)
        : mergeRecord(rec(tc.existing), incoming, tc.now, tc.cas ?? null);
      assert.deepEqual(r, tc.reason ? { outcome: tc.outcome, reason: tc.reason } : { outcome: tc.outcome }, `${name} merge ${tc.tcId} (${tc.comment})`);
    }
  });
}
