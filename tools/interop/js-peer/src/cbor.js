// Strict CBOR for qdht (protocol-spec/00-conventions.md §2-§4) on top of
// cborg (https://github.com/rvagg/cborg), which does the byte-level work:
// reading heads and arguments, slicing strings, building arrays and maps,
// and the RFC 8949 §4.2.1 deterministic encoder.
//
// cborg does not enforce all of the qdht profile, so a small validation layer
// does the rest, in the order of 00 §4.1:
//   * a tokenizer in front of cborg's (`ProfileTokenizer`) rejects, before
//     cborg acts on an item: indefinite lengths, tags, floats, simple values
//     but false/true/null, invalid UTF-8 (cborg would substitute U+FFFD),
//     duplicate keys, nesting deeper than max_depth, more than max_items
//     items, containers longer than max_container_len or than the bytes left
//     (so no length announced in the input allocates anything);
//   * non-text keys (noted by the tokenizer, reported once the whole input
//     was read); a walk turns cborg's Maps (`useMaps`, so a key "__proto__"
//     or a non-text key is never written into a plain object) into
//     null-prototype objects;
//   * trailing bytes (cborg's decodeFirst reports the remainder);
//   * determinism by the round trip 00 §2 allows: the item's deterministic
//     encoding must be the input (non-shortest integers and lengths, key
//     order).
// Anything cborg itself throws while reading is a well-formedness failure
// (`malformed`).
//
// Value model: unsigned/negative integers -> number when |v| <= 2^53-1, else
// bigint; byte strings -> Uint8Array; text -> string; arrays -> Array; maps ->
// null-prototype objects (keys are always text); false/true/null.
import { Tokenizer, Type, decodeFirst, encode as cborgEncode, rfc8949EncodeOptions } from 'cborg';

export const LIMITS = Object.freeze({
  maxBytes: 73728,
  maxDepth: 16,
  maxContainerLen: 1024,
  maxItems: 8192,
});

/** A decode failure with a reason code of 00-conventions.md §4.1 and a path. */
export class DecodeError extends Error {
  /** @param {string} reason @param {string} [path] @param {string} [detail] */
  constructor(reason, path = '$', detail = '') {
    super(`${reason} at ${path}${detail ? `: ${detail}` : ''}`);
    this.name = 'DecodeError';
    this.reason = reason;
    this.path = path;
  }
}

const TEXT_DECODER = new TextDecoder('utf-8', { fatal: true });

/** cborg's own options: every item type we admit, nothing repaired. */
const CBORG_DECODE = Object.freeze({
  strict: false, // the round trip reports non-shortest forms, after the other checks (00 §4.1)
  allowIndefinite: false,
  allowUndefined: false,
  allowInfinity: false,
  allowNaN: false,
  allowBigInt: true,
  useMaps: true,
  rejectDuplicateMapKeys: true, // also checked (with a reason code) by ProfileTokenizer
  retainStringBytes: true, // for the UTF-8 check
});

/** Bytewise comparison of two Uint8Arrays. */
export function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/**
 * cborg's tokenizer with the qdht profile checks in front: each token is
 * classified from its initial byte before cborg reads it, and containers are
 * tracked (a stack of open arrays and maps with the children still due) for
 * depth, item counts and duplicate keys.
 */
class ProfileTokenizer extends Tokenizer {
  constructor(data, limits) {
    super(data, CBORG_DECODE);
    this.limits = limits;
    this.items = 0;
    this.depth = 0; // open arrays and maps
    this.tagPaths = [];
    this.nonText = null; // the path of the first map with a non-text key
    /** cborg's `tags` option: every tag number decodes the tagged item (well-formedness), then is refused. */
    this.tags = new Proxy([], {
      get: () => (decodeContent) => {
        decodeContent();
        throw new DecodeError('unsupported-type', this.tagPaths.pop(), 'tag');
      },
    });
    /** @type {{due: number, total: number, map: boolean, keys: Set<string>|null, path: string, key: string|null, tag: boolean, keyIn: object|null, start: number}[]} */
    this.stack = [];
  }

