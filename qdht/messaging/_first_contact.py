"""First contact (11-messaging.md §3): PQXDH-shaped key agreement over X-Wing only.

The sender encapsulates to the recipient's identity key, signed prekey and,
when the record has one, a one-time prekey.  The session key hashes every
public key, ciphertext and prekey ID into the KDF info (the fix the formal
analysis of PQXDH asked for); the sender's identity, sealed in the envelope,
is hashed into the session secrets and the ratchet's associated data.

Sender authentication: an ML-DSA-65 signature over the transcript inside the
envelope (signed mode, the default), or none (deniable mode): the
recipient's first reply then mixes an encapsulation to the sender's identity
key into the root, which authenticates the sender one round trip later.

Replay defences (§3.5): a one-time prekey's secret is deleted on first use and
a reused ID is refused; the hash of each accepted message's ciphertexts is
kept until its signed prekey is deleted, after which it no longer decrypts.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

import attrs

from qdht.crypto import mldsa, sha3_256, xwing
from qdht.crypto.aead import ChaChaPoly
from qdht.crypto.xwing import XWingPrivateKey
from qdht.errors import ConfigError, CryptoError, DecodeError, InvalidSignatureError
from qdht.messaging._kdf import derive
from qdht.messaging._prekeys import PrekeyStore, Signer, check_prekey_record
from qdht.messaging._ratchet import (
    Encapsulate,
    RatchetSession,
    SessionSecrets,
    _mlkem_encapsulate,
    initiator_state,
    responder_state,
)
from qdht.wire import (
    FirstEnvelope,
    FirstMessage,
    OneTimePrekey,
    PrekeyRecord,
    decode,
    dumps_canonical,
    encode,
)

__all__ = [
    "Accepted",
    "FirstContact",
    "accept_first",
    "initiate",
    "session_key",
    "transcript_hash",
]

_FIRST_LABEL: Final = "qdht/v1/msg-first"

Rng = Callable[[int], bytes]


def transcript_hash(
    record: PrekeyRecord,
    opk: OneTimePrekey | None,
    ct_ik: bytes,
    ct_spk: bytes,
    ct_opk: bytes | None,
) -> bytes:
    """``th`` (§3.2): SHA3-256 of every key, ID and ciphertext of the exchange."""
    one_time = [] if opk is None or ct_opk is None else [opk.id, opk.pk, ct_opk]
    return sha3_256(
        dumps_canonical(
            [
                _FIRST_LABEL,
                record.owner,
                record.ik,
                record.spk_id,
                record.spk,
                record.rk,
                ct_ik,
                ct_spk,
                one_time,
            ]
        )
    )


def _secrets(sk: bytes, th: bytes, envelope: FirstEnvelope) -> SessionSecrets:
    """The ratchet's secrets (§3.4): SK split, bound to the sender's identity."""
    sender = sha3_256(envelope.mldsa, envelope.ik)
    out = derive(sk, b"session", context=th + sender, length=128)
    secrets = SessionSecrets(
        root=out[:32], hka=out[32:64], nhkb=out[64:96], pq0=out[96:], ad=sha3_256(th, sender)
    )
    return secrets


def session_key(ss_ik: bytes, ss_spk: bytes, ss_opk: bytes, th: bytes) -> tuple[bytes, ChaChaPoly]:
    """SK of §3.2 and the envelope's AEAD key."""
    sk = derive(ss_ik + ss_spk + ss_opk, b"sk", context=th)
    return sk, ChaChaPoly(derive(sk, b"env"))


@attrs.frozen
class FirstContact:
    """What :func:`initiate` returns: the message to deliver and the sender's session."""

    message: FirstMessage
    session: RatchetSession
    #: SK of §3.2, exposed for known-answer vectors.
    session_key: bytes


def initiate(
    *,
    mldsa_key: Signer,
    identity_key: XWingPrivateKey,
    record: PrekeyRecord,
    signer: bytes,
    data: bytes,
    now: float,
    deniable: bool = False,
    pq: bool = True,
    use_one_time: bool = True,
    pad_to: int | None = None,
    rng: Rng = os.urandom,
    encapsulate: Encapsulate = xwing.encapsulate,
    mlkem_encapsulate: Encapsulate = _mlkem_encapsulate,
) -> FirstContact:
    """Start a conversation with the owner of ``record`` (whose ML-DSA key is ``signer``).

    Raises ConfigError if the record is refused by §2.3 (the reason is in the
    message); ``use_one_time=False`` retries without a one-time prekey after
    the recipient refused a reused one.
    """
    reason = check_prekey_record(record, now=now, signer=signer)
    if reason is not None:
        raise ConfigError(f"prekey record refused: {reason}")
    opk: OneTimePrekey | None = None
    if use_one_time and record.opks:
        opk = record.opks[int.from_bytes(rng(4), "big") % len(record.opks)]
    ss_ik, ct_ik = encapsulate(record.ik)
    ss_spk, ct_spk = encapsulate(record.spk)
    ss_opk, ct_opk = encapsulate(opk.pk) if opk is not None else (b"", None)
    th = transcript_hash(record, opk, ct_ik, ct_spk, ct_opk)
    sk, envelope_key = session_key(ss_ik, ss_spk, ss_opk, th)
    envelope = FirstEnvelope(mldsa_key.public_key_bytes(), identity_key.public_key_bytes(), pq)
    if not deniable:
        sig = mldsa_key.sign(th + envelope.signed_bytes(), FirstEnvelope.CONTEXT)
        envelope = attrs.evolve(envelope, sig=sig)
    secrets = _secrets(sk, th, envelope)
    env = envelope_key.encrypt(0, th, encode(envelope))
    state = initiator_state(secrets, record.rk, pq=pq, deniable=deniable, rng=rng)
    session = RatchetSession(
        state, identity_key=identity_key, rng=rng, mlkem_encapsulate=mlkem_encapsulate
    )
    msg = session.encrypt(data, pad_to=pad_to)
    first = FirstMessage(
        record.spk_id,
        ct_ik,
        ct_spk,
        env,
        msg,
        opk_id=opk.id if opk is not None else None,
        ct_opk=ct_opk,
    )
    return FirstContact(first, session, sk)


