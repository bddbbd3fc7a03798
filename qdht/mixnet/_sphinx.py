"""KEM-Sphinx packets with X-Wing: creation, per-hop processing, reply blocks.

Implements ``protocol-spec/10-mixnet.md`` §2-§6, after Katzenpost's KEM-Sphinx:
a KEM ciphertext cannot be blinded as a Sphinx group element is, so the sender
encapsulates to every hop; the header carries the first hop's ciphertext in
the clear and each hop's decrypted routing slot holds the next hop's.  The
header keeps its size at every hop (the sender precomputes the filler), so a
mix cannot tell its position on the path.

Everything here is a pure function of its inputs: randomness (the KEM's, a
reply block's id and key) comes from the caller, so vectors are reproducible.
Remote input never raises: :func:`unwrap` returns a :class:`Drop` with a
reason instead.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import struct
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple

import attrs
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as hmac_sha256
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from qdht.crypto import xwing
from qdht.errors import ConfigError, CryptoError
from qdht.mixnet import lioness as lioness
from qdht.mixnet._geometry import (
    COMMANDS_SIZE,
    MAC_SIZE,
    NODE_ID_SIZE,
    SURB_ID_SIZE,
    TAG_SIZE,
    VERSION,
    Geometry,
)

__all__ = [
    "MAX_DELAY_MS",
    "Deliver",
    "Drop",
    "Encapsulate",
    "Forward",
    "HopKeys",
    "PathHop",
    "Surb",
    "SurbKeys",
    "cached_encapsulate",
    "create_packet",
    "create_surb",
    "derive_hop_keys",
    "open_surb_reply",
    "replay_tag",
    "surb_payload_keys",
    "surb_reply_packet",
    "unwrap",
]

#: (shared secret, ciphertext) for a public key: :func:`qdht.crypto.xwing.encapsulate`.
Encapsulate = Callable[[bytes], tuple[bytes, bytes]]
#: A hop delay is a u32 of milliseconds.
MAX_DELAY_MS: Final = 2**32 - 1

_HOP_INFO: Final = b"qdht/mix/v1/hop"
_SURB_INFO: Final = b"qdht/mix/v1/surb"
_REPLAY_LABEL: Final = b"qdht/mix/v1/replay"
_KEYS_SIZE: Final = 32 + 32 + 12 + lioness.KEY_SIZE + lioness.IV_SIZE

# Routing command codes (§5).
CMD_NULL: Final = 0x00
CMD_NEXT_HOP: Final = 0x01
CMD_RECIPIENT: Final = 0x02
CMD_SURB_REPLY: Final = 0x03
CMD_DELAY: Final = 0x80
_CT: Final = xwing.CIPHERTEXT_SIZE
_COUNTER0: Final = bytes(4)
_SHA256: Final = hashes.SHA256()
_V: Final = len(VERSION)


@attrs.frozen
class HopKeys:
    """The keys one hop derives from its KEM shared secret (§3)."""

    mac: bytes
    header_key: bytes
    header_iv: bytes
    payload_key: bytes
    payload_iv: bytes


@functools.lru_cache(maxsize=16)
def _layout(geometry: Geometry) -> tuple[int, int, bytes, bytes]:
    """(packet size, header size, a slot of zeros, HKDF salt): computed once per geometry."""
    return geometry.packet_size, geometry.header_size, bytes(geometry.slot_size), geometry.digest


@functools.lru_cache(maxsize=256)
def _public_key(public_key: bytes) -> xwing.XWingPublicKey:
    return xwing.XWingPublicKey(public_key)


def cached_encapsulate(public_key: bytes) -> tuple[bytes, bytes]:
    """X-Wing encapsulation to a mix key, each key parsed and checked once.

    A client encapsulates to the same few dozen epoch keys for a whole
    epoch: the loaded keys (at most 256, least recently used first out) save
    parsing ML-KEM and X25519 keys per hop of every packet.
    """
    return _public_key(public_key).encapsulate()


def _okm(salt: bytes, shared_secret: bytes) -> bytes:
    return HKDF(algorithm=_SHA256, length=_KEYS_SIZE, salt=salt, info=_HOP_INFO).derive(
        shared_secret
    )


def derive_hop_keys(geometry: Geometry, shared_secret: bytes) -> HopKeys:
    """HKDF-SHA256 (extract and expand) of the KEM secret, salted with the geometry."""
    okm = _okm(_layout(geometry)[3], shared_secret)
    return HopKeys(okm[0:32], okm[32:64], okm[64:76], okm[76:204], okm[204:252])


def _stream(key: bytes, iv: bytes, data: bytes) -> bytes:
    """``data`` XOR ChaCha20(key, iv), block counter 0."""
    return Cipher(algorithms.ChaCha20(key, _COUNTER0 + iv), mode=None).encryptor().update(data)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _mac(key: bytes, ct: bytes, routing: bytes) -> bytes:
    mac = hmac_sha256.HMAC(key, _SHA256)
    mac.update(VERSION + ct + routing)
    return mac.finalize()


def replay_tag(geometry: Geometry, packet: bytes) -> bytes:
    """The replay tag of a packet: SHA-256 of its hop's KEM ciphertext (§6)."""
    digest = hashlib.sha256(_REPLAY_LABEL)
    digest.update(memoryview(packet)[_V : _V + _CT])
    return digest.digest()


