"""Test vectors for federated training (``protocol-spec/14-training.md``).

Byte strings come from fixed labels hashed with SHA3-256.  The round
announcement is signed by the records vectors' fixed owner ``alice``
(``coordinator`` in ``fl-round_announce.json`` gives her seed); ML-DSA-65
signing is hedged, so that file pins the signature it uses in its
``signatures`` list, as the records vectors do.  The X-Wing keys and
ciphertexts inside the SecAgg vectors are placeholders of the right size:
these vectors check encodings, the SecAgg tests check the protocol.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any, Final

import cbor2

from qdht.wire import (
    ROUND_ANNOUNCE_CONTEXT,
    Address,
    Contact,
    DeviceSigned,
    Enrolment,
    GossipModel,
    RoundAnnounce,
    RoundUpdate,
    SecAggForward,
    SecAggKeys,
    SecAggMasked,
    SecAggNeighbours,
    SecAggReveal,
    SecAggSetup,
    SecAggShares,
    SecAggSubmitted,
    SecAggUnlinked,
    SecAggUnmask,
    encode,
)
from qdht_lint._cddl import default_spec_dir
from qdht_lint.vectors._common import Case, Valid, vector_file
from qdht_lint.vectors._dht import _common_invalid
from qdht_lint.vectors._records import _owners, _Signer

__all__ = ["vector_files"]

SPEC: Final = "14-training.md"


def _bytes(label: str, size: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha3_256(f"qdht/vectors/fl/{label}/{counter}".encode()).digest()
        counter += 1
    return out[:size]


ROUND: Final = _bytes("round", 32)
TASK: Final = _bytes("task", 32)
NODE: Final = _bytes("node", 32)
CPK: Final = _bytes("cpk", 1216)
SPK: Final = _bytes("spk", 1216)
CT: Final = _bytes("ct", 1120)
BOX: Final = _bytes("box", 148)
ESCROW: Final = _bytes("escrow", 48)
SHARE: Final = b"\x00" + _bytes("share", 65)


def _canon(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


def _f32(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def _case(base: dict[str, Any], comment: str, reason: str, flag: str, **change: Any) -> Case:
    obj = {k: v for k, v in base.items() if change.get(k, 0) is not None}
    obj.update({k: v for k, v in change.items() if v is not None})
    return (comment, [flag], _canon(obj), reason)


def _missing(base: dict[str, Any], name: str) -> Case:
    return _case(base, f"{name} missing", "missing-field", "missing-field", **{name: None})


def _round_case(base: dict[str, Any]) -> Case:
    return _case(base, "round of 31 bytes", "field-size", "undersize-field", round=ROUND[:31])


class _FlSigner(_Signer):
    """The records vectors' signer, with its pins in ``vectors/fl/``."""

    def __init__(self, rule: str) -> None:
        self.pinned: dict[tuple[str, str, str], str] = {}
        self.used: list[dict[str, str]] = []
        path = default_spec_dir() / "vectors" / "fl" / f"{rule}.json"
        if path.is_file():
            for entry in json.loads(path.read_text(encoding="utf-8")).get("signatures", []):
                self.pinned[(entry["key"], entry["context"], entry["message_sha3"])] = entry[
                    "signature"
                ]


