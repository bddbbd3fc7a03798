// Strict CBOR for qdht (protocol-spec/00-conventions.md §2-§4) on top of
// cborg (https://github.com/rvagg/cborg), which does the byte-level work:
// reading heads and arguments, slicing strings, building arrays and maps,
// and the RFC 8949 §4.2.1 deterministic encoder.
//
// cborg does not enforce all of the qdht profile, so a small validation layer
// does the rest, in the order of 00 §4.1:
//   * while reading, a tokenizer in front of cborg's (`ProfileTokenizer`)
//     sees each item before cborg acts on it and rejects indefinite lengths,
//     reserved or ill-formed heads (a simple value below 32 in two bytes, a
//     float cut short), invalid UTF-8 (cborg would substitute U+FFFD),
//     nesting deeper than max_depth (before cborg recurses), tags (once their
//     item is read) and repeated keys (once their entry's value is read);
//     cborg builds arrays and maps as their items arrive, so no length
//     announced in the input allocates anything;
//   * the profile step, once the whole input was read: the first of the
//     faults the tokenizer noted in reading order (a non-text key, a float or
//     simple value, a container longer than max_container_len, more than
//     max_items items); a walk then turns cborg's Maps (`useMaps`, so a key
//     "__proto__" or a non-text key is never written into a plain object)
//     into null-prototype objects;
//   * determinism by the round trip 00 §2 allows: the item's deterministic
//     encoding must be the bytes read (non-shortest integers and lengths, key
//     order); then trailing bytes (cborg's decodeFirst reports the remainder).
// Anything cborg itself throws while reading is a well-formedness failure
// (`malformed`).
//
// Value model: unsigned/negative integers -> number when |v| <= 2^53-1, else
// bigint; byte strings -> Uint8Array; text -> string; arrays -> Array; maps ->
// null-prototype objects (keys are always text); false/true/null.
import { Token, Tokenizer, Type, decodeFirst, encode as cborgEncode, rfc8949EncodeOptions } from 'cborg';

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
  // undefined and floats are read (they are well formed) and refused by the
  // profile step, after the whole input (00 §4.1)
  allowUndefined: true,
  allowInfinity: true,
  allowNaN: true,
  allowBigInt: true,
  useMaps: true,
  rejectDuplicateMapKeys: false, // ProfileTokenizer reports them, once the entry's value is read
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
    this.depth = 0; // open arrays, maps and tags
    /** The first fault of the profile step met while reading (reported once the whole input was read). */
    this.profileFault = null;
    if (typeof this._pos !== 'number') throw new Error('cborg: Tokenizer._pos is gone (a new cborg version?)');
    /**
     * cborg's `tags` option: every tag number has a decoder, so that cborg
     * reads the tagged item (which must be well formed); reading it whole
     * pops the tag's frame, which refuses the tag.
     */
    this.tags = new Proxy([], {
      get: () => (decodeContent) => {
        decodeContent();
        throw new DecodeError('unsupported-type', '$', 'tag'); // not reached
      },
    });
    /** @type {{due: number, total: number, map: boolean, keys: Set<string>|null, path: string, key: string|null, tag: boolean, keyIn: object|null, start: number, parent: object|undefined, at: number, dup: string|null}[]} */
    this.stack = [];
  }

  /** A non-text key as text: its encoded bytes, from `start` to here. */
  rawKey(start) {
    return `<${Buffer.from(this.data.subarray(start, this.pos())).toString('hex')}>`;
  }

  /** Record a key of the map `frame`; a repeated one is `duplicate-key` once its value is read. */
  noteKey(frame, key) {
    if (frame.keys.has(key)) frame.dup = `${frame.path}.${key}`;
    frame.keys.add(key);
  }

  /** The item at index `at` of `frame` has been read whole: a map entry with a repeated key ends here. */
  completed(frame, at) {
    if (frame?.dup && at % 2 === 1) throw new DecodeError('duplicate-key', frame.dup);
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
    // Depth counts arrays, maps and tags (each wraps what it holds), not
    // scalars: a scalar inside 16 arrays is fine (00 §3).
    if (mt >= 4 && mt <= 6 && this.depth + 1 > this.limits.maxDepth) throw new DecodeError('too-deep', path());
    if (++this.items > this.limits.maxItems) this.profileFault ??= { reason: 'too-many-items', path: path() };
    // The profile step checks a map's key before what the key is.
    if (isKey && mt !== 3) this.profileFault ??= { reason: 'non-text-key', path: top.path };
    let simple = null; // a simple value cborg does not read: what stands in for it
    if (mt === 7) {
      if (ai === 31) throw new DecodeError('malformed', path(), 'stray break');
      if (ai >= 28) throw new DecodeError('malformed', path(), 'reserved additional information');
      if (ai < 20 || ai > 22) {
        // Well-formedness first (RFC 8949 §3.3, Appendix F): a float cut
        // short, or a simple value below 32 in the two-byte form, is malformed.
        const size = ai >= 24 ? 1 << (ai - 24) : 0;
        if (start + 1 + size > this.data.length) throw new DecodeError('malformed', path(), 'truncated');
        if (ai === 24 && this.data[start + 1] < 32) throw new DecodeError('malformed', path(), 'simple value in two bytes');
        this.profileFault ??= { reason: 'unsupported-type', path: path() };
        if (ai < 20 || ai === 24) simple = new Token(Type.null, null, 1 + size);
      }
    } else if (ai === 31) {
      if (mt >= 2 && mt <= 5) throw new DecodeError('indefinite-length', path());
      throw new DecodeError('malformed', path(), 'indefinite integer or tag');
    } else if (ai >= 28) throw new DecodeError('malformed', path(), 'reserved additional information');
    let token = simple;
    if (simple) this._pos += simple.encodedLength;
    else {
      try {
        token = super.next();
      } catch (e) {
        throw new DecodeError('malformed', path(), e.message);
      }
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
    // container once it has been read. A repeated key is reported when its
    // entry's value has been read (the reference decoder's order), while
    // reading, before `non-text-key`, which the profile step reports.
    const keyIn = isKey ? top : null;
    if (keyIn) top.key = typeof token.value === 'string' && !simple ? token.value : null;
    const container = Type.equals(token.type, Type.tag) || Type.equals(token.type, Type.map) || Type.equals(token.type, Type.array);
    if (keyIn && !container) this.noteKey(keyIn, top.key ?? this.rawKey(start));
    if (Type.equals(token.type, Type.tag)) {
      // Read the tagged item too (it must be well formed), then refuse the
      // tag (`unsupported-type`, when its frame is popped below).
      this.depth += 1;
      this.stack.push({ due: 1, total: 1, map: false, keys: null, path: path(), key: null, tag: true, keyIn, start, parent: top, at: i, dup: null });
      return token;
    }
    const isMap = Type.equals(token.type, Type.map);
    if (container) {
      const n = token.value;
      const children = isMap ? 2 * n : n;
      // cborg builds containers as their items arrive (no allocation by the
      // announced length), so a length beyond the input is met as the end of
      // the input, in reading order; an over-long container is a profile fault.
      if (n > this.limits.maxContainerLen) this.profileFault ??= { reason: 'too-many-items', path: path() };
      if (children > 0) {
        this.depth += 1;
        this.stack.push({ due: children, total: children, map: isMap, keys: isMap ? new Set() : null, path: path(), key: null, tag: false, keyIn, start, parent: top, at: i, dup: null });
        return token;
      }
      if (keyIn) this.noteKey(keyIn, this.rawKey(start));
    }
    this.completed(top, i);
    while (this.stack.length && this.stack[this.stack.length - 1].due === 0) {
      const done = this.stack.pop();
      // a tag is refused as soon as its item has been read whole
      if (done.tag) throw new DecodeError('unsupported-type', done.path, 'tag');
      this.depth -= 1;
      if (done.keyIn) this.noteKey(done.keyIn, this.rawKey(done.start));
      this.completed(done.parent, done.at);
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
    if (tokenizer.profileFault) throw new DecodeError(tokenizer.profileFault.reason, tokenizer.profileFault.path);
  } catch (e) {
    if (e instanceof DecodeError) throw e;
    throw new DecodeError('malformed', '$', e.message); // e.g. a container cut short
  }
  const value = profile(item);
  const again = encode(value);
  if (Buffer.compare(again, bytes.subarray(0, bytes.length - rest.length)) !== 0) {
    throw new DecodeError('non-deterministic', '$', 'not the deterministic encoding (RFC 8949 §4.2.1)');
  }
  if (rest.length) throw new DecodeError('trailing-bytes');
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