# ------------------------------------------------------------------- commands


def _id(name: str, value: bytes, size: int = NODE_ID_SIZE) -> bytes:
    if type(value) is not bytes or len(value) != size:
        raise ConfigError(f"{name} must be {size} bytes")
    return value


def _delay(delay_ms: int) -> bytes:
    if type(delay_ms) is not int or not 0 <= delay_ms <= MAX_DELAY_MS:
        raise ConfigError(f"delay must be an integer in 0..{MAX_DELAY_MS} ms, got {delay_ms!r}")
    return struct.pack(">BI", CMD_DELAY, delay_ms)


def _hop_commands(next_hop: bytes, next_mac: bytes, delay_ms: int) -> bytes:
    return bytes([CMD_NEXT_HOP]) + next_hop + next_mac + _delay(delay_ms)


def _terminal_commands(recipient: bytes, delay_ms: int, surb_id: bytes | None) -> bytes:
    out = bytes([CMD_RECIPIENT]) + _id("recipient", recipient) + _delay(delay_ms)
    if surb_id is not None:
        out += bytes([CMD_SURB_REPLY]) + _id("surb id", surb_id, SURB_ID_SIZE)
    return out.ljust(COMMANDS_SIZE, b"\x00")


class _Commands(NamedTuple):
    next_hop: bytes | None
    next_mac: bytes
    recipient: bytes
    surb_id: bytes | None
    delay_ms: int


def _parse_commands(data: bytes) -> _Commands | None:
    """The commands of a decrypted slot, or None if they are malformed (§5).

    :func:`unwrap` reads the common forwarding slot, exactly ``next-hop ‖
    delay``, itself; every other slot comes here.
    """
    fields: dict[str, Any] = {}
    pos = 0
    while pos < len(data):
        code = data[pos]
        if code == CMD_NULL:
            if any(data[pos:]):
                return None
            break
        if code == CMD_NEXT_HOP and pos + 65 <= len(data) and "next_hop" not in fields:
            fields["next_hop"] = data[pos + 1 : pos + 33]
            fields["next_mac"] = data[pos + 33 : pos + 65]
            pos += 65
        elif code == CMD_RECIPIENT and pos + 33 <= len(data) and "recipient" not in fields:
            fields["recipient"] = data[pos + 1 : pos + 33]
            pos += 33
        elif code == CMD_SURB_REPLY and pos + 17 <= len(data) and "surb_id" not in fields:
            fields["surb_id"] = data[pos + 1 : pos + 17]
            pos += 17
        elif code == CMD_DELAY and pos + 5 <= len(data) and "delay_ms" not in fields:
            fields["delay_ms"] = int.from_bytes(data[pos + 1 : pos + 5], "big")
            pos += 5
        else:
            return None
    hop = "next_hop" in fields
    terminal = "recipient" in fields
    if "delay_ms" not in fields or hop == terminal or (hop and "surb_id" in fields):
        return None
    return _Commands(
        fields.get("next_hop"),
        fields.get("next_mac", b""),
        fields.get("recipient", b""),
        fields.get("surb_id"),
        fields["delay_ms"],
    )


# --------------------------------------------------------------------- create


@attrs.frozen
class PathHop:
    """One mix of a path: its node id, its mix public key for the epoch, the delay it holds."""

    node_id: bytes
    public_key: bytes
    delay_ms: int


