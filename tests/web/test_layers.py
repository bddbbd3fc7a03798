"""The page's mixnet, messaging and training panels: read from ``node.stats()`` sections.

``layer_views`` is pure (a stats dict in, the panels out), so most checks
feed it stats; one runs a node with the layers on over real loopback HTTP
and reads ``/api/state`` and ``/metrics``.
"""

from __future__ import annotations

import json
from typing import Any

from qdht.messaging import MessagingConfig
from qdht.mixnet import MixnetConfig
from qdht.web import History, layer_views, prometheus_text

from ._harness import get, http, page_node

MIXNET: dict[str, Any] = {
    "mix": True,
    "mixed": 40,
    "queued": 3,
    "replays": 1,
    "loops_sent": 10,
    "loops_returned": 9,
    "loop_alarm": False,
    "epoch": 7,
    "directory_epochs": [6, 7],
    "role": {"queued": 2, "delivered": 5},
    "client": {"queued": 1, "loops_lost": 1, "directory_epoch": 7, "directory_mixes": 9},
    "drops": {"replay": 1, "bad-mac": 2},
}
MESSAGING: dict[str, Any] = {
    "contacts": 2,
    "sessions": 2,
    "outbox_queued": 1,
    "waiting": 1,
    "delivery": "direct",
    "writes": 4,
    "cover_writes": 3,
    "slot_reads": 10,
    "intro_reads": 5,
    "mailbox_ops": 5,
    "one_time_prekeys": 30,
    "drops": {},
}


def _stats(**layers: Any) -> dict[str, Any]:
    return {"services": ["dht", "watch", "replication", *layers], **layers}


def test_the_panels_read_the_layers_figures() -> None:
    stats = _stats(mixnet=MIXNET, messaging=MESSAGING)
    views = layer_views(stats, stats["services"])
    assert set(views) == {"mixnet", "messaging"}
    mix = views["mixnet"]
    assert (mix["mix"], mix["directory_epoch"], mix["directory_mixes"]) == (True, 7, 9)
    assert (mix["queued"], mix["queued_at_mix"], mix["queued_here"]) == (3, 2, 1)
    assert (mix["loops_sent"], mix["loops_returned"], mix["loops_lost"]) == (10, 9, 1)
    assert mix["dropped"] == 3
    assert mix["drops"] == {"replay": 1, "bad-mac": 2}
    msg = views["messaging"]
    assert (msg["contacts"], msg["outbox"], msg["delivery"], msg["polls"]) == (2, 1, "direct", 20)


def test_the_training_panel_takes_whatever_names_the_layer_uses() -> None:
    coordinator = {"rounds": 5, "abandoned": 1, "epsilon": 2.5, "drops": {"late": 2}}
    device = {"last_round": 4, "drops": {}}
    assert layer_views(_stats(training=coordinator), ["training"])["training"] == {
        "role": None,
        "round": 5,
        "participants": None,
        "accuracy": None,
        "epsilon": 2.5,
        "abandoned": 1,
        "dropped": 2,
        "drops": {"late": 2},
    }
    assert layer_views(_stats(training=device), ["training"])["training"]["round"] == 4


def test_a_layer_that_is_off_or_reports_oddly_gets_no_panel_and_no_error() -> None:
    assert layer_views(_stats(), ["dht"]) == {}
    assert layer_views({"services": ["mixnet"], "mixnet": "broken"}, ["mixnet"]) == {}
    odd = layer_views(_stats(messaging={"contacts": "two", "delivery": 3}), ["messaging"])
    assert odd["messaging"]["contacts"] == 0
    assert odd["messaging"]["delivery"] is None


def test_the_history_turns_layer_counters_into_rates_and_keeps_levels() -> None:
    history = History(10)
    history.sample(_stats(mixnet=MIXNET, messaging=MESSAGING), now=0.0)
    later = {**MIXNET, "mixed": 60, "loops_sent": 12, "queued": 5}
    sample = history.sample(_stats(mixnet=later, messaging=MESSAGING), now=2.0)
    assert sample["mix_mixed"] == 10.0
    assert sample["mix_loops_sent"] == 1.0
    assert sample["mix_queued"] == 5
    assert sample["msg_polls"] == 0.0
    assert sample["msg_outbox"] == 1


def test_metrics_carry_the_panels() -> None:
    stats = _stats(mixnet=MIXNET, messaging=MESSAGING)
    text = prometheus_text(stats, ["mixnet", "messaging"], layer_views(stats, stats["services"]))
    lines = set(text.splitlines())
    assert "qdht_mixnet_directory_mixes 9" in lines
    assert "qdht_mixnet_loop_alarm 0.0" in lines
    assert "qdht_messaging_polls 20" in lines
    assert 'qdht_messaging_info{delivery="direct"} 1' in lines


async def test_a_node_with_the_layers_on_serves_their_panels() -> None:
    layers = {"mixnet": MixnetConfig(), "messaging": MessagingConfig()}
    async with page_node(layers=layers, training=True) as (_, face):
        port = face.port or 0
        status, _, body = await http(port, get("/api/state"))
        assert status == 200
        views = json.loads(body)["views"]
        assert set(views) == {"mixnet", "messaging", "training"}
        assert views["mixnet"]["mix"] is False  # a client of the mixnet, not a mix
        assert views["messaging"]["one_time_prekeys"] > 0
        assert views["training"]["role"] == "coordinator"
        status, _, metrics = await http(port, get("/metrics"))
        assert status == 200
        text = metrics.decode()
        for name in ("qdht_mixnet_queued", "qdht_messaging_contacts", "qdht_training_round"):
            assert f"\n{name} " in text
