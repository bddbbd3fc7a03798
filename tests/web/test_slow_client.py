"""A WebSocket client too slow to take an update is closed, not waited for."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from qdht import Config, open_node
from qdht.testing import MemoryNetwork
from qdht.web import WebConfig, WebCore, WebFace, push_updates


class StalledWebSocket:
    """Takes the first message, then never finishes sending another (a full TCP window)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_text(self, text: str) -> None:
        self.sent.append(text)
        if len(self.sent) > 1:
            await trio.sleep_forever()


async def test_a_stalled_client_is_dropped_after_the_send_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = WebConfig(send_timeout=5.0, update_interval=1.0)
    face = WebFace(config, WebCore(config))
    async with (
        MemoryNetwork().open_transport() as transport,
        open_node(Config(puzzle_difficulty=0), transport=transport) as node,
    ):
        face._bind(node, ["http://127.0.0.1:1"])
        websocket: Any = StalledWebSocket()
        async with trio.open_nursery() as nursery:

            async def tick() -> None:
                while True:
                    await trio.sleep(config.update_interval)
                    face._publish()

            nursery.start_soon(tick)
            started = trio.current_time()
            await push_updates(websocket, face)
            nursery.cancel_scope.cancel()
        # It got the whole state and one update, then was given up on.
        assert len(websocket.sent) == 2
        assert trio.current_time() - started <= config.update_interval + config.send_timeout + 0.1
        assert face.core.stats()["drops"] == {"slow-client": 1}
