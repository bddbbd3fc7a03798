// Message rules of protocol-spec/qdht.cddl, checked as 00-conventions.md §4-§5
// describe (closed maps, reason codes).
import { DecodeError, decode, encode } from './cbor.js';

const isInt = (v) => (typeof v === 'number' && Number.isInteger(v)) || typeof v === 'bigint';
const isMap = (v) => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
const utf8len = (s) => Buffer.byteLength(s, 'utf8');

// Field checkers: (value, path) => void, throwing DecodeError.
const uint = (min = 0n, max = 0xffffffffffffffffn) => (v, p) => {
  if (!isInt(v) || BigInt(v) < 0n) throw new DecodeError('field-type', p);
  if (BigInt(v) < BigInt(min) || BigInt(v) > BigInt(max)) throw new DecodeError('field-value', p);
};
const bytes = (min, max = min) => (v, p) => {
  if (!(v instanceof Uint8Array)) throw new DecodeError('field-type', p);
  if (v.length < min || v.length > max) throw new DecodeError('field-size', p);
};
const text = (min, max) => (v, p) => {
  if (typeof v !== 'string') throw new DecodeError('field-type', p);
  const n = utf8len(v);
  if (n < min || n > max) throw new DecodeError('field-size', p);
};
const textEnum = (...allowed) => (v, p) => {
  if (typeof v !== 'string') throw new DecodeError('field-type', p);
  if (!allowed.includes(v)) throw new DecodeError('field-value', p);
};
const trueOnly = (v, p) => {
  if (typeof v !== 'boolean') throw new DecodeError('field-type', p);
  if (v !== true) throw new DecodeError('field-value', p);
};
const BOOL = (v, p) => {
  if (typeof v !== 'boolean') throw new DecodeError('field-type', p);
};
const ip = (v, p) => {
  if (!(v instanceof Uint8Array)) throw new DecodeError('field-type', p);
  if (v.length !== 4 && v.length !== 16) throw new DecodeError('field-size', p);
};
const array = (elem, min, max) => (v, p) => {
  if (!Array.isArray(v)) throw new DecodeError('field-type', p);
  if (v.length < min || v.length > max) throw new DecodeError('field-size', p);
  v.forEach((x, i) => elem(x, `${p}[${i}]`));
};

/** Check a closed map against `fields` ({name: [checker, optional?]}). */
function checkMap(v, fields, p) {
  if (!isMap(v)) throw new DecodeError('not-a-map', p);
  for (const [name, [check, optional]] of Object.entries(fields)) {
    if (!(name in v)) {
      if (optional) continue;
      throw new DecodeError('missing-field', `${p}.${name}`);
    }
    check(v[name], `${p}.${name}`);
  }
  for (const k of Object.keys(v)) if (!(k in fields)) throw new DecodeError('unknown-field', `${p}.${k}`);
}
const map = (fields) => (v, p) => checkMap(v, fields, p);

const NODE_ID = bytes(32);
const ADDRESS = map({ tr: [textEnum('udp', 'ws')], ip: [ip], port: [uint(1, 65535)] });
const CONTACT = map({ id: [NODE_ID], addrs: [array(ADDRESS, 1, 4)] });
const RID = bytes(8);
const RO = [trueOnly, true];
const WS = [uint(1, 65535), true];
const UNIX_TIME = uint(0, 2 ** 40 - 1);
const V1 = uint(1, 1);
const XWING_PK = bytes(1216);
const MLDSA_PK = bytes(1952);
const MLDSA_SIG = bytes(3309);
const NONCE = bytes(8);
const bool = (v, p) => {
  if (typeof v !== 'boolean') throw new DecodeError('field-type', p);
};
const U32 = uint(0, 4294967295);
const FL_VALUES = uint(1, 16000);
const FL_INDEX = uint(1, 1000);
const FL_VECTOR = bytes(0, 64000);
const FL_COMPRESSION = textEnum('none', 'q8', 'topk');
const XWING_CT = bytes(1120);

const RECORD_TYPES = ['immutable', 'mutable', 'tombstone', 'set_entry'];
const SINGLE_RECORD_TYPES = ['immutable', 'mutable', 'tombstone'];