@attrs.frozen
class Accepted:
    """A first message the recipient accepted: its session, plaintext and sender."""

    session: RatchetSession
    data: bytes
    #: The sender's ML-DSA-65 and X-Wing identity public keys (from the envelope).
    sender_mldsa: bytes
    sender_ik: bytes
    #: Signed mode: the sender is authenticated now; deniable: after its next message.
    signed: bool
    session_key: bytes


def accept_first(
    store: PrekeyStore,
    message: FirstMessage,
    *,
    allow_pq_off: bool = False,
    rng: Rng = os.urandom,
    encapsulate: Encapsulate = xwing.encapsulate,
    mlkem_encapsulate: Encapsulate = _mlkem_encapsulate,
) -> Accepted | None:
    """Open a first message addressed to ``store``'s owner (§3.5), or None.

    A refused message is counted in ``store.drops`` under its reason and
    changes nothing: the one-time prekey and the replay cache are only
    touched once the message has decrypted and authenticated.
    """
    reason_or = _accept(store, message, allow_pq_off, rng, encapsulate, mlkem_encapsulate)
    if isinstance(reason_or, str):
        store.drops[reason_or] += 1
        return None
    return reason_or


def _accept(
    store: PrekeyStore,
    message: FirstMessage,
    allow_pq_off: bool,
    rng: Rng,
    encapsulate: Encapsulate,
    mlkem_encapsulate: Encapsulate,
) -> Accepted | str:
    spk = store.signed_prekey(message.spk_id)
    if spk is None:
        return "spk-unknown"
    replay = sha3_256(message.ct_ik, message.ct_spk, message.ct_opk or b"")
    if replay in spk.seen:
        return "replay"
    opk: OneTimePrekey | None = None
    try:
        ss_ik = store.identity_key.decapsulate(message.ct_ik)
        ss_spk = spk.key.decapsulate(message.ct_spk)
        ss_opk = b""
        if message.opk_id is not None and message.ct_opk is not None:
            key = store.one_time_key(message.opk_id)
            if isinstance(key, str):
                return key
            ss_opk = key.decapsulate(message.ct_opk)
            opk = OneTimePrekey(message.opk_id, key.public_key_bytes())
    except CryptoError:
        return "first-malformed"
    record = PrekeyRecord(
        sha3_256(store.mldsa_key.public_key_bytes()),
        store.identity_key.public_key_bytes(),
        spk.id,
        spk.key.public_key_bytes(),
        spk.ratchet_public(),
        spk.intro,
        (),
        0,
        0,
        bytes(3309),
    )
    th = transcript_hash(record, opk, message.ct_ik, message.ct_spk, message.ct_opk)
    sk, envelope_key = session_key(ss_ik, ss_spk, ss_opk, th)
    try:
        plain = envelope_key.decrypt(0, th, message.env)
        envelope = decode(plain, expect=(FirstEnvelope,))
    except (CryptoError, DecodeError):
        return "first-envelope"
    assert isinstance(envelope, FirstEnvelope)
    if not envelope.pq and not allow_pq_off:
        return "pq-required"
    auth: tuple[bytes, bytes] | None = None
    if envelope.sig is not None:
        try:
            mldsa.verify(
                envelope.mldsa, th + envelope.signed_bytes(), envelope.sig, FirstEnvelope.CONTEXT
            )
        except InvalidSignatureError:
            return "first-signature"
    else:
        try:
            auth = encapsulate(envelope.ik)
        except CryptoError:
            return "first-malformed"
    secrets = _secrets(sk, th, envelope)
    state = responder_state(secrets, spk.ratchet, pq=envelope.pq, auth=auth)
    session = RatchetSession(state, rng=rng, mlkem_encapsulate=mlkem_encapsulate)
    data = session.decrypt(message.msg)
    if data is None:
        return "first-ratchet"
    spk.seen.add(replay)
    if message.opk_id is not None:
        store.claim_one_time(message.opk_id)
    return Accepted(session, data, envelope.mldsa, envelope.ik, envelope.sig is not None, sk)
