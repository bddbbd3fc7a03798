"""Services: the sub-protocols a node runs over its sessions (HACKING "Services").

A service is a sans-IO core plus the wire message types it owns.  The node
keeps one :class:`ServiceTable`: it hands each incoming session message to
the service that owns its ``type`` (``peek_type``: the rest of the message is
decoded by the service), collects every service's outgoing messages and
events, and merges the services' timers and statistics.  Each service also
gets its own task tree in the node's nursery (:mod:`qdht.node._tasks`): a
timer task and whatever tasks it declares.

The core's shape is the one every qdht core has (DESIGN §3, STYLE "h11",
"aioquic"): messages in with ``now``, messages out, ``get_timer`` /
``handle_timer``, events, ``stats``; time is an argument, never read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import attrs
import trio

from qdht.dht import Outgoing
from qdht.errors import ConfigError
from qdht.session import wait_out_stall
from qdht.wire import peek_type

if TYPE_CHECKING:
    from qdht.config import Config
    from qdht.identity import Identity
    from qdht.node._node import Node

__all__ = [
    "Operations",
    "Outgoing",
    "QuietCore",
    "Service",
    "ServiceContext",
    "ServiceCore",
    "ServiceFactory",
    "ServiceTable",
    "ServiceTask",
]


#: Service names: what ``node.stats()`` and the drop counters are keyed by.
_NAME: Final = re.compile(r"[a-z][a-z0-9_-]{0,31}\Z")


class ServiceCore(Protocol):
    """The sans-IO half of a service.  Remote input never raises out of it."""

    def receive_message(
        self, node_id: bytes, addr: Hashable, payload: bytes, now: float, *, early: bool = False
    ) -> None:
        """One message of a type this service owns, from the verified peer ``node_id``.

        ``early`` marks pqIK early data (04-handshake.md): replayable, from a
        sender not yet authenticated; a service answers only idempotent
        requests in it.
        """
        ...

    def messages_to_send(self) -> list[Outgoing]:
        """Every message ready to go, oldest first."""
        ...

    def next_event(self) -> object | None:
        """The oldest unreported event, or None."""
        ...

    @property
    def new_deadline(self) -> float:
        """The earliest timer deadline created since the last :meth:`get_timer` (inf: none).

        The node reads it after every step to wake the service's timer task
        early; it must be cheap.
        """
        ...

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next run (None: nothing scheduled)."""
        ...

    def handle_timer(self, now: float) -> None:
        """Do what is due at ``now``."""
        ...

    def peer_unreachable(self, node_id: bytes, now: float, reason: str) -> None:
        """The session layer could not reach ``node_id`` (handshake failure, refusal)."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counters; a ``drops`` map of reason → count is merged into ``node.stats()``."""
        ...


class QuietCore:
    """A :class:`ServiceCore` that owns no message types and keeps no timer.

    For a service whose work is all in its Trio tasks (the web page, groups
    over DHT records): subclasses provide ``drop`` and ``stats``.
    """

    def drop(self, reason: str) -> None:
        raise NotImplementedError

    def receive_message(
        self, node_id: bytes, addr: Hashable, payload: bytes, now: float, *, early: bool = False
    ) -> None:
        self.drop("unexpected-message")  # owns no type: only a node bug sends one here

    def messages_to_send(self) -> list[Outgoing]:
        return []

    def next_event(self) -> object | None:
        return None

    @property
    def new_deadline(self) -> float:
        return math.inf

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass

    def peer_unreachable(self, node_id: bytes, now: float, reason: str) -> None:
        pass


#: A task of a service's tree: ``async def run(node, *, task_status)``; it calls
#: ``task_status.started()`` once ready and runs until cancelled.
ServiceTask = Callable[..., Awaitable[None]]


@attrs.frozen
class ServiceContext:
    """What a service factory may use to build its service."""

    config: Config
    identity: Identity
    #: The node's clock (``trio.current_time()``) when the node was built.
    now: float
    #: Unix time = node time + ``unix_offset``.
    unix_offset: float
    #: The node's data directory, or None (everything in memory).
    data_dir: Path | None


def _type_set(types: Iterable[str]) -> frozenset[str]:
    return frozenset(types)


