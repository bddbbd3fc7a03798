"""Test vectors for private direct messaging (``protocol-spec/11-messaging.md``).

Keys come from fixed seeds (SHAKE256 of labels).  ML-DSA-65 signing is
hedged, so, as for the records vectors, each file pins the signatures it uses
in its ``signatures`` list and the generator reuses a pinned signature while
it still verifies over the same bytes, key and context.

Each file has the wire-level ``tests`` (valid and invalid encodings, the
latter with their DecodeError reason).  ``msg-prekeys.json`` adds
``semantic`` cases: a record checked at ``now`` against an expected
``signer`` with the ``result`` and, when refused, the ``reason`` of §2.3.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

import attrs
import cbor2

from qdht.crypto import xwing
from qdht.crypto.backend import get_backend
from qdht.crypto.hashes import sha3_256
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.crypto.xwing import XWingPrivateKey
from qdht.messaging import (
    Accepted,
    PrekeyStore,
    RatchetSession,
    accept_first,
    check_prekey_record,
    initiate,
)
from qdht.wire import (
    CT_SIZE,
    FirstEnvelope,
    FirstMessage,
    IntroEntry,
    PrekeyRecord,
    RatchetMessage,
    SlotDelete,
    SlotRecord,
    encode,
)
from qdht_lint._cddl import default_spec_dir
from qdht_lint.vectors._common import Case, Valid, vector_file
from qdht_lint.vectors._dht import _common_invalid
from qdht_lint.vectors._records import _Owner
from qdht_lint.vectors._records import _Signer as _RecordsSigner

__all__ = ["vector_files"]

SPEC: Final = "11-messaging.md"
NOW: Final = 1_750_000_000
DAY: Final = 86400


def _bytes(label: str, size: int) -> bytes:
    return hashlib.shake_256(f"qdht/vectors/msg/{label}".encode()).digest(size)


def _canon(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


def _without(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != name}


class _Stream:
    """A deterministic randomness source: SHAKE256 of a label, read in order."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.position = 0
        #: Every draw, by size: a size names its use (11-messaging.md §4.6).
        self.draws: dict[int, list[bytes]] = {}

    def __call__(self, n: int) -> bytes:
        data = hashlib.shake_256(f"qdht/vectors/msg/rng/{self.label}".encode()).digest(
            self.position + n
        )
        self.position += n
        self.draws.setdefault(n, []).append(data[-n:])
        return data[-n:]

    def describe(self) -> dict[str, list[str]]:
        return {str(n): [d.hex() for d in draws] for n, draws in sorted(self.draws.items())}


class _User(_Owner):
    """A fixed messaging identity: ML-DSA-65 and X-Wing keys from seeds."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.mldsa_seed = _bytes(f"{name}/mldsa", 32)
        self.xwing_seed = _bytes(f"{name}/xwing", 32)
        self.mldsa = MLDSAPrivateKey.from_seed(self.mldsa_seed)
        self.xwing = XWingPrivateKey.from_seed(self.xwing_seed)
        # What the records vectors' signer reads.
        self.seed = self.mldsa_seed
        self.key = self.mldsa
        self.public = self.mldsa.public_key_bytes()
        self.owner = sha3_256(self.public)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mldsa_seed": self.mldsa_seed.hex(),
            "xwing_seed": self.xwing_seed.hex(),
        }


class _Signer(_RecordsSigner):
    """The records vectors' signer, with its pins in ``vectors/msg/``."""

    def __init__(self, rule: str) -> None:
        self.pinned: dict[tuple[str, str, str], str] = {}
        self.used: list[dict[str, str]] = []
        path = default_spec_dir() / "vectors" / "msg" / f"{rule}.json"
        if path.is_file():
            for entry in json.loads(path.read_text(encoding="utf-8")).get("signatures", []):
                key = (entry["key"], entry["context"], entry["message_sha3"])
                self.pinned[key] = entry["signature"]


class _PinnedMLDSA:
    """An ML-DSA key whose ``sign`` goes through a :class:`_Signer`'s pins."""

    def __init__(self, user: _User, signer: _Signer) -> None:
        self.user = user
        self.signer = signer

    def public_key_bytes(self) -> bytes:
        return self.user.mldsa.public_key_bytes()

    def sign(self, message: bytes, context: bytes) -> bytes:
        return self.signer.sign(self.user, message, context)


