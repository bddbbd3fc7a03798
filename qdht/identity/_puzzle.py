"""Node IDs and the static puzzle (03-identity.md §3, §4; S/Kademlia's static puzzle).

``node_id = SHA3-256(NODE_ID_DOMAIN ‖ SHA3-256(xwing_pk) ‖ SHA3-256(mldsa_pk) ‖ nonce)``;
the nonce is valid at difficulty ``d`` when ``SHA3-256(node_id)`` starts with
``d`` zero bits.  Minting tries nonces (≈ 2^d tries); verifying is two hashes.
"""

from __future__ import annotations

import hashlib
import os
from typing import Final

from qdht.crypto.hashes import sha3_256
from qdht.errors import ConfigError

__all__ = [
    "DEFAULT_PUZZLE_DIFFICULTY",
    "MAX_PUZZLE_DIFFICULTY",
    "NODE_ID_DOMAIN",
    "NONCE_SIZE",
    "compute_node_id",
    "mint_nonce",
    "node_id_from_hashes",
    "puzzle_ok",
]

#: Domain separation prefix of the node ID hash.
NODE_ID_DOMAIN: Final = b"qdht/v1/node-id"
NONCE_SIZE: Final = 8
#: Default network difficulty (leading zero bits).  Measured here: 2^19 tries
#: of ~1.9 µs take about a second in CPython (``qdht-bench identity``).  A network
#: parameter: every node of one network must use the same value
#: (03-identity.md §4).
DEFAULT_PUZZLE_DIFFICULTY: Final = 19
MAX_PUZZLE_DIFFICULTY: Final = 64
_HASH_SIZE: Final = 32


def _check_difficulty(difficulty: int) -> None:
    if type(difficulty) is not int or not 0 <= difficulty <= MAX_PUZZLE_DIFFICULTY:
        raise ConfigError(f"difficulty must be an integer in 0..{MAX_PUZZLE_DIFFICULTY}")


def _check(name: str, value: bytes, size: int) -> None:
    if type(value) is not bytes or len(value) != size:
        raise ConfigError(f"{name} must be {size} bytes")


def compute_node_id(xwing_public: bytes, mldsa_public_hash: bytes, nonce: bytes) -> bytes:
    """The 32-byte node ID; ``mldsa_public_hash`` is SHA3-256 of the ML-DSA public key."""
    return node_id_from_hashes(sha3_256(xwing_public), mldsa_public_hash, nonce)


def node_id_from_hashes(xwing_public_hash: bytes, mldsa_public_hash: bytes, nonce: bytes) -> bytes:
    """:func:`compute_node_id` from SHA3-256 of both public keys (03-identity.md §3)."""
    _check("xwing_public_hash", xwing_public_hash, _HASH_SIZE)
    _check("mldsa_public_hash", mldsa_public_hash, _HASH_SIZE)
    _check("nonce", nonce, NONCE_SIZE)
    return sha3_256(NODE_ID_DOMAIN, xwing_public_hash, mldsa_public_hash, nonce)


def _leading_zero_bits_ok(digest: bytes, difficulty: int) -> bool:
    full, rest = divmod(difficulty, 8)
    if digest[:full] != bytes(full):
        return False
    return rest == 0 or digest[full] >> (8 - rest) == 0


def puzzle_ok(node_id: bytes, difficulty: int) -> bool:
    """Whether SHA3-256(node_id) has at least ``difficulty`` leading zero bits."""
    _check_difficulty(difficulty)
    if type(node_id) is not bytes or len(node_id) != _HASH_SIZE:
        return False
    return _leading_zero_bits_ok(hashlib.sha3_256(node_id).digest(), difficulty)


def mint_nonce(xwing_public: bytes, mldsa_public_hash: bytes, difficulty: int) -> bytes:
    """A nonce that solves the puzzle for these keys (about 2^difficulty tries).

    Starts from a random 64-bit counter so that two mints of the same keys do
    not race over the same nonces; the prefix hash state is computed once and
    copied for every try.
    """
    _check_difficulty(difficulty)
    _check("mldsa_public_hash", mldsa_public_hash, _HASH_SIZE)
    prefix = hashlib.sha3_256(NODE_ID_DOMAIN)
    prefix.update(sha3_256(xwing_public))
    prefix.update(mldsa_public_hash)
    full, rest = divmod(difficulty, 8)
    zeros = bytes(full)
    limit = 1 << (8 - rest)  # the byte after the zero bytes must be < limit
    sha3 = hashlib.sha3_256
    counter = int.from_bytes(os.urandom(NONCE_SIZE), "little")
    mask = (1 << 64) - 1
    while True:
        nonce = counter.to_bytes(NONCE_SIZE, "little")
        h = prefix.copy()
        h.update(nonce)
        check = sha3(h.digest()).digest()
        if check[:full] == zeros and (rest == 0 or check[full] < limit):
            return nonce
        counter = (counter + 1) & mask