def _task_tuple(tasks: Iterable[ServiceTask]) -> tuple[ServiceTask, ...]:
    return tuple(tasks)


@attrs.frozen
class Service:
    """A sub-protocol registered with a node.

    ``name`` keys the service in ``node.stats()`` and in drop reasons
    (``"<name>.<reason>"``); ``message_types`` are the ``type`` values it
    owns (each owned by one service of a node); ``on_event`` receives every
    event the core reports, in the node's task; ``tasks`` are started in the
    service's own nursery after its timer task; ``close`` runs when the node
    stops, after every task ended (files, stores); ``face`` is the
    service's Trio-side API object.  ``stall_grace``: a timer woken late
    first gives the peers back the time the process stalled
    (``qdht.session.wait_out_stall``), right for deadlines that judge
    timeouts; False for a service whose deadlines are release times (a mix's
    delay queue, a Poisson send), which a grace would only make later still.
    """

    name: str = attrs.field()
    core: ServiceCore
    message_types: frozenset[str] = attrs.field(default=frozenset(), converter=_type_set)
    on_event: Callable[[object], object] | None = None
    tasks: tuple[ServiceTask, ...] = attrs.field(default=(), converter=_task_tuple)
    close: Callable[[], None] | None = None
    #: The service's Trio-side API object, for whoever looks the service up
    #: (``node.services.get(name).face``); the node never uses it.
    face: object = None
    stall_grace: bool = True

    @name.validator
    def _check_name(self, _: attrs.Attribute[str], value: object) -> None:
        if type(value) is not str or not _NAME.match(value):
            raise ConfigError(f"service name must match {_NAME.pattern!r}, got {value!r}")


#: What ``Config.services`` holds: called once per node to build its service.
ServiceFactory = Callable[[ServiceContext], Service]


class _Slot:
    """A registered service and its timer task's state."""

    __slots__ = ("service", "timer_at", "wake")

    def __init__(self, service: Service) -> None:
        self.service = service
        #: When the timer task sleeps until (-inf: not asleep yet).
        self.timer_at = -math.inf
        self.wake = trio.Event()


class ServiceTable:
    """The node's services, its dispatcher by message type, and the merged output.

    The first service registered is the default: it gets messages whose
    type nobody owns (the DHT service answers those with UNKNOWN_REQUEST,
    02-dht-rpc.md §5).
    """

    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}
        self._by_type: dict[str, _Slot] = {}
        self._default: _Slot | None = None
        # Cores appear once here even when several services share one.
        self._cores: list[tuple[ServiceCore, Service]] = []

    def add(self, service: Service) -> None:
        """Register ``service``; its name and message types must be new to this node."""
        if not isinstance(service, Service):
            raise ConfigError(f"expected a qdht.node.Service, got {type(service).__name__}")
        if service.name in self._slots:
            raise ConfigError(f"a service named {service.name!r} is registered already")
        taken = sorted(t for t in service.message_types if t in self._by_type)
        if taken:
            owners = {self._by_type[t].service.name for t in taken}
            raise ConfigError(
                f"service {service.name!r}: message types {taken} belong to {sorted(owners)}"
            )
        slot = _Slot(service)
        self._slots[service.name] = slot
        for message_type in service.message_types:
            self._by_type[message_type] = slot
        if self._default is None:
            self._default = slot
        if all(core is not service.core for core, _ in self._cores):
            self._cores.append((service.core, service))

    def __iter__(self) -> Iterator[Service]:
        return (slot.service for slot in self._slots.values())

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, name: object) -> bool:
        return name in self._slots

    def get(self, name: str) -> Service:
        """The service called ``name``; ``ConfigError`` if there is none."""
        slot = self._slots.get(name)
        if slot is None:
            raise ConfigError(f"no service named {name!r} (have {sorted(self._slots)})")
        return slot.service

    def slot(self, name: str) -> _Slot:
        return self._slots[name]

    def owner(self, message_type: str | None) -> Service | None:
        """The service that gets messages of ``message_type`` (the default for unknown)."""
        slot = self._by_type.get(message_type) if message_type is not None else None
        slot = slot or self._default
        return slot.service if slot is not None else None

    # ------------------------------------------------------------ sans-IO plumbing

    def deliver(
        self, node_id: bytes, addr: Hashable, payload: bytes, now: float, *, early: bool
    ) -> Service | None:
        """Hand one session message to its owner; returns the service that took it."""
        service = self.owner(peek_type(payload))
        if service is not None:
            service.core.receive_message(node_id, addr, payload, now, early=early)
        return service

    def peer_unreachable(self, node_id: bytes, now: float, reason: str) -> None:
        for core, _ in self._cores:
            core.peer_unreachable(node_id, now, reason)

    def outgoing(self) -> Iterable[Outgoing]:
        """Every service's messages ready to go."""
        for core, _ in self._cores:
            yield from core.messages_to_send()

    def dispatch_events(self) -> bool:
        """Hand every core's events to its service's ``on_event``; True if there were any."""
        any_event = False
        for core, service in self._cores:
            handler = service.on_event
            while (event := core.next_event()) is not None:
                any_event = True
                if handler is not None:
                    handler(event)
        return any_event

    def wake_timers(self) -> None:
        """Wake each timer task whose service now has an earlier deadline."""
        for slot in self._slots.values():
            if slot.service.core.new_deadline < slot.timer_at:
                slot.wake.set()

    def stats(self) -> dict[str, dict[str, Any]]:
        """Each service's own counters, by name."""
        return {name: slot.service.core.stats() for name, slot in self._slots.items()}


