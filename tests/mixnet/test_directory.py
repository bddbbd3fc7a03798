"""Signed mix descriptors and the t-of-n directory."""

from __future__ import annotations

import functools

import attrs

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.crypto.xwing import XWingPrivateKey
from qdht.identity import Identity
from qdht.mixnet import (
    DirectoryAuthority,
    MixnetConfig,
    sign_descriptor,
    sign_directory,
    verify_descriptor,
    verify_directory,
    with_signatures,
)
from qdht.wire import Address, Contact, MixDescriptor, MixDirectory, decode, encode

from ._support import seeded

NOW = 1_750_000_000
EPOCH = NOW // 1200
DIFFICULTY = 4


@functools.cache
def _identity(name: str) -> Identity:
    """One identity per name (minting picks a random nonce, so mint once)."""
    return Identity.from_keys(
        XWingPrivateKey.from_seed(seeded(f"{name}/xwing")),
        MLDSAPrivateKey.from_seed(seeded(f"{name}/mldsa")),
        DIFFICULTY,
    )


def _descriptor(name: str, layer: int = 0) -> MixDescriptor:
    identity = _identity(name)
    contact = Contact(identity.node_id, (Address("udp", "192.0.2.7", 4000),))
    keys = {EPOCH: _mix_key(f"{name}/k0"), EPOCH + 1: _mix_key(f"{name}/k1")}
    return sign_descriptor(identity, contact, layer, keys, now=NOW)


def _mix_key(label: str) -> bytes:
    return XWingPrivateKey.from_seed(seeded(label)).public_key_bytes()


def test_descriptor_round_trips_and_verifies() -> None:
    descriptor = _descriptor("mix-a")
    again = decode(encode(descriptor))
    assert again == descriptor
    assert verify_descriptor(descriptor, now=NOW, difficulty=DIFFICULTY) is None
    assert descriptor.key_for(EPOCH + 1) == _mix_key("mix-a/k1")
    assert descriptor.key_for(EPOCH + 5) is None


def test_bad_descriptors_are_refused_by_reason() -> None:
    good = _descriptor("mix-a")
    other = _descriptor("mix-b")
    forged = attrs.evolve(good, layer=1)
    wrong_node = attrs.evolve(good, contact=other.contact)
    stolen_cert = attrs.evolve(good, cert=other.cert)
    future = _descriptor("mix-a")
    identity = _identity("mix-a")
    malformed = sign_descriptor(identity, good.contact, 0, {EPOCH: b"\xff" * 1216}, now=NOW)
    reasons = [
        verify_descriptor(forged, now=NOW, difficulty=DIFFICULTY),
        verify_descriptor(wrong_node, now=NOW, difficulty=DIFFICULTY),
        verify_descriptor(stolen_cert, now=NOW, difficulty=DIFFICULTY),
        verify_descriptor(future, now=NOW - 3600, difficulty=DIFFICULTY),
        verify_descriptor(good, now=NOW, difficulty=40),
        verify_descriptor(malformed, now=NOW, difficulty=DIFFICULTY),
    ]
    assert reasons == [
        "descriptor-bad-signature",
        "descriptor-wrong-node",
        "descriptor-wrong-node",
        "descriptor-from-future",
        "descriptor-bad-cert",
        "descriptor-bad-key",
    ]


def _authorities(n: int) -> list[MLDSAPrivateKey]:
    return [MLDSAPrivateKey.from_seed(seeded(f"authority-{i}")) for i in range(n)]


def _config(keys: list[MLDSAPrivateKey], threshold: int) -> MixnetConfig:
    return MixnetConfig(
        directory_keys=tuple(k.public_key_bytes() for k in keys), directory_threshold=threshold
    )


def test_directory_needs_t_distinct_valid_signatures() -> None:
    keys = _authorities(3)
    config = _config(keys, 2)
    authority = DirectoryAuthority(config, difficulty=DIFFICULTY)
    for i, name in enumerate(["mix-a", "mix-b", "mix-c"]):
        assert authority.add_descriptor(_descriptor(name, i), NOW)
    unsigned = authority.build(EPOCH)
    assert unsigned is not None
    assert len(unsigned.mixes) == 3
    assert authority.build(EPOCH + 7) is None  # no mix has a key for it
    one = with_signatures(unsigned, [(0, sign_directory(unsigned, keys[0]))])
    assert verify_directory(one, config) == (None, "directory-too-few-signatures")
    # The same key twice, or a signature by a key at the wrong index, does not count.
    twice = with_signatures(one, [(1, sign_directory(unsigned, keys[0]))])
    assert verify_directory(twice, config)[1] == "directory-too-few-signatures"
    two = with_signatures(one, [(2, sign_directory(unsigned, keys[2]))])
    view, reason = verify_directory(decode(encode(two)), config)  # type: ignore[arg-type]
    assert reason is None
    assert view is not None
    assert (view.epoch, [m.node_id for m in view.mixes]) == (
        EPOCH,
        [m.node_id for m in unsigned.mixes],
    )
    # Any change to the signed list breaks every signature.
    tampered = MixDirectory(EPOCH + 1, two.hops, two.mixes, two.signatures)
    assert verify_directory(tampered, config)[1] == "directory-too-few-signatures"
    assert verify_directory(two, MixnetConfig(hops=5))[1] == "directory-wrong-hops"
    bad_entry = attrs.evolve(two.mixes[0], key=b"\xff" * 1216)
    bad_list = MixDirectory(EPOCH, 3, (bad_entry, *two.mixes[1:]))
    bad = with_signatures(bad_list, [(i, sign_directory(bad_list, keys[i])) for i in (0, 1)])
    assert verify_directory(bad, config) == (None, "directory-bad-key")
    assert verify_directory(two, MixnetConfig())[1] == "directory-no-keys"


def test_authority_keeps_the_newest_descriptor_and_counts_bad_ones() -> None:
    config = _config(_authorities(1), 1)
    authority = DirectoryAuthority(config, difficulty=DIFFICULTY)
    good = _descriptor("mix-a")
    assert authority.add_descriptor(good, NOW)
    assert not authority.add_descriptor(good, NOW)
    assert not authority.add_descriptor(attrs.evolve(good, layer=2), NOW)
    assert authority.stats() == {
        "descriptors": 1,
        "drops": {"descriptor-stale": 1, "descriptor-bad-signature": 1},
    }
