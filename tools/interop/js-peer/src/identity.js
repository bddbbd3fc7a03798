// Identity objects (protocol-spec/03-identity.md §5-§9, 06-bootstrap.md §2-§3).
import { scrypt } from '@noble/hashes/scrypt.js';
import { encode } from './cbor.js';
import { decodeMessage } from './messages.js';
import { computeNodeId, meetsPuzzle, mldsaSign, mldsaVerify, aeadDecrypt, identityFromSeeds, equalBytes } from './crypto.js';

export const CTX = Object.freeze({
  cert: 'qdht/v1/identity-certificate',
  successor: 'qdht/v1/successor-statement',
  acceptance: 'qdht/v1/successor-acceptance',
  revocation: 'qdht/v1/revocation',
  contactList: 'qdht/v1/contact-list',
});

/** A semantic verification failure, `error` = the vectors' error class. */
export class VerifyError extends Error {
  constructor(error, detail = '') {
    super(`${error}${detail ? `: ${detail}` : ''}`);
    this.error = error;
  }
}

const without = (m, ...names) => {
  const o = Object.create(null);
  for (const k of Object.keys(m)) if (!names.includes(k)) o[k] = m[k];
  return o;
};
const n = (v) => Number(v);

/** Verify a certificate map (§5.2 steps 2-5); returns the node ID it proves. */
export function verifyCertMap(cert, now, d) {
  const nbf = n(cert.nbf);
  const naf = n(cert.naf);
  if (!(nbf < naf) || naf - nbf > 34560000) throw new VerifyError('validity');
  if (now + 300 < nbf) throw new VerifyError('not-yet-valid');
  if (!(now < naf)) throw new VerifyError('expired');
  const nodeId = computeNodeId(cert.xwing, cert.mldsa, cert.nonce);
  if (!meetsPuzzle(nodeId, d)) throw new VerifyError('puzzle');
  if (!mldsaVerify(cert.mldsa, encode(without(cert, 'sig')), cert.sig, CTX.cert)) throw new VerifyError('signature');
  return nodeId;
}

export function verifyCert(bytes, now, d) {
  return verifyCertMap(decodeMessage(bytes, ['identity-cert']).msg, now, d);
}

export function issueCert(identity, nbf, lifetime = 30 * 86400) {
  const m = {
    type: 'cert',
    v: 1,
    xwing: identity.xwing.pk,
    mldsa: identity.mldsa.pk,
    nonce: identity.nonce,
    serial: nbf,
    nbf,
    naf: nbf + lifetime,
  };
  return encode({ ...m, sig: mldsaSign(identity.mldsa.sk, encode(m), CTX.cert) });
}

export function verifySuccessor(bytes) {
  const m = decodeMessage(bytes, ['identity-successor']).msg;
  const body = encode(without(m, 'sig_old', 'sig_new'));
  if (!mldsaVerify(m.old, body, m.sig_old, CTX.successor)) throw new VerifyError('signature', 'sig_old');
  if (!mldsaVerify(m.new, body, m.sig_new, CTX.acceptance)) throw new VerifyError('signature', 'sig_new');
  return m;
}

export function verifyRevocation(bytes) {
  const m = decodeMessage(bytes, ['identity-revocation']).msg;
  if (!mldsaVerify(m.mldsa, encode(without(m, 'sig')), m.sig, CTX.revocation)) throw new VerifyError('signature');
  return m;
}

/** Plain key file (§9.1): returns the identity. */
export function readKeyfile(bytes) {
  const m = decodeMessage(bytes, ['identity-keyfile']).msg;
  const id = identityFromSeeds(m.xwing_seed, m.mldsa_seed, m.nonce);
  if (!meetsPuzzle(id.nodeId, n(m.difficulty))) throw new VerifyError('puzzle');
  return id;
}

/** Sealed key file (§9.2): returns the plain key file bytes. */
export function unsealKeyfile(bytes, passphrase) {
  const m = decodeMessage(bytes, ['identity-keyfile_sealed']).msg;
  const key = scrypt(new TextEncoder().encode(passphrase), m.salt, { N: 2 ** n(m.log_n), r: n(m.r), p: n(m.p), dkLen: 32 });
  const pt = aeadDecrypt(key, 0, encode(without(m, 'ct')), m.ct);
  if (!pt) throw new VerifyError('passphrase');
  return pt;
}

/** Contact list (06-bootstrap.md §3). */
export function verifyContactList(bytes, now, d, signer = null) {
  const m = decodeMessage(bytes, ['bootstrap-contact_list']).msg;
  const issued = n(m.issued);
  const expires = n(m.expires);
  if (!(issued < expires) || expires - issued > 2592000) throw new VerifyError('validity');
  if (now + 300 < issued) throw new VerifyError('not-yet-valid');
  if (!(now < expires)) throw new VerifyError('expired');
  const nodeId = verifyCertMap(m.cert, now, d);
  if (signer && !equalBytes(signer, nodeId)) throw new VerifyError('signer');
  if (!mldsaVerify(m.cert.mldsa, encode(without(m, 'sig')), m.sig, CTX.contactList)) throw new VerifyError('signature');
  return m;
}
