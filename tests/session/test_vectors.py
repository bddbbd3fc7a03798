"""The handshake transcripts in protocol-spec/vectors replay byte for byte (04 §8)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qdht.crypto.xwing import XWingPrivateKey
from qdht.errors import DecodeError
from qdht.session import PQXX, HandshakeState, KemOps
from qdht.wire import HandshakeFragment, decode

SPEC = Path(__file__).resolve().parents[2] / "protocol-spec"
BISCUIT = 225


class _Replay(KemOps):
    def __init__(self, cts: list[bytes], keys: dict[bytes, XWingPrivateKey]) -> None:
        super().__init__()
        self.cts, self.keys = cts, keys

    def encapsulate(self, public_key: bytes) -> tuple[bytes, bytes]:
        ct = self.cts.pop(0)
        return self.keys[public_key].decapsulate(ct), ct


def _messages(transcript: dict[str, Any]) -> dict[int, bytes]:
    parts: dict[int, dict[int, bytes]] = {}
    for d in transcript["datagrams"]:
        msg = decode(bytes.fromhex(d["hex"]))
        if isinstance(msg, HandshakeFragment):
            parts.setdefault(msg.kind, {})[msg.index] = msg.body
    return {kind: b"".join(p[i] for i in sorted(p)) for kind, p in parts.items()}


def test_pqxx_transcript_replays_with_noise_state_alone() -> None:
    content = json.loads((SPEC / "vectors/session/session-hs.json").read_text())
    transcript = next(t for t in content["transcripts"] if t["pattern"] == PQXX)
    assert transcript["flags"] == ["replay-by-decapsulation"]
    ini = XWingPrivateKey.from_seed(bytes.fromhex(transcript["initiator"]["xwing_seed"]))
    res = XWingPrivateKey.from_seed(bytes.fromhex(transcript["responder"]["xwing_seed"]))
    draws = transcript["rng_draws"]["initiator"]
    assert [d["use"] for d in draws] == ["sid", "ephemeral_seed"]
    e_seed = bytes.fromhex(draws[1]["hex"])
    eph = XWingPrivateKey.from_seed(e_seed)
    keys = {k.public_key_bytes(): k for k in (ini, res, eph)}
    cts = [bytes.fromhex(c) for c in transcript["kem_ciphertexts"]]
    prologue = bytes.fromhex(transcript["prologue"])
    msgs = _messages(transcript)

    class _Eph(_Replay):
        def generate(self) -> XWingPrivateKey:
            return eph

    kem = _Eph(cts, keys)
    i = HandshakeState(PQXX, initiator=True, prologue=prologue, s=ini, kem=kem)
    r = HandshakeState(PQXX, initiator=False, prologue=prologue, s=res, kem=kem)
    assert i.write_message(b"") == msgs[1]
    r.read_message(msgs[1])
    hello_r = i.read_message(msgs[2][BISCUIT:])
    assert r.write_message(hello_r) == msgs[2][BISCUIT:]
    hello_i = r.read_message(msgs[3][BISCUIT:])
    assert i.write_message(hello_i) == msgs[3][BISCUIT:]
    assert r.write_message(b"") == msgs[4]
    i.read_message(msgs[4])
    assert i.handshake_hash.hex() == transcript["handshake_hash"]


@pytest.mark.parametrize("rule", ["session-hs", "session-frag"])
def test_cross_field_vectors_are_rejected_with_their_reason(rule: str) -> None:
    # `i` < `c` is beyond the CDDL; the files carry those cases in `semantic`.
    content = json.loads((SPEC / f"vectors/session/{rule}.json").read_text())
    assert content["semantic"]
    for case in content["semantic"]:
        with pytest.raises(DecodeError) as info:
            decode(bytes.fromhex(case["cbor"]))
        assert info.value.reason == case["reason"], case["comment"]