def _build_header(
    geometry: Geometry,
    path: Sequence[PathHop],
    recipient: bytes,
    surb_id: bytes | None,
    encapsulate: Encapsulate,
) -> tuple[bytes, list[HopKeys]]:
    if len(path) != geometry.hops:
        raise ConfigError(f"a path has exactly {geometry.hops} hops, got {len(path)}")
    for hop in path:
        _id("node id", hop.node_id)
        _delay(hop.delay_ms)
    terminal = _terminal_commands(recipient, path[-1].delay_ms, surb_id)
    slot, routing = geometry.slot_size, geometry.routing_info_size
    keys: list[HopKeys] = []
    cts: list[bytes] = []
    for hop in path:
        shared, ct = encapsulate(hop.public_key)
        keys.append(derive_hop_keys(geometry, shared))
        cts.append(ct)
    streams = [_stream(k.header_key, k.header_iv, bytes(routing + slot)) for k in keys]
    filler = b""
    for j in range(geometry.hops - 1):
        start = routing - j * slot
        filler = _xor(filler + bytes(slot), streams[j][start : routing + slot])
    last = geometry.hops - 1
    beta = _xor(terminal + bytes(_CT), streams[last][:slot]) + filler
    mac = _mac(keys[last].mac, cts[last], beta)
    for i in range(last - 1, -1, -1):
        plain = _hop_commands(path[i + 1].node_id, mac, path[i].delay_ms) + cts[i + 1]
        beta = _xor(plain + beta[: routing - slot], streams[i][:routing])
        mac = _mac(keys[i].mac, cts[i], beta)
    return VERSION + cts[0] + beta + mac, keys


def create_packet(
    geometry: Geometry,
    path: Sequence[PathHop],
    recipient: bytes,
    payload: bytes,
    *,
    encapsulate: Encapsulate = cached_encapsulate,
) -> bytes:
    """A packet that carries ``payload`` along ``path`` to ``recipient`` (§4).

    ``payload`` must be exactly ``geometry.payload_size`` bytes; the packet goes
    to ``path[0].node_id``.  The last hop delivers the payload to
    ``recipient`` (itself when it is the recipient).
    """
    if type(payload) is not bytes or len(payload) != geometry.payload_size:
        raise ConfigError(f"payload must be {geometry.payload_size} bytes")
    header, keys = _build_header(geometry, path, recipient, None, encapsulate)
    block = bytes(TAG_SIZE) + payload
    for k in reversed(keys):
        block = lioness.encrypt(k.payload_key, k.payload_iv, block)
    return header + block


# ---------------------------------------------------------------------- unwrap


@attrs.frozen
class Forward:
    """Hold ``packet`` for ``delay_ms``, then send it to ``next_hop``."""

    next_hop: bytes
    delay_ms: int
    packet: bytes


@attrs.frozen
class Deliver:
    """This hop is the last: hold for ``delay_ms``, then hand ``payload`` to ``recipient``.

    Without ``surb_id`` the payload is the user payload (its tag verified).
    With it, the payload is a reply block's still-encrypted LIONESS block,
    which only the reply block's creator can open (§7).
    """

    recipient: bytes
    delay_ms: int
    surb_id: bytes | None
    payload: bytes


@attrs.frozen
class Drop:
    """The packet is invalid for this hop; ``reason`` names why (§6.2)."""

    reason: str


def unwrap(
    geometry: Geometry, key: xwing.XWingPrivateKey, packet: bytes
) -> Forward | Deliver | Drop:
    """Process ``packet`` as the hop holding ``key``: decapsulate, verify, decrypt (§6).

    ``Drop("bad-mac")`` means the packet was not made for this key (or was
    tampered with); a caller that holds several epoch keys tries the next.
    Replay detection is the caller's (:func:`replay_tag`, §6.2).
    """
    packet_size, header_end, zero_slot, salt = _layout(geometry)
    if len(packet) != packet_size:
        return Drop("wrong-size")
    if packet[:_V] != VERSION:
        return Drop("bad-version")
    mac_at = header_end - MAC_SIZE
    try:
        shared = key.decapsulate(packet[_V : _V + _CT])
    except CryptoError:
        return Drop("bad-kem")
    okm = HKDF(_SHA256, _KEYS_SIZE, salt, _HOP_INFO).derive(shared)  # as derive_hop_keys
    view = memoryview(packet)  # slices of the packet without copies
    # The MAC covers version ‖ ct ‖ routing information: the header up to its MAC.
    # HMAC-SHA256 from ``cryptography``, as the HKDF: the stdlib's hmac.digest
    # calls the system OpenSSL's one-shot HMAC(), which fetches the MAC by
    # name on every call (slow in OpenSSL 3.0), and a mix pays that per packet.
    mac = hmac_sha256.HMAC(okm[0:32], _SHA256)
    mac.update(view[:mac_at])
    if not hmac.compare_digest(mac.finalize(), view[mac_at:header_end]):
        return Drop("bad-mac")
    stream = Cipher(algorithms.ChaCha20(okm[32:64], _COUNTER0 + okm[64:76]), None).encryptor()
    head = stream.update(view[_V + _CT : mac_at])  # commands ‖ ct' ‖ routing'[: R - S]
    if head[0] == CMD_NEXT_HOP and head[65] == CMD_DELAY:  # exactly next-hop ‖ delay: forward
        next_hop, next_mac, delay_ms = head[1:33], head[33:65], int.from_bytes(head[66:70], "big")
    else:
        commands = _parse_commands(head[:COMMANDS_SIZE])
        if commands is None:
            return Drop("bad-commands")
        if commands.next_hop is None:
            return _deliver(commands, lioness.decrypt(okm[76:204], okm[204:252], view[header_end:]))
        next_hop, next_mac, delay_ms = commands.next_hop, commands.next_mac, commands.delay_ms
    # The halves of the payload go straight into the packet: no joined copy.
    left, right = lioness.decrypt_parts(okm[76:204], okm[204:252], view[header_end:])
    tail = stream.update(zero_slot)  # what this hop appends: keystream only
    parts = (VERSION, memoryview(head)[COMMANDS_SIZE:], tail, next_mac, left, right)
    return Forward(next_hop, delay_ms, b"".join(parts))