def _announce() -> dict[str, Any]:
    alice, _ = _owners()
    signer = _FlSigner("fl-round_announce")

    def signed(**change: Any) -> RoundAnnounce:
        fields: dict[str, Any] = {
            "coordinator": NODE,
            "task": TASK,
            "round": 7,
            "model": _bytes("model", 32),
            "size": 650,
            "epochs": 5,
            "lr": 100_000,
            "batch": 10,
            "clip": 1_000_000,
            "noise": 1_000,
            "q": 2**31,
            "deadline": 1_800_000_000,
            "min_participants": 5,
            "aggregator": "fedavg",
            "compression": "none",
            "secagg": False,
        }
        fields.update(change)
        unsigned = RoundAnnounce(**fields)
        sig = signer.sign(alice, unsigned.signed_bytes(), ROUND_ANNOUNCE_CONTEXT)
        return RoundAnnounce(**fields, sig=sig)

    typical = signed()
    base = typical.to_cbor()
    valid: list[Valid] = [
        ("DP-FedAvg round, q = 1/2, z = 1, S = 1", [], encode(typical)),
        (
            "SecAgg round with 8-bit quantisation and the median",
            [],
            encode(signed(secagg=True, compression="q8", aggregator="median", round=8)),
        ),
        ("q = 1: every device", [], encode(signed(q=2**32, noise=0, clip=0, round=9))),
    ]
    invalid = _common_invalid(base)
    invalid += [
        _case(base, "q = 0", "field-value", "wrong-field-value", q=0),
        _case(base, "q above 1", "field-value", "wrong-field-value", q=2**32 + 1),
        _case(base, "epochs 0", "field-value", "wrong-field-value", epochs=0),
        _case(base, "lr is text", "field-type", "wrong-field-type", lr="0.1"),
        _case(base, "unknown aggregator", "field-value", "wrong-field-value", aggregator="mean"),
        _case(base, "unknown compression", "field-value", "wrong-field-value", compression="zip"),
        _case(base, "signature of 3308 bytes", "field-size", "undersize-field", sig=bytes(3308)),
        _missing(base, "deadline"),
        _missing(base, "sig"),
    ]
    return vector_file(
        "fl-round_announce",
        SPEC,
        valid,
        invalid,
        head={"coordinator": alice.describe()},
        signatures=signer.used,
    )


def _update() -> dict[str, Any]:
    plain = RoundUpdate(ROUND, NODE, 67, 4, "none", _f32(0.5, -0.25, 0.0, 1.0))
    q8 = RoundUpdate(ROUND, NODE, 67, 4, "q8", bytes([0, 255, 128, 3]), lo=_f32(-1), hi=_f32(1))
    topk = RoundUpdate(ROUND, NODE, 1, 650, "topk", _f32(0.5, -2.0), idx=struct.pack("<2I", 3, 600))
    base = plain.to_cbor()
    q8_base = q8.to_cbor()
    valid: list[Valid] = [
        ("float32 update of 4 values", [], encode(plain)),
        ("8-bit quantised", [], encode(q8)),
        ("top-k: 2 of 650", [], encode(topk)),
    ]
    invalid = _common_invalid(base)
    invalid += [
        _round_case(base),
        _case(base, "size 0", "field-value", "wrong-field-value", size=0),
        _case(base, "size over 16000", "field-value", "wrong-field-value", size=16_001),
        _case(base, "n is 0", "field-value", "wrong-field-value", n=0),
        _case(q8_base, "lo of 8 bytes", "field-size", "oversize-field", lo=bytes(8)),
        _case(base, "enc unknown", "field-value", "wrong-field-value", enc="f16"),
    ]
    return vector_file("fl-round_update", SPEC, valid, invalid)


def _setup() -> dict[str, Any]:
    ids = tuple(_bytes(f"id/{i}", 32) for i in range(20))
    typical = SecAggSetup(ROUND, ids, 18, 7, 16, 8_000_000, 650, _bytes("graph", 32))
    base = typical.to_cbor()
    valid: list[Valid] = [
        ("20 devices, complete graph", [], encode(typical)),
        (
            "3 devices, smallest cohort",
            [],
            encode(SecAggSetup(ROUND, ids[:3], 2, 2, 24, 1, 1, TASK)),
        ),
    ]
    invalid = _common_invalid(base)
    invalid += [
        _round_case(base),
        _case(base, "k of 25", "field-value", "wrong-field-value", k=25),
        _case(base, "two devices", "field-size", "undersize-field", ids=list(ids[:2])),
        _case(base, "bits 25", "field-value", "wrong-field-value", bits=25),
    ]
    return vector_file("fl-secagg_setup", SPEC, valid, invalid)


