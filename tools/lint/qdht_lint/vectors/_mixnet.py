"""Test vectors for the mixnet (``protocol-spec/10-mixnet.md``).

Message files for ``mix-packet``, ``mix-delivery``, ``mix-descriptor`` and
``mix-directory``.  ``mix-packet.json`` also carries the packet processing
vectors of §12:

* ``forward``: a 3-hop packet from fixed seeds, with every hop's shared
  secret, derived keys, replay tag and output (the forwarded packet, or the
  delivered payload at the last hop);
* ``surb_reply``: a reply block, the replier's packet, every hop's output and
  the payload its creator opens;
* ``rejected``: a tampered header, a tampered payload, a replay and wrong sizes,
  each with the hop that drops it and the reason.

Every seed is ``SHAKE256("qdht/vectors/mix/<label>")``.  ``cryptography``
cannot derandomise ML-KEM encapsulation (DESIGN §6), so the KEM ciphertexts
were recorded once (``_KEM_CIPHERTEXTS``) and are replayed: each hop's
shared secret is what its mix key decapsulates (flag
``replay-by-decapsulation``).  ML-DSA signatures are pinned in the files'
``signatures`` lists, as in the identity vectors.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any, Final

import cbor2

from qdht.crypto import xwing
from qdht.mixnet import (
    FRAGMENT_HEADER_SIZE,
    KIND_MESSAGE,
    KIND_REPLY_FRAGMENT,
    KIND_REQUEST,
    KIND_REQUEST_FRAGMENT,
    Deliver,
    Forward,
    Geometry,
    PathHop,
    Surb,
    create_packet,
    create_surb,
    derive_hop_keys,
    encode_payload,
    fragment_chunk_size,
    open_surb_reply,
    replay_tag,
    split_message,
    surb_reply_packet,
    unwrap,
)
from qdht.wire import (
    DESCRIPTOR_CONTEXT,
    DIRECTORY_CONTEXT,
    Address,
    Contact,
    MixDelivery,
    MixDescriptor,
    MixDirectory,
    MixEntry,
    MixPacket,
    encode,
)
from qdht_lint._cddl import default_spec_dir
from qdht_lint.vectors._common import Valid, vector_file
from qdht_lint.vectors._dht import _common_invalid
from qdht_lint.vectors._identity import DAY, NOW, _cert, _Node, _nodes, _Signer

__all__ = ["vector_files"]

SPEC: Final = "10-mixnet.md"
EPOCH: Final = NOW // 1200
_FLAG: Final = "replay-by-decapsulation"


def _bytes(label: str, size: int = 32) -> bytes:
    return hashlib.shake_256(f"qdht/vectors/mix/{label}".encode()).digest(size)


def _canon(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


class _Mix:
    def __init__(self, index: int) -> None:
        self.seed = _bytes(f"mix-{index}/xwing-seed")
        self.key = xwing.XWingPrivateKey.from_seed(self.seed)
        self.node_id = _bytes(f"mix-{index}/node-id")

    def describe(self) -> dict[str, str]:
        return {
            "node_id": self.node_id.hex(),
            "xwing_seed": self.seed.hex(),
            "public_key_sha256": hashlib.sha256(self.key.public_key_bytes()).hexdigest(),
        }


class _Replayed:
    """An encapsulation that replays recorded ciphertexts (or records fresh ones)."""

    def __init__(self, mixes: list[_Mix], recorded: list[bytes] | None) -> None:
        self._by_public = {m.key.public_key_bytes(): m for m in mixes}
        self._recorded: Iterator[bytes] | None = iter(recorded) if recorded else None
        self.used: list[bytes] = []

    def __call__(self, public_key: bytes) -> tuple[bytes, bytes]:
        if self._recorded is None:
            _, ct = xwing.encapsulate(public_key)
        else:
            ct = next(self._recorded)
        self.used.append(ct)
        return self._by_public[public_key].key.decapsulate(ct), ct


def _hops(geometry: Geometry, mixes: list[_Mix], packet: bytes) -> list[dict[str, Any]]:
    """Every hop's secrets and output, walking ``packet`` along ``mixes``."""
    out: list[dict[str, Any]] = []
    header = geometry.header_size
    for index, mix in enumerate(mixes):
        ct = packet[2 : 2 + xwing.CIPHERTEXT_SIZE]
        shared = mix.key.decapsulate(ct)
        keys = derive_hop_keys(geometry, shared)
        step: dict[str, Any] = {
            "hop": index,
            "node_id": mix.node_id.hex(),
            "replay_tag": replay_tag(geometry, packet).hex(),
            "shared_secret": shared.hex(),
            "keys": {
                "mac": keys.mac.hex(),
                "header_key": keys.header_key.hex(),
                "header_iv": keys.header_iv.hex(),
                "payload_key": keys.payload_key.hex(),
                "payload_iv": keys.payload_iv.hex(),
            },
        }
        result = unwrap(geometry, mix.key, packet)
        if isinstance(result, Forward):
            step["output"] = {
                "result": "forward",
                "next_hop": result.next_hop.hex(),
                "delay_ms": result.delay_ms,
                "header": result.packet[:header].hex(),
                "payload_sha256": hashlib.sha256(result.packet[header:]).hexdigest(),
                "packet": result.packet.hex(),
            }
            packet = result.packet
        elif isinstance(result, Deliver):
            step["output"] = {
                "result": "deliver",
                "recipient": result.recipient.hex(),
                "delay_ms": result.delay_ms,
                "surb_id": None if result.surb_id is None else result.surb_id.hex(),
                "payload": result.payload.hex(),
            }
        else:
            raise AssertionError(f"vector packet dropped at hop {index}: {result}")
        out.append(step)
    return out


