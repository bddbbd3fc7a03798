"""Node IDs and the static puzzle."""

from __future__ import annotations

import hashlib

import pytest

from qdht.crypto.hashes import sha3_256
from qdht.errors import ConfigError
from qdht.identity import (
    DEFAULT_PUZZLE_DIFFICULTY,
    NODE_ID_DOMAIN,
    NONCE_SIZE,
    Identity,
    compute_node_id,
    mint_nonce,
    node_id_from_hashes,
    puzzle_ok,
)

from .conftest import DIFFICULTY


def test_node_id_formula(identity: Identity) -> None:
    expected = hashlib.sha3_256(
        NODE_ID_DOMAIN
        + sha3_256(identity.xwing.public_key_bytes())
        + sha3_256(identity.mldsa.public_key_bytes())
        + identity.nonce
    ).digest()
    assert identity.node_id == expected
    xwing_hash = sha3_256(identity.xwing.public_key_bytes())
    assert node_id_from_hashes(xwing_hash, identity.mldsa_public_hash, identity.nonce) == expected
    assert identity.mldsa_public_hash == sha3_256(identity.mldsa.public_key_bytes())
    assert len(identity.nonce) == NONCE_SIZE == 8


def test_minted_identity_solves_its_puzzle(identity: Identity) -> None:
    assert identity.difficulty == DIFFICULTY
    assert puzzle_ok(identity.node_id, DIFFICULTY)


@pytest.mark.parametrize("difficulty", [0, 1, 7, 8, 9, 12])
def test_mint_nonce_meets_exactly_the_requested_bits(difficulty: int) -> None:
    xpk, mhash = bytes(1216), bytes(32)
    nonce = mint_nonce(xpk, mhash, difficulty)
    node_id = compute_node_id(xpk, mhash, nonce)
    assert puzzle_ok(node_id, difficulty)
    digest = hashlib.sha3_256(node_id).digest()
    zero_bits = 256 - int.from_bytes(digest, "big").bit_length()
    assert zero_bits >= difficulty


def test_puzzle_ok_counts_leading_zero_bits() -> None:
    # Find node IDs whose check hash has a known number of leading zero bits.
    for i in range(5000):
        node_id = i.to_bytes(32, "big")
        digest = hashlib.sha3_256(node_id).digest()
        zeros = 256 - int.from_bytes(digest, "big").bit_length()
        assert puzzle_ok(node_id, zeros)
        assert not puzzle_ok(node_id, zeros + 1)


def test_puzzle_ok_rejects_malformed_node_ids() -> None:
    assert not puzzle_ok(bytes(31), 0)


def test_puzzle_difficulty_is_bounded() -> None:
    with pytest.raises(ConfigError, match="difficulty"):
        puzzle_ok(bytes(32), 65)
    with pytest.raises(ConfigError, match="difficulty"):
        mint_nonce(bytes(1216), bytes(32), -1)


def test_identity_with_wrong_nonce_is_rejected(identity: Identity) -> None:
    # A nonce for another difficulty almost never solves a 20-bit puzzle.
    with pytest.raises(ConfigError, match="puzzle"):
        Identity(identity.xwing, identity.mldsa, identity.nonce, 40)


def test_compute_node_id_checks_sizes() -> None:
    with pytest.raises(ConfigError, match="nonce must be 8 bytes"):
        compute_node_id(bytes(1216), bytes(32), bytes(7))
    with pytest.raises(ConfigError, match="mldsa_public_hash"):
        compute_node_id(bytes(1216), bytes(31), bytes(8))
    with pytest.raises(ConfigError, match="xwing_public_hash"):
        node_id_from_hashes(bytes(1216), bytes(32), bytes(8))


def test_default_difficulty_is_a_network_parameter_of_sane_size() -> None:
    assert 16 <= DEFAULT_PUZZLE_DIFFICULTY <= 24