def _keys() -> dict[str, Any]:
    typical = SecAggKeys(ROUND, 3, CPK, SPK)
    base = typical.to_cbor()
    invalid = _common_invalid(base)
    invalid += [
        _round_case(base),
        _case(base, "index 0", "field-value", "wrong-field-value", index=0),
        _case(base, "cpk of 1184 bytes", "field-size", "undersize-field", cpk=CPK[:1184]),
        _missing(base, "spk"),
    ]
    return vector_file("fl-secagg_keys", SPEC, [("device 3's keys", [], encode(typical))], invalid)


def _neighbours() -> dict[str, Any]:
    typical = SecAggNeighbours(ROUND, ((1, CPK, SPK), (4, CPK, SPK)))
    base = typical.to_cbor()
    valid: list[Valid] = [
        ("two neighbours", [], encode(typical)),
        ("none advertised", [], encode(SecAggNeighbours(ROUND, ()))),
    ]
    invalid = _common_invalid(base)
    invalid += [
        _case(
            base, "from holds a map", "field-type", "wrong-field-type", **{"from": [{"i": 1}, 2]}
        ),
        _case(
            base, "25 neighbours", "field-size", "oversize-field", **{"from": list(range(1, 26))}
        ),
    ]
    return vector_file("fl-secagg_neighbours", SPEC, valid, invalid)


def _shares() -> dict[str, Any]:
    typical = SecAggShares(ROUND, 2, ((1, CT, BOX), (3, CT, BOX)), ((3, CT, ESCROW),))
    base = typical.to_cbor()
    invalid = _common_invalid(base)
    invalid += [
        _round_case(base),
        _case(base, "box of 147 bytes", "field-size", "undersize-field", boxes=[BOX[:147], BOX]),
        _case(base, "escrow of 32 bytes", "field-size", "undersize-field", escrows=[BOX[:32]]),
        _case(base, "recipient 0", "field-value", "wrong-field-value", box_to=[0, 3]),
    ]
    return vector_file(
        "fl-secagg_shares", SPEC, [("device 2 to 1 and 3", [], encode(typical))], invalid
    )


def _forward() -> dict[str, Any]:
    typical = SecAggForward(ROUND, ((1, CT, BOX), (3, CT, BOX)), ((1, CT),))
    base = typical.to_cbor()
    invalid = _common_invalid(base)
    invalid += [
        _round_case(base),
        _missing(base, "mask_cts"),
    ]
    return vector_file(
        "fl-secagg_forward", SPEC, [("to device 2 from 1 and 3", [], encode(typical))], invalid
    )


def _masked() -> dict[str, Any]:
    typical = SecAggMasked(ROUND, 5, struct.pack("<4I", 0, 1, 2**31, 2**32 - 1))
    base = typical.to_cbor()
    invalid = _common_invalid(base)
    invalid += [
        _round_case(base),
        _case(base, "y empty", "field-size", "undersize-field", y=b""),
    ]
    return vector_file("fl-secagg_masked", SPEC, [("4 values", [], encode(typical))], invalid)


def _unlinked() -> dict[str, Any]:
    typical = SecAggUnlinked(ROUND, struct.pack("<4I", 0, 1, 2**31, 2**32 - 1))
    base = typical.to_cbor()
    invalid = _common_invalid(base)
    invalid += [
        _round_case(base),
        _case(base, "y empty", "field-size", "undersize-field", y=b""),
        _case(base, "an index", "unknown-field", "unknown-field", index=5),
    ]
    return vector_file("fl-secagg_unlinked", SPEC, [("4 values", [], encode(typical))], invalid)


def _submitted() -> dict[str, Any]:
    typical = SecAggSubmitted(ROUND, 5)
    base = typical.to_cbor()
    invalid = _common_invalid(base)
    invalid += [
        _round_case(base),
        _case(base, "index 0", "field-value", "wrong-field-value", index=0),
        _missing(base, "index"),
    ]
    return vector_file("fl-secagg_submitted", SPEC, [("index 5", [], encode(typical))], invalid)