def _path(mixes: list[_Mix], delays: tuple[int, ...]) -> list[PathHop]:
    return [
        PathHop(m.node_id, m.key.public_key_bytes(), d) for m, d in zip(mixes, delays, strict=True)
    ]


def _kem(label: str) -> list[bytes] | None:
    text = _KEM_CIPHERTEXTS.get(label)
    if not text:
        return None
    blob = base64.b64decode("".join(text.split()))
    size = xwing.CIPHERTEXT_SIZE
    return [blob[i : i + size] for i in range(0, len(blob), size)]


def _processing() -> tuple[dict[str, Any], list[Valid], MixDelivery, list[bytes]]:
    """The packet processing vectors (§12), the valid PACKET tests and a delivery."""
    geometry = Geometry()
    mixes = [_Mix(i) for i in range(3)]
    delays = (17, 42, 5)
    exit_mix = mixes[2]
    path = [
        PathHop(m.node_id, m.key.public_key_bytes(), d) for m, d in zip(mixes, delays, strict=False)
    ]
    creator = _bytes("client/node-id")
    back = [
        PathHop(m.node_id, m.key.public_key_bytes(), d)
        for m, d in zip(mixes[::-1], delays, strict=False)
    ]
    surb_kem = _Replayed(mixes, _kem("surb"))
    seeds = iter([_bytes("surb/id", 16), _bytes("surb/key-seed")])
    surb, surb_keys = create_surb(
        geometry, back, creator, encapsulate=surb_kem, rng=lambda n: next(seeds)
    )
    request = encode_payload(geometry, KIND_REQUEST, b"qdht mix vector: a request", surb)
    forward_kem = _Replayed(mixes, _kem("forward"))
    packet = create_packet(geometry, path, exit_mix.node_id, request, encapsulate=forward_kem)
    reply = encode_payload(geometry, KIND_MESSAGE, b"qdht mix vector: the reply")
    first_hop, reply_packet = surb_reply_packet(geometry, surb, reply)
    forward_hops = _hops(geometry, mixes, packet)
    surb_hops = _hops(geometry, mixes[::-1], reply_packet)
    delivered = bytes.fromhex(surb_hops[-1]["output"]["payload"])
    assert open_surb_reply(geometry, surb_keys, delivered) == reply
    header = geometry.header_size
    vectors: dict[str, Any] = {
        "geometry": {
            "hops": geometry.hops,
            "user_payload_size": geometry.user_payload_size,
            "header_size": header,
            "surb_size": geometry.surb_size,
            "payload_size": geometry.payload_size,
            "packet_size": geometry.packet_size,
            "digest": geometry.digest.hex(),
        },
        "mixes": [m.describe() for m in mixes],
        "forward": {
            "comment": "a 3-hop request carrying a reply block, delivered at mix 2 (the exit)",
            "flags": [_FLAG],
            "recipient": exit_mix.node_id.hex(),
            "delays_ms": list(delays),
            "ciphertexts": [ct.hex() for ct in forward_kem.used],
            "payload": request.hex(),
            "packet": packet.hex(),
            "hops": forward_hops,
        },
        "surb_reply": {
            "comment": "the exit answers through the reply block; its creator opens the payload",
            "flags": [_FLAG],
            "creator": creator.hex(),
            "surb_id": surb_keys.surb_id.hex(),
            "key_seed": surb_keys.key_seed.hex(),
            "ciphertexts": [ct.hex() for ct in surb_kem.used],
            "surb": surb.to_bytes().hex(),
            "reply_payload": reply.hex(),
            "first_hop": first_hop.hex(),
            "packet": reply_packet.hex(),
            "hops": surb_hops,
            "opened": reply.hex(),
        },
        "fragments": _fragments(geometry, surb),
        "rejected": [
            {
                "comment": "a header bit flipped (routing information): the first hop's MAC fails",
                "base": "forward",
                "flip": 3000,
                "hop": 0,
                "reason": "bad-mac",
            },
            {
                "comment": "the KEM ciphertext altered: another shared secret, the MAC fails",
                "base": "forward",
                "flip": 100,
                "hop": 0,
                "reason": "bad-mac",
            },
            {
                "comment": "a payload bit flipped: forwarded twice, the exit's zero tag fails",
                "base": "forward",
                "flip": header + 1000,
                "hop": 2,
                "reason": "bad-payload",
            },
            {
                "comment": "the same packet twice at the first hop: the second is a replay",
                "base": "forward",
                "repeat": 2,
                "hop": 0,
                "reason": "replay",
            },
            {
                "comment": "the reply block used a second time: a replay at its first hop",
                "base": "surb_reply",
                "repeat": 2,
                "hop": 0,
                "reason": "replay",
            },
            {
                "comment": "one byte short",
                "base": "forward",
                "truncate": geometry.packet_size - 1,
                "hop": 0,
                "reason": "wrong-size",
            },
            {
                "comment": "the version bytes changed",
                "base": "forward",
                "flip": 1,
                "hop": 0,
                "reason": "bad-version",
            },
        ],
    }
    valid: list[Valid] = [
        ("the forward vector's packet at its first hop", [_FLAG], encode(MixPacket(packet))),
        ("the reply vector's packet at its first hop", [_FLAG], encode(MixPacket(reply_packet))),
    ]
    delivery = MixDelivery(delivered, surb_keys.surb_id)
    return vectors, valid, delivery, [*forward_kem.used, *surb_kem.used]