/**
 * A record map nested in a message (02-dht-rpc.md §4, 07-records.md §5):
 * its own `type` picks its rule among `allowed` record types, as for a message.
 */
const recordOf = (allowed) => (v, p) => {
  if (!isMap(v)) throw new DecodeError('not-a-map', p);
  if (!('type' in v)) throw new DecodeError('missing-type', `${p}.type`);
  const t = v.type;
  if (typeof t !== 'string') throw new DecodeError('field-type', `${p}.type`);
  const rule = TYPE_TO_RULE[t];
  if (!rule) throw new DecodeError('unknown-type', `${p}.type`);
  if (!allowed.includes(t)) throw new DecodeError('unexpected-type', `${p}.type`);
  checkMap(v, RULES[rule], p);
};

/** A map nested in a message whose rule is fixed: its `type` must name that rule. */
const nested = (rule) => (v, p) => {
  if (!isMap(v)) throw new DecodeError('not-a-map', p);
  if (!('type' in v)) throw new DecodeError('missing-field', `${p}.type`);
  if (v.type !== rule.slice(rule.indexOf('-') + 1)) throw new DecodeError('wrong-type', `${p}.type`);
  checkMap(v, RULES[rule], p);
};

// 11-messaging.md
const MSG_PREKEY_ID = uint(0, 0xffffffff);
const MSG_CT = bytes(1120);
/** A one-time prekey [id, pk] (11-messaging.md §2.1). */
const MSG_OPK = (v, p) => {
  if (!Array.isArray(v) || v.length !== 2) throw new DecodeError('field-type', p);
  MSG_PREKEY_ID(v[0], `${p}[0]`);
  XWING_PK(v[1], `${p}[1]`);
};

const CERT_FIELDS = {
  type: [textEnum('cert')],
  v: [V1],
  xwing: [XWING_PK],
  mldsa: [MLDSA_PK],
  nonce: [NONCE],
  serial: [uint()],
  nbf: [UNIX_TIME],
  naf: [UNIX_TIME],
  sig: [MLDSA_SIG],
};

// 12-groups.md: leaves, key packages and proposals also nest inside other group messages.
const GRP_INDEX = uint(0, 1023);
const GRP_DIGEST = bytes(32);
const GRP_GROUP = bytes(1, 32);
const GRP_CIPHERTEXT = bytes(16, 65536);
const GRP_LEAF_FIELDS = { enc: [XWING_PK], vk: [MLDSA_PK], id: [bytes(1, 64)], sig: [MLDSA_SIG] };
const GRP_KP_FIELDS = { leaf: [(v, p) => checkMap(v, GRP_LEAF_FIELDS, p)], init: [XWING_PK], sig: [MLDSA_SIG] };
const GRP_OPERANDS = { add: 'kp', remove: 'removed', update: 'leaf' };
const GRP_PROPOSAL_FIELDS = {
  group: [GRP_GROUP],
  epoch: [uint()],
  sender: [GRP_INDEX],
  op: [textEnum('add', 'remove', 'update')],
  kp: [(v, p) => checkMap(v, GRP_KP_FIELDS, p), true],
  removed: [GRP_INDEX, true],
  leaf: [(v, p) => checkMap(v, GRP_LEAF_FIELDS, p), true],
  sig: [MLDSA_SIG],
};
/** A proposal carries exactly the operand its `op` names (12-groups.md §5, a CDDL group choice). */
function checkProposal(v, p) {
  checkMap(v, GRP_PROPOSAL_FIELDS, p);
  const own = GRP_OPERANDS[v.op];
  if (!(own in v)) throw new DecodeError('missing-field', `${p}.${own}`);
  for (const other of Object.values(GRP_OPERANDS))
    if (other !== own && other in v) throw new DecodeError('unknown-field', `${p}.${other}`);
}