def _unmask() -> dict[str, Any]:
    typical = SecAggUnmask(ROUND, (1, 2, 4, 5), (3,))
    base = typical.to_cbor()
    valid: list[Valid] = [
        ("one dropout", [], encode(typical)),
        ("no dropouts", [], encode(SecAggUnmask(ROUND, (1, 2, 3), ()))),
    ]
    invalid = _common_invalid(base)
    invalid += [
        _case(base, "index 1001", "field-value", "wrong-field-value", dropped=[1001]),
    ]
    return vector_file("fl-secagg_unmask", SPEC, valid, invalid)


def _reveal() -> dict[str, Any]:
    typical = SecAggReveal(ROUND, 2, ((1, SHARE), (5, SHARE)), ((3, SHARE),))
    base = typical.to_cbor()
    invalid = _common_invalid(base)
    invalid += [
        _round_case(base),
        _case(base, "share of 65 bytes", "field-size", "undersize-field", b=[SHARE[:65], SHARE]),
        _missing(base, "s"),
    ]
    return vector_file("fl-secagg_reveal", SPEC, [("b and s shares", [], encode(typical))], invalid)


def _gossip() -> dict[str, Any]:
    typical = GossipModel(TASK, 12, _f32(0.5, -1.5, 2.0))
    base = typical.to_cbor()
    invalid = _common_invalid(base)
    invalid += [
        _case(base, "age is text", "field-type", "wrong-field-type", age="12"),
        _missing(base, "task"),
    ]
    return vector_file(
        "fl-gossip_model", SPEC, [("3 parameters, age 12", [], encode(typical))], invalid
    )


def _device_signed() -> dict[str, Any]:
    """Shape only: the signature is a placeholder (the coordinator verifies it, §9.5)."""
    inner = encode(RoundUpdate(ROUND, NODE, 5, 2, "none", _f32(0.25, -0.5)))
    typical = DeviceSigned(NODE, inner, _bytes("device-sig", 3309))
    base = typical.to_cbor()
    invalid = _common_invalid(base)
    invalid += [
        _case(base, "sig of 3308 bytes", "field-size", "undersize-field", sig=typical.sig[:-1]),
        _case(base, "node of 31 bytes", "field-size", "undersize-field", node=NODE[:31]),
        _case(base, "empty message", "field-size", "undersize-field", message=b""),
        _case(base, "message too long", "field-size", "oversize-field", message=bytes(65537)),
        _case(base, "message is text", "field-type", "wrong-field-type", message="x"),
        _missing(base, "sig"),
    ]
    return vector_file(
        "fl-device_signed", SPEC, [("a signed round_update", [], encode(typical))], invalid
    )


def _enrolment() -> dict[str, Any]:
    """Shape only: whether the contact is the entry's signer is the coordinator's check (§9.1)."""
    contact = Contact(NODE, (Address("udp", "192.0.2.7", 4433),))
    typical = Enrolment(contact, _bytes("xwing-hash", 32), _bytes("nonce", 8))
    base = typical.to_cbor()
    invalid = _common_invalid(base)
    invalid += [
        _case(base, "xwing of 31 bytes", "field-size", "undersize-field", xwing=typical.xwing[:31]),
        _case(base, "nonce of 9 bytes", "field-size", "oversize-field", nonce=bytes(9)),
        _case(base, "contact is a URI", "not-a-map", "wrong-field-type", contact=contact.to_uri()),
        _case(
            base,
            "contact without addresses",
            "field-size",
            "undersize-field",
            contact={"id": NODE, "addrs": []},
        ),
        _missing(base, "nonce"),
    ]
    return vector_file(
        "fl-enrolment", SPEC, [("a device on 192.0.2.7:4433", [], encode(typical))], invalid
    )


def vector_files() -> dict[str, dict[str, Any]]:
    """Every ``vectors/fl/*.json`` file."""
    builders = (
        _announce,
        _update,
        _setup,
        _keys,
        _neighbours,
        _shares,
        _forward,
        _masked,
        _unlinked,
        _submitted,
        _unmask,
        _reveal,
        _gossip,
        _device_signed,
        _enrolment,
    )
    return {f"fl/{content['rule']}.json": content for content in (b() for b in builders)}