def _fragments(geometry: Geometry, surb: Surb) -> dict[str, Any]:
    """§14.6: a request and an answer in fragments, as payloads (kinds 3 and 4)."""
    message_id = _bytes("fragments/message-id", 16)
    request = hashlib.shake_256(b"qdht/vectors/mix/fragments/request").digest(4500)
    answer = hashlib.shake_256(b"qdht/vectors/mix/fragments/answer").digest(5300)
    asked = split_message(geometry, request, message_id, count=3)
    answered = split_message(geometry, answer, message_id)
    header = FRAGMENT_HEADER_SIZE
    return {
        "comment": (
            "a 4500-byte request in 3 fragments and a 5300-byte answer in 3; each request "
            "fragment carries its own reply block in a real network (here the vector's SURB "
            "stands in for all three)"
        ),
        "message_id": message_id.hex(),
        "chunk_size": fragment_chunk_size(geometry),
        "request": request.hex(),
        "request_payloads": [
            encode_payload(geometry, KIND_REQUEST_FRAGMENT, f.to_bytes(), surb).hex() for f in asked
        ],
        "answer": answer.hex(),
        "answer_payloads": [
            encode_payload(geometry, KIND_REPLY_FRAGMENT, f.to_bytes()).hex() for f in answered
        ],
        "invalid": [
            {"comment": comment, "data": data.hex(), "reason": "bad-fragment"}
            for comment, data in (
                ("shorter than the header", message_id + b"\x00"),
                ("count zero", message_id + bytes([0, 0])),
                ("index equal to count", message_id + bytes([2, 2]) + b"chunk"),
            )
        ],
        "header_size": header,
    }


def _packet_file() -> dict[str, Any]:
    vectors, valid, _, _ = _processing()
    base = MixPacket(bytes.fromhex(vectors["forward"]["packet"])).to_cbor()
    invalid = _common_invalid(base)
    invalid += [
        (
            "data of 4095 bytes",
            ["undersize-field"],
            _canon(dict(base, data=bytes(4095))),
            "field-size",
        ),
        (
            "data of 65537 bytes",
            ["oversize-field"],
            _canon(dict(base, data=bytes(65537))),
            "field-size",
        ),
        ("data is text", ["wrong-field-type"], _canon(dict(base, data="x" * 5000)), "field-type"),
    ]
    return vector_file("mix-packet", SPEC, valid, invalid, **vectors)


def _delivery_file() -> dict[str, Any]:
    _, _, delivery, _ = _processing()
    plain = MixDelivery(_bytes("delivery/payload", 6871))
    base = delivery.to_cbor()
    valid: list[Valid] = [
        ("the reply vector's delivery to the block's creator", [], encode(delivery)),
        ("a message without a reply block id", [], encode(plain)),
    ]
    invalid = _common_invalid(base)
    invalid += [
        ("surb of 15 bytes", ["undersize-field"], _canon(dict(base, surb=bytes(15))), "field-size"),
        ("surb of 17 bytes", ["oversize-field"], _canon(dict(base, surb=bytes(17))), "field-size"),
        (
            "payload of 1023 bytes",
            ["undersize-field"],
            _canon(dict(base, payload=bytes(1023))),
            "field-size",
        ),
        (
            "payload missing",
            ["missing-field"],
            _canon({"type": "delivery", "surb": bytes(16)}),
            "missing-field",
        ),
    ]
    return vector_file("mix-delivery", SPEC, valid, invalid)


