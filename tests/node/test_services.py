"""The node as a set of services: registration, dispatch by type, task trees, errors.

The echo service (``qdht.testing.echo_service``) is the example: it is added
to nodes without any change to the node's code.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from typing import Any

import pytest
import trio
import trio.testing

from qdht import Config, Node, open_node
from qdht.errors import ConfigError, LookupFailedError
from qdht.identity import Identity
from qdht.node import Outgoing, QuietCore, Service, ServiceContext, ServiceTable
from qdht.testing import EchoCore, MemoryNetwork, echo, echo_service
from qdht.wire import Echo, Echoed, encode, peek_type

DIFFICULTY = 4


@functools.cache
def identity(n: int) -> Identity:
    return Identity.generate(DIFFICULTY)


def config(n: int, **changes: Any) -> Config:
    return Config(identity=identity(n), puzzle_difficulty=DIFFICULTY, **changes)


async def test_a_registered_service_gets_its_messages_and_answers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = MemoryNetwork(seed=1)
    async with (
        net.open_transport() as ta,
        net.open_transport() as tb,
        open_node(config(0), transport=ta, services=[echo_service]) as a,
        open_node(config(1, services=(echo_service,)), transport=tb) as b,
    ):
        assert await echo(a, b.contact, b"ping over a session") == b"ping over a session"
        assert await echo(b, a.contact, b"") == b""
        stats_a, stats_b = a.stats(), b.stats()
        assert "echo" in stats_a["services"]
        assert stats_a["echo"]["answered"] == 1
        assert stats_b["echo"]["answered"] == 1
        # The DHT saw none of it: the echo messages went to their owner.
        assert "echo" not in stats_b["rpcs_received"]
        assert stats_b["drops"].get("dht.unknown-request", 0) == 0


async def test_a_node_without_the_service_answers_unknown_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = MemoryNetwork(seed=2)
    async with (
        net.open_transport() as ta,
        net.open_transport() as tb,
        open_node(config(0), transport=ta, services=[echo_service]) as a,
        open_node(config(1), transport=tb) as b,
    ):
        with pytest.raises(LookupFailedError, match="timeout"):
            await echo(a, b.contact, b"anyone?")
        # b's default service (the DHT) refused it as any unknown request.
        assert b.stats()["errors_sent"] == {"unknown-request": 1}
        assert "echo" not in b.stats()["services"]


async def test_an_error_in_a_service_task_stops_the_node_with_that_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Broken(RuntimeError):
        pass

    async def fails_later(node: Node, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await trio.sleep(5)
        raise Broken("the service's own task failed")

    def broken_service(context: ServiceContext) -> Service:
        return Service("broken", EchoCore(), {"broken"}, tasks=[fails_later])

    net = MemoryNetwork(seed=3)
    with pytest.RaisesGroup(
        pytest.RaisesExc(Broken, match="own task failed"), flatten_subgroups=True
    ):
        async with (
            net.open_transport() as ta,
            open_node(config(0), transport=ta, services=[broken_service]),
        ):
            await trio.sleep(3600)  # the node stops this, with the service's error
    assert len(net) == 0


def test_names_and_message_types_are_owned_once() -> None:
    table = ServiceTable()
    table.add(Service("echo", EchoCore(), {Echo.TYPE, Echoed.TYPE}))
    with pytest.raises(ConfigError, match="registered already"):
        table.add(Service("echo", EchoCore(), {"other"}))
    with pytest.raises(ConfigError, match=r"\['echoed'\] belong to \['echo'\]"):
        table.add(Service("echo2", EchoCore(), {Echoed.TYPE}))
    with pytest.raises(ConfigError, match="service name"):
        Service("Not A Name", EchoCore())
    with pytest.raises(ConfigError, match="service factories"):
        Config(services=("not callable",))


def test_dispatch_by_type_with_the_first_service_as_default() -> None:
    class Recorder(EchoCore):
        def __init__(self) -> None:
            super().__init__()
            self.got: list[bytes] = []

        def receive_message(
            self, node_id: bytes, addr: Hashable, payload: bytes, now: float, *, early: bool = False
        ) -> None:
            self.got.append(payload)

    default, echo_core = Recorder(), Recorder()
    table = ServiceTable()
    table.add(Service("default", default))
    table.add(Service("echo", echo_core, {Echo.TYPE}))
    ping = encode(Echo(bytes(8), b"x"))
    for payload in (ping, b"\xa1dtypedmystery", b"not cbor", b""):
        table.deliver(bytes(32), None, payload, 0.0, early=False)
    assert echo_core.got == [ping]
    assert default.got == [b"\xa1dtypedmystery", b"not cbor", b""]


def test_outgoing_and_events_come_from_every_core() -> None:
    a, b = EchoCore(rng=lambda n: b"\x01" * n), EchoCore(rng=lambda n: b"\x02" * n)
    table = ServiceTable()
    seen: list[object] = []
    table.add(Service("a", a, {"a"}, on_event=seen.append))
    table.add(Service("b", b, {"b"}, on_event=seen.append))
    a.start_echo(b"\x0a" * 32, None, b"1", 0.0)
    b.start_echo(b"\x0b" * 32, None, b"2", 0.0)
    out: list[Outgoing] = list(table.outgoing())
    assert [(peer[:1], peek_type(payload)) for peer, _, payload in out] == [
        (b"\x0a", "echo"),
        (b"\x0b", "echo"),
    ]
    table.peer_unreachable(b"\x0b" * 32, 1.0, "timeout")
    assert table.dispatch_events()
    assert [type(event).__name__ for event in seen] == ["EchoFailed"]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (encode(Echo(bytes(8), b"")), "echo"),
        (b"\xa1dtypeq" + b"x" * 16, None),  # truncated
        (b"\xa2crid\x48" + bytes(8) + b"dtypeddata", "data"),
        (b"\xa1dtypex\x1e" + b"t" * 30, "t" * 30),
        (b"\xa1dtypex\x21" + b"t" * 33, None),  # longer than any type
        (b"\xa1dtype\x01", None),  # not text
        (b"\x82\x01\x02", None),  # not a map
        (b"\xbf\xff", None),  # indefinite length
        (b"\xa1cabc\x9f\xff", None),  # indefinite value before the type
    ],
)
def test_peek_type_reads_only_a_well_formed_type(payload: bytes, expected: str | None) -> None:
    assert peek_type(payload) == expected


class _TimedCore(QuietCore):
    """A core with one deadline that records when its timer ran."""

    def __init__(self, at: float) -> None:
        self.at: float | None = at
        self.ran: list[float] = []

    def drop(self, reason: str) -> None:
        raise AssertionError(reason)

    def stats(self) -> dict[str, Any]:
        return {"ran": len(self.ran)}

    def get_timer(self) -> float | None:
        return self.at

    def handle_timer(self, now: float) -> None:
        self.ran.append(now)
        self.at = None


@pytest.mark.parametrize("grace", [True, False])
async def test_a_late_timer_waits_out_the_stall_only_when_the_service_asks(
    autojump_clock: trio.testing.MockClock, grace: bool
) -> None:
    net = MemoryNetwork(seed=3)
    start = trio.current_time()
    core = _TimedCore(start + 1.0)

    def timed(context: ServiceContext) -> Service:
        return Service("timed", core, stall_grace=grace)

    async with net.open_transport() as t, open_node(config(0), transport=t, services=[timed]):
        await trio.sleep(0.5)
        autojump_clock.jump(1.0)  # the process stalls past the deadline, 0.5 s late
        await trio.sleep(2.0)
    assert len(core.ran) == 1
    late = core.ran[0] - (start + 1.0)
    # With the grace, it first gives the peers the 0.5 s back; without, it catches up at once.
    assert late == pytest.approx(1.0 if grace else 0.5, abs=0.01)
