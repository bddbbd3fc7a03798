"""The checked-in mixnet vectors replay byte for byte (10-mixnet.md §12)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qdht.crypto import xwing
from qdht.errors import DecodeError
from qdht.mixnet import (
    KIND_REPLY_FRAGMENT,
    KIND_REQUEST_FRAGMENT,
    Deliver,
    Drop,
    Forward,
    Geometry,
    MixnetConfig,
    Reassembler,
    ReplayFilter,
    SurbKeys,
    decode_payload,
    derive_hop_keys,
    fragment_chunk_size,
    open_surb_reply,
    parse_fragment,
    replay_tag,
    split_message,
    surb_payload_keys,
    unwrap,
    verify_descriptor,
    verify_directory,
)
from qdht.wire import MixDescriptor, MixDirectory, decode

VECTORS = Path(__file__).resolve().parents[2] / "protocol-spec" / "vectors" / "mix"
PACKETS: dict[str, Any] = json.loads((VECTORS / "mix-packet.json").read_text(encoding="utf-8"))
GEOMETRY = Geometry(
    hops=PACKETS["geometry"]["hops"], user_payload_size=PACKETS["geometry"]["user_payload_size"]
)
KEYS = {
    bytes.fromhex(m["node_id"]): xwing.XWingPrivateKey.from_seed(bytes.fromhex(m["xwing_seed"]))
    for m in PACKETS["mixes"]
}


def _route(name: str) -> list[bytes]:
    return [bytes.fromhex(h["node_id"]) for h in PACKETS[name]["hops"]]


def test_geometry_matches_the_file() -> None:
    g = PACKETS["geometry"]
    assert (g["header_size"], g["surb_size"], g["payload_size"], g["packet_size"]) == (
        GEOMETRY.header_size,
        GEOMETRY.surb_size,
        GEOMETRY.payload_size,
        GEOMETRY.packet_size,
    )
    assert bytes.fromhex(g["digest"]) == GEOMETRY.digest


@pytest.mark.parametrize("name", ["forward", "surb_reply"])
def test_every_hop_reproduces_its_secrets_and_output(name: str) -> None:
    packet = bytes.fromhex(PACKETS[name]["packet"])
    for node_id, hop in zip(_route(name), PACKETS[name]["hops"], strict=True):
        key = KEYS[node_id]
        assert replay_tag(GEOMETRY, packet).hex() == hop["replay_tag"]
        shared = key.decapsulate(packet[2 : 2 + xwing.CIPHERTEXT_SIZE])
        assert shared.hex() == hop["shared_secret"]
        keys = derive_hop_keys(GEOMETRY, shared)
        assert keys.mac.hex() == hop["keys"]["mac"]
        assert keys.payload_key.hex() == hop["keys"]["payload_key"]
        result = unwrap(GEOMETRY, key, packet)
        out = hop["output"]
        if out["result"] == "forward":
            assert isinstance(result, Forward)
            assert (result.next_hop.hex(), result.delay_ms) == (out["next_hop"], out["delay_ms"])
            assert result.packet.hex() == out["packet"]
            packet = result.packet
        else:
            assert isinstance(result, Deliver)
            assert result.payload.hex() == out["payload"]
            assert result.recipient.hex() == out["recipient"]


def test_forward_payload_is_the_request_with_its_reply_block() -> None:
    exit_output = PACKETS["forward"]["hops"][-1]["output"]
    assert exit_output["payload"] == PACKETS["forward"]["payload"]
    message = decode_payload(GEOMETRY, bytes.fromhex(exit_output["payload"]))
    assert message is not None
    assert message.surb is not None
    assert message.surb.to_bytes().hex() == PACKETS["surb_reply"]["surb"]


def test_fragment_vectors_split_frame_and_join() -> None:
    vector = PACKETS["fragments"]
    message_id = bytes.fromhex(vector["message_id"])
    assert vector["chunk_size"] == fragment_chunk_size(GEOMETRY)
    for name, kind in (("request", KIND_REQUEST_FRAGMENT), ("answer", KIND_REPLY_FRAGMENT)):
        store = Reassembler(max_fragments=8, max_open=4, timeout=30.0)
        whole = None
        payloads = [bytes.fromhex(p) for p in vector[f"{name}_payloads"]]
        for payload in payloads:
            message = decode_payload(GEOMETRY, payload)
            assert message is not None
            assert message.kind == kind
            assert (message.surb is not None) == (kind == KIND_REQUEST_FRAGMENT)
            fragment = parse_fragment(GEOMETRY, message.data)
            assert fragment is not None
            assert fragment.message_id == message_id
            whole = store.add(fragment, message.surb, 0.0)
        assert whole is not None
        assert whole.data == bytes.fromhex(vector[name])
        # The sender's split is the one the vector shows.
        count = len(payloads)
        again = split_message(GEOMETRY, whole.data, message_id, count=count)
        assert [f.to_bytes() for f in again] == [
            decode_payload(GEOMETRY, p).data  # type: ignore[union-attr]
            for p in payloads
        ]
    for case in vector["invalid"]:
        assert parse_fragment(GEOMETRY, bytes.fromhex(case["data"])) is None, case["comment"]


def test_reply_creator_opens_the_delivered_payload() -> None:
    vector = PACKETS["surb_reply"]
    hop_keys = []
    packet = bytes.fromhex(vector["packet"])
    for node_id in _route("surb_reply"):
        shared = KEYS[node_id].decapsulate(packet[2 : 2 + xwing.CIPHERTEXT_SIZE])
        derived = derive_hop_keys(GEOMETRY, shared)
        hop_keys.append((derived.payload_key, derived.payload_iv))
        step = unwrap(GEOMETRY, KEYS[node_id], packet)
        if isinstance(step, Forward):
            packet = step.packet
    keys = SurbKeys(
        bytes.fromhex(vector["surb_id"]), tuple(hop_keys), bytes.fromhex(vector["key_seed"])
    )
    assert surb_payload_keys(GEOMETRY, keys.key_seed)  # derivable from the seed alone
    delivered = bytes.fromhex(vector["hops"][-1]["output"]["payload"])
    assert open_surb_reply(GEOMETRY, keys, delivered) == bytes.fromhex(vector["opened"])
    delivery = decode(bytes.fromhex(_delivery_vector()))
    assert delivery.payload == delivered  # type: ignore[attr-defined]


def _delivery_vector() -> str:
    file = json.loads((VECTORS / "mix-delivery.json").read_text(encoding="utf-8"))
    return str(file["tests"][0]["cbor"])


@pytest.mark.parametrize("case", PACKETS["rejected"], ids=lambda c: c["comment"])
def test_rejected_packets_drop_at_the_stated_hop_for_the_stated_reason(
    case: dict[str, Any],
) -> None:
    base = case["base"]
    packet = bytes.fromhex(PACKETS[base]["packet"])
    if "flip" in case:
        mutable = bytearray(packet)
        mutable[case["flip"]] ^= 1
        packet = bytes(mutable)
    if "truncate" in case:
        packet = packet[: case["truncate"]]
    replays = ReplayFilter(1000, 1e-9)
    outcome: Forward | Deliver | Drop | None = None
    for index, node_id in enumerate(_route(base)):
        for _ in range(case.get("repeat", 1) if index == case["hop"] else 1):
            tag = replay_tag(GEOMETRY, packet)
            if tag in replays:
                outcome = Drop("replay")
                break
            outcome = unwrap(GEOMETRY, KEYS[node_id], packet)
            if not isinstance(outcome, Drop):
                replays.add(tag)
        if isinstance(outcome, Drop):
            assert (index, outcome.reason) == (case["hop"], case["reason"])
            return
        assert isinstance(outcome, Forward)
        packet = outcome.packet
    pytest.fail(f"not dropped: {outcome}")


@pytest.mark.parametrize("rule", ["mix-descriptor", "mix-directory", "mix-exit_answer"])
def test_order_rules_the_cddl_cannot_say_are_rejected_by_the_decoder(rule: str) -> None:
    file = json.loads((VECTORS / f"{rule}.json").read_text(encoding="utf-8"))
    assert file["decoder_rejects"]
    for case in file["decoder_rejects"]:
        with pytest.raises(DecodeError) as caught:
            decode(bytes.fromhex(case["cbor"]))
        assert caught.value.reason == case["reason"], case["comment"]


def test_descriptor_and_directory_vectors_verify() -> None:
    descriptor_file = json.loads((VECTORS / "mix-descriptor.json").read_text(encoding="utf-8"))
    descriptor = decode(bytes.fromhex(descriptor_file["tests"][0]["cbor"]))
    assert isinstance(descriptor, MixDescriptor)
    now = descriptor.issued
    assert verify_descriptor(descriptor, now=now, difficulty=8) is None
    directory_file = json.loads((VECTORS / "mix-directory.json").read_text(encoding="utf-8"))
    config = MixnetConfig(
        directory_keys=[bytes.fromhex(k) for k in directory_file["directory_keys"]],
        directory_threshold=directory_file["threshold"],
    )
    signed = decode(bytes.fromhex(directory_file["tests"][0]["cbor"]))
    unsigned = decode(bytes.fromhex(directory_file["tests"][1]["cbor"]))
    assert isinstance(signed, MixDirectory)
    assert isinstance(unsigned, MixDirectory)
    view, reason = verify_directory(signed, config)
    assert reason is None
    assert view is not None
    assert len(view.mixes) == 2
    assert verify_directory(unsigned, config) == (None, "directory-too-few-signatures")
