"""Test vectors for the session layer (``protocol-spec/04-handshake.md``, ``05-transport.md``).

Message vectors: one file per CDDL rule, valid encodings of message objects
and hand-built invalid ones carrying the ``reason`` a conforming decoder
reports.  ``session-hs.json`` also carries two complete handshake
``transcripts`` (pqXX and pqIK) that fix every random input:

* static and ML-DSA keys come from fixed seeds, puzzle nonces are the first
  counter that solves the puzzle;
* every other random input (ephemeral key seeds, indices, biscuit key, salts)
  is drawn from the stream ``SHAKE256("qdht/vectors/session/<side>")`` and
  listed in ``rng_draws`` in the order drawn, each labelled with its ``use``
  (04-handshake.md §8);
* ``cryptography`` cannot derandomise ML-KEM encapsulation (DESIGN §6), so
  the KEM ciphertexts were recorded once (``_KEM_CIPHERTEXTS`` below) and are
  replayed: the encapsulating side's shared secret is what the recipient
  decapsulates.  A verifier with both sides' seeds reproduces every byte
  (flag ``replay-by-decapsulation``).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any, Final

import cbor2

from qdht.crypto import xwing
from qdht.crypto.aead import ChaChaPoly
from qdht.crypto.hashes import sha3_256
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.identity import Identity, compute_node_id, puzzle_ok
from qdht.session import BISCUIT_SIZE, KemOps, SessionEndpoint, protocol_name
from qdht.wire import (
    MAX_PAYLOAD,
    CloseFrame,
    CookieReply,
    DataPacket,
    FragmentFrame,
    HandshakeFragment,
    Hello,
    KeepaliveFrame,
    MessageFrame,
    encode,
)
from qdht_lint.vectors._common import Case, vector_file

__all__ = ["vector_files"]

SPEC_HS: Final = "04-handshake.md"
SPEC_TR: Final = "05-transport.md"
DIFFICULTY: Final = 4


def _bytes(label: str, size: int) -> bytes:
    return hashlib.shake_256(f"qdht/vectors/session/{label}".encode()).digest(size)


def _canon(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


class _Stream:
    """A SHAKE256 byte stream that records every draw."""

    def __init__(self, label: str) -> None:
        self._data = hashlib.shake_256(f"qdht/vectors/session/{label}".encode()).digest(1 << 16)
        self._pos = 0
        self.draws: list[str] = []

    def __call__(self, n: int) -> bytes:
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        self.draws.append(out.hex())
        return out


def _identity(label: str) -> Identity:
    key = xwing.XWingPrivateKey.from_seed(_bytes(f"{label}/xwing", 32))
    mldsa = MLDSAPrivateKey.from_seed(_bytes(f"{label}/mldsa", 32))
    mldsa_hash = sha3_256(mldsa.public_key_bytes())
    counter = 0
    while not puzzle_ok(
        compute_node_id(key.public_key_bytes(), mldsa_hash, counter.to_bytes(8, "big")),
        DIFFICULTY,
    ):
        counter += 1
    return Identity(key, mldsa, counter.to_bytes(8, "big"), DIFFICULTY)


class _ReplayKem(KemOps):
    """Encapsulation that replays recorded ciphertexts (see the module docstring)."""

    def __init__(self, rng: _Stream, keys: dict[bytes, xwing.XWingPrivateKey], cts: list[bytes]):
        super().__init__(rng)
        self.keys = keys
        self.cts = cts
        self.generated: list[xwing.XWingPrivateKey] = []

    def generate(self) -> xwing.XWingPrivateKey:
        key = super().generate()
        self.keys[key.public_key_bytes()] = key
        return key

    def encapsulate(self, public_key: bytes) -> tuple[bytes, bytes]:
        ct = self.cts.pop(0)
        return self.keys[public_key].decapsulate(ct), ct


class _RecordingKem(KemOps):
    def __init__(self, rng: _Stream, out: list[bytes]) -> None:
        super().__init__(rng)
        self.out = out

    def encapsulate(self, public_key: bytes) -> tuple[bytes, bytes]:
        shared, ct = xwing.encapsulate(public_key)
        self.out.append(ct)
        return shared, ct


def _run(pattern: str, cts: list[bytes] | None) -> tuple[dict[str, Any], list[bytes]]:
    """One handshake plus one message each way; the transcript and the ciphertexts used."""
    ini, res = _identity("initiator"), _identity("responder")
    rng_i, rng_r = _Stream(f"{pattern}/initiator"), _Stream(f"{pattern}/responder")
    recorded: list[bytes] = []
    keys = {ini.xwing.public_key_bytes(): ini.xwing, res.xwing.public_key_bytes(): res.xwing}
    queue = list(cts) if cts is not None else None

    def kem(rng: _Stream) -> KemOps:
        if queue is None:
            return _RecordingKem(rng, recorded)
        return _ReplayKem(rng, keys, queue)

    ei = SessionEndpoint(ini, rng=rng_i, kem=kem(rng_i))
    er = SessionEndpoint(res, rng=rng_r, kem=kem(rng_r))
    a_i, a_r = "initiator", "responder"
    static = res.xwing.public_key_bytes() if pattern == "pqIK" else None
    ei.send_message(res.node_id, b"ping", 0.0, addr=a_r, responder_static=static)
    datagrams: list[dict[str, str]] = []
    for _ in range(8):
        moved = False
        for src, dst, addr in ((ei, er, a_i), (er, ei, a_r)):
            for data, _to in src.datagrams_to_send(0.0):
                moved = True
                datagrams.append({"from": addr, "hex": data.hex()})
                dst.receive_datagram(data, addr, 0.0)
        if not moved:
            break
    established = list(iter(ei.next_event, None))
    transcript = {
        "pattern": pattern,
        "flags": ["replay-by-decapsulation"],
        "protocol_name": protocol_name(pattern).decode(),
        "prologue": ei._prologue.hex(),
        "difficulty": DIFFICULTY,
        "initiator": _side(ini, "initiator"),
        "responder": _side(res, "responder"),
        "rng": "SHAKE256('qdht/vectors/session/<pattern>/<side>') stream",
        "rng_draws": {
            "initiator": _labelled(rng_i.draws, _DRAWS["initiator"]),
            "responder": _labelled(rng_r.draws, _DRAWS[f"{pattern}/responder"]),
        },
        "kem_ciphertexts": [c.hex() for c in (cts if cts is not None else recorded)],
        "datagrams": datagrams,
        **({"biscuit": _biscuit(rng_r.draws, datagrams)} if pattern == "pqXX" else {}),
        "handshake_hash": established[0].handshake_hash.hex()
        if established and hasattr(established[0], "handshake_hash")
        else None,
        "first_message_hex": b"ping".hex(),
    }
    return transcript, recorded


#: What each side's random draws are, in order (04-handshake.md §8).
_DRAWS: Final[dict[str, tuple[tuple[str, int], ...]]] = {
    "initiator": (("sid", 4), ("ephemeral_seed", 32)),
    "pqXX/responder": (("sid", 4), ("biscuit_key", 32)),
    "pqIK/responder": (("sid", 4),),
}


def _labelled(draws: list[str], uses: tuple[tuple[str, int], ...]) -> list[dict[str, str]]:
    # An index of 0 would be redrawn; the fixed streams never draw one.
    assert [len(d) // 2 for d in draws] == [size for _, size in uses], draws
    return [{"use": use, "hex": d} for (use, _), d in zip(uses, draws, strict=True)]


def _biscuit(responder_draws: list[str], datagrams: list[dict[str, str]]) -> dict[str, Any]:
    """The responder-local inputs of the pqXX biscuit (04 §5.3), opened with the drawn key."""
    key = bytes.fromhex(responder_draws[1])
    body = b"".join(
        m["body"]
        for m in (cbor2.loads(bytes.fromhex(d["hex"])) for d in datagrams)
        if m["type"] == "hs" and m["kind"] == 2
    )
    epoch, counter = body[0], int.from_bytes(body[1:9], "big")
    plain = ChaChaPoly(key).decrypt(counter, body[:9], body[9:BISCUIT_SIZE])
    created = struct.unpack(">d", plain[-24:-16])[0]
    return {
        "epoch": epoch,
        "counter": counter,
        "created": created,
        "address_hash": plain[-16:].hex(),
    }


def _side(ident: Identity, label: str) -> dict[str, str]:
    return {
        "xwing_seed": _bytes(f"{label}/xwing", 32).hex(),
        "mldsa_seed": _bytes(f"{label}/mldsa", 32).hex(),
        "mldsa_public_hash": ident.mldsa_public_hash.hex(),
        "nonce": ident.nonce.hex(),
        "node_id": ident.node_id.hex(),
    }


def _recorded(pattern: str) -> list[bytes]:
    blob = base64.b64decode("".join(_KEM_CIPHERTEXTS[pattern].split()))
    size = xwing.CIPHERTEXT_SIZE
    return [blob[i : i + size] for i in range(0, len(blob), size)]


# ---------------------------------------------------------------- message files


def _common_invalid(valid: dict[str, Any]) -> list[Case]:
    good = _canon(valid)
    no_type = {k: v for k, v in valid.items() if k != "type"}
    cases: list[Case] = [
        ("type is an integer", ["wrong-type"], _canon(dict(valid, type=1)), "field-type"),
        ("type field missing", ["missing-field"], _canon(no_type), "missing-type"),
        ("extra field", ["unknown-field"], _canon(dict(valid, extra=0)), "unknown-field"),
        (
            "map length in a 1-byte argument",
            ["non-deterministic"],
            bytes([0xB8, len(valid)]) + good[1:],
            "non-deterministic",
        ),
        ("trailing byte", ["trailing-bytes"], good + b"\x00", "trailing-bytes"),
        ("map wrapped in an array", ["not-a-map"], _canon([valid]), "not-a-map"),
        ("truncated", ["truncated"], good[:-1], "malformed"),
    ]
    for key in valid:
        if key != "type":
            missing = {k: v for k, v in valid.items() if k != key}
            cases.append((f"{key} missing", ["missing-field"], _canon(missing), "missing-field"))
            break
    return cases


def _file(
    rule: str, spec: str, valid: list[tuple[str, bytes]], invalid: list[Case]
) -> dict[str, Any]:
    return vector_file(rule, spec, [(comment, [], data) for comment, data in valid], invalid)


def _cross_field(cases: list[tuple[str, bytes, str]]) -> list[dict[str, Any]]:
    """Encodings the CDDL admits but a rule between fields rejects (``i`` < ``c``).

    They cannot sit in ``tests`` (the CDDL, and so ``qdht-lint``, accepts them):
    a decoder MUST reject each with ``reason``.
    """
    return [
        {"tcId": n, "comment": c, "cbor": data.hex(), "result": "invalid", "reason": reason}
        for n, (c, data, reason) in enumerate(cases, start=1)
    ]


def vector_files() -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    xx, _ = _run("pqXX", _recorded("pqXX"))
    ik, _ = _run("pqIK", _recorded("pqIK"))
    hs_valid: list[tuple[str, bytes]] = []
    data_valid: list[tuple[str, bytes]] = []
    cookie = CookieReply(7, _bytes("salt", 16), _bytes("box", 32))
    for name, transcript in (("pqXX", xx), ("pqIK", ik)):
        for number, d in enumerate(transcript["datagrams"]):
            raw = bytes.fromhex(d["hex"])
            kind = "hs" if cbor2.loads(raw)["type"] == "hs" else "data"
            target = hs_valid if kind == "hs" else data_valid
            target.append((f"{name} transcript datagram {number} from the {d['from']}", raw))
    frag = HandshakeFragment(1, 1, 0, 0, 2, _bytes("body", 64), _bytes("mac1", 16))
    hs_map = frag.to_cbor()
    hs_invalid = [
        *_common_invalid(hs_map),
        ("kind 7", ["field-value"], _canon(dict(hs_map, kind=7)), "field-value"),
        ("sid 0", ["field-value"], _canon(dict(hs_map, sid=0)), "field-value"),
        (
            "mac1 of 15 bytes",
            ["undersize-field"],
            _canon(dict(hs_map, mac1=bytes(15))),
            "field-size",
        ),
        (
            "mac2 of 17 bytes",
            ["oversize-field"],
            _canon(dict(hs_map, mac2=bytes(17))),
            "field-size",
        ),
    ]
    files["session/session-hs.json"] = _file("session-hs", SPEC_HS, hs_valid, hs_invalid)
    files["session/session-hs.json"]["semantic"] = _cross_field(
        [("i equal to c", _canon(dict(hs_map, i=2, c=2)), "field-value")]
    )
    files["session/session-hs.json"]["transcripts"] = [xx, ik]
    files["session/session-cookie.json"] = _file(
        "session-cookie",
        SPEC_HS,
        [("typical", encode(cookie))],
        [
            *_common_invalid(cookie.to_cbor()),
            (
                "box of 31 bytes",
                ["undersize-field"],
                _canon(dict(cookie.to_cbor(), box=bytes(31))),
                "field-size",
            ),
        ],
    )
    dp = DataPacket(1, 0, bytes(16)).to_cbor()
    files["session/session-data.json"] = _file(
        "session-data",
        SPEC_TR,
        [*data_valid, ("empty frame ciphertext", _canon(dp))],
        [
            *_common_invalid(dp),
            (
                "ct shorter than the tag",
                ["undersize-field"],
                _canon(dict(dp, ct=bytes(15))),
                "field-size",
            ),
            (
                "n = 2^64-1 (reserved)",
                ["field-value"],
                _canon(dict(dp, n=2**64 - 1)),
                "field-value",
            ),
            ("rid 0", ["field-value"], _canon(dict(dp, rid=0)), "field-value"),
        ],
    )
    hello = Hello(1, _bytes("mldsa-hash", 32), _bytes("nonce", 8))
    hm = hello.to_cbor()
    files["session/session-hello.json"] = _file(
        "session-hello",
        SPEC_HS,
        [
            ("typical", encode(hello)),
            ("with early data", encode(Hello(1, hm["mldsa"], hm["nonce"], b"q"))),
        ],
        [
            *_common_invalid(hm),
            (
                "nonce of 9 bytes",
                ["oversize-field"],
                _canon(dict(hm, nonce=bytes(9))),
                "field-size",
            ),
            ("version 0", ["field-value"], _canon(dict(hm, v=0)), "field-value"),
            (
                "early of 4097 bytes",
                ["oversize-field"],
                _canon(dict(hm, early=bytes(4097))),
                "field-size",
            ),
        ],
    )
    msg = MessageFrame(b"hello")
    files["session/session-msg.json"] = _file(
        "session-msg",
        SPEC_TR,
        [("typical", encode(msg)), ("empty", encode(MessageFrame(b"")))],
        [
            *_common_invalid(msg.to_cbor()),
            (
                # The frame then exceeds the decoder's max_bytes (73728) too,
                # which is what a qdht decoder reports first.
                f"p of {MAX_PAYLOAD + 1} bytes",
                ["oversize-field"],
                _canon({"type": "msg", "p": bytes(MAX_PAYLOAD + 1)}),
                "too-large",
            ),
        ],
    )
    fr = FragmentFrame(3, 1, 2, b"tail")
    fm = fr.to_cbor()
    files["session/session-frag.json"] = _file(
        "session-frag",
        SPEC_TR,
        [("typical", encode(fr))],
        [
            *_common_invalid(fm),
            ("count 1", ["field-value"], _canon(dict(fm, c=1)), "field-value"),
            ("empty fragment", ["undersize-field"], _canon(dict(fm, p=b"")), "field-size"),
        ],
    )
    files["session/session-frag.json"]["semantic"] = _cross_field(
        [("i equal to c", _canon(dict(fm, i=2, c=2)), "field-value")]
    )
    for rule, cls in (("session-keepalive", KeepaliveFrame), ("session-close", CloseFrame)):
        obj = cls().to_cbor()
        files[f"session/{rule}.json"] = _file(
            rule,
            SPEC_TR,
            [("typical", encode(cls()))],
            [
                ("extra field", ["unknown-field"], _canon(dict(obj, extra=0)), "unknown-field"),
                ("trailing byte", ["trailing-bytes"], encode(cls()) + b"\x00", "trailing-bytes"),
            ],
        )
    return files


def record() -> None:
    """Print fresh ``_KEM_CIPHERTEXTS`` (run once; the vectors then replay them)."""
    for pattern in ("pqXX", "pqIK"):
        _, recorded = _run(pattern, None)
        text = base64.b64encode(b"".join(recorded)).decode()
        print(f'    "{pattern}": """')
        for i in range(0, len(text), 76):
            print(f"        {text[i : i + 76]}")
        print('    """,')