def _bob_store(signer: _Signer, *, one_time: int = 2) -> PrekeyStore:
    bob = _User("bob")
    store = PrekeyStore(
        _PinnedMLDSA(bob, signer),
        bob.xwing,
        one_time_target=one_time,
        rng=_Stream("bob/prekeys"),
    )
    store.rotate(NOW)
    store.refill()
    return store


# ------------------------------------------------------------------- prekeys


def _prekeys() -> dict[str, Any]:
    signer = _Signer("msg-prekeys")
    store = _bob_store(signer)
    record = store.record(NOW)
    obj = record.to_cbor()
    bob = _User("bob")
    valid: list[Valid] = [
        ("bob's prekeys: signed prekey and two one-time prekeys", [], encode(record)),
        (
            "no one-time prekeys left",
            [],
            encode(
                attrs.evolve(
                    record,
                    opks=(),
                    sig=signer.sign(
                        bob,
                        attrs.evolve(record, opks=()).signed_bytes(),
                        PrekeyRecord.CONTEXT,
                    ),
                )
            ),
        ),
    ]
    invalid = _common_invalid(obj)
    invalid += [
        (
            "sig of 3308 bytes",
            ["undersize-field"],
            _canon(dict(obj, sig=obj["sig"][:-1])),
            "field-size",
        ),
        ("ik missing", ["missing-field"], _canon(_without(obj, "ik")), "missing-field"),
        (
            "spk_id above 2^32-1",
            ["wrong-field-value"],
            _canon(dict(obj, spk_id=2**32)),
            "field-value",
        ),
        (
            "one-time prekey as a map",
            ["wrong-field-type"],
            _canon(dict(obj, opks=[{"id": 1, "pk": obj["spk"]}])),
            "field-type",
        ),
    ]
    semantic = _prekey_semantics(signer, record)
    return vector_file(
        "msg-prekeys",
        SPEC,
        valid,
        invalid,
        head={"users": [bob.describe()], "now": NOW},
        semantic=semantic,
        signatures=signer.used,
    )


def _prekey_semantics(signer: _Signer, record: PrekeyRecord) -> list[dict[str, Any]]:
    bob, alice = _User("bob"), _User("alice")
    signer_key = bob.mldsa.public_key_bytes()

    def resign(
        rec: PrekeyRecord, user: _User = bob, context: bytes = PrekeyRecord.CONTEXT
    ) -> PrekeyRecord:
        if user is not bob:
            rec = attrs.evolve(rec, owner=sha3_256(user.mldsa.public_key_bytes()))
        return attrs.evolve(rec, sig=signer.sign(user, rec.signed_bytes(), context))

    cases: list[tuple[str, PrekeyRecord, float, bytes]] = [
        ("valid at issue time", record, NOW, signer_key),
        ("valid a week later", record, NOW + 7 * DAY, signer_key),
        ("expired", record, record.exp, signer_key),
        (
            "issued an hour in the future",
            resign(attrs.evolve(record, issued=NOW + 3600)),
            NOW,
            signer_key,
        ),
        (
            "lifetime of 9 days",
            resign(attrs.evolve(record, exp=record.issued + 9 * DAY)),
            NOW,
            signer_key,
        ),
        (
            "signature over other bytes (forged spk)",
            attrs.evolve(record, spk=_bytes("forged-spk", 1216)),
            NOW,
            signer_key,
        ),
        (
            "signed under the mutable-record context",
            resign(record, context=b"qdht/v1/mutable-record"),
            NOW,
            signer_key,
        ),
        ("signed by alice, bob expected", resign(record, alice), NOW, signer_key),
    ]
    out = []
    for comment, rec, now, expected in cases:
        reason = check_prekey_record(rec, now=now, signer=expected)
        case: dict[str, Any] = {
            "comment": comment,
            "cbor": encode(rec).hex(),
            "now": now,
            "signer": expected.hex(),
            "result": "valid" if reason is None else "invalid",
        }
        if reason is not None:
            case["reason"] = reason
        out.append(case)
    return out


# ------------------------------------------------------------- wire-level only


