"""The client: Poisson streams with cover, replies through the mixnet, loops, n-1 alarm."""

from __future__ import annotations

import random
from collections import Counter

import attrs
import pytest

from qdht.errors import ConfigError
from qdht.mixnet import (
    DirectoryView,
    LoopAlarm,
    MessageReceived,
    MixnetConfig,
    ReplyReceived,
    select_path,
)

from ._support import MemoryMixnet

T0 = 1_750_000_000.0


def test_streams_run_at_their_rates_and_real_messages_replace_drop_cover() -> None:
    config = MixnetConfig(lambda_payload=5.0, lambda_loop=2.0, lambda_drop=1.0)
    net = MemoryMixnet(config, 6, now=T0)
    client = net.add_client("alice")
    net.publish_directory()
    for i in range(10):
        client.send(f"message {i}".encode(), now=T0)
    net.run(T0 + 60.0, step=0.05)
    stats = client.stats()
    # 60 s of Poisson streams: counts near rate x time (wide margins, fixed seed).
    assert 240 <= stats["messages_sent"] + stats["drop_sent"] <= 360 + 60 + 30
    assert stats["messages_sent"] == 10
    assert 80 <= stats["loops_sent"] <= 160
    assert stats["loops_returned"] >= stats["loops_sent"] - 5
    delivered = sorted(e.message.data for _, e in net.events if isinstance(e, MessageReceived))
    assert delivered == sorted(f"message {i}".encode() for i in range(10))
    assert not stats["drops"]


def test_request_with_reply_block_gets_its_answer_and_only_once() -> None:
    config = MixnetConfig(lambda_payload=20.0, lambda_loop=0.0, lambda_drop=0.0)
    net = MemoryMixnet(config, 6, now=T0)
    client = net.add_client("bob")
    net.publish_directory()
    surb_id = client.send(b"get key", now=T0, want_reply=True)
    assert surb_id is not None
    net.run(T0 + 2.0)
    (exit_id, request) = next((n, e) for n, e in net.events if isinstance(e, MessageReceived))
    assert request.message.surb is not None
    exit_mix = net.mixes[exit_id]
    exit_mix.reply(request.message.surb, b"the value", net.now)
    exit_mix.reply(request.message.surb, b"a second answer", net.now)
    net.run(net.now + 2.0)
    replies = [e for _, e in net.events if isinstance(e, ReplyReceived)]
    assert replies == [ReplyReceived(surb_id, b"the value")]
    # The second use of the block died as a replay at its first hop.
    assert sum(m.stats()["drops"].get("replay", 0) for m in net.mixes.values()) == 1


def test_stratified_paths_take_one_mix_per_layer() -> None:
    config = MixnetConfig()
    net = MemoryMixnet(config, 9, now=T0)
    view = net.directory()
    layer_of = {m.node_id: m.layer % 3 for m in view.mixes}
    rng = random.Random(3)
    for _ in range(50):
        path = select_path(view, config, rng, stratified=True)
        assert path is not None
        assert [layer_of[h.node_id] for h in path] == [0, 1, 2]
    free = Counter(h.node_id for _ in range(300) for h in select_path(view, config, rng) or [])
    assert len(free) == 9  # free route uses every mix
    too_small = DirectoryView(view.epoch, view.mixes[:2])
    assert select_path(too_small, config, rng) is None


def test_without_a_directory_ticks_are_counted_not_sent() -> None:
    config = MixnetConfig()
    net = MemoryMixnet(config, 3, now=T0)
    client = net.add_client("carol")
    net.run(T0 + 5.0, step=0.1)
    assert client.stats()["drops"]["no-directory"] > 0
    with pytest.raises(ConfigError, match="at most"):
        client.send(bytes(config.user_payload_size + 1), now=T0)


def test_n_minus_1_attack_on_the_loops_raises_the_alarm_and_it_clears() -> None:
    config = MixnetConfig(
        lambda_payload=0.0,
        lambda_loop=4.0,
        lambda_drop=0.0,
        lambda_mix_loop=0.0,
        loop_window=5.0,
        loop_alarm_min=10,
    )
    net = MemoryMixnet(config, 6, now=T0)
    client = net.add_client("dave")
    net.publish_directory()
    net.run(T0 + 20.0, step=0.05)
    assert not [e for _, e in net.events if isinstance(e, LoopAlarm)]
    # The attacker blocks every packet into three of the six mixes.
    net.dropped_links.update(sorted(net.mixes)[:3])  # half the mixes
    net.run(T0 + 40.0, step=0.05)
    alarms = [e for _, e in net.events if isinstance(e, LoopAlarm)]
    assert alarms
    assert alarms[0].raised
    assert alarms[0].returned < alarms[0].judged / 2
    assert client.stats()["loop_alarm"] is True
    net.dropped_links.clear()
    net.run(T0 + 60.0, step=0.05)
    alarms = [e for _, e in net.events if isinstance(e, LoopAlarm)]
    assert alarms[-1].raised is False


def test_mixes_send_their_own_loops_and_see_them_return() -> None:
    config = MixnetConfig(lambda_mix_loop=2.0, loop_window=5.0)
    net = MemoryMixnet(config, 5, now=T0)
    net.publish_directory()
    net.run(T0 + 15.0, step=0.05)
    for mix in net.mixes.values():
        stats = mix.stats()
        assert stats["loops_sent"] > 10
        assert stats.get("loops_returned", 0) >= stats["loops_sent"] - 3
        assert stats["loop_alarm"] is False


def test_a_malformed_mix_key_is_a_counted_drop_not_a_crash() -> None:
    config = MixnetConfig(lambda_payload=5.0, lambda_loop=5.0, lambda_drop=5.0)
    net = MemoryMixnet(config, 3, now=T0)
    client = net.add_client("erin")
    view = net.directory()
    broken = tuple(attrs.evolve(m, key=b"\xff" * 1216) for m in view.mixes)
    client.set_directory(DirectoryView(view.epoch, broken))
    net.run(T0 + 3.0, step=0.1)
    drops = client.stats()["drops"]
    assert set(drops) == {"bad-mix-key"}
    assert drops["bad-mix-key"] > 10