  /** A non-text key as text: its encoded bytes, from `start` to here. */
  rawKey(start) {
    return `<${Buffer.from(this.data.subarray(start, this.pos())).toString('hex')}>`;
  }

  /** Record a key of the map `frame`; `duplicate-key` if it holds it already. */
  noteKey(frame, key) {
    if (frame.keys.has(key)) throw new DecodeError('duplicate-key', `${frame.path}.${key}`);
    frame.keys.add(key);
  }

  next() {
    const start = this.pos();
    const ib = this.data[start];
    const mt = ib >> 5;
    const ai = ib & 0x1f;
    const top = this.stack[this.stack.length - 1];
    const i = top ? top.total - top.due : 0;
    const isKey = top !== undefined && top.map && i % 2 === 0;
    // The item's path, built only when needed (an error, a container).
    const path = () => {
      if (!top) return '$';
      if (!top.map) return `${top.path}[${i}]`;
      if (isKey) return `${top.path}.<key ${i / 2}>`;
      return top.key === null ? `${top.path}.<value ${(i - 1) / 2}>` : `${top.path}.${top.key}`;
    };
    // Depth counts arrays and maps only: a scalar inside 16 arrays is fine (00 §3).
    if ((mt === 4 || mt === 5) && this.depth + 1 > this.limits.maxDepth) throw new DecodeError('too-deep', path());
    if (++this.items > this.limits.maxItems) throw new DecodeError('too-many-items', path());
    if (mt === 7) {
      if (ai === 31) throw new DecodeError('malformed', path(), 'stray break');
      if (ai >= 28) throw new DecodeError('malformed', path(), 'reserved additional information');
      if (ai < 20 || ai > 22) {
        // Well-formedness first (RFC 8949 §3.3, Appendix F): a float cut
        // short, or a simple value below 32 in the two-byte form, is malformed.
        const size = ai >= 24 ? 1 << (ai - 24) : 0;
        if (start + 1 + size > this.data.length) throw new DecodeError('malformed', path(), 'truncated');
        if (ai === 24 && this.data[start + 1] < 32) throw new DecodeError('malformed', path(), 'simple value in two bytes');
        throw new DecodeError('unsupported-type', path(), 'float or simple value');
      }
    } else if (ai === 31) {
      if (mt >= 2 && mt <= 5) throw new DecodeError('indefinite-length', path());
      throw new DecodeError('malformed', path(), 'indefinite integer or tag');
    } else if (ai >= 28) throw new DecodeError('malformed', path(), 'reserved additional information');
    let token;
    try {
      token = super.next();
    } catch (e) {
      throw new DecodeError('malformed', path(), e.message);
    }
    if (Type.equals(token.type, Type.string)) {
      try {
        TEXT_DECODER.decode(token.byteValue);
      } catch {
        throw new DecodeError('malformed', path(), 'invalid UTF-8');
      }
    }
    if (top) top.due -= 1;
    // A map key: text keys are compared as text, others by their bytes, a
    // container once it has been read (duplicates are found while reading,
    // before `non-text-key`, which the profile step reports).
    const keyIn = isKey ? top : null;
    if (keyIn) {
      top.key = typeof token.value === 'string' ? token.value : null;
      if (top.key === null) this.nonText ??= top.path;
    }
    const container = Type.equals(token.type, Type.tag) || Type.equals(token.type, Type.map) || Type.equals(token.type, Type.array);
    if (keyIn && !container) this.noteKey(keyIn, top.key ?? this.rawKey(start));
    if (Type.equals(token.type, Type.tag)) {
      // Read the tagged item too (it must be well formed), then `tags`
      // refuses the tag: `unsupported-type` at the tag's path.
      this.tagPaths.push(path());
      this.stack.push({ due: 1, total: 1, map: false, keys: null, path: path(), key: null, tag: true, keyIn, start });
      return token;
    }
    const isMap = Type.equals(token.type, Type.map);
    if (container) {
      const n = token.value;
      const children = isMap ? 2 * n : n;
      if (children > this.data.length - this.pos()) throw new DecodeError('malformed', path(), 'truncated');
      if (n > this.limits.maxContainerLen) throw new DecodeError('too-many-items', path());
      if (children > 0) {
        this.depth += 1;
        this.stack.push({ due: children, total: children, map: isMap, keys: isMap ? new Set() : null, path: path(), key: null, tag: false, keyIn, start });
        return token;
      }
      if (keyIn) this.noteKey(keyIn, this.rawKey(start));
    }
    while (this.stack.length && this.stack[this.stack.length - 1].due === 0) {
      const done = this.stack.pop();
      if (!done.tag) this.depth -= 1;
      if (done.keyIn) this.noteKey(done.keyIn, this.rawKey(done.start));
    }
    return token;
  }
}

