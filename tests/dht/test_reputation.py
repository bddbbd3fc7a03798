"""Per-peer reputation: scores, decay, bans that grow, bounded memory, stats."""

from __future__ import annotations

import pytest

from qdht.dht import DhtCore, Reputation, ReputationConfig
from qdht.errors import ConfigError
from qdht.wire import Address, Ping, encode

A = b"A" * 32
B = b"B" * 32


def test_answers_raise_the_score_up_to_a_cap_and_offences_lower_it() -> None:
    rep = Reputation(ReputationConfig(max_score=5.0))
    for _ in range(10):
        rep.answered(A, 0.0)
    assert rep.score(A, 0.0) == 5.0
    rep.offence(A, "timeout", 0.0)
    assert rep.score(A, 0.0) == 4.0
    rep.offence(A, "invalid-message", 0.0)
    assert rep.score(A, 0.0) == -6.0
    assert rep.score(B, 0.0) == 0.0
    assert not rep.banned(A, 0.0)


def test_a_late_answer_takes_its_timeout_back_and_nothing_else() -> None:
    rep = Reputation(ReputationConfig(max_score=5.0))
    rep.offence(A, "timeout", 0.0)
    rep.answered_late(A, 0.0)
    assert rep.score(A, 0.0) == 0.0
    rep.offence(A, "invalid-message", 0.0)
    rep.answered_late(A, 0.0)  # forgives one timeout's worth, not the bad message
    assert rep.score(A, 0.0) == -9.0
    for _ in range(10):
        rep.answered(B, 0.0)
        rep.answered_late(B, 0.0)
    assert rep.score(B, 0.0) == 5.0  # capped like answers


def test_scores_decay_toward_zero_with_the_half_life() -> None:
    rep = Reputation(ReputationConfig(half_life=100.0))
    rep.offence(A, "forged-record", 0.0)
    assert rep.score(A, 0.0) == -50.0
    assert rep.score(A, 100.0) == pytest.approx(-25.0)
    assert rep.score(A, 1000.0) == pytest.approx(-50.0 / 1024)


def test_repeated_offences_ban_for_a_while_and_longer_each_time() -> None:
    rep = Reputation(ReputationConfig(ban_duration=60.0, max_ban=200.0))
    assert not rep.offence(A, "forged-record", 0.0)
    assert rep.offence(A, "forged-record", 0.0)  # -100: banned
    assert rep.banned(A, 1.0)
    assert rep.banned(A, 59.9)
    assert not rep.banned(A, 60.0)
    # A lookup's view: None while banned, then the score, which started over at the ban.
    assert rep.priority(A, 59.9) is None
    assert rep.priority(A, 60.0) == rep.score(A, 60.0)
    assert rep.priority(B, 1.0) == 0.0  # never seen
    # An offence during a ban does not start another one.
    assert not rep.offence(A, "invalid-message", 30.0)
    # The score started over at the ban; the next ban lasts twice as long, then the cap.
    rep.offence(A, "forged-record", 100.0)
    assert rep.offence(A, "forged-record", 100.0)
    assert rep.banned(A, 219.0)
    assert not rep.banned(A, 220.0)
    rep.offence(A, "forged-record", 300.0)
    assert rep.offence(A, "forged-record", 300.0)
    assert rep.banned(A, 499.0)
    assert not rep.banned(A, 500.0)
    stats = rep.stats(300.0)
    assert stats["bans"] == 3
    assert stats["banned"] == 1
    assert stats["offences"] == {"forged-record": 6, "invalid-message": 1}
    assert [b["offence"] for b in stats["recent_bans"]] == ["forged-record"] * 3


def test_timeouts_alone_take_long_to_ban_and_are_forgiven() -> None:
    rep = Reputation(ReputationConfig(half_life=600.0))
    # One timeout a minute for a day: decay keeps the score far from a ban.
    for minute in range(1440):
        rep.offence(A, "timeout", minute * 60.0)
    assert not rep.banned(A, 86400.0)
    assert -20.0 < rep.score(A, 86400.0) < -10.0


def test_memory_is_bounded_least_recently_updated_forgotten() -> None:
    rep = Reputation(ReputationConfig(max_peers=3))
    for i in range(5):
        rep.offence(bytes([i]) * 32, "invalid-message", float(i))
    assert len(rep) == 3
    assert rep.score(bytes([0]) * 32, 5.0) == 0.0
    assert rep.score(bytes([4]) * 32, 4.0) == -10.0
    assert rep.stats()["forgotten"] == 2


