// Strict CBOR for qdht (protocol-spec/00-conventions.md §2-§4).
//
// Decoding accepts only the RFC 8949 §4.2.1 core deterministic encoding,
// further restricted by the qdht profile: text keys only, no tags, no floats,
// no simple values but false/true/null, definite lengths only, one item.
// Encoding produces exactly that encoding.
//
// Value model: unsigned/negative integers -> number when |v| <= 2^53-1, else
// bigint; byte strings -> Uint8Array; text -> string; arrays -> Array; maps ->
// null-prototype objects (keys are always text); false/true/null.

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
const TEXT_ENCODER = new TextEncoder();

/** Bytewise comparison of two Uint8Arrays. */
export function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
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
  const st = { pos: 0, items: 0, nondet: null, nontext: null };
  const value = readItem(bytes, st, 1, '$', limits);
  if (st.nontext) throw new DecodeError('non-text-key', st.nontext);
  if (st.pos !== bytes.length) throw new DecodeError('trailing-bytes');
  if (st.nondet) throw new DecodeError('non-deterministic', st.nondet);
  return value;
}

function need(bytes, st, n) {
  if (st.pos + n > bytes.length) throw new DecodeError('malformed', '$', 'truncated');
}

/** Read the argument of an initial byte; returns number or bigint. */
function readArg(bytes, st, ai, path) {
  if (ai < 24) return ai;
  let v;
  if (ai === 24) {
    need(bytes, st, 1);
    v = bytes[st.pos];
    st.pos += 1;
    if (v < 24) st.nondet ??= path;
  } else if (ai === 25) {
    need(bytes, st, 2);
    v = (bytes[st.pos] << 8) | bytes[st.pos + 1];
    st.pos += 2;
    if (v < 0x100) st.nondet ??= path;
  } else if (ai === 26) {
    need(bytes, st, 4);
    v = ((bytes[st.pos] << 24) >>> 0) + (bytes[st.pos + 1] << 16) + (bytes[st.pos + 2] << 8) + bytes[st.pos + 3];
    st.pos += 4;
    if (v < 0x10000) st.nondet ??= path;
  } else if (ai === 27) {
    need(bytes, st, 8);
    const dv = new DataView(bytes.buffer, bytes.byteOffset + st.pos, 8);
    v = dv.getBigUint64(0);
    st.pos += 8;
    if (v < 0x100000000n) st.nondet ??= path;
    if (v <= BigInt(Number.MAX_SAFE_INTEGER)) v = Number(v);
  } else if (ai === 31) {
    return -1; // indefinite; caller decides
  } else {
    throw new DecodeError('malformed', path, 'reserved additional information');
  }
  return v;
}