def _ratchet_obj(label: str, hdr_size: int = 74, body_size: int = 48) -> dict[str, Any]:
    return {
        "type": "ratchet_msg",
        "hdr": _bytes(f"{label}/hdr", hdr_size),
        "body": _bytes(f"{label}/body", body_size),
    }


def _first_obj() -> dict[str, Any]:
    return {
        "type": "first_msg",
        "spk_id": 1,
        "ct_ik": _bytes("ct_ik", CT_SIZE),
        "ct_spk": _bytes("ct_spk", CT_SIZE),
        "opk_id": 2,
        "ct_opk": _bytes("ct_opk", CT_SIZE),
        "env": _bytes("env", 5300),
        "msg": _ratchet_obj("first/msg", 1300, 64),
    }


def _wire_file(
    rule: str,
    cls: type[Any],
    valid_objs: list[tuple[str, dict[str, Any]]],
    extra_invalid: list[Case],
) -> dict[str, Any]:
    valid: list[Valid] = []
    for comment, obj in valid_objs:
        valid.append((comment, [], encode(cls.from_cbor(obj, "$"))))
    invalid = _common_invalid(valid_objs[0][1]) + extra_invalid
    return vector_file(rule, SPEC, valid, invalid)


# ------------------------------------------------------- known-answer run

#: Ciphertexts of the known-answer run, kept between the generator's calls in
#: one process (before the files exist, the first call records them).
_RECORDED: dict[str, list[bytes]] = {}


def _pinned_ciphertexts(name: str) -> list[bytes] | None:
    if name in _RECORDED:
        return list(_RECORDED[name])
    path = default_spec_dir() / "vectors" / "msg" / "msg-first_msg.json"
    if not path.is_file():
        return None
    known = json.loads(path.read_text(encoding="utf-8")).get("known_answer")
    if known is None:
        return None
    return [bytes.fromhex(ct) for ct in known[name]]