def _deliver(commands: _Commands, block: bytes) -> Deliver | Drop:
    """The last hop's result for its decrypted payload ``block``."""
    if commands.surb_id is not None:
        return Deliver(commands.recipient, commands.delay_ms, commands.surb_id, block)
    if any(block[:TAG_SIZE]):
        return Drop("bad-payload")
    return Deliver(commands.recipient, commands.delay_ms, None, block[TAG_SIZE:])


# ------------------------------------------------------------ reply blocks


def surb_payload_keys(geometry: Geometry, seed: bytes) -> tuple[bytes, bytes]:
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=lioness.KEY_SIZE + lioness.IV_SIZE,
        salt=geometry.digest,
        info=_SURB_INFO,
    ).derive(seed)
    return okm[: lioness.KEY_SIZE], okm[lioness.KEY_SIZE :]


@attrs.frozen
class Surb:
    """A single-use reply block: what a requester sends so it can be answered (§7)."""

    first_hop: bytes
    header: bytes
    key_seed: bytes

    def to_bytes(self) -> bytes:
        """``header ‖ first hop ‖ key seed``, the form carried inside a request."""
        return self.header + self.first_hop + self.key_seed

    @classmethod
    def from_bytes(cls, geometry: Geometry, data: bytes) -> Surb | None:
        """The reply block in ``data``, or None if it has the wrong size or version."""
        if len(data) != geometry.surb_size or data[:_V] != VERSION:
            return None
        h = geometry.header_size
        return cls(data[h : h + NODE_ID_SIZE], data[:h], data[h + NODE_ID_SIZE :])


@attrs.frozen(repr=False)
class SurbKeys:
    """What a reply block's creator keeps to open the reply: its id and every hop's key."""

    surb_id: bytes
    hop_keys: tuple[tuple[bytes, bytes], ...]
    key_seed: bytes

    def __repr__(self) -> str:
        return f"SurbKeys(surb_id={self.surb_id.hex()})"


def create_surb(
    geometry: Geometry,
    path: Sequence[PathHop],
    recipient: bytes,
    *,
    encapsulate: Encapsulate = cached_encapsulate,
    rng: Callable[[int], bytes] = os.urandom,
) -> tuple[Surb, SurbKeys]:
    """A reply block routed along ``path`` back to ``recipient`` (the creator), and its keys."""
    surb_id = rng(SURB_ID_SIZE)
    key_seed = rng(32)
    header, keys = _build_header(geometry, path, recipient, surb_id, encapsulate)
    surb = Surb(path[0].node_id, header, key_seed)
    hop_keys = tuple((k.payload_key, k.payload_iv) for k in keys)
    return surb, SurbKeys(surb_id, hop_keys, key_seed)


def surb_reply_packet(geometry: Geometry, surb: Surb, payload: bytes) -> tuple[bytes, bytes]:
    """(first hop, packet): the replier's answer through ``surb``; it learns no path."""
    if type(payload) is not bytes or len(payload) != geometry.payload_size:
        raise ConfigError(f"payload must be {geometry.payload_size} bytes")
    key, iv = surb_payload_keys(geometry, surb.key_seed)
    return surb.first_hop, surb.header + lioness.encrypt(key, iv, bytes(TAG_SIZE) + payload)


def open_surb_reply(geometry: Geometry, keys: SurbKeys, block: bytes) -> bytes | None:
    """The reply's user payload, or None if the block was tampered with (tag not zero)."""
    if len(block) != geometry.block_size:
        return None
    for key, iv in reversed(keys.hop_keys):
        block = lioness.encrypt(key, iv, block)
    key, iv = surb_payload_keys(geometry, keys.key_seed)
    block = lioness.decrypt(key, iv, block)
    if any(block[:TAG_SIZE]):
        return None
    return block[TAG_SIZE:]
