import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SPEC_DIR = process.env.QDHT_SPEC_DIR ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'protocol-spec');

/** @returns {[string, any][]} (area/file, parsed JSON) for every vector file */
export function vectorFiles() {
  const root = join(SPEC_DIR, 'vectors');
  const out = [];
  for (const area of readdirSync(root).sort())
    for (const f of readdirSync(join(root, area)).sort())
      if (f.endsWith('.json')) out.push([`${area}/${f}`, JSON.parse(readFileSync(join(root, area, f), 'utf8'))]);
  return out;
}
export const vectorFile = (rel) => JSON.parse(readFileSync(join(SPEC_DIR, 'vectors', rel), 'utf8'));
export const hex = (s) => Uint8Array.from(Buffer.from(s, 'hex'));
export const toHex = (b) => Buffer.from(b).toString('hex');