/** cborg's Maps (text keys only, the tokenizer saw to that) -> null-prototype objects. */
function profile(v) {
  if (v instanceof Map) {
    const out = Object.create(null);
    for (const [k, x] of v) out[k] = profile(x);
    return out;
  }
  if (Array.isArray(v)) return v.map(profile);
  return v;
}

/**
 * Decode `bytes` as one qdht-profile CBOR item.
 * @param {Uint8Array} bytes
 * @param {typeof LIMITS} [limits]
 */
export function decode(bytes, limits = LIMITS) {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError('not-bytes');
  if (bytes.length === 0) throw new DecodeError('empty');
  if (bytes.length > limits.maxBytes) throw new DecodeError('too-large');
  let item;
  let rest;
  try {
    const tokenizer = new ProfileTokenizer(bytes, limits);
    [item, rest] = decodeFirst(bytes, { ...CBORG_DECODE, tags: tokenizer.tags, tokenizer });
    if (tokenizer.nonText !== null) throw new DecodeError('non-text-key', tokenizer.nonText);
  } catch (e) {
    if (e instanceof DecodeError) throw e;
    throw new DecodeError('malformed', '$', e.message); // e.g. a container cut short
  }
  const value = profile(item);
  if (rest.length) throw new DecodeError('trailing-bytes');
  const again = encode(value);
  if (Buffer.compare(again, bytes.subarray(0, bytes.length - rest.length)) !== 0) {
    throw new DecodeError('non-deterministic', '$', 'not the deterministic encoding (RFC 8949 §4.2.1)');
  }
  return value;
}

// ---------------------------------------------------------------- encoding

const MIN_INT = -(2n ** 64n);
const MAX_INT = 2n ** 64n - 1n;

/**
 * Our value model -> what cborg encodes: maps become Maps (text keys, fields
 * whose value is undefined left out; cborg sorts them bytewise with
 * `rfc8949EncodeOptions`); anything outside the profile (floats, undefined
 * in an array, out-of-range integers, other objects) is local misuse.
 */
function toCborg(v) {
  if (v === null || v === true || v === false || typeof v === 'string' || v instanceof Uint8Array) return v;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new TypeError('only safe integers can be encoded (use bigint)');
    return v === 0 ? 0 : v; // no -0
  }
  if (typeof v === 'bigint') {
    if (v < MIN_INT || v > MAX_INT) throw new RangeError('integer out of CBOR range');
    return v;
  }
  if (Array.isArray(v)) return v.map(toCborg);
  if (typeof v === 'object' && !(v instanceof Map) && !ArrayBuffer.isView(v)) {
    const m = new Map();
    for (const k of Object.keys(v)) if (v[k] !== undefined) m.set(k, toCborg(v[k]));
    return m;
  }
  throw new TypeError(`cannot encode ${v === undefined ? 'undefined' : (v?.constructor?.name ?? typeof v)}`);
}

/** Concatenate Uint8Arrays. */
export function concat(parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Deterministic encoding (RFC 8949 §4.2.1, qdht profile). Map fields whose value is undefined are omitted. */
export function encode(v) {
  const b = cborgEncode(toCborg(v), rfc8949EncodeOptions);
  // cborg may hand out a Node Buffer; callers get the plain Uint8Array they gave.
  return b.constructor === Uint8Array ? b : new Uint8Array(b.buffer, b.byteOffset, b.length);
}