/** Every message rule: `<area>-<type>` -> fields (without `type`). */
const MODEL_DTYPE = textEnum('BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'U16', 'I16', 'F16', 'BF16', 'U32', 'I32', 'F32', 'U64', 'I64', 'F64');
const MODEL_TENSOR = map({ name: [text(1, 256)], dtype: [MODEL_DTYPE], shape: [array(uint(), 0, 32)], chunks: [bytes(0, 65536)] });
const MODEL_META = (v, p) => {
  if (!isMap(v)) throw new DecodeError('field-type', p);
  const keys = Object.keys(v);
  if (keys.length === 0 || keys.length > 32) throw new DecodeError('field-size', p);
  for (const k of keys) text(0, 256)(v[k], `${p}.${k}`);
};

export const RULES = {
  'dht-ping': { rid: [RID], ro: RO, ws: WS },
  'dht-pong': { rid: [RID] },
  'dht-find_node': { rid: [RID], target: [NODE_ID], ro: RO, ws: WS },
  'dht-nodes': { rid: [RID], nodes: [array(CONTACT, 0, 32)] },
  // `have`: paging a set, the owners already read from this holder (02-dht-rpc.md §4.2).
  'dht-find_value': { rid: [RID], key: [bytes(32)], have: [array(bytes(32), 1, 64), true], ro: RO, ws: WS },
  // Exactly one of `record` / `records` (checked first, in preChecks); `more` only with `records`.
  'dht-value': {
    rid: [RID],
    record: [recordOf(SINGLE_RECORD_TYPES), true],
    records: [array(recordOf(['set_entry']), 1, 64), true],
    more: [trueOnly, true],
  },
  'dht-store': {
    rid: [RID],
    key: [bytes(32)],
    record: [recordOf(RECORD_TYPES)],
    cas: [uint(), true],
    cache: [uint(1, 86400), true], // 07-records.md §10.6, never with cas (extraChecks)
    ro: RO,
    ws: WS,
  },
  'dht-stored': { rid: [RID] },
  'dht-error': { rid: [RID, true], code: [uint()], message: [text(0, 256)] },
  'identity-cert': CERT_FIELDS,
  'identity-successor': {
    v: [V1],
    old: [MLDSA_PK],
    new: [MLDSA_PK],
    issued: [UNIX_TIME],
    grace: [uint(0, 7776000)],
    sig_old: [MLDSA_SIG],
    sig_new: [MLDSA_SIG],
  },
  'identity-revocation': {
    v: [V1],
    mldsa: [MLDSA_PK],
    issued: [UNIX_TIME],
    reason: [text(0, 128)],
    serial: [uint(), true],
    sig: [MLDSA_SIG],
  },
  'identity-keyfile': {
    v: [V1],
    xwing_seed: [bytes(32)],
    mldsa_seed: [bytes(32)],
    nonce: [NONCE],
    difficulty: [uint(0, 64)],
  },
  'identity-keyfile_sealed': {
    v: [V1],
    kdf: [textEnum('scrypt')],
    log_n: [uint(10, 20)],
    r: [uint(1, 16)],
    p: [uint(1, 4)],
    salt: [bytes(16)],
    ct: [bytes(17, 512)],
  },
  'session-hs': {
    kind: [uint(1, 6)],
    sid: [uint(1, 0xffffffff)],
    rid: [uint(0, 0xffffffff)],
    i: [uint(0, 15)],
    c: [uint(1, 16)],
    body: [bytes(0, 65535)],
    mac1: [bytes(16)],
    mac2: [bytes(16), true],
  },
  'session-cookie': { rid: [uint(1, 0xffffffff)], salt: [bytes(16)], box: [bytes(32)] },
  'session-data': { rid: [uint(1, 0xffffffff)], n: [uint(0, 0xfffffffffffffffen)], ct: [bytes(16, 65535)] },
  'session-hello': { v: [uint(1, 255)], mldsa: [bytes(32)], nonce: [NONCE], early: [bytes(0, 4096), true] },
  'session-msg': { p: [bytes(0, 73728)] },
  'session-frag': { id: [uint()], i: [uint(0, 4095)], c: [uint(2, 4096)], p: [bytes(1, 65535)] },
  'session-keepalive': {},
  'session-close': {},
  'records-immutable': { value: [bytes(0, 65536)], exp: [UNIX_TIME] },
  'records-mutable': {
    owner: [bytes(32)],
    pk: [MLDSA_PK, true],
    salt: [bytes(0, 64)],
    seq: [uint()],
    value: [bytes(0, 65536)],
    exp: [UNIX_TIME],
    sig: [MLDSA_SIG],
  },
  'records-tombstone': {
    owner: [bytes(32)],
    pk: [MLDSA_PK, true],
    salt: [bytes(0, 64)],
    seq: [uint()],
    exp: [UNIX_TIME],
    sig: [MLDSA_SIG],
  },
  'records-set_entry': {
    topic: [bytes(1, 64)],
    owner: [bytes(32)],
    pk: [MLDSA_PK, true],
    seq: [uint()],
    value: [bytes(0, 65536)],
    exp: [UNIX_TIME],
    sig: [MLDSA_SIG],
  },
  'watch-watch': { rid: [RID], key: [bytes(32)], ttl: [uint(0, 600)], since: [uint(), true], ro: RO, ws: WS },
  'watch-watching': { rid: [RID], ttl: [uint(0, 600)] },
  'watch-notify': { rid: [RID], key: [bytes(32)], record: [recordOf(RECORD_TYPES), true], ro: RO, ws: WS },
  'watch-notified': { rid: [RID], stop: [trueOnly, true] },
  'msg-prekeys': {
    owner: [bytes(32)],
    ik: [XWING_PK],
    spk_id: [MSG_PREKEY_ID],
    spk: [XWING_PK],
    rk: [bytes(32)],
    intro: [bytes(32)],
    opks: [array(MSG_OPK, 0, 48)],
    issued: [UNIX_TIME],
    exp: [UNIX_TIME],
    sig: [MLDSA_SIG],
  },
  'msg-first_msg': {
    spk_id: [MSG_PREKEY_ID],
    ct_ik: [MSG_CT],
    ct_spk: [MSG_CT],
    opk_id: [MSG_PREKEY_ID, true], // exactly when ct_opk is (extraChecks)
    ct_opk: [MSG_CT, true],
    env: [bytes(16, 65536)],
    msg: [nested('msg-ratchet_msg')],
  },
  'msg-first_env': { mldsa: [MLDSA_PK], ik: [XWING_PK], pq: [(v, p) => {
    if (typeof v !== 'boolean') throw new DecodeError('field-type', p);
  }], sig: [MLDSA_SIG, true] },
  'msg-ratchet_msg': { hdr: [bytes(70, 2374)], body: [bytes(16, 65536)] },
  'msg-slot': { token: [bytes(32)], box: [bytes(256, 65536)], dh: [bytes(32)], exp: [UNIX_TIME] },
  'msg-slot_delete': { key: [bytes(32)], secret: [bytes(32)] },
  'msg-intro': { box: [bytes(32)], first: [nested('msg-first_msg')], exp: [UNIX_TIME], nonce: [uint()] },
  // 11-messaging.md §7.2: mailbox requests (exactly one of slot, intro, secret: preChecks).
  'mbox-mbox_put': {
    rid: [RID],
    key: [bytes(32)],
    slot: [nested('msg-slot'), true],
    intro: [nested('msg-intro'), true],
    secret: [bytes(32), true],
  },
  'mbox-mbox_get': { rid: [RID], key: [bytes(32)], intro: [BOOL], skip: [uint(0, 4096)] },
  'mbox-mbox_reply': {
    rid: [RID],
    ok: [BOOL],
    reason: [text(0, 32)],
    slot: [nested('msg-slot'), true],
    intros: [array(nested('msg-intro'), 0, 4)],
    more: [BOOL],
  },

  'grp-leaf': GRP_LEAF_FIELDS,
  'grp-key_package': GRP_KP_FIELDS,
  'grp-proposal': GRP_PROPOSAL_FIELDS,
  'grp-commit': {
    group: [GRP_GROUP],
    epoch: [uint()],
    sender: [GRP_INDEX],
    proposals: [array(checkProposal, 0, 256)],
    leaf: [(v, p) => checkMap(v, GRP_LEAF_FIELDS, p)],
    secrets: [array(map({ to: [GRP_INDEX], h: [GRP_DIGEST] }), 0, 1024)],
    sig: [MLDSA_SIG],
    tag: [GRP_DIGEST],
  },
  'grp-sealed': { to: [GRP_INDEX], kem: [bytes(1120)], ct: [bytes(48)] },
  'grp-commit_slot': { pk: [MLDSA_PK], nonce: [bytes(12)], ct: [GRP_CIPHERTEXT], sig: [MLDSA_SIG] },
  'grp-group_secrets': { joiner: [GRP_DIGEST] },
  'grp-group_info': {
    group: [GRP_GROUP],
    epoch: [uint()],
    roster: [array(GRP_DIGEST, 1, 1024)],
    cth: [GRP_DIGEST],
    tag: [GRP_DIGEST],
    signer: [GRP_INDEX],
    sig: [MLDSA_SIG],
  },
  'grp-welcome': { kp: [GRP_DIGEST], kem: [bytes(1120)], secrets: [bytes(16, 256)], info: [GRP_CIPHERTEXT] },
  'grp-group_message': { epoch_id: [GRP_DIGEST], sd: [bytes(28)], ct: [GRP_CIPHERTEXT] },
  // 10-mixnet.md §14: anonymous DHT operations at an exit.
  'mix-exit_get': { key: [bytes(32)] },
  'mix-exit_put': { record: [recordOf(SINGLE_RECORD_TYPES)] },
  'mix-exit_answer': {
    status: [textEnum('found', 'not-found', 'stored', 'failed', 'too-large', 'delivered')],
    record: [recordOf(SINGLE_RECORD_TYPES), true],
    fragments: [uint(2, 255), true],
  },
  // 10-mixnet.md §14.7: a message forwarded to a node by an exit (exit_forward in a
  // Sphinx payload; handoff and handoff_ack between the exit and the node).
  'mix-exit_forward': { node: [NODE_ID], message: [bytes(1, 65536)] },
  'mix-handoff': { id: [bytes(16)], message: [bytes(1, 65536)] },
  'mix-handoff_ack': { id: [bytes(16)], ok: [BOOL] },
  // 10-mixnet.md §14.8: one mailbox request (11-messaging.md §7.2) through an exit.
  'mix-exit_mbox': { request: [(v, p) => {
    recordOf(['mbox_get', 'mbox_put'])(v, p);
    preChecks(`mbox-${v.type}`, v);
  }] },
  // 16-resolve.md.
  'resolve-resolve': { rid: [RID], id: [NODE_ID] },
  'resolve-resolved': { rid: [RID], cert: [nested('identity-cert'), true], revocation: [nested('identity-revocation'), true] },
  'echo-echo': { rid: [RID], data: [bytes(0, 1024)] },
  'echo-echoed': { rid: [RID], data: [bytes(0, 1024)] },
  'model-manifest': {
    publisher: [bytes(32)],
    name: [text(1, 64)],
    version: [uint()],
    chunk_size: [(v, p) => {
      if (!isInt(v)) throw new DecodeError('field-type', p);
      if (![4096, 8192, 16384, 32768, 65536].includes(Number(v))) throw new DecodeError('field-value', p);
    }],
    tensors: [array(MODEL_TENSOR, 0, 1024)],
    root: [bytes(32)],
    meta: [MODEL_META, true],
    sig: [MLDSA_SIG],
  },
  'model-manifest_ref': {
    publisher: [bytes(32)],
    name: [text(1, 64)],
    version: [uint()],
    size: [uint(1, 16777216)],
    pages: [bytes(32, 8192)],
  },
  'model-provider': { root: [bytes(32)], chunks: [uint()], contact: [CONTACT], have: [bytes(1, 2048), true] },
  'model-get_chunk': { rid: [RID], key: [bytes(32)], ro: RO, ws: WS },
  'model-chunk': { rid: [RID], data: [bytes(1, 65536), true] },

  // Federated training (14-training.md); tuples travel as parallel arrays.
  'fl-round_announce': {
    coordinator: [NODE_ID],
    task: [bytes(32)],
    round: [U32],
    model: [bytes(32)],
    size: [FL_VALUES],
    epochs: [uint(1, 1000)],
    lr: [uint(1, 100000000)],
    batch: [uint(1, 65535)],
    clip: [U32],
    noise: [uint(0, 1000000)],
    q: [uint(1, 4294967296)],
    deadline: [uint(0, 2n ** 40n)],
    min: [FL_INDEX],
    aggregator: [textEnum('fedavg', 'median', 'trimmed-mean', 'krum')],
    compression: [FL_COMPRESSION],
    secagg: [bool],
    sig: [MLDSA_SIG],
  },
  'fl-round_update': {
    round: [bytes(32)],
    node: [NODE_ID],
    n: [uint(1, 4294967295)],
    size: [FL_VALUES],
    enc: [FL_COMPRESSION],
    data: [FL_VECTOR],
    lo: [bytes(4), true],
    hi: [bytes(4), true],
    idx: [FL_VECTOR, true],
  },
  'fl-secagg_setup': {
    round: [bytes(32)],
    ids: [array(NODE_ID, 3, 1000)],
    k: [uint(2, 24)],
    t: [uint(2, 24)],
    bits: [uint(8, 24)],
    range: [uint(1, 4294967295)],
    size: [FL_VALUES],
    graph: [bytes(32)],
  },
  'fl-secagg_keys': { round: [bytes(32)], index: [FL_INDEX], cpk: [XWING_PK], spk: [XWING_PK] },
  'fl-secagg_neighbours': {
    round: [bytes(32)],
    from: [array(FL_INDEX, 0, 24)],
    cpks: [array(XWING_PK, 0, 24)],
    spks: [array(XWING_PK, 0, 24)],
  },
  'fl-secagg_shares': {
    round: [bytes(32)],
    index: [FL_INDEX],
    box_to: [array(FL_INDEX, 0, 24)],
    box_cts: [array(XWING_CT, 0, 24)],
    boxes: [array(bytes(148), 0, 24)],
    mask_to: [array(FL_INDEX, 0, 24)],
    mask_cts: [array(XWING_CT, 0, 24)],
    escrows: [array(bytes(48), 0, 24)],
  },
  'fl-secagg_forward': {
    round: [bytes(32)],
    box_from: [array(FL_INDEX, 0, 24)],
    box_cts: [array(XWING_CT, 0, 24)],
    boxes: [array(bytes(148), 0, 24)],
    mask_from: [array(FL_INDEX, 0, 24)],
    mask_cts: [array(XWING_CT, 0, 24)],
  },
  'fl-secagg_masked': { round: [bytes(32)], index: [FL_INDEX], y: [bytes(4, 64000)] },
  'fl-secagg_unlinked': { round: [bytes(32)], y: [bytes(4, 64000)] },
  'fl-secagg_submitted': { round: [bytes(32)], index: [FL_INDEX] },
  'fl-secagg_unmask': {
    round: [bytes(32)],
    alive: [array(FL_INDEX, 0, 1000)],
    dropped: [array(FL_INDEX, 0, 1000)],
  },
  'fl-secagg_reveal': {
    round: [bytes(32)],
    index: [FL_INDEX],
    b_of: [array(FL_INDEX, 0, 24)],
    b: [array(bytes(66), 0, 24)],
    s_of: [array(FL_INDEX, 0, 24)],
    s: [array(bytes(66), 0, 24)],
  },
  'fl-gossip_model': { task: [bytes(32)], age: [U32], params: [bytes(4, 64000)] },
  // 14-training.md §9.5: a device's message signed by its identity (through the mixnet).
  'fl-device_signed': { node: [NODE_ID], message: [bytes(1, 65536)], sig: [bytes(3309)] },
  // 14-training.md §9.1: the value of a device's enrolment set entry.
  'fl-enrolment': { contact: [CONTACT], xwing: [bytes(32)], nonce: [bytes(8)] },
  'bootstrap-contact_list': {
    v: [V1],
    cert: [map(CERT_FIELDS)],
    issued: [UNIX_TIME],
    expires: [UNIX_TIME],
    contacts: [array(CONTACT, 1, 64)],
    sig: [MLDSA_SIG],
  },
  // 10-mixnet.md §8.3: the exact packet size is the network's geometry's (§2).
  'mix-packet': { data: [bytes(4096, 65536)] },
  'mix-delivery': { payload: [bytes(1024, 65536)], surb: [bytes(16), true] },
  // 10-mixnet.md §10.1.
  'mix-descriptor': {
    v: [V1],
    cert: [map(CERT_FIELDS)],
    contact: [CONTACT],
    layer: [uint(0, 7)],
    keys: [array(map({ epoch: [uint(0, 0xffffffff)], key: [XWING_PK] }), 1, 3)],
    issued: [UNIX_TIME],
    sig: [MLDSA_SIG],
  },
  // 10-mixnet.md §10.2.
  'mix-directory': {
    v: [V1],
    epoch: [uint(0, 0xffffffff)],
    hops: [uint(1, 8)],
    mixes: [array(map({ contact: [CONTACT], layer: [uint(0, 7)], key: [XWING_PK] }), 1, 40)],
    sigs: [array(map({ index: [uint(0, 15)], sig: [MLDSA_SIG] }), 0, 16)],
  },
};

/** type value -> rule name */
export const TYPE_TO_RULE = Object.fromEntries(Object.keys(RULES).map((r) => [r.slice(r.indexOf('-') + 1), r]));
for (const [rule, fields] of Object.entries(RULES))
  fields.type ??= [textEnum(rule.slice(rule.indexOf('-') + 1))];

/** Rules the field table cannot say, checked before the fields (a CDDL group choice). */
function preChecks(rule, m) {
  if (rule === 'dht-value') {
    // 02-dht-rpc.md §4.2: `records` next to `record` is an unknown field;
    // neither of them is a missing `record`.
    if ('record' in m && 'records' in m) throw new DecodeError('unknown-field', '$.records');
    if (!('record' in m) && !('records' in m)) throw new DecodeError('missing-field', '$.record');
    if ('record' in m && 'more' in m) throw new DecodeError('unknown-field', '$.more');
  }
  if (rule === 'mbox-mbox_put') {
    // 11-messaging.md §7.2: exactly one of slot, intro and secret.
    const given = ['slot', 'intro', 'secret'].filter((k) => k in m).length;
    if (given !== 1) throw new DecodeError('field-value', '$');
  }
}

/** Semantic checks outside the CDDL. */
function extraChecks(rule, m) {
  if (rule === 'identity-successor') {
    if (Buffer.compare(m.old, m.new) === 0) throw new DecodeError('field-value', '$.new');
  }
  if (rule === 'session-frag' && BigInt(m.i) >= BigInt(m.c)) throw new DecodeError('field-value', '$.i');
  if (rule === 'session-hs' && m.i >= m.c) throw new DecodeError('field-value', '$.i');
  if (rule === 'dht-store' && 'cas' in m && 'cache' in m) throw new DecodeError('field-value', '$.cache');
  if (rule === 'msg-prekeys') {
    const ids = m.opks.map((o) => BigInt(o[0]));
    if (new Set(ids).size !== ids.length) throw new DecodeError('field-value', '$.opks');
  }
  if (rule === 'msg-first_msg' && ('opk_id' in m) !== ('ct_opk' in m)) throw new DecodeError('field-value', '$');

  if (rule === 'grp-proposal') checkProposal(m, '$');

  // 10-mixnet.md §10: epoch keys in increasing epochs, mixes sorted by node ID without repeats.
  if (rule === 'mix-descriptor') {
    for (let i = 1; i < m.keys.length; i++)
      if (BigInt(m.keys[i].epoch) <= BigInt(m.keys[i - 1].epoch)) throw new DecodeError('field-value', '$.keys');
  }
  if (rule === 'mix-directory') {
    for (let i = 1; i < m.mixes.length; i++)
      if (Buffer.compare(m.mixes[i - 1].contact.id, m.mixes[i].contact.id) >= 0)
        throw new DecodeError('field-value', '$.mixes');
  }
  if (rule.startsWith('fl-')) flChecks(rule, m);
  // 10-mixnet.md §14: a record comes with "found" and only then.
  if (rule === 'mix-exit_answer' && (m.status === 'found') !== ('record' in m)) throw new DecodeError('field-value', '$.record');
  if (rule === 'mix-exit_answer' && (m.status === 'too-large') !== ('fragments' in m)) throw new DecodeError('field-value', '$.fragments');
}

/** Parallel arrays (14-training.md): every column as long as the first. */
const FL_COLUMNS = {
  'fl-secagg_neighbours': [['from', 'cpks', 'spks']],
  'fl-secagg_shares': [['box_to', 'box_cts', 'boxes'], ['mask_to', 'mask_cts', 'escrows']],
  'fl-secagg_forward': [['box_from', 'box_cts', 'boxes'], ['mask_from', 'mask_cts']],
  'fl-secagg_reveal': [['b_of', 'b'], ['s_of', 's']],
};

/** 14-training.md's rules beyond the CDDL. */
function flChecks(rule, m) {
  for (const group of FL_COLUMNS[rule] ?? []) {
    for (const col of group.slice(1)) {
      if (m[col].length !== m[group[0]].length) throw new DecodeError('field-size', `$.${col}`);
    }
  }
  const increasing = (a) => a.every((x, i) => i === 0 || BigInt(a[i - 1]) < BigInt(x));
  if (rule === 'fl-secagg_unmask') {
    for (const f of ['alive', 'dropped']) if (!increasing(m[f])) throw new DecodeError('field-value', `$.${f}`);
  }
  if (rule === 'fl-secagg_masked' || rule === 'fl-secagg_unlinked' || rule === 'fl-gossip_model') {
    const f = rule === 'fl-gossip_model' ? 'params' : 'y';
    if (m[f].length % 4 !== 0) throw new DecodeError('field-size', `$.${f}`);
  }
  if (rule === 'fl-secagg_setup') {
    const ids = new Set(m.ids.map((id) => Buffer.from(id).toString('hex')));
    const n = m.ids.length;
    if (ids.size !== n || m.t > m.k || m.k > n - 1 || n * 2 ** Number(m.bits) > 2 ** 32)
      throw new DecodeError('field-value', '$');
  }
  if (rule === 'fl-round_update') {
    const q8 = m.enc === 'q8';
    if (q8 !== 'lo' in m || q8 !== 'hi' in m) throw new DecodeError('field-size', '$.lo');
    if ((m.enc === 'topk') !== 'idx' in m) throw new DecodeError('field-size', '$.idx');
    const size = Number(m.size);
    if (m.enc === 'none' && m.data.length !== 4 * size) throw new DecodeError('field-size', '$.data');
    if (q8 && m.data.length !== size) throw new DecodeError('field-size', '$.data');
    if (m.enc === 'topk' && (m.idx.length !== m.data.length || m.idx.length % 4 || m.idx.length > 4 * size))
      throw new DecodeError('field-size', '$.idx');
  }
}

/**
 * Check a decoded item as a message; `allowed` restricts the rules (context).
 * @returns {{rule: string, msg: any}}
 */
export function checkMessage(item, allowed = null) {
  if (!isMap(item)) throw new DecodeError('not-a-map');
  if (!('type' in item)) throw new DecodeError('missing-type', '$.type');
  const t = item.type;
  if (typeof t !== 'string' || utf8len(t) > 32) throw new DecodeError('field-type', '$.type');
  const rule = TYPE_TO_RULE[t];
  if (!rule) throw new DecodeError('unknown-type', '$.type');
  if (allowed && !allowed.includes(rule)) throw new DecodeError('unexpected-type', '$.type');
  preChecks(rule, item);
  checkMap(item, RULES[rule], '$');
  extraChecks(rule, item);
  return { rule, msg: item };
}

/** Decode bytes into a message (both steps of 00-conventions.md §4). */
export function decodeMessage(bytes, allowed = null) {
  return checkMessage(decode(bytes), allowed);
}

/** Encode a message map after checking it against its rule (local misuse throws). */
export function encodeMessage(msg) {
  checkMessage(msg);
  return encode(msg);
}
