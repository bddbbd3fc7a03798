// Wire-level vectors: every `tests` entry of protocol-spec/vectors/**.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decode, encode, DecodeError } from '../src/cbor.js';
import { checkMessage } from '../src/messages.js';
import { vectorFiles, hex, toHex } from './util.js';

for (const [name, file] of vectorFiles()) {
  test(`wire vectors ${name}`, () => {
    for (const tc of file.tests) {
      const bytes = hex(tc.cbor);
      const label = `${name} tcId ${tc.tcId} (${tc.comment})`;
      if (tc.result === 'valid') {
        const item = decode(bytes);
        const { rule } = checkMessage(item);
        assert.equal(rule, file.rule, label);
        assert.equal(toHex(encode(item)), tc.cbor, `${label}: re-encoding`);
      } else {
        let err = null;
        try {
          const { rule } = checkMessage(decode(bytes));
          if (rule !== file.rule) err = new DecodeError('wrong-type');
        } catch (e) {
          if (!(e instanceof DecodeError)) throw e;
          err = e;
        }
        assert.ok(err, `${label}: must be rejected`);
        assert.equal(err.reason, tc.reason, `${label}: reason (${err.message})`);
      }
    }
  });
}

// Session rules' cross-field cases (`i` < `c`, 04 §4, 05 §4): the CDDL admits
// them, a decoder must reject them with `reason`.
for (const [name, file] of vectorFiles().filter(([n, f]) => n.startsWith('session/') && f.semantic)) {
  test(`cross-field vectors ${name}`, () => {
    for (const tc of file.semantic) {
      assert.throws(
        () => checkMessage(decode(hex(tc.cbor))),
        (e) => e instanceof DecodeError && e.reason === tc.reason,
        `${name} semantic ${tc.tcId} (${tc.comment})`,
      );
    }
  });
}

// Mixnet order rules (10-mixnet.md §10): the CDDL admits them, a decoder must
// reject them with `reason`.
for (const [name, file] of vectorFiles().filter(([n, f]) => n.startsWith('mix/') && f.decoder_rejects)) {
  test(`order vectors ${name}`, () => {
    for (const tc of file.decoder_rejects) {
      assert.throws(
        () => checkMessage(decode(hex(tc.cbor))),
        (e) => e instanceof DecodeError && e.reason === tc.reason,
        `${name} decoder_rejects (${tc.comment})`,
      );
    }
  });
}