class _Conversation:
    """Alice's first contact with bob and a ratchet sequence, every input fixed.

    ``cryptography`` cannot derandomise ML-KEM encapsulation, so the X-Wing
    and ML-KEM ciphertexts are recorded once (``xwing_ciphertexts``,
    ``mlkem_ciphertexts`` in the file) and replayed: the encapsulating side's
    shared secret is what the holder of the decapsulation key gets from the
    recorded ciphertext, as in the session vectors.
    """

    TURNS: Final = (
        ("bob", b"hello alice"),
        ("alice", b"how are you?"),
        ("alice", b"(lost, then late)"),
        ("alice", b"fine, thanks"),
        ("bob", b"see you"),
        ("alice", b"bye"),
    )

    def __init__(self) -> None:
        self.signer = _Signer("msg-first_msg")
        self.alice, self.bob = _User("alice"), _User("bob")
        self.store = _bob_store(self.signer)
        self.record = self.store.record(NOW)
        spk = self.store.current_spk()
        self.xwing_keys = {
            self.bob.xwing.public_key_bytes(): self.bob.xwing,
            spk.key.public_key_bytes(): spk.key,
        }
        for ident in self.store.one_time:
            key = self.store.one_time_key(ident)
            assert not isinstance(key, str)
            self.xwing_keys[key.public_key_bytes()] = key
        self.xwing_cts = _pinned_ciphertexts("xwing_ciphertexts")
        self.mlkem_cts = _pinned_ciphertexts("mlkem_ciphertexts")
        self.used_xwing: list[bytes] = []
        self.used_mlkem: list[bytes] = []
        self.sessions: list[RatchetSession] = []
        self.alice_rng, self.bob_rng = _Stream("alice/session"), _Stream("bob/session")
        self.prekey_secrets = {
            "spk_id": spk.id,
            "spk_seed": spk.seed.hex(),
            "ratchet_private": spk.ratchet.hex(),
            "one_time": [[i, seed.hex()] for i, seed in sorted(self.store.one_time.items())],
        }
        self.run()

    def xwing_encapsulate(self, public_key: bytes) -> tuple[bytes, bytes]:
        if self.xwing_cts:
            ct = self.xwing_cts.pop(0)
            shared = self.xwing_keys[public_key].decapsulate(ct)
        else:
            shared, ct = xwing.encapsulate(public_key)
        self.used_xwing.append(ct)
        return shared, ct

    def mlkem_encapsulate(self, public_key: bytes) -> tuple[bytes, bytes]:
        if self.mlkem_cts:
            ct = self.mlkem_cts.pop(0)
            for session in self.sessions:
                seed = session.state.pq_seed
                if seed is not None:
                    key = get_backend().mlkem768_from_seed(seed)
                    if key.public_bytes() == public_key:
                        shared = key.decapsulate(ct)
                        break
            else:
                raise RuntimeError("no session holds the ML-KEM key")
        else:
            shared, ct = get_backend().mlkem768_encapsulate(public_key)
        self.used_mlkem.append(ct)
        return shared, ct

    def run(self) -> None:
        contact = initiate(
            mldsa_key=_PinnedMLDSA(self.alice, self.signer),
            identity_key=self.alice.xwing,
            record=self.record,
            signer=self.bob.mldsa.public_key_bytes(),
            data=b"hello bob",
            now=NOW,
            rng=self.alice_rng,
            encapsulate=self.xwing_encapsulate,
            mlkem_encapsulate=self.mlkem_encapsulate,
        )
        self.first = contact.message
        self.session_key = contact.session_key
        self.sessions.append(contact.session)
        accepted = accept_first(
            self.store,
            contact.message,
            rng=self.bob_rng,
            mlkem_encapsulate=self.mlkem_encapsulate,
        )
        assert isinstance(accepted, Accepted)
        assert accepted.session_key == contact.session_key
        self.sessions.append(accepted.session)
        sessions = {"alice": contact.session, "bob": accepted.session}
        self.sequence: list[dict[str, Any]] = []
        late: tuple[dict[str, Any], RatchetMessage] | None = None
        for sender, data in self.TURNS:
            receiver = "bob" if sender == "alice" else "alice"
            message = sessions[sender].encrypt(data)
            entry = {"from": sender, "cbor": encode(message).hex(), "plaintext": data.hex()}
            self.sequence.append(entry)
            if data.startswith(b"(lost"):
                late = (entry, message)
                continue
            assert sessions[receiver].decrypt(message) == data
        assert late is not None
        assert sessions["bob"].decrypt(late[1]) == bytes.fromhex(late[0]["plaintext"])
        _RECORDED["xwing_ciphertexts"] = list(self.used_xwing)
        _RECORDED["mlkem_ciphertexts"] = list(self.used_mlkem)

    def describe(self) -> dict[str, Any]:
        return {
            "users": [self.alice.describe(), self.bob.describe()],
            "now": NOW,
            "prekey_record": encode(self.record).hex(),
            "prekey_secrets": self.prekey_secrets,
            "rng": {
                "alice": "SHAKE256('qdht/vectors/msg/rng/alice/session'), read in order",
                "bob": "SHAKE256('qdht/vectors/msg/rng/bob/session'), read in order",
            },
            "rng_draws": {"alice": self.alice_rng.describe(), "bob": self.bob_rng.describe()},
            "xwing_ciphertexts": [ct.hex() for ct in self.used_xwing],
            "mlkem_ciphertexts": [ct.hex() for ct in self.used_mlkem],
            "first_msg": encode(self.first).hex(),
            "plaintext": b"hello bob".hex(),
            "session_key": self.session_key.hex(),
            "sequence": self.sequence,
            "note": "the third message is delivered after the fourth",
        }


def _first_msg() -> dict[str, Any]:
    obj = _first_obj()
    run = _Conversation()
    content = _wire_file(
        "msg-first_msg",
        FirstMessage,
        [
            ("with a one-time prekey", obj),
            ("without a one-time prekey", _without(_without(obj, "opk_id"), "ct_opk")),
        ],
        [
            (
                "ct_spk of 1119 bytes",
                ["undersize-field"],
                _canon(dict(obj, ct_spk=obj["ct_spk"][:-1])),
                "field-size",
            ),
            (
                "msg of another type",
                ["wrong-type"],
                _canon(dict(obj, msg=dict(obj["msg"], type="slot"))),
                "wrong-type",
            ),
            (
                "env shorter than a tag",
                ["undersize-field"],
                _canon(dict(obj, env=b"x" * 15)),
                "field-size",
            ),
        ],
    )
    content["known_answer"] = run.describe()
    content["signatures"] = run.signer.used
    return content