def test_peers_back_at_neutral_are_forgotten_but_banned_ones_are_not() -> None:
    # Memory follows the peers dealt with lately: once a never-banned peer's
    # score has decayed to about 0 it is dropped (it scores 0 either way).
    cfg = ReputationConfig(half_life=10.0, ban_below=-30.0, neutral=0.05)
    rep = Reputation(cfg)
    rep.answered(A, 0.0)  # +1
    rep.offence(B, "invalid-message", 0.0)  # -10
    c, d = b"C" * 32, b"D" * 32
    for _ in range(3):
        rep.offence(c, "invalid-message", 0.0)  # banned at -30
    assert rep.banned(c, 0.0)
    rep.answered(d, 50.0)  # 5 half-lives on: A at 1/32, B at -10/32
    assert rep.score(A, 50.0) == 0.0  # forgotten
    assert rep.score(B, 50.0) == pytest.approx(-10 / 32)  # not yet neutral
    assert len(rep) == 3
    rep.answered(d, 200.0)  # 20 half-lives: B neutral too; c was banned, kept
    assert len(rep) == 2
    assert rep.ban_ends(c) > 0
    assert rep.stats()["forgotten"] == 2


def test_unknown_offence_and_bad_config_raise_config_error() -> None:
    rep = Reputation()
    with pytest.raises(ConfigError, match="kind"):
        rep.offence(A, "rudeness", 0.0)
    with pytest.raises(ConfigError, match="ban_below"):
        ReputationConfig(ban_below=1.0)
    with pytest.raises(ConfigError, match="max_peers"):
        ReputationConfig(max_peers=0)


def test_core_bans_a_peer_that_keeps_sending_garbage_and_drops_its_messages() -> None:
    core = DhtCore(bytes(32), now=0.0)
    addr = Address("udp", "192.0.2.1", 6881)
    for _ in range(10):
        core.receive_message(A, addr, b"\xff\x00garbage", 1.0)
    stats = core.stats()
    assert stats["reputation"]["bans"] == 1
    assert stats["reputation"]["banned"] == 1
    assert stats["drops"]["malformed"] == 10
    core.messages_to_send()
    # Banned: even a valid request is dropped unanswered, and counted.
    core.receive_message(A, addr, encode(Ping(b"R" * 8)), 2.0)
    assert core.messages_to_send() == []
    assert core.stats()["drops"]["banned"] == 1
    assert A not in core.routing
    # Another peer is served as usual.
    core.receive_message(B, addr, encode(Ping(b"S" * 8)), 2.0)
    assert {dst for dst, _a, _p in core.messages_to_send()} == {B}


def test_any_below_is_false_only_when_no_peer_can_score_below_the_threshold() -> None:
    # The routing table skips scoring a full bucket's entries one by one when
    # nobody scores below its eviction threshold: never a wrong "no".
    rep = Reputation(ReputationConfig(max_peers=2, ban_below=-30.0))
    assert not rep.any_below(-10.0)
    for _ in range(9):
        rep.offence(A, "timeout", 0.0)
    assert not rep.any_below(-10.0)  # -9
    rep.offence(A, "timeout", 0.0)
    rep.offence(A, "timeout", 0.0)
    assert rep.score(A, 0.0) == -11.0
    assert rep.any_below(-10.0)
    assert not rep.any_below(-12.0)
    assert rep.any_below(-10.0)
    for _ in range(20):
        rep.answered(A, 1.0)
    assert not rep.any_below(-10.0)  # answered back above it
    rep.offence(B, "invalid-message", 2.0)
    rep.offence(B, "timeout", 2.0)
    assert rep.any_below(-10.0)
    rep.offence(B, "forged-record", 2.0)  # banned: starts over at 0
    assert rep.banned(B, 2.0)
    assert not rep.any_below(-10.0)
    rep.offence(A, "invalid-message", 3.0)
    rep.offence(A, "invalid-message", 3.0)
    assert rep.score(A, 3.0) < -10.0
    assert rep.any_below(-10.0)
    rep.answered(b"C" * 32, 4.0)
    rep.answered(B, 4.0)  # max_peers = 2: A is forgotten
    assert rep.score(A, 4.0) == 0.0
    assert not rep.any_below(-10.0)
    assert rep.any_below(1.0)  # a positive score may decay below a positive threshold
