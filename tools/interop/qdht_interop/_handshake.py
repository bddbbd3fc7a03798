"""Handshake packets the harness builds itself, from ``protocol-spec/04-handshake.md``.

The probe's :class:`~qdht.session.SessionEndpoint` makes only well-formed
handshakes. Some cases need more: a first message with no second half (to
push a responder under load), a pqXX message 1 whose answer the harness
reads itself to learn the responder's static key (so that a *fresh*
identity can open with pqIK, as a node that read the target's certificate
would), and cookies opened by hand.
"""

from __future__ import annotations

import hashlib
import os
from typing import Final

import trio
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from qdht.errors import DecodeError, HandshakeError
from qdht.identity import Identity, compute_node_id
from qdht.session import PQXX, HandshakeState, KemOps
from qdht.wire import dumps_canonical, loads_canonical
from qdht_interop._probe import Probe

__all__ = [
    "FRAGMENT_BODY",
    "cookie_from",
    "first_fragments",
    "learn_static",
    "mac1",
    "mac_input",
    "parse",
    "prologue",
]

#: Body bytes per handshake fragment at the default 1200-byte datagram (04 §4).
FRAGMENT_BODY: Final = 1200 - 112
PROTOCOL_VERSION: Final = 1
#: Bytes of the biscuit in front of pqXX message 2 (04 §5.3).
BISCUIT_SIZE: Final = 225


def prologue(difficulty: int) -> bytes:
    """The Noise prologue of 04 §2."""
    return b"qdht-session" + bytes([PROTOCOL_VERSION, difficulty])


def _mac1_key(responder_id: bytes) -> bytes:
    return hashlib.blake2b(b"qdht-mac1" + responder_id, digest_size=32).digest()


def mac1(responder_id: bytes, mac_input: bytes) -> bytes:
    """The mac1 of a fragment (04 §5.1) whose MAC input is ``mac_input``."""
    return hashlib.blake2b(mac_input, key=_mac1_key(responder_id), digest_size=16).digest()


def mac_input(kind: int, sid: int, rid: int, i: int, c: int, body: bytes) -> bytes:
    """``M`` of 04 §5.1: every field of a fragment but the MACs."""
    return (
        b"qdht-hs"
        + bytes([kind])
        + sid.to_bytes(4, "big")
        + rid.to_bytes(4, "big")
        + bytes([i, c])
        + body
    )


def first_fragments(kind: int, sid: int, body: bytes, responder_id: bytes) -> list[bytes]:
    """The encoded fragments of a first message (kind 1 or 5, ``rid`` 0): mac1, no mac2."""
    count = max(1, -(-len(body) // FRAGMENT_BODY))
    out = []
    for i in range(count):
        chunk = body[i * FRAGMENT_BODY : (i + 1) * FRAGMENT_BODY]
        tag = mac1(responder_id, mac_input(kind, sid, 0, i, count, chunk))
        out.append(
            dumps_canonical(
                {
                    "type": "hs",
                    "kind": kind,
                    "sid": sid,
                    "rid": 0,
                    "i": i,
                    "c": count,
                    "body": chunk,
                    "mac1": tag,
                }
            )
        )
    return out


def parse(data: bytes) -> dict[str, object] | None:
    """A datagram as a CBOR map (None if it is not one)."""
    try:
        obj = loads_canonical(data)
    except DecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def cookie_from(reply: dict[str, object], responder_id: bytes, frag_mac1: bytes) -> bytes | None:
    """The 16-byte cookie in a ``session-cookie`` answering a fragment with ``frag_mac1``."""
    salt, box = reply.get("salt"), reply.get("box")
    if not isinstance(salt, bytes) or not isinstance(box, bytes):
        return None
    key = hashlib.blake2b(b"qdht-cookie" + responder_id, digest_size=32).digest()
    box_key = hashlib.blake2b(salt + frag_mac1, key=key, digest_size=32).digest()
    try:
        return ChaCha20Poly1305(box_key).decrypt(b"\x00" * 12, box, frag_mac1)
    except InvalidTag:
        return None


def _new_sid() -> int:
    while True:
        sid = int.from_bytes(os.urandom(4), "big")
        if sid:
            return sid


async def learn_static(probe: Probe, identity: Identity, difficulty: int, seconds: float) -> bytes:
    """The target's static X-Wing key, read from its answer to a pqXX message 1.

    The harness writes message 1 itself and reads message 2 far enough to
    decrypt the responder's ``s`` and hello, then checks that they prove the
    pinned node ID (04 §6); it never sends message 3, so the target keeps no
    state (04 §5.3). Raises ``HandshakeError`` with the reason otherwise.
    """
    target = probe.target.node_id
    hs = HandshakeState(
        PQXX, initiator=True, prologue=prologue(difficulty), s=identity.xwing, kem=KemOps()
    )
    sid = _new_sid()
    frags = first_fragments(1, sid, hs.write_message(b""), target)
    parts: dict[int, bytes] = {}
    count = 0

    def collect() -> bool:
        nonlocal count
        for data in probe.datagrams_in:
            frag = parse(data)
            if frag is None or frag.get("type") != "hs" or frag.get("kind") != 2:
                continue
            c, i, body = frag.get("c"), frag.get("i"), frag.get("body")
            if frag.get("rid") != sid or not isinstance(c, int) or not isinstance(i, int):
                continue
            if isinstance(body, bytes) and (not count or c == count):
                count = c
                parts[i] = body
        return bool(count) and len(parts) == count and set(parts) == set(range(count))

    with trio.move_on_after(seconds):
        for _attempt in range(3):
            for frag in frags:
                await probe.send_raw(frag)
            if await probe.wait_datagrams(collect, seconds / 3):
                break
    if not collect():
        raise HandshakeError("no pqXX message 2 answered the harness's message 1")
    body = b"".join(parts[i] for i in range(count))[BISCUIT_SIZE:]
    payload = hs.read_message(body)
    static = hs.rs
    if static is None:
        raise HandshakeError("pqXX message 2 carried no static key")
    hello = parse(payload)
    mldsa = hello.get("mldsa") if hello else None
    nonce = hello.get("nonce") if hello else None
    if not isinstance(mldsa, bytes) or not isinstance(nonce, bytes):
        raise HandshakeError("pqXX message 2's hello does not decode")
    try:
        node_id = compute_node_id(static, mldsa, nonce)
    except Exception as exc:  # ConfigError on wrong sizes
        raise HandshakeError(f"pqXX message 2's hello is malformed: {exc}") from None
    if node_id != target:
        raise HandshakeError("the static key and hello of message 2 prove another node ID")
    return static