#: X-Wing ciphertexts recorded by :func:`record`, in the order the handshake encapsulates.
_KEM_CIPHERTEXTS: Final[dict[str, str]] = {
    "pqXX": """
        q3FxjuFalCwkcO5DAuSgVoArvqwZmv1MMfuiKYk1U32E6Use6OcoBiE+QtWpBu4bj8OnjdsFBu+6
        AXo9EdxIGI9isRfPO8p8Qrfw5yji4VaBOM7hZMfpJQ29+SCK3KlaeZ093U/xeNPWvHofTZ4rdJ2v
        kXgGWkpxcnO7lLEJTON7MJokta1Uf22vw0HLViL0rZaMfuNt+RP/s5j6hHJ0YadOb/gpZovDHvUN
        lwWg7/uPaVEgbQ2+vfJb3qpqoEnhfZkPMrmGasdESmG87khoIOs7/+FK7ZW3NuugTufWJ1XTYn7z
        f/gYKfRRzsw9TceWT7Tn9k5cNOO6+eYJUIrjGiYSddsCYe2PeX1X/5vFai+7p4C7oTc0iKORLP9m
        mPaPBz5AjYClVU1rn/L+NWfm2ygrNBzH2mz/VU6qPxQInID3gzcNY40KNNPyZHfkOePgkhKXfq9e
        yR4H545PKB5BOER0Vn+ZM1tyZPiuOeJxlRNRKViYZq4tjuaGCeV4aab8d8u6VOM+UbOqZz/SfySi
        mdFd3Mju/DmdslczU+Tr9dXOyi311Hb0yAtAjghzAo1JYOH5/AI5W3fb3I3WcQ2qyaeQjVT18uWP
        0aneiwNkUFXByTFjxdrz5qX4409Yi0hGkPAYjz3CjfCglYZLXBqBZfFNCfMm+3YetnUctdkuXjQm
        gfvpr/rO5e0rjb/TUc9Mj3qnxaBuJt4k63okEm6dXa+wkMwmcP0InhExeTdkyRR/qGzvMBZ1WYST
        wOt7m7TkC0jNpkvA975HMZW1Oog97HdviCW/dXRtkeN36Cbw3SZ/j5yiX1+Gg43U16XfWUBkV1Zl
        l5yTR6boDI1WtOK7gnmE+C9ECHTHjs7n14HuF1DaCKTyzm62efxmL35iifmL/U3Ja5maaJcFDlGO
        hDVM7djCASQF+oePyKoNsoNCT5LYVhoWISPrJi0K35O8tKYleGOCXq6XWaU5nn5cHjU9UlYmlt1C
        IAh3+j1bW///3NfzG5HbO5sL7DdmZX/sPGNNThhmXCVF0kLgAphriWkeVjRzpyKM1FPvmyqSUGQv
        mqvpA0TJRI7fs9nhO6WDAMoOgkbo7Osr6vfwneVDg0SA8n6+3NOi7vMtsRaOPsOkdODUgIQ10iLw
        vazwz7lxP0q+/RFCO+DtElQwc1IT1wYBmPfVb1hIRkVTw9qx4KZso1dXOg8uCXTbTuHzD2MP8TXo
        DJXWvSP1IS4R+JFatuLskalQGs7pOJztnJEJTAwuDacS9Nd/cJ86Jz43qx1sakNcXa/tvhdpTPHO
        tP4tb+JF9eIXhHH0ZQEGOwJedzXR0ZHnaSiO493crCvoq2IJP0fD2d2+yKeaKWcXIfQPDHh7yKJI
        khJjvUwatXcCn5J2Aee31khSoAPoIMw2kln9BVB8NMHnguPCNpcZ4EicCisHRp2Pz8ER4o5cdY3a
        HBPEkaalEqOMQ7fZVmgFyPQgL7RYX6+8kb+muwSAmenAqcvtfas3vtXo8zx/u92rer91NCPFlBHD
        18tIVFL08ae5GMJZENTTJxQGIbMPibciRRNn7z1s3AoXGDwzryuDK7my0v7p6Ra4XXZCZrD2qaJr
        Xbr8rnMJksapTizGjN6C8vxscVXaJ2SKv3qXE4VcTRA07ksB5kayqLB3XZryEfSZuNJXmQSNSXY4
        GD5hh2l6c/RF6vP96TkwAYSH5qRwBiD7+9aRQkZtEOODWtRvsoCYFjb/sp+vKVMB0Od0HZrbmHgh
        wb7lMxMbsI5Sv9G9MGusE1dsJUrfI4kdQmK457g3q+LImsZijfC1L0BlcJc7BjLP1ktb1y6x1/IV
        9wcJvOzfJxXdFMbxEg6wUlqMOFaT62dvuE/iU3+djavOYQD4MUJrMK+yrjE6ugXLZFg2J8Z1cc62
        nC2e/CLcaLW6vIiKAJ2VtQC+C3MAcxb9gjJLT+QQcrJDeFrVA6IrJjzCxzRh+5IV7hzHh9b9yIqO
        ldurHJipgo3F/Mp001c3sDEzOI8QjFWW3WnCB0/AVLXKoab2W8uZxTLkjbbt4qkvCwa5tLmonME2
        IqKBca/5ujdmiv3ayuBiFqowBPVJtITpNJb1VLF33aqxePuVMqWROoOyhrBgfVALbwgAo53iOlip
        MKhlPU4vuJwZ2m1heHUlo1T2OL2k+SyJfKqJSOjn7+RBa+R4CzVS37FzsR7o2VHzcairituTM3QF
        qler+gbcjICzusX/kjg5x1/nkEr7ZbKm2K0VqUfAfQVrLMB5wA1fbTP3wqZSyYTN59OKZ8DuKPSO
        e2Ccov//Bgg2lz/vf2eqqfDrWsgTdfcDqGtaGNQzLfApkGInvKeSCqhwaLRf63dZcwmXF6vZTj0h
        y/WhJGIJN4Tiqo4v35elL0tNpQURNyL/wD60tejxhMpgRBvyMnRAURZxgLU6wFjmW+3NS+OESRna
        oG4e5hZ7mbSAaLOT4n/JfsGHsu7uuQT+2qmjkVbqzStnooMtLcZE/ER9MC4Z24ufkhj5gDzdh8wg
        j/4xf4f4IyUseb2+p0XSCQJdW1ZIXlF+qtzkf79bj3SoRhdErdYhVU3SmhbQ4kWMTwP4gfvi0QBh
        hDczOx39vfbDCFwMSrLK8tPfOllp2BoB5IslNLeS8ea2p4ZMPft3iPHa8VXabjcX8i9/XgK8fiyw
        UgiqmGHHakvM3hOre1rR+Q78XVWkrPvnX31L9JiR42Wj/W2Fxju1Iwb4Wb4zontbl4RcD/m0trNU
        fcEZ3jt1oqpDR4ugyeCAmgNOUlMiIx987D6CHpo2yj3MQXS2/YoEKJ38v5sZf9aR+WBKwiYYT/rg
        WBqRV34brE/WnhMhz5PNHxq8sJxF2SVxgv9TFlFWgUZ7AqEfM7O1MvkRqYL+PHatuc1aufmklEBK
        vRT2S4J2EQrc9RXPujcOvjxsTcfVVeMr53zTii/eurPwuoY2fWhMk4ZyoDKQ/0a4bYy4aHQ8DZYc
        pqZMQlm+G0F4sSKKpHmdOm36/3LlHKlMLAJwcoSLicDQnBcoufl80SUr7R+EHoOcwI6Ix0WwJntT
        9YQsqcZZu44vcw1pMu28/SRwLBSiPSoEGPCZcP5TP4PDIS6UC2CKznBtU6owiv+NZc50qcYji3wL
        qxOl1FxvRPr4RreO8SpS97UFIHqfGU76nywmvjsqcxUONXeRqcrHpOsOiMhKBeCrGE4aH9hsuBtP
        CQZUU9laONhAIy6EhXve00o2nTXQIMXf6vUrUjIuJRYDdi7sY25JpFrg5HaPceFVONpBMm+CQTot
        82rcZSD95RmWq6SqCZ+pagrJjRuLFGjfgDWglxUqSJBIjS8D2qOnjjfOg8tVwo3aoz5hWrBbaaj6
        +pVMsZRAd/jmMrZ+BHd+ejv9rR6gESpf/QE7++39hcYXj1FZdy7cjbu133AOWBxAl9xRzzvglvy+
        U0AWaWVxNZVOUVNwzlEgUjZCHKzP7iBChT+uBlBgY7Je7eMpUq79rGyA8BHEGxDjCw2PhnTvSyQA
        EFeDy7kd0PPU+Wc7nyepZqseSUJtn/YDh3zJrBeuu24Jgnwmt1JHEzJjKw6Wu2g7TNBc2RM7Dw4s
        te2oKpi7r1QLncrzKp+M6dPIXfMP7D2oAlDJ1hD5BF6btt2OZ/SILoG7u1YFmDF3B3XpRZGEzK8p
        rNA47GIVWVn/36AwDzUReWcLZW2M1O5/k/j+QdWo18zq/p3geno5EkhRFGUDcbb4AxbbC5trkOmQ
        PGlDYb113ZYg5DZtekjgc0ucMgb5u39wydoYwP8E3ibDd7gDlM3kKO8Q+xLB+vu5fbbm0LUUikbG
        KLaEB5ZEtjOPbaJuDCBT5wiJ5LgvXxpTLyLGVTjrpZnXDmfBLG5JKeM7ONYCatzE19LqZpmL3bZG
        7/2dzXzzox7Od6fOpQ9DSQx/w3X4GUZamnrInmcXBexgvcwgHbhR8gDyqWkGBaCusGXGWEk7bMs0
        +XYqom0+O3DApmOQ5lYIY5AWszSFoQt59tw1CYL+aSjuOzYJoCOEbDHcy/nyrz+CSh3OAqDg9niI
        Tnnoz7m/9XpcaPzA4dLTeG+IWt88vhYWE203pdKeY9ipa9ctaD2mmjOhj/laJMmTInqYGwat/sil
        YIMiz4mKM4HZF/yUmPnAolAyN2cHnzznXpzJv0jLZSkPiBxNwhSYunRI6Pm3uCjwb+nTqMG59eJ+
        16oJevxTqr+RAZFOSBfgzS/4ECAqDlzL1+aK4LjqEZ3+EwXRio2X3LK8bPpXctfEkAbeBadOSAxy
        50RjKDE7EVepaHAtd0SXEpo7iXLZrX/0aVpNiHbtbriJgctioq2gJfMYXc9pyd3iViJFlclj2jxd
        Ws3nNT4Hq/q4a4GYP2pexo+4qhjalcWZCiklXGn4CfnTRkXPRofY4mHI4QWo3QS0b8ERXHfZccmL
        OIyN/eN7JTjNS98wnrlBsrZj7t5V9SFrkjGM3MaF6ZT/TlJRIxW5lAttCFFKfXPfEIZAdpc+
    """,
    "pqIK": """
        AzJc6+AqpJjfpjkqjFF5kGMXE9UAsZY1oi3w7x2Ih+bQC14swFo3ekf+2Zef9D6jibEUyuQCjtKX
        laj22fEwjuOdCCEkZFCJVlfRbDSE5HIEbWS1Bf+gzXTYCw/CST8bmwGo+DaH88t23Pl+93WfJlQU
        D5tqc2oQW1A6ooC54slERgv8ZJEVLPQw89sMdXELgpIEJ4F8lxhn7d28ckNVgGiFVnZWFIDa6Sk8
        6C9w9mQ4mazRJch0P20K3HmPhqra6yiLw5AYhYSxb59Zqe4vKrxUnhfCHXBbt6cWvrAkMBLBy6CQ
        O50l+7gL6X1UT1tygBOZ0D4fgqFQ++HG9KHx0JO+V8C98zXETqDb8EtabDh7oR1jKAggAYV9mrOx
        t4ABrO90VobCJqV0afQRzKMpoK6k916UsX6ESf/K/xry5jaIrVBuzhEk+a/MThqgmRb/HcgdcsO9
        QG/rD85znj/kAX8NEULMUOYMgBXzEO9TNMMTiUo3VqUOatSA15Y6xJOPdPRx2aQFwAo4h+n5eafn
        oKfU3yrhxaHuk+mufjOCIkurAfp4o+gQcsbz74/vrHrIjcHPiU5R1dtLgm+qGEqTYNoyVYZ0u4yb
        k71l4wGB7MbQceedTGHle52imjI8JdIZfUhL046WTQ3/1TLLMzZ3/+42WTFhpn8aYyPC5Mr/RIli
        DKx6jY6e8WKu+3YyWehYTea7JZbZFLf6l8dVW2BmHHvlD6vMSDmeatYn/YbuHBnWa5NYeOyShOO4
        HrJ+5FTTXQOkHty5Bo6/aKF7mJkiRAzTK7K5n7XeH9tWclcrIfJbcCa1NHde6+uz5CxU7oOhhnfi
        oZoxu+5864VrG096bueFyR6vw/gxKJ8/ANi97a58XnFVJZnbVPzkLsFZVhUdD3GMZ9O+RzVeHDEy
        g1lFyjg9oybfLLAViHDbsnDQcPK6u8Li3mO8/9F32a85WgNBNCXJChgX4Du2Gr5QD0hfXUUK9KE5
        cKsqgDDiXANfMo1wAzXSPWmB9GCV/f/JRUFDcw1s9qfoHLhtw/eWKXUT9Z3Fr0unXelom/lRlK50
        0xYph9N1k1f4HmVT4h2chJIC3diyVb07KUFUHVH5A2SvjvcJi3XhOexskkDzlzL55V2/oIb6wnCR
        Tx/a98UizbYcjhcJuv8GhVMA0Axy+FX0idvDAAuFFl2FMaiY6NHUm8KmddC0/tVVXZA35Upb3/pW
        60xmYMp2JL8YEEjXy5skZAeQy7c853+6lVtezuC1pyDh5TUz/rvoyAM9Yhn994Ngp/FHVJW9Br2R
        5XGdgfqf1/AW1WjRc1+ZGflfG2WPzFBI3doHbO5yxgmI3HujwzrVWptVzyHKFSjmLTT9RbOjI9eD
        iH3Sns4u53hBvxxa4Sy5Ac47LCepFPw9F3qulKt26hBtpuPAQ/jQDusFfByKxq/civi5A/LXmRnD
        DWAySyJMRTE+jWiLQdbJ8LdpWJTSEdbhceN+NEZZWbzubLQqB8ebibrv4aMjauUllPPNqXMBwjFs
        N6y0Fcc8wrf0396fQ2CYX/llhD7WhL9qSwjKgXbI5AY06w+bG2l4k8A6jHcjqi1WEiBo3WJT+gwu
        OzfbhpssC3/YZclmKnUSNWX5vGZEGQMYl7eaI6UI6XBA8pGbIgdM+9nP0CA5Mn9pYWoBq/Dpyuv7
        gHa2Mi4o58gZ55zmb53S2N+4pCVgW3j5WiY5JSDQghd6VCSHM7l5t/MxKXvK9QQJQpye53z2HFqB
        nQ5iSS0h8ZEMQh46ejAqQ7oBsD080a0pRXArvn9VZUqFa4roSy4wMf/pabFcrZ+a0e3ZPNgW0tAI
        6slE+ZrKNDQrn2c1Gf7+hTgITrYcBN8cqgR//jxdPwogKu6v9OWnKARUSqFXLH+FXnqBEP0dshEl
        gIS6YOFu15js+iLJkF9avSbjMlVsftJgZqSKWywiD9fIKRituyOiAdyYwQeugd833/RIL+8ahCve
        A1laTkm/jUCS+D5/7eeHsPx5CkovfGk5ESxgOk5eG0iZOJ+StEki6JlRqQzEFgbj/GQ2QY22Ka1a
        Rv9Al79WvluwrC7CwJ2Oc+EDj5Tf+p5ZiB5M6CA8DwXDuy8H8FnSn+34abmJaqZ4ozmwgAybE0Zo
        3oAky7TDj1hEcNtBrUaGRQ9Zmv9qP/3etMgED/wkF5J8zZ/1sheIAx0hUsD+re3xMMsmySSeIamP
        6dyRl35RNCeYuam+G3DaQ63fAMqGKmWG+XbJGGlpKpV4n5mMPcLiHyrY1fNI4IpAiyHvJU8cOAix
        0CFG2bonAklhaHbsynv4z/i4UPS7Xdjq1OJyGNK/e6A/5mw62yTNZ1D69Tllzc8IGCqtpgEST4km
        oqeMEYv7arNv50FQhAQZ706iFTOYdKfZTF+Ncx13mxcVxfE7xSRA+FavG/rjuM/9W/1gnICJAThn
        ppUOa6JmUSrvGA+RF2w0DBOZnpeHxYxYaPpOspOq0G7kNY2b6D2gp/JX6R8LmMW4mQGmQaaEps0E
        FrSwulC7DKrhxwsHK7emd7gq8TsY13s7L5lJwnEar6lP3qMU6/2SihYZi1tPOMnU0zDWudP64tXj
        3uY7S9oUGlX4apmZ6uQ8ECkPlo2cgGnCppgr5eZ+Nj58org72Sv1hWQWIlxKldf5Fv8IAvJSid0+
        YY0yTFS9w5LPLzGZOJEHzV0TN1SAjrD1Rc+hVMLvFtw0jpbRXQECqRcqJ0VsNjRTCIQo7gxz92UC
        iM57rWf1ANH825S8ZGY93071mbAp0T/9VPtqCVV9UGcI2AqQTZPNVU7zuvte1AUxVMCg5+WDGFUU
        MYaYgngjfDlXV7lfIn4Z2tnt4PbMPpytkyiPLJ0x1RjKsRDkmxyMt3dWoxSK8UJvLzhOkzoxcrWP
        TWw1heMwVaU5e2M5eNEaplad79bgjNW9/L2t7199iKOaYwaULPw+2XrjwUnTHRGFNWIxDtDfIRqS
        vu2U9MSu7YNL0NwYB8OGRBAcnZShfiPVqkCsBTDIpgi2DP1UExSPIm3j4XfQ5gvAS3rFLrEIfyEu
        zg78JRAy5DCJOCMgvA4d7Gw1sg8RNlrPOYABY7vyv9bkvdMHKEUnNp/HSd1xauc8zzSwLNQoyzbb
        dbRacJUqYVo8VYoynhtLcqQPmJkNsoxPDWflMg32kkf6NiwFinXCL/EoFOlaRcI4SAetq7EAZKU6
        itfCvUPPuB1UlpLOJPS3u6i5tohkga8MoiDeFDXHihYjieVIpWveIdrSORsWLUgTsIkBT9isGRY2
        RxxUoRjMU06L387tmrBoF2dZDiKkd1jm40Hn9XpA3tgWbH1Fpwryi4bHLGEQkLXtkrymffHPAuPq
        MSq9/56ShJcfNWYKU4kuA5NO7KSH3PFgCd7U03uksuuTKBCRaTwyBaTv1/oF3G2ZTYHBOiG7Wqrt
        uJ+riCK/4ImgyxiXChUeN422gFOFESBdP9N/81xBPthgvcjNFuwHe6YtbQRFmEpdmsO9D2rP78zf
        BvNLqG+tlhT3Z7CCvm2kMnX2ao+GDdaCAA4z1sn2ig2uxb03Y9j2AedlhvvJAYD1BLgaR5YaVIeZ
        /y975ylJwPr5G9Xk8VQfylKU0TEgwp+e8X3rcQ/YlwLCM3wzJtC9CGbXeAFh3tt5JOj8GM1H1wVB
        u6lHBVQAppZz7dLDRYFTq35XRUkiZzcn4qTtPg+COQBaTngYospn1K/dpfRfojvljqq4RR9GbLMk
        fDDCKXzudc6U1MF9mBXOTiffDQvmtzIqy9RwrCLoYpuy4PyaGJo9yx11KDYTQxyUuEf3zKBQh8lB
        4EG9LXzBHuRwrf7LcsyY/XUXREAk17KRtuVRY7sWcEKLhD6p/C0Qj2RU4dGACFaCXgnR/HwNdxzL
        2cjEXdJWlGBv43pBns29Meono2n1IXMf/R5WM95QsSeXH17RZVuekfNUiA/HHTp29/AHh41CjCzL
        1jENp7k3ODLCIu+/PhDRnRpTytnv2Z90dZVoM+Ioz6CNpKcB4Y2JMXzXdpeIwvKeLaONRLOvKr6x
        pXbh+Z81QAaw7J3GJd2NEN1IOenfJvtIfS/flxzmTi4v+hye/VfBq+wyISR38gfFv7EpfpqM2Iec
        J4bYurNWkTFha8ndQC0JY1o2ipI4r71UUl7hzb/H7/nN2Wc2byjmfVbfVFl1R+m7YYhZLYSPXWQT
        cY5XNLpbVwNT0pwVBtKUpUDb5yymiwTBkWlOdNR58HqdUYtwlLmA/zLN+t98Jlf03Jaqzc4chrDt
        iYxqKtYjVxQemNyRduMK2S17z5UJaa/X328ieZc2C+AHOir+w7IEjw1JumuD+aEr8os6NUbTJccX
        eBYb+ZmN3IUWqFuZV7A2uOgW3ka1wx4qHzjPX1Ju/dWSRQ7BlMn2oUAlXvfF3FgFRY165noBeAiT
        Tp4czgGW1Lci17AMxPTnsh9Xqys7OqACdSjLilYhYtcj6KOP9wpgxji9KKhaJ1/ZBw4GrcJa
    """,
}

if __name__ == "__main__":
    record()