def _first_env() -> dict[str, Any]:
    bob = _User("bob")
    obj = {
        "type": "first_env",
        "mldsa": bob.mldsa.public_key_bytes(),
        "ik": bob.xwing.public_key_bytes(),
        "pq": True,
        "sig": _bytes("env-sig", 3309),
    }
    return _wire_file(
        "msg-first_env",
        FirstEnvelope,
        [
            ("signed mode", obj),
            ("deniable mode, PQ ratchet off", dict(_without(obj, "sig"), pq=False)),
        ],
        [
            ("pq is 1", ["wrong-field-type"], _canon(dict(obj, pq=1)), "field-type"),
            ("pq missing", ["missing-field"], _canon(_without(obj, "pq")), "missing-field"),
        ],
    )


def _ratchet_msg() -> dict[str, Any]:
    obj = _ratchet_obj("ratchet")
    return _wire_file(
        "msg-ratchet_msg",
        RatchetMessage,
        [
            ("ordinary message", obj),
            ("header carrying an ML-KEM encapsulation key", _ratchet_obj("ratchet-ek", 1254, 700)),
        ],
        [
            (
                "header of 69 bytes",
                ["undersize-field"],
                _canon(dict(obj, hdr=obj["hdr"][:69])),
                "field-size",
            ),
            (
                "header of 2375 bytes",
                ["oversize-field"],
                _canon(dict(obj, hdr=bytes(2375))),
                "field-size",
            ),
            (
                "body of 15 bytes",
                ["undersize-field"],
                _canon(dict(obj, body=bytes(15))),
                "field-size",
            ),
        ],
    )


def _slot() -> dict[str, Any]:
    token = _bytes("slot-token", 32)
    obj = {
        "type": "slot",
        "token": token,
        "box": _bytes("slot-box", 2048),
        "dh": sha3_256(_bytes("slot-delete", 32)),
        "exp": NOW + 14 * DAY,
    }
    return _slot_file(obj, token)


def _slot_file(obj: dict[str, Any], token: bytes) -> dict[str, Any]:
    content = _wire_file(
        "msg-slot",
        SlotRecord,
        [("a 2048-byte slot", obj)],
        [
            (
                "box of 255 bytes",
                ["undersize-field"],
                _canon(dict(obj, box=bytes(255))),
                "field-size",
            ),
            (
                "token of 31 bytes",
                ["undersize-field"],
                _canon(dict(obj, token=token[:31])),
                "field-size",
            ),
        ],
    )
    content["key_example"] = {"token": token.hex(), "key": sha3_256(token).hex()}
    return content


def _slot_delete() -> dict[str, Any]:
    obj = {
        "type": "slot_delete",
        "key": _bytes("slot-key", 32),
        "secret": _bytes("slot-delete", 32),
    }
    return _wire_file(
        "msg-slot_delete",
        SlotDelete,
        [("delete by preimage", obj)],
        [("secret missing", ["missing-field"], _canon(_without(obj, "secret")), "missing-field")],
    )


def _intro() -> dict[str, Any]:
    obj = {
        "type": "intro",
        "box": _bytes("intro-box", 32),
        "first": _first_obj(),
        "exp": NOW + 7 * DAY,
        "nonce": 12345,
    }
    return _wire_file(
        "msg-intro",
        IntroEntry,
        [("an intro entry", obj)],
        [
            ("first missing", ["missing-field"], _canon(_without(obj, "first")), "missing-field"),
            (
                "nonce is bytes",
                ["wrong-field-type"],
                _canon(dict(obj, nonce=b"\x01")),
                "field-type",
            ),
        ],
    )


def vector_files() -> dict[str, dict[str, Any]]:
    return {
        "msg/msg-prekeys.json": _prekeys(),
        "msg/msg-first_msg.json": _first_msg(),
        "msg/msg-first_env.json": _first_env(),
        "msg/msg-ratchet_msg.json": _ratchet_msg(),
        "msg/msg-slot.json": _slot(),
        "msg/msg-slot_delete.json": _slot_delete(),
        "msg/msg-intro.json": _intro(),
    }