async def run_service_timer(
    node: Node, name: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """The timer task of service ``name``: sleep until its deadline, run it, flush."""
    slot = node.services.slot(name)
    core = slot.service.core
    task_status.started()
    while True:
        deadline = core.get_timer()
        asleep_at = trio.current_time()
        slot.wake = trio.Event()
        slot.timer_at = math.inf if deadline is None else deadline
        with trio.move_on_at(slot.timer_at):
            await slot.wake.wait()
        now = trio.current_time()
        if deadline is not None and now >= deadline:
            if slot.service.stall_grace:
                now = await wait_out_stall(max(deadline, asleep_at), node.receive_queued)
            core.handle_timer(now)
        await node.flush()
        await trio.lowlevel.checkpoint()


async def run_service(
    node: Node, name: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """The task tree of service ``name``: its timer and its own tasks, in one nursery.

    Started with ``await nursery.start(run_service, node, name)`` in the
    node's nursery; returns only by cancellation (the node stopping) or with
    the error of one of its tasks, which then stops the node.
    """
    service = node.services.get(name)
    async with trio.open_nursery() as nursery:
        tag = f"qdht node {node.node_id.hex()[:8]} {name}"
        await nursery.start(run_service_timer, node, name, name=f"{tag} timer")
        for task in service.tasks:
            await nursery.start(task, node, name=f"{tag} {getattr(task, '__name__', 'task')}")
        task_status.started()


class Operations:
    """Callers waiting for the event that ends an operation they started in a core.

    The pattern of every service's Trio face: a core's ``start_x(..., now)``
    returns a handle, and the event that reports how it ended carries the same
    ``handle``.  Pass :meth:`resolve` as (part of) the service's ``on_event``;
    :meth:`run` starts the operation, flushes the node and waits.
    """

    def __init__(self) -> None:
        self._waiting: dict[int, _Waiter] = {}

    def resolve(self, event: object) -> bool:
        """Hand ``event`` to the caller waiting for its handle; False if nobody waits."""
        handle = getattr(event, "handle", None)
        waiter = self._waiting.pop(handle, None) if type(handle) is int else None
        if waiter is None:
            return False
        waiter.result = event
        waiter.event.set()
        return True

    async def run(self, node: Node, start: Callable[[float], int]) -> object:
        """Call ``start(now)`` (it returns the handle), then wait for its event."""
        handle = start(trio.current_time())
        waiter = _Waiter()
        self._waiting[handle] = waiter
        try:
            await node.flush()
            await waiter.event.wait()
        finally:
            self._waiting.pop(handle, None)
        return waiter.result


class _Waiter:
    __slots__ = ("event", "result")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.result: object = None