function readItem(bytes, st, depth, path, limits) {
  if (depth > limits.maxDepth) throw new DecodeError('too-deep', path);
  st.items += 1;
  if (st.items > limits.maxItems) throw new DecodeError('too-many-items', path);
  need(bytes, st, 1);
  const ib = bytes[st.pos++];
  const mt = ib >> 5;
  const ai = ib & 0x1f;
  if (mt === 7) {
    if (ai === 20) return false;
    if (ai === 21) return true;
    if (ai === 22) return null;
    if (ai === 31) throw new DecodeError('malformed', path, 'stray break');
    if (ai >= 28) throw new DecodeError('malformed', path, 'reserved additional information');
    throw new DecodeError('unsupported-type', path, 'float or simple value');
  }
  if (mt === 6) {
    // Read the tag number (well-formedness) and reject.
    if (ai === 31) throw new DecodeError('malformed', path);
    readArg(bytes, st, ai, path);
    throw new DecodeError('unsupported-type', path, 'tag');
  }
  if (ai === 31) {
    if (mt === 0 || mt === 1) throw new DecodeError('malformed', path);
    throw new DecodeError('indefinite-length', path);
  }
  const arg = readArg(bytes, st, ai, path);
  switch (mt) {
    case 0:
      return arg;
    case 1:
      return typeof arg === 'bigint' || arg >= Number.MAX_SAFE_INTEGER ? -1n - BigInt(arg) : -1 - arg;
    case 2:
    case 3: {
      const len = Number(arg);
      if (typeof arg === 'bigint' || st.pos + len > bytes.length)
        throw new DecodeError('malformed', path, 'truncated');
      const raw = bytes.subarray(st.pos, st.pos + len);
      st.pos += len;
      if (mt === 2) return raw.slice();
      try {
        return TEXT_DECODER.decode(raw);
      } catch {
        throw new DecodeError('malformed', path, 'invalid UTF-8');
      }
    }
    case 4: {
      if (typeof arg === 'bigint' || arg > bytes.length - st.pos)
        throw new DecodeError('malformed', path, 'truncated');
      if (arg > limits.maxContainerLen) throw new DecodeError('too-many-items', path);
      const out = [];
      for (let i = 0; i < arg; i++) out.push(readItem(bytes, st, depth + 1, `${path}[${i}]`, limits));
      return out;
    }
    case 5: {
      if (typeof arg === 'bigint' || arg * 2 > bytes.length - st.pos)
        throw new DecodeError('malformed', path, 'truncated');
      if (arg > limits.maxContainerLen) throw new DecodeError('too-many-items', path);
      const out = Object.create(null);
      const seen = new Set();
      let prevKey = null;
      for (let i = 0; i < arg; i++) {
        const kStart = st.pos;
        const key = readItem(bytes, st, depth + 1, `${path}.<key ${i}>`, limits);
        const kBytes = bytes.subarray(kStart, st.pos);
        if (typeof key !== 'string') {
          st.nontext ??= path;
          // keep reading for well-formedness; non-text keys are never stored
          readItem(bytes, st, depth + 1, `${path}.<value ${i}>`, limits);
          continue;
        }
        if (seen.has(key)) throw new DecodeError('duplicate-key', `${path}.${key}`);
        seen.add(key);
        if (prevKey && compareBytes(prevKey, kBytes) >= 0) st.nondet ??= `${path}.${key}`;
        prevKey = kBytes;
        out[key] = readItem(bytes, st, depth + 1, `${path}.${key}`, limits);
      }
      return out;
    }
    default:
      throw new DecodeError('malformed', path);
  }
}

// ---------------------------------------------------------------- encoding

function head(mt, n, out) {
  if (typeof n === 'bigint') {
    if (n < 0n || n > 0xffffffffffffffffn) throw new RangeError('integer out of CBOR range');
    if (n <= BigInt(Number.MAX_SAFE_INTEGER)) n = Number(n);
    else {
      const b = new Uint8Array(9);
      b[0] = (mt << 5) | 27;
      new DataView(b.buffer).setBigUint64(1, n);
      out.push(b);
      return;
    }
  }
  if (n < 24) out.push(Uint8Array.of((mt << 5) | n));
  else if (n < 0x100) out.push(Uint8Array.of((mt << 5) | 24, n));
  else if (n < 0x10000) out.push(Uint8Array.of((mt << 5) | 25, n >> 8, n & 0xff));
  else if (n < 0x100000000) out.push(Uint8Array.of((mt << 5) | 26, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff));
  else {
    const b = new Uint8Array(9);
    b[0] = (mt << 5) | 27;
    new DataView(b.buffer).setBigUint64(1, BigInt(n));
    out.push(b);
  }
}

function enc(v, out) {
  if (v === null) out.push(Uint8Array.of(0xf6));
  else if (v === false) out.push(Uint8Array.of(0xf4));
  else if (v === true) out.push(Uint8Array.of(0xf5));
  else if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new TypeError('only safe integers can be encoded (use bigint)');
    if (v >= 0) head(0, v, out);
    else head(1, -1 - v, out);
  } else if (typeof v === 'bigint') {
    if (v >= 0n) head(0, v, out);
    else head(1, -1n - v, out);
  } else if (v instanceof Uint8Array) {
    head(2, v.length, out);
    out.push(v);
  } else if (typeof v === 'string') {
    const b = TEXT_ENCODER.encode(v);
    head(3, b.length, out);
    out.push(b);
  } else if (Array.isArray(v)) {
    head(4, v.length, out);
    for (const x of v) enc(x, out);
  } else if (typeof v === 'object') {
    const entries = Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .map((k) => {
        const kb = [];
        enc(k, kb);
        return [concat(kb), v[k]];
      });
    entries.sort((a, b) => compareBytes(a[0], b[0]));
    head(5, entries.length, out);
    for (const [kb, val] of entries) {
      out.push(kb);
      enc(val, out);
    }
  } else throw new TypeError(`cannot encode ${typeof v}`);
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
  const out = [];
  enc(v, out);
  return concat(out);
}
