"""The known-answer run of ``vectors/msg/msg-first_msg.json`` replays from its inputs alone."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from qdht.crypto.backend import get_backend
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.crypto.xwing import XWingPrivateKey
from qdht.messaging import (
    Accepted,
    PrekeyStore,
    RatchetSession,
    SignedPrekey,
    accept_first,
    initiate,
    session_key,
    transcript_hash,
)
from qdht.wire import FirstEnvelope, FirstMessage, PrekeyRecord, RatchetMessage, decode, encode

VECTORS = Path(__file__).resolve().parents[2] / "protocol-spec" / "vectors" / "msg"


def _known() -> dict[str, Any]:
    content = json.loads((VECTORS / "msg-first_msg.json").read_text(encoding="utf-8"))
    known: dict[str, Any] = content["known_answer"]
    return known


class _Stream:
    def __init__(self, label: str) -> None:
        self.label = f"qdht/vectors/msg/rng/{label}".encode()
        self.position = 0

    def __call__(self, n: int) -> bytes:
        self.position += n
        return hashlib.shake_256(self.label).digest(self.position)[-n:]


def _keys(user: dict[str, str]) -> tuple[MLDSAPrivateKey, XWingPrivateKey]:
    return (
        MLDSAPrivateKey.from_seed(bytes.fromhex(user["mldsa_seed"])),
        XWingPrivateKey.from_seed(bytes.fromhex(user["xwing_seed"])),
    )


def _bob_store(known: dict[str, Any]) -> PrekeyStore:
    mldsa, xwing = _keys(known["users"][1])
    secrets = known["prekey_secrets"]
    record = decode(bytes.fromhex(known["prekey_record"]), expect=(PrekeyRecord,))
    assert isinstance(record, PrekeyRecord)
    store = PrekeyStore(mldsa, xwing)
    spk = SignedPrekey(
        secrets["spk_id"],
        bytes.fromhex(secrets["spk_seed"]),
        bytes.fromhex(secrets["ratchet_private"]),
        record.intro,
        float(known["now"]),
    )
    store.signed[spk.id] = spk
    store.current_id = spk.id
    store.one_time = {ident: bytes.fromhex(seed) for ident, seed in secrets["one_time"]}
    store.next_id = 1 + max(store.one_time)
    return store


def test_bob_opens_the_first_message_with_the_published_session_key() -> None:
    known = _known()
    first = decode(bytes.fromhex(known["first_msg"]), expect=(FirstMessage,))
    assert isinstance(first, FirstMessage)
    accepted = accept_first(_bob_store(known), first, rng=_Stream("bob/session"))
    assert isinstance(accepted, Accepted)
    assert accepted.data == bytes.fromhex(known["plaintext"])
    assert accepted.session_key.hex() == known["session_key"]
    assert accepted.signed
    assert accepted.sender_mldsa == _keys(known["users"][0])[0].public_key_bytes()


def test_the_whole_run_reproduces_byte_for_byte() -> None:
    known = _known()
    alice_mldsa, alice_xwing = _keys(known["users"][0])
    bob_mldsa, _ = _keys(known["users"][1])
    store = _bob_store(known)
    record = decode(bytes.fromhex(known["prekey_record"]), expect=(PrekeyRecord,))
    assert isinstance(record, PrekeyRecord)
    xwing_keys = {store.identity_key.public_key_bytes(): store.identity_key}
    xwing_keys[store.current_spk().key.public_key_bytes()] = store.current_spk().key
    for ident in store.one_time:
        key = store.one_time_key(ident)
        assert not isinstance(key, str)
        xwing_keys[key.public_key_bytes()] = key
    xwing_cts = [bytes.fromhex(ct) for ct in known["xwing_ciphertexts"]]
    mlkem_cts = [bytes.fromhex(ct) for ct in known["mlkem_ciphertexts"]]
    sessions: list[RatchetSession] = []

    def xwing_replay(public_key: bytes) -> tuple[bytes, bytes]:
        ct = xwing_cts.pop(0)
        return xwing_keys[public_key].decapsulate(ct), ct

    def mlkem_replay(public_key: bytes) -> tuple[bytes, bytes]:
        ct = mlkem_cts.pop(0)
        for session in sessions:
            seed = session.state.pq_seed
            if seed is not None:
                key = get_backend().mlkem768_from_seed(seed)
                if key.public_bytes() == public_key:
                    return key.decapsulate(ct), ct
        raise AssertionError("no session offered this ML-KEM key")

    # The signature is hedged: take alice's from the vector, as a replaying signer.
    decoded = decode(bytes.fromhex(known["first_msg"]), expect=(FirstMessage,))
    assert isinstance(decoded, FirstMessage)
    published: FirstMessage = decoded

    class PublishedSignature:
        def public_key_bytes(self) -> bytes:
            return alice_mldsa.public_key_bytes()

        def sign(self, message: bytes, context: bytes) -> bytes:
            return _signature_of(known, published)

    contact = initiate(
        mldsa_key=PublishedSignature(),
        identity_key=alice_xwing,
        record=record,
        signer=bob_mldsa.public_key_bytes(),
        data=bytes.fromhex(known["plaintext"]),
        now=known["now"],
        rng=_Stream("alice/session"),
        encapsulate=xwing_replay,
        mlkem_encapsulate=mlkem_replay,
    )
    assert encode(contact.message).hex() == known["first_msg"]
    sessions.append(contact.session)
    accepted = accept_first(
        store, contact.message, rng=_Stream("bob/session"), mlkem_encapsulate=mlkem_replay
    )
    assert isinstance(accepted, Accepted)
    sessions.append(accepted.session)
    by_name = {"alice": contact.session, "bob": accepted.session}
    late = None
    for step in known["sequence"]:
        data = bytes.fromhex(step["plaintext"])
        message = by_name[step["from"]].encrypt(data)
        assert encode(message).hex() == step["cbor"]
        receiver = by_name["bob" if step["from"] == "alice" else "alice"]
        if data.startswith(b"(lost"):
            late = (receiver, message, data)
            continue
        assert receiver.decrypt(message) == data
    assert late is not None
    assert late[0].decrypt(late[1]) == late[2]
    assert not mlkem_cts
    assert not xwing_cts


def _signature_of(known: dict[str, Any], first: FirstMessage) -> bytes:
    """Alice's envelope signature, read back out of the published first message."""
    store = _bob_store(known)
    spk = store.current_spk()
    assert first.opk_id is not None
    assert first.ct_opk is not None
    opk_key = store.one_time_key(first.opk_id)
    assert not isinstance(opk_key, str)
    record = decode(bytes.fromhex(known["prekey_record"]), expect=(PrekeyRecord,))
    assert isinstance(record, PrekeyRecord)
    opk = next(o for o in record.opks if o.id == first.opk_id)
    th = transcript_hash(record, opk, first.ct_ik, first.ct_spk, first.ct_opk)
    _, envelope_key = session_key(
        store.identity_key.decapsulate(first.ct_ik),
        spk.key.decapsulate(first.ct_spk),
        opk_key.decapsulate(first.ct_opk),
        th,
    )
    envelope = decode(envelope_key.decrypt(0, th, first.env), expect=(FirstEnvelope,))
    assert isinstance(envelope, FirstEnvelope)
    assert envelope.sig is not None
    return envelope.sig


def test_sequence_messages_are_valid_ratchet_messages() -> None:
    for step in _known()["sequence"]:
        message = decode(bytes.fromhex(step["cbor"]), expect=(RatchetMessage,))
        assert encode(message).hex() == step["cbor"]
