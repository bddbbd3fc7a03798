"""The training core's anonymous input (14-training.md §9.5), sans-IO: every bad
``device_signed`` is refused and counted, a good one is taken as its device's."""

from __future__ import annotations

import numpy as np

from qdht.crypto.hashes import sha3_256
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.models.training import (
    ANONYMOUS_TRAINING_TYPES,
    RoundCoordinator,
    RoundParams,
    SendAnonymously,
    SoftmaxRegression,
    TrainingCore,
    TrainingLayerConfig,
    round_id,
)
from qdht.wire import (
    FL_SIGNED_CONTEXT,
    DeviceSigned,
    RoundUpdate,
    decode,
    encode,
    signed_message_bytes,
)

KEY = MLDSAPrivateKey.from_seed(sha3_256(b"test/anon/coordinator"))
COORDINATOR = sha3_256(b"test/anon/coordinator-id")
DEVICE_KEY = MLDSAPrivateKey.from_seed(sha3_256(b"test/anon/device"))
DEVICE = sha3_256(b"test/anon/device-id")
OTHER_KEY = MLDSAPrivateKey.from_seed(sha3_256(b"test/anon/other"))
TASK = sha3_256(b"test/anon/task")
TRAINER = SoftmaxRegression(64, 10)


def coordinating() -> tuple[TrainingCore, RoundUpdate]:
    """A coordinator with an open round, knowing DEVICE's key; a valid update of DEVICE."""
    core = TrainingCore(COORDINATOR, TrainingLayerConfig(), unix_offset=1_800_000_000.0)
    core.coordinator = RoundCoordinator(
        signing_key=KEY,
        node_id=COORDINATOR,
        task=TASK,
        model=TRAINER.init_params(np.random.default_rng(0)),
        params=RoundParams(q=1.0, clip=0.0, noise=0.0, duration=30.0),
        population=1,
        rng=np.random.default_rng(1),
    )
    core.enrol([(DEVICE, "device-address")])
    core.device_keys[DEVICE] = DEVICE_KEY.public_key_bytes()
    announce = core.start_round(0.0)
    rid = round_id(COORDINATOR, TASK, announce.round)
    values = np.zeros(announce.size, dtype="<f4").tobytes()
    return core, RoundUpdate(rid, DEVICE, 10, announce.size, "none", values)


def signed(node: bytes, message: bytes, key: MLDSAPrivateKey) -> bytes:
    sig = key.sign(signed_message_bytes(node, message), FL_SIGNED_CONTEXT)
    return encode(DeviceSigned(node, message, sig))


def test_a_signed_update_is_taken_as_its_devices() -> None:
    core, update = coordinating()
    assert core.anonymous_types == ANONYMOUS_TRAINING_TYPES
    assert core.receive_anonymous(signed(DEVICE, encode(update), DEVICE_KEY), 1.0)
    assert core.stats()["updates_accepted"] == 1
    assert core.stats()["received_anonymously"] == 1
    # The same message again: the round core refuses the duplicate.
    assert not core.receive_anonymous(signed(DEVICE, encode(update), DEVICE_KEY), 1.0)


def test_bad_anonymous_messages_are_refused_and_counted() -> None:
    core, update = coordinating()
    data = encode(update)
    stranger = sha3_256(b"test/anon/stranger")
    cases = {
        "malformed-signed": b"\xa1dtypedjunk",
        "unknown-device": signed(stranger, data, OTHER_KEY),
        "bad-device-signature": signed(DEVICE, data, OTHER_KEY),
        "not-signable": signed(DEVICE, encode(decode(core.messages_to_send()[0][2])), DEVICE_KEY),
    }
    for reason, payload in cases.items():
        assert not core.receive_anonymous(payload, 1.0), reason
        assert core.stats()["drops"][reason] == 1, reason
    # Signed, but naming another node inside: the §9.3 check still applies.
    core.device_keys[stranger] = OTHER_KEY.public_key_bytes()
    assert not core.receive_anonymous(signed(stranger, data, OTHER_KEY), 1.0)
    assert core.stats()["drops"]["not-the-sender"] == 1
    # Over a session, a signed message is refused (it only comes through an exit).
    core.receive_message(DEVICE, "addr", signed(DEVICE, data, DEVICE_KEY), 1.0)
    assert core.stats()["drops"]["signed-over-session"] == 1
    assert core.stats().get("updates_accepted", 0) == 0
    # Not coordinating: nothing is taken.
    idle = TrainingCore(DEVICE, TrainingLayerConfig(), unix_offset=0.0)
    assert not idle.receive_anonymous(signed(DEVICE, data, DEVICE_KEY), 0.0)
    assert idle.stats()["drops"]["not-a-coordinator"] == 1


def test_a_device_with_a_signer_sends_through_the_mixnet() -> None:
    core = TrainingCore(DEVICE, TrainingLayerConfig(mixnet=True), unix_offset=0.0)
    core.sign = lambda data: DEVICE_KEY.sign(data, FL_SIGNED_CONTEXT)
    _, update = coordinating()
    announce_core, _ = coordinating()
    announce = announce_core.coordinator.announcement  # type: ignore[union-attr]
    assert announce is not None
    core.submit_update(announce, encode(update))
    assert core.messages_to_send() == []  # nothing over the session
    event = core.next_event()
    assert type(event) is SendAnonymously
    assert event.coordinator == COORDINATOR
    message = decode(event.data, expect=(DeviceSigned,))
    assert type(message) is DeviceSigned
    assert message.message == encode(update)