def _decoder_rejects(cases: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """Encodings the CDDL admits but a decoder must reject (an order rule, §10)."""
    return [
        {"comment": comment, "cbor": data.hex(), "reason": "field-value"} for comment, data in cases
    ]


class _MixSigner(_Signer):
    """Pinned signatures kept in ``vectors/mix/<rule>.json``."""

    def __init__(self, rule: str) -> None:
        self.pinned: dict[tuple[str, str, str], str] = {}
        self.used: list[dict[str, str]] = []
        path = default_spec_dir() / "vectors" / "mix" / f"{rule}.json"
        if path.is_file():
            for entry in json.loads(path.read_text(encoding="utf-8")).get("signatures", []):
                self.pinned[(entry["key"], entry["context"], entry["message_sha3"])] = entry[
                    "signature"
                ]


def _epoch_key(node: _Node, index: int) -> bytes:
    """A mix's X-Wing public key for one epoch, from the seed ``<name>/epoch-key-<i>``."""
    return xwing.XWingPrivateKey.from_seed(
        _bytes(f"{node.name}/epoch-key-{index}")
    ).public_key_bytes()


def _descriptor(signer: _Signer, node: _Node, layer: int) -> MixDescriptor:
    cert = _cert(signer, node, serial=NOW, nbf=NOW, naf=NOW + 30 * DAY)
    contact = Contact(node.node_id, (Address("udp", "198.51.100.9", 4433),))
    keys = [
        (EPOCH, _epoch_key(node, 0)),
        (EPOCH + 1, _epoch_key(node, 1)),
    ]
    unsigned = MixDescriptor(cert, contact, layer, keys, NOW, bytes(3309))
    signature = signer.sign(node, unsigned.signed_bytes(), DESCRIPTOR_CONTEXT)
    return MixDescriptor(cert, contact, layer, keys, NOW, signature)


def _descriptor_file() -> dict[str, Any]:
    alice, _bob, _ = _nodes()
    signer = _MixSigner("mix-descriptor")
    good = _descriptor(signer, alice, 1)
    base = good.to_cbor()
    valid: list[Valid] = [("alice's descriptor for two epochs, layer 1", [], encode(good))]
    key = base["keys"][0]
    invalid = _common_invalid(base)
    invalid += [
        ("layer 8", ["field-value"], _canon(dict(base, layer=8)), "field-value"),
        ("no epoch keys", ["undersize-field"], _canon(dict(base, keys=[])), "field-size"),
        ("four epoch keys", ["oversize-field"], _canon(dict(base, keys=[key] * 4)), "field-size"),
        (
            "key of 1215 bytes",
            ["undersize-field"],
            _canon(dict(base, keys=[dict(key, key=key["key"][:-1])])),
            "field-size",
        ),
        ("version 2", ["field-value"], _canon(dict(base, v=2)), "field-value"),
    ]
    content = vector_file("mix-descriptor", SPEC, valid, invalid, nodes=[alice.describe()])
    content["decoder_rejects"] = _decoder_rejects(
        [("epochs decrease", _canon(dict(base, keys=base["keys"][::-1])))]
    )
    content["signatures"] = signer.used
    return content


def _directory_file() -> dict[str, Any]:
    alice, bob, _ = _nodes()
    authorities = [_Node(f"mix-authority-{i}") for i in range(3)]
    signer = _MixSigner("mix-directory")
    entries = sorted(
        (
            MixEntry(
                Contact(node.node_id, (Address("udp", f"198.51.100.{i + 1}", 4433),)),
                i,
                _epoch_key(node, 0),
            )
            for i, node in enumerate((alice, bob))
        ),
        key=lambda e: e.node_id,
    )
    unsigned = MixDirectory(EPOCH, 3, entries)
    message = unsigned.signed_bytes()
    sigs = [
        (0, signer.sign(authorities[0], message, DIRECTORY_CONTEXT)),
        (2, signer.sign(authorities[2], message, DIRECTORY_CONTEXT)),
    ]
    signed = MixDirectory(EPOCH, 3, entries, sigs)
    base = signed.to_cbor()
    valid: list[Valid] = [
        ("two mixes signed by directory keys 0 and 2 of 3", [], encode(signed)),
        ("unsigned (an authority's draft; clients refuse it, §10.2)", [], encode(unsigned)),
    ]
    invalid = _common_invalid(base)
    invalid += [
        ("no mixes", ["undersize-field"], _canon(dict(base, mixes=[])), "field-size"),
        ("hops 0", ["field-value"], _canon(dict(base, hops=0)), "field-value"),
        (
            "signature of 3308 bytes",
            ["undersize-field"],
            _canon(dict(base, sigs=[{"index": 0, "sig": bytes(3308)}])),
            "field-size",
        ),
        (
            "key index 16",
            ["field-value"],
            _canon(dict(base, sigs=[{"index": 16, "sig": bytes(3309)}])),
            "field-value",
        ),
    ]
    content = vector_file(
        "mix-directory",
        SPEC,
        valid,
        invalid,
        threshold=2,
        directory_keys=[a.mldsa_public.hex() for a in authorities],
        authorities=[a.describe() for a in authorities],
    )
    content["decoder_rejects"] = _decoder_rejects(
        [
            ("mixes not sorted by node id", _canon(dict(base, mixes=base["mixes"][::-1]))),
            ("the same mix twice", _canon(dict(base, mixes=[base["mixes"][0]] * 2))),
        ]
    )
    content["signatures"] = signer.used
    return content


def vector_files() -> dict[str, dict[str, Any]]:
    return {
        "mix/mix-packet.json": _packet_file(),
        "mix/mix-delivery.json": _delivery_file(),
        "mix/mix-descriptor.json": _descriptor_file(),
        "mix/mix-directory.json": _directory_file(),
    }


def record() -> None:
    """Print fresh ``_KEM_CIPHERTEXTS`` (run once; the vectors then replay them)."""
    global _KEM_CIPHERTEXTS
    _KEM_CIPHERTEXTS = {}
    _, _, _, used = _processing()
    for label, cts in (("forward", used[:3]), ("surb", used[3:])):
        text = base64.b64encode(b"".join(cts)).decode()
        print(f'    "{label}": """')
        for i in range(0, len(text), 76):
            print(f"        {text[i : i + 76]}")
        print('    """,')


_KEM_CIPHERTEXTS: dict[str, str] = {
    "forward": """
        nvxxNwcQNFoOELXAX0E8uM7YENlLPozgvua2MyFwJ96kgtW7hOnazmpRH/OGYS6SdgkeZZXI0vZF
        9/OoMTSus/bkSBn5t8gJq8MSEL3skHtOhbB8PqvhhqFpnfyN3kYnmUjoeXqs0PGgTPMeKxaBBWrA
        olHmXyiT+9pdVUl7WurrgezYzWcOxCdKslFQAZRoIROQNiIpkXCDr63ZOoKy8RdgbqBYztxHaWfU
        1Iq0G+z4/uv0B9Atba9TwRDfT6W+9fOFOxv0DBb9LZOlWrwUls/T7796qvdK7nqoF/9LrUFQYmEb
        HoS3MRNR+VlwCsXvOA7rYSox5driV5BjGHDCfqSRh60RJWr9rmmyYPxSO7Lha17xxC+fc86rf9tC
        Q7c8Bh1NmCGNLLVPHavJbuKoCVVTUlOtr0WcRPrb+1PW344FroDI/6Fk49u9LOIkaKMhhcMXZ6Zv
        nGUjD1IzweC1Ug7cVqrcG4TDe7X8iyMmC4PpBYznNPe1T7ZQ2pdjMspBEHFVCA+gPXaJCmaGMB0U
        CfzdaQH4rt8E/SxSX3jnp3Sn+KXUzBYTxpSJ8oOWUyYrqlI3LdTR4h6Hb46kJh1G7BiXhCvxVVNa
        bxsYE/t7wKlnD5i6qDF1uWpuCr1JGWtF2gqngbbFtRiX7p2gYXofX7eFLZO0J7LpbArmdbodekf5
        CBoElzIbm14MPyz/XDx9E58Lj6ImhJ/B06v4cpMSmvsZxz5VKcKWfnNTH1MtRZD0G5vc9U3JqaTa
        byrStY+wifrNVeTdAWvHCwGHigOCU9K+8XbaMCCAJfsQ2icA1+nQvSUrXFUQZKochbQgCzGHCFDA
        EZZssMdgW9rVaHByUc6txLsM3da9G2AjG98s6vX+eMGoMl74gYxrIUxgdtzTCca4SGIHzGHkIv7O
        XY/YzpIBhtFAbSzbAhjttrUQ/BvGYJb6d/kwXV9wWFGX4/mRU7XTcKZhhZwYg8AKlnCSH6SDadPX
        lsCGudbnoNRjNONz/exNuQTD0xioWn7DjUbmxISvtrrRW/gvsEBE3/ITjYfFfWhQWPJyMBcJVp5k
        3gRzq+1Cw7IPuy/vAJztv5uEp6mvPp2KfiU/65YWFvBG0Jc5xhD4kz43Td6ta0kMTh9m83lt5AQf
        scJW9gMTgs1eY5qzf5r5FvjDo3ILy+EmRtP1tVp7qIQ4t4MBHTECntk2Hi+UDQdu9oa2bpr6noTZ
        HUfnH/z6MIzkdOq/1yg5Bs8wkLwvwHxkWAaejsSavDGcQHTkD1++OL1+vaewUVdeSEi1hkV59dc0
        EiOl0CzrEcYvvVvLR2RWJ/Zq4peVvlBESmPxVeB/nmRzQtYRUy5/tk7LW2xsONHcb6p59TYdc6Fj
        yhIJfEMGoxingzA/yN5JhPVSGZ3Bv1r2kkPvW+EPHv0S5W0rhevz5t+MrtD1/z4ThhaIGIzwf3M4
        HdXgyDwQCZLYaJy8Ko9U2peDO9kVIkmNrsf4IayomeThtk3LEo071Kun3Ll+32MXL98F70dHbwCc
        yTYpJwP/bE5kdjG9+mfHySTWwQZ7kI/i/+TntXqd5a6ExnZsF8YiMHTFKgvWh5ZoTj6z9CSqaxFe
        +nPNNYl/HpdEr/8qLwWa8POs1tlB5uZTb1NMFReF5IkfqkBLFmT+USbUxnZUSjhccYPGGJFsY9lr
        joRzfuvQIdbJWkZUm9o1eFUqMXqkfUzDDIiSlRIPAiF4WAEidwBFXsDBg7pIh/Utw+BGPiVxMW3d
        zi3A7QSQyqIXxdTQ100zLJ7T0u282ZnzPAPLP2qHepGuE1WsgF7CCH/2XywRoPpAk+G56yzyekXz
        56t52fERsjbL1Uz2xPNGwm+y61vOD9O2/zwojg/jyMb8CltKaI3N8DWHGGr+eXDPoMDmUCnMrBMO
        KtdzihOsEJZtAoh0UVdmFmEzwN5D3DhPNu/y6gOG2J3LXqeRRAWL3BTq5rhlu+XmOY+8R/D1/2ic
        IHVdzogFFHoZDzx+r1MACdjm1sKKBlLm3q8aq9CwqlvV5xXsflehAxrEzrOAFR8DR7pAIIYrrlX+
        Q0XlTGoT17ETy6tdCGk4yzdf1NNjR1NB9PM3xlW2NgwFMkSTq5LNYteBc4qvh6tQPzn2AIBMul/e
        dNScFYeihz/H4mcgfztySePU2PlelOsMMxCfWiF3IoQmWd+LRAxzptaeAHoyY3kVEUUGJVfoHe6T
        6HVeP3BLyH4NLu/9rr0UMgslxpOv03s6fnSW5bATbyEDw7UuCwqr4ygZ8tRP4Slb1ZNnKYTBJ8Jo
        mYEwDHg2lf9tYtBInpnvLZ2LwajmZkGKedt48CDi87PP76zY7SM5P3fi6NhXpQA2mLt4dZ4FgHKf
        Gf39xonfze6R4xqqBKKpnwaiu0Ry/9r3FrBOzVFB0P5Mtotp/mmJgOkrdu5efoRb5TC9n+bN1w78
        ds3DI75+d1rLYk4X15tWy6U4H+3rEoALZTJhlvN3bhH8OmIQrCYCEq8ltjOHP1EbLozINg5pgmb8
        lHToMyUDK1LxRjtey1Ci+I9OswjWDXhEQAEGfx4qDp645Y2wCemxKkKMESbzF+whzPX9g040o7JO
        e9xoHm/83fnw1fvf6PXXSpXAcTVpwvVwfU6QJNR7apsU228+MY1l6liwZflIuY4+ECM8oGDG0pZ6
        vTlVm2GR9PftX5YY6gJAmsJzDf1uWBEQdfPO6oQgb6Qr2k7aAwOdDXfYzSF01uRqHNxsG3KdW7jx
        P8Qq6cYJQFjStJGvmvKSSmScMnlgJdgLc/Qiahs+hAGx84UTqqTPPFKMS2VMR04ntsPJkbzOMhKz
        mUYrzM+OUihUuNBKuqhz+Q8ygFTX+BCtjzZ08ODtSDSJu5tkKgdkrLY9O6wq3rMY2tUtB+JkzRVN
        nrbT2syZJLkABGy8FXH+BUGKwLtSwwKCRb46iM1hzQ5ktJAzdWNrtQT+GZ3gxtFpozNu+8HNLYzP
        ezLsisN7GVdYc4yTeNUGCXDw5VOQsRjq6z+8kccFOth2CL7Lq5C8o62dmT5E0aogWRPJjJYfx+Yp
        16vos/VTN4RI9I9U4qhchxPZ1KMeFoMWGn6tURMed+8CF77CC+pgAMTNcLE2gURvglo352qbnU7x
        21tVSSGKAiWjj0NZqAenpbS8Npa6TChIX80cD2WAveOICoO3vqPeoWMYfiweqq8PjStNLTPxBWc6
        dE6BnXSK5iCChDD/MK1vTjL/h2Q9SoRNVMLiburIohGCU3og4+Gg13NY1lCe7E4ejyVuvuo8oPdN
        6tFAiKhnzELh5YtnVYmU1rWID2eLADvR4vxxHd65Buot3hfBDCLPEJo3hytKqt5svHFa8tcOhfAo
        hYvZcnUXi2FK1c8Bv+LBzP8s1VjtwC0Vr/MVPeJ06xJQ+vWjI5YbgOkCrsVuXisLzvZK+J+66a5S
        2GDIrP1ZePCP5IZC5NUy687UbGQQjw3TeTL0Qo1kMkS46Z122JXajuIkalZdMITU1aT9CBzy2+XT
        ij57poRporzY/tR75dSIFHYUAv2tgcOt4sjw5ljlKqEyrKzhEzij9rSsIY7J1Q8BqEH7ZyFl+TfB
        Q1siY1PPZDqsN/CKN5HUCv0Apz2KbMM5zboC8GxFLjL8b8pMjy+IwWboeOZVGPt5OOMotlBv7pnd
        ntX20oFplXXxVsSayzjqTReOEC2/7OLBYK61/XgOA6807MNTL9IN0xNNe/2opch3WRN95zFQciUG
        w3j65TfH2OWy0S91P1+jqG9N5wkmNBgKJUnoAnUyCf/Rxosx0k7C3szSQGxYzLwsBfaj55/Ayf7K
        7+b05bztDHdc3IHBLu92I+WeVg6J/qtxIkno54ycTFoQQHnrT2T/Rk8YLlr4e+eu35obov4b+RIS
        sRSAAsqdK+ZWeOA9dGv4MynjCTTcnMCNiHzde4YXAb9R3Md1+4+VV4AofnpmwUkbDpZCdj+BiHrZ
        DQGj9KTTeztBQ+R7gi+WZ0Q0NDXmIKZ+5upL69+LMjjYrMabEp+sDfaKnwmVDLFGvydpnb7k/PyY
        78SXd+DMG0li+4wMvAtzqhCOMUT89+kw2g7CMYJMqUQa2XJOCA6R6NYuZizQE83bs2GaPPnDdEJx
        tU94vyu2QO2Y0rD6ljdrvTvYi6CYcQ/KkBv/zqtyXCO5RxJLlxoroWtvLBd44jlFH1FsEytLy0mj
        YboYrBo1A0gih7eNnRGBKBrq53kH7bkuhmMYrEVaZ+3N6LtFFLV2sP4ccXU1SdJRjC8nQLFXcTTd
        gGkq8FlshKgIXo9GMyoVzZYSeSrUzXOVgedVbCwXbwYCI76IMPViGb8SUoNdVCb7zmTWmusBS/q4
        awdSVT+97xydJ5uBQJZ74Y5TknrSPUN0gKMhYOv+0sUCFCjfPiqdO8cwqHt0RqhBhFoGlLLXygL+
        mfqKdGR7Y4LpnyBz8dQivPLmYROWZknT0rLDZ+h3lDDH8kVPxNdIf+vNbzk523NmnD6qYocB
    """,
    "surb": """
        mHNEHdaSu9s/XuW435vdfBJGMuCrEAxOp7Bcur7NHSe/rqQm2hPTnAEERG/jHupkIiQknDe87trH
        odEm3I6JS7hXMnc8je0SnP/aHImB22/Oc8k4TzUFHEClSVvEs7sA7q+Scjan2NAMexCiqyb2/aEe
        WrPcMeRl0oQUHngQFmkVqvcGEkbVJiBbEZzEnm35LV757YB4wEB4lV2WipaSE6DvvlY7IOYAbr3K
        zYsapPiDx80wWeIqJKi2l7kifgaUv+zn7mVhQqfYRcslqcpmRid13qd3KJ8RsbirHs4kAqcWOgj6
        kqcITRlSGOvz9uSen/f74syptRIDtZaofHeDtR3OvioiUdF6UzHp9ziHuosrJHWUpghDJ2igmYTO
        z3NbsrzLtmj+xl9FoyuFH17zZkp/f3fCoOWnKJoM26T2t+0UoHH5EZIPDsV+uHSOfm5G9UrI0WS6
        YZieoZ5nliQPKdMbl/X0Wq0Xxuj/xr3OVyf4/UNuQZbrQ9GWtQbd7vj6RsakjuvLw3Z6ProTBqmC
        ZXFTDO5NONkj4LHnSDQR3Y3KL+WGYaQ2cNQm+NB3i23PMywt7enB2Ghl7ur2DXdhd9Cphhq5ybZ4
        zREx5LhDvaW5QQ3vum+tCcrnOpsoRHSJEKYJLiWJCWR7ZFZsD2VpC3akf4rpeFKD8xPQUNZFTZFj
        MvNMCpFO6VuAO+lS3gA82dme1yQeikZaPYLmyu3Awsf0fdrUb6L3+jPToZltwOYUPlVkVzppsZfb
        FuxlwSpLgw9LO0EnmFe4Lfei26eFDlvB9KF5jbrtG7lf3GeOMVJf6ZSRMBAfMBHScbabnQkw8Fye
        MCekqy56BURhYQ13WyYvmStnLdFyLRtRxoaKHTshTE6WVXB5+RejWh5DCOCg9sz/QbqWoTwMi8ss
        q68DeA6meaRbJeMN+D3WuMk5ZUSd1lOxjuggfHspBkeA1zvrgv6WutzoQ3qa0zOGkfsEb7uw6yvG
        rzUBylp8NrSFUHfSRRg0oweAF5U3oNcXBHLXs3eivR5IGKOcGqgSkmlhgfeYYF7zY/GqRl7vxFXu
        v/q/bypz/qbR6XlszD9zVikQzlbAWUkGPDfqg8jZbha2suDgLzri1sxKN9llIHd+RoDAg/yLiLLh
        WKeJdr2mLT6nEpAK+3hSWnK2oZmVC+ljShR2U7MHExeW9P0MTLhXNIJzl9Q9tQ9Ng8fCydeNGEGA
        +9ccpHbpNgfSfH1OsdkyruPJXK772TifpjaLYpFaEPAEZJ5LxxOTbPyj6ccopuNpORYjMJcf8X94
        BBxWAWC/K7uVNHsZuhKXEqjggVD1MiaZEIYuf65n7bQwro2s7lMmhg1dglBlLu+Bh1BKoH+jzSC0
        MET4gzHmLum5QsJZrH9fHbwILNqPT3OMT8e6BLIIYdfwuSVVu/pqPjdtKr/eAMzhltOtOJt5RPzu
        8ZiVGGgcaySKmemmNDs2GoAJstYGM+PkZGIunfIrZldge6brSYlfzzXGqcY9MC8/HNmeAMElb44J
        n57X59t1sTiV48oMX3oXzBUnPTlQuFk455Uf5OdmwJaxifkUxgLxoZve83CHB34fK7yE4a3vqGCn
        OhBHDVVd/ug0QKAfwAF98hV1vZgl1JHJrYUHrWhhqpfnsWQ0DF5wYuGHlVfh3MLQVEqNsX8+tiUC
        ffCdQ4Yt9DxHV8F/yyxhUeNCyvZ05xfEtlhzyLBnYmLn7cUNJbOg2q4bRqHY1EXuaOknbv8SgPhM
        ApCkkTNpagCcGXFoP7pbTL5J9K/EUrMKJcqxIpL2sgSp1g/xRHsc3+wYWBKiEKdiRb/1GQmEGKgi
        Waw8HXhpF5EOheOFpml8zJ7ErN8nwOV5UMvMpScvs3vx4tYgOkg0AOM8w4mmCtS74PsN9LlHlnSO
        9olIVBpx9vrO8pAAegjHYsx+oq1fCt0A8SL8x7XrSMySChVpSvb+B7QfNmrS5xWjjA8CZMjecvVv
        GTvSHFn9aHq2rQpkK5eDGWpzFSLkIjvNEJbPug7kOmdUFssTzK8FTVQrdDc92tR82Gcj3CQ3pg5b
        52SykdCXXoaEA9+6QQZfrCTTTM/mgEtoaUNk2a23hiy3PqV6086BIyB1wc9h5Kkdnj1BU+ejM2EM
        VkKHCv3xeTAhB2MYjqVGx/By4WJUgDmrHchF/Kv7Cb3+u4dtmiVvq2UTW0xELSyWLcKpMXqbH2++
        xryU5X4F0oP3QjX3dP8SjGqoUNrY6q1PPm14gAaNwWj/asArf7HJyM2wCzjaCXofYuWqxtDh2W2m
        51XGCZLWHxPHkqjFOspEf/QX6Mza5wwusJhBZbrkf6TV2j5D7CKDEMeTlmlTbyyBsqvVkx91VwOT
        K5OlVjmU9JeD4wihf5IcO5YFpNgyAvgMaSl3dZxRydeiy1w2V54+n/RMrilJzrt2/XrOiF+/D4L1
        pRJaLLtdv+bbV64wOl1Kqtt2hGqOyEuKi0P3BQ8PtEiulaP3npvQ7//7rj0bH+MNLT1vDa9kPuS7
        uhFIrtRw8l2QO5uIypDwQJOAycNYbjVEEuxzs3BVIhCVG4bbPhVGMWLDCptCCPSANBHYRdcf5+24
        gW5ROOPveeXBm9dzhSA4aCOnEfRIia8PlbQ9Z+DWRDJ9KAIfxWhXLmwviGog6/amsa0NspT246e5
        AcCrH/LWKqZx1458fbKWValup1+4/XKrIFxxKvw16ZPZL/b7oRTjaKGUmVykv8hxs5lZm3RW3B2m
        SJyhVk4XKweqiZT0C9MOYjhq90OGPABmoYhulodenckQwiwCyQFmvZggN01C87qSWuzom7LVKhA7
        fOWF/bYG06R3RnOSusj6PRIjhXXZ5z5ArjEPFeP3OrXfNwXuMAvpJR5EHVnqSGJ+PrEe7hYkke3p
        qpk3xqptjgeAVMUh/5jerPBIjAMUF6LRGER/kFeOS4IfV+u4hILH6bjKnExdVC0R85kNUyoZvE2M
        uidCoy3bQKYLK9SSDj9ykV9EaLUAm7ZAYSw9iCORVcQl4yRsS+1K8NwjXw1vf6hFPMJUnASVG3fj
        ZakLk/nrHhLUhLuWIkdZOD1Wq1DeJ73HCjqhTfvrjfjfKj3hjMlAz1mBbh87JkuWzM0cRzHJbQyU
        CoSZFS0TTu22a1FY3EIFro1QcIosKFXU6tJCR0NBxQM8glNgJHrowYCIpPKIr5ctanu+foGfSDxq
        Pl9HJGeUScNMB/+22g0xjXC93Tg85BhQh6n8BoTlgi5sjqpH/MjW8B3NhCVKz+eQM3nIywwyAhS5
        NPYvULKvpAu6cCKFmeBAT65q5Dm4KPglWfZyp9WTKcJho8z3g1cQ1/G1rzjVr7d1b+xPzzOUqkwR
        5Nr3F47jBTeNCFGGatWdPYXDf4oaVvFc5l+9oncsXkoJVdxLiSgaZWAi9wSEWAolk8ysN7R/V4pd
        PykQBvNAvdrMHNdwSmWhyb4kt8yzLvVkWraAG875MeIvfz71tABBpW55xaHoVSByqpFaXZF9u7SN
        y4NNcyjiUqxWAENOUXMmQx7Bax8WiyKOmVB8N78D8J5JhJ3Q8P08as9DAvBOtLL2aVhEPkuOmfWp
        LeNvoxU4VQyl6zI89KVfxZlE15SsfRkVbOWiQXihUNIS/TNMq7ZaBgPERdF5ciwEG9bxeDCAvoY/
        oKcBppYv0Wz0Enoaf37P542SHqMoMJJZN61JX5ymCwZL7utMxIDruwgXpMUymhWR/3mjTOHqHaU5
        465E90ZJEkODMJ+6o4f6HhpgcVoEHKtJ46uTB8tzahbB8Cn7waAdjzKXaNhgmGbRh1qsG1VNjks2
        WGOPM7uHa+xTZEDEYaVwc6tP1ZlASP8GRjkkmrPcEO0TjOux5St7+V7BueNKbX8J48/per8L/yKY
        BzQGsHdMnOVnKUcpF1vq2BWRyQRVBaN176uVpH3siEdtfyMiOr2KaZ0WdcWiJM7+t7jgqjfohMgw
        wFh9SFVUrqtQWsm2IxkzRX0YiiWQDjBahWCUGWqSemqUwfORBAQLFaguEyqcmiMVVJ0mv1YJw8Ha
        qdmLmCTbgIc341a0XSUvHEytGzGCIh0FBZMnqZ4ajCDEPXoBNOWar8jNlyOH+1KviMJF/vY1TrfV
        zFXGwh6TW7Ek+/pyvXDf2dpBa9yMDRAF6LwNylPKdNmx6PxiWqSYFRY6PjUujkaLT5OkadQHqZuj
        YG4jo+C9aq6O8s3gIcW8dwd4x83VddyVCDJ50Q7F40zRTQzmCNJ1mlUcbPzaL3REFJBoBK70NO21
        ZprwtjyuLErnrj1YDnhkW8eR/Fclr58akWZBrM++oxsX8rWNyu4YQ9n0bMUUd76Ig6zRTlgGmO9A
        zcCylgg9Ljn9IJ6wftvZJpwYgmfbrm7vtjnQb0/LxQskYkfuZjw1imVtwHY040Gq7I5xJND0eXaS
        qYDT9EsXkUDIA6yW1tLdcCyNc1DFqOihb7gXiqFckTRnmrOWgkWSIwUYJlT7TPKKAbgl6tBM
    """,
}
