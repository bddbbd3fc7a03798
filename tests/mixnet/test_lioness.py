"""LIONESS-BLAKE2b-ChaCha20 against the published vector, and its wide-block property."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qdht.errors import ConfigError
from qdht.mixnet import lioness as lioness

KAT = Path(__file__).resolve().parents[2] / "protocol-spec" / "kat" / "lioness.json"


def test_published_vector_encrypts_and_decrypts() -> None:
    (vector,) = json.loads(KAT.read_text(encoding="utf-8"))["tests"]
    key, iv = bytes.fromhex(vector["key"]), bytes.fromhex(vector["iv"])
    plain, cipher = bytes.fromhex(vector["plaintext"]), bytes.fromhex(vector["ciphertext"])
    assert lioness.encrypt(key, iv, plain) == cipher
    assert lioness.decrypt(key, iv, cipher) == plain
    # The halves a forwarding mix joins into its packet, from a view of the block.
    left, right = lioness.decrypt_parts(key, iv, memoryview(cipher))
    assert (left, right) == (plain[:32], plain[32:])


@pytest.mark.parametrize("position", [0, 31, 32, 1000, 2079])
def test_one_flipped_bit_garbles_the_whole_block(position: int) -> None:
    key, iv = bytes(range(128)), bytes(range(48))
    cipher = lioness.encrypt(key, iv, bytes(2080))
    flipped = bytearray(cipher)
    flipped[position] ^= 1
    plain = lioness.decrypt(key, iv, bytes(flipped))
    # Both halves change: the zero tag at the front cannot survive a flip anywhere.
    assert plain[:32] != bytes(32)
    assert plain[32:] != bytes(2048)


def test_wrong_key_iv_or_block_size_is_local_misuse() -> None:
    with pytest.raises(ConfigError, match="key"):
        lioness.encrypt(bytes(127), bytes(48), bytes(64))
    with pytest.raises(ConfigError, match="IV"):
        lioness.encrypt(bytes(128), bytes(47), bytes(64))
    with pytest.raises(ConfigError, match="block"):
        lioness.decrypt(bytes(128), bytes(48), bytes(32))
