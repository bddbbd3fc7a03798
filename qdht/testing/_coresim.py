"""Core-level simulation: thousands of sans-IO DHT cores in one discrete-event loop.

The point of sans-IO cores is that one scheduler can drive 10,000 of them
without 10,000 Trio task trees.  :class:`CoreNetwork` keeps a heap of
timestamped events (message deliveries and core timers) in *simulated* time
and hands each to the core it concerns, exactly as a node's Trio driver
would: ``receive_message`` for a delivered DHT message, ``handle_timer``
when a core's timer is due, then ``messages_to_send`` / ``next_event`` /
``get_timer``.  The routing tables, lookups and RPC handling measured are
the production ones (``qdht.dht``).

**What is not simulated: sessions.**  Messages travel over an *authenticated
channel*: the simulator vouches for the sender's node ID (it hands the core
the true ID, as a completed PQNoise session would) instead of running
handshakes and AEAD per message.  Full X-Wing handshakes for 10,000 nodes would
cost hundreds of CPU-seconds and measure the session layer, which has its own
benchmarks; the full-stack simulation (:func:`qdht.testing.build_network`)
runs real sessions at a few hundred nodes.  Node IDs are seeded random
256-bit strings (no identity puzzle: the simulator vouches for them too).
So simulated latencies leave out the handshake round trips a first request
to a new peer costs in reality (one for pqIK, two for pqXX), and messages
travel whole (no MTU, no fragmentation).

Links: every node has an access delay drawn once from ``access_latency``; a
message from ``a`` to ``b`` takes ``delay[a] + delay[b]`` plus uniform jitter,
so paths differ per link and reorder.  Messages to a dead node vanish (the
sender's request timers see to it); ``loss`` drops messages at random.
Everything random comes from ``seed``.

**Messages as objects** (``pass_objects=True``, what ``qdht-bench
durability`` uses): the cores hand their messages over as the attrs objects
they built (:meth:`qdht.dht.DhtCore.pass_objects`) and the receiver takes
them with :meth:`qdht.dht.DhtCore.receive_object`, so no CBOR is encoded or
decoded per hop: what an honest peer sends decodes to the very object it
encoded, and the codec has its own benchmarks and fuzzing.  Everything after
decoding (ban list, flood bound, dispatch, handlers) runs as in
``receive_message``.  ``bytes_delivered`` then counts each message at the
encoded size of the first message of its shape (its type; a NODES answer's
contact count; a record's kind and value length), a close estimate: the
other fields (rid, flags) have fixed or nearly fixed sizes.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from qdht.dht import (
    DhtCore,
    DhtEvent,
    LookupCompleted,
    LookupTrace,
    PutCompleted,
    RequestCompleted,
    RequestFailed,
)
from qdht.errors import ConfigError, LookupFailedError
from qdht.testing._churn import ChurnEvent, ChurnSchedule
from qdht.wire import (
    Address,
    AnyRecord,
    Contact,
    Nodes,
    encode,
    encode_nodes,
    immutable_key,
    intern_contact,
)

__all__ = [
    "DELIVER",
    "CoreNetwork",
    "SimCore",
    "SimOperation",
]

#: Events one ``run_while`` / ``wait`` processes before giving up (a core that
#: keeps itself busy forever is a bug the simulation must report, not hide).
MAX_EVENTS_PER_RUN: Final = 200_000_000

#: The kind of a scheduled delivery, as fault hooks see it (``kind == DELIVER``).
DELIVER: Final = 0
_TIMER: Final = 1
_CALL: Final = 2


#: The events the loop acts on (operations ending, join pings answered).
_TRACKED: Final = frozenset({RequestCompleted, RequestFailed, LookupCompleted, PutCompleted})

#: Bootstrap contacts a joining node tries before it gives up.
MAX_JOIN_ATTEMPTS: Final = 4

#: Times in a row a core may ask for its timer again at the very instant it
#: just handled: more is a core that can never make progress (simulated time
#: stands still, so it would spin forever; a real node would busy-loop).
MAX_TIMER_SPINS: Final = 1000


@attrs.define(eq=False)
class SimCore:
    """One simulated node: its ID, contact, DHT core, and whether it is alive."""

    index: int
    node_id: bytes
    contact: Contact
    core: DhtCore
    alive: bool = True
    #: The node's bootstrap lookup finished with at least one contact.
    joined: bool = False
    join_attempts: int = 0
    timer_at: float | None = None
    #: Consecutive timer runs that asked to run again at the same instant.
    spins: int = 0


@attrs.define(eq=False)
class SimOperation:
    """A lookup, get or put started at one node; filled in when it ends."""

    node: SimCore
    kind: str
    target: bytes
    started_at: float
    finished_at: float | None = None
    succeeded: bool = False
    #: The k closest nodes that answered, nearest first (lookups).
    contacts: tuple[Contact, ...] = ()
    #: The value a get found.
    value: bytes | None = None
    #: Node IDs that stored the value (puts).
    stored_at: tuple[bytes, ...] = ()
    trace: LookupTrace | None = None

    @property
    def done(self) -> bool:
        return self.finished_at is not None


class CoreNetwork:
    """N DHT cores in simulated time; see the module docstring for what is simulated.

    Every node is a production :class:`qdht.dht.DhtCore` built with
    ``core_options`` (its ``routing=``, ``lookup=``, ``rpc=``, ``record_config=``,
    ``replication=``, ``unix_offset=``
    options).  A node joins like a real one: it pings a bootstrap
    contact, then looks up its own ID (kind ``"bootstrap"``); ``join_refresh``
    additionally refreshes that many of its farthest buckets (Kademlia's join
    refreshes all buckets farther than the nearest neighbour).

    ``forget_dead``: a long churn run kills tens of thousands of nodes, and a
    dead node's core (routing table, records, counters) would stay in memory
    to the end, growing the heap every cyclic collection scans (measured at
    2,000 nodes and 30 % hourly churn: 85 MB and 0.5 s more garbage-collection
    time per simulated hour).  With this callable, a killed node is handed to
    it (to read what it wants kept, such as its counters), then dropped from
    ``nodes`` and from the ID index: a message sent to its ID later goes
    nowhere, counted as to a dead node, without drawing on the loss generator
    (so a run with it draws another random sequence than one without it).
    """

    def __init__(
        self,
        *,
        seed: int,
        access_latency: tuple[float, float] = (0.005, 0.040),
        jitter: float = 0.005,
        loss: float = 0.0,
        join_refresh: int = 0,
        core_options: Mapping[str, Any] | None = None,
        pass_objects: bool = False,
        forget_dead: Callable[[SimCore], None] | None = None,
    ) -> None:
        low, high = access_latency
        if not 0 <= low <= high:
            raise ConfigError(
                f"access_latency must be (low, high) with 0 <= low <= high, got {access_latency!r}"
            )
        if not jitter >= 0:
            raise ConfigError(f"jitter must be >= 0 seconds, got {jitter!r}")
        if not 0 <= loss < 1:
            raise ConfigError(f"loss must be a probability in [0, 1), got {loss!r}")
        if type(join_refresh) is not int or join_refresh < 0:
            raise ConfigError(f"join_refresh must be an integer >= 0, got {join_refresh!r}")
        self.seed = seed
        self.rng = random.Random(seed)
        self.access_latency = access_latency
        self.jitter = jitter
        self.loss = loss
        self.join_refresh = join_refresh
        self.core_options = dict(core_options or {})
        self.pass_objects = pass_objects
        self.forget_dead = forget_dead
        #: Encoded size by message shape (pass_objects; module docstring).
        self._sizes: dict[Any, int] = {}
        self.now = 0.0
        self.nodes: list[SimCore] = []
        #: Nodes ever added (their indexes are 0 .. added - 1).
        self.added = 0
        #: The live nodes in index order (``nodes`` keeps the dead too: a long
        #: churn run adds tens of thousands, which the loop must not scan).
        self._live: list[SimCore] = []
        self._by_id: dict[bytes, SimCore] = {}
        self._delay: list[float] = []
        self._heap: list[tuple[float, int, int, Any, Any]] = []
        self._seq = 0
        self._ops: dict[tuple[int, int], SimOperation] = {}
        self._join_pings: set[tuple[int, int]] = set()
        self.events_processed = 0
        self.messages_delivered = 0
        self.messages_lost = 0
        self.messages_to_dead = 0
        self.bytes_delivered = 0

    # -- nodes -------------------------------------------------------------------

    def add_node(
        self, *, bootstrap: Sequence[SimCore] = (), node_id: bytes | None = None
    ) -> SimCore:
        """A new node at the current time, joining through the ``bootstrap`` nodes.

        ``node_id`` picks its ID (a test placing a node next to a key); by
        default it is drawn from the network's generator.
        """
        index = self._new_index()
        if node_id is None:
            node_id = self.rng.randbytes(32)
            while node_id in self._by_id:
                node_id = self.rng.randbytes(32)
        elif type(node_id) is not bytes or len(node_id) != 32 or node_id in self._by_id:
            raise ConfigError("node_id must be 32 bytes, not the ID of a node already added")
        # One host per node, each in its own /24 (the routing table's prefix
        # limits then behave as on the internet, not as on one LAN).
        host = f"{10 + (index >> 16)}.{(index >> 8) & 255}.{index & 255}.1"
        contact = intern_contact(Contact(node_id, (Address("udp", host, 6881),)))
        # One generator for every core (request IDs, refresh targets): the loop is
        # single-threaded and ordered, so the run stays reproducible, and a
        # Mersenne Twister per node would cost 2.5 KiB of simulator per node.
        core = DhtCore(node_id, now=self.now, rng=self.rng.randbytes, **self.core_options)
        if self.pass_objects:
            core.pass_objects()
        node = SimCore(index, node_id, contact, core)
        self.nodes.append(node)
        self._live.append(node)
        self._by_id[node_id] = node
        low, high = self.access_latency
        self._delay.append(self.rng.uniform(low, high))
        for other in bootstrap:
            if other is not node:
                self._join_through(node, other)
        if not bootstrap:
            node.joined = True  # the first node of a network
        self._flush(node)
        return node

    def _new_index(self) -> int:
        self.added += 1
        return self.added - 1

    def _join_through(self, node: SimCore, other: SimCore) -> None:
        node.join_attempts += 1
        handle = node.core.ping(other.contact, self.now)
        self._join_pings.add((node.index, handle))

    def _random_alive(self, *, exclude: SimCore | None = None) -> SimCore | None:
        alive = [n for n in self._live if n.joined and n is not exclude]
        return self.rng.choice(alive) if alive else None

    def node(self, node_id: bytes) -> SimCore | None:
        """The simulated node with ``node_id``, if any."""
        return self._by_id.get(node_id)

    @property
    def alive(self) -> list[SimCore]:
        """The live nodes, in the order they were added."""
        return list(self._live)

    def kill(self, node: SimCore) -> None:
        """``node`` stops: it answers nothing and sends nothing from now on."""
        if node.alive:
            node.alive = False
            self._live.remove(node)
            if self.forget_dead is not None:
                # A message already on its way still finds it dead; a new one to
                # its ID goes nowhere, as to an ID never seen.
                self.forget_dead(node)
                self.nodes.remove(node)
                del self._by_id[node.node_id]

    def kill_random(self, count: int) -> list[SimCore]:
        """Kill ``count`` live nodes chosen by the network's seeded generator."""
        alive = self.alive
        if type(count) is not int or not 0 <= count <= len(alive):
            raise ConfigError(f"count must be an integer in 0..{len(alive)}, got {count!r}")
        victims = self.rng.sample(alive, count)
        for node in victims:
            self.kill(node)
        return victims

    def build(self, n: int, *, join_interval: float = 0.05, settle: float = 30.0) -> None:
        """Grow the network to ``n`` nodes, one joining every ``join_interval``
        simulated seconds through a random live node, then run ``settle`` more seconds."""
        if type(n) is not int or n < 1:
            raise ConfigError(f"n must be a positive integer, got {n!r}")
        start = self.now
        first = self.added
        while len(self.nodes) < n:
            self.run_until(start + (self.added - first) * join_interval)
            other = self._random_alive()
            self.add_node(bootstrap=[other] if other is not None else [])
        self.run_until(self.now + settle)

    # -- operations --------------------------------------------------------------

    def start_lookup(
        self, node: SimCore, target: bytes, *, kind: str = "find_node"
    ) -> SimOperation:
        """Start a lookup (``kind`` as :meth:`DhtCore.start_lookup`) at ``node``."""
        handle = node.core.start_lookup(target, self.now, kind=kind)
        return self._track(node, handle, kind, target)

    def start_put(self, node: SimCore, value: bytes) -> SimOperation:
        """Start storing the immutable ``value`` from ``node``."""
        handle = node.core.start_put(value, self.now)
        return self._track(node, handle, "put", immutable_key(value))

    def start_put_record(
        self, node: SimCore, record: AnyRecord, *, cas: int | None = None
    ) -> SimOperation:
        """Start storing ``record`` (any kind) from ``node``."""
        handle = node.core.start_put_record(record, self.now, cas=cas)
        return self._track(node, handle, "put", record.key())

    def store_at(self, node: SimCore, to: SimCore, record: AnyRecord) -> None:
        """``node`` sends one STORE of ``record`` (no cas) to ``to`` (fire and forget)."""
        node.core.store_at(to.contact, record, self.now)
        self._flush(node)

    def republish_now(self, node: SimCore) -> None:
        """Make ``node`` run a full republish round now (07-records.md §10.4)."""
        node.core.republish_now(self.now)
        self._flush(node)

    def republish_records(self, node: SimCore, records: Sequence[AnyRecord]) -> int:
        """``node`` stores its own ``records`` again, batched by region (07 §10.2)."""
        taken = node.core.republish_records(records, self.now)
        self._flush(node)
        return taken

    def holders(self, key: bytes) -> list[SimCore]:
        """The live nodes holding a live record under ``key`` (stored or cached)."""
        return [n for n in self._live if n.core.local_records(key, self.now)]

    def _track(self, node: SimCore, handle: int, kind: str, target: bytes) -> SimOperation:
        op = SimOperation(node, kind, target, self.now)
        self._ops[(node.index, handle)] = op
        self._flush(node)
        return op

    def wait(self, ops: Iterable[SimOperation]) -> None:
        """Run the loop until every one of ``ops`` has ended."""
        pending = [op for op in ops if not op.done]
        count = 0
        while pending:
            if not self._heap:
                raise RuntimeError("simulation ran dry with operations still running")
            self._step()
            count += 1
            if count > MAX_EVENTS_PER_RUN:
                raise RuntimeError("simulation did not settle: event limit reached")
            if pending[-1].done:
                pending = [op for op in pending if not op.done]

    def true_closest(self, target: bytes, k: int, *, exclude: SimCore | None = None) -> list[bytes]:
        """The IDs of the ``k`` live nodes closest to ``target`` (the oracle answer),
        leaving out ``exclude`` (a lookup never returns the node that runs it)."""
        t = int.from_bytes(target, "big")
        alive = [n.node_id for n in self._live if n is not exclude]
        return heapq.nsmallest(k, alive, key=lambda x: int.from_bytes(x, "big") ^ t)

    def call_at(self, at: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` at simulated time ``at`` (for schedules and tests)."""
        self._push(max(at, self.now), _CALL, fn, None)

    def run_churn(self, schedule: ChurnSchedule) -> tuple[list[SimCore], list[SimCore]]:
        """Apply ``schedule`` from now on, running the loop through its last event.

        Leaving nodes are chosen at random among live ones; joining nodes
        bootstrap through a random live node.  Returns (left, joined).
        """
        base = self.now
        left: list[SimCore] = []
        joined: list[SimCore] = []
        for event in schedule:
            self.run_until(base + event.at)
            gone, new = self.apply_churn(event)
            left.extend(gone)
            joined.extend(new)
        return left, joined

    def apply_churn(self, event: ChurnEvent) -> tuple[list[SimCore], list[SimCore]]:
        """Apply one churn event now, whatever its time: (nodes left, nodes joined).

        For a caller that runs the loop itself between events (a benchmark that
        stops at every simulated hour to save a checkpoint); :meth:`run_churn`
        is the usual way.
        """
        if event.action == "leave":
            return self.kill_random(min(event.count, len(self.alive))), []
        joined = []
        for _ in range(event.count):
            other = self._random_alive()
            joined.append(self.add_node(bootstrap=[other] if other is not None else []))
        return [], joined

    # -- the loop ----------------------------------------------------------------

    def run_until(self, t: float) -> None:
        """Process every event due up to simulated time ``t``; then ``now = t``."""
        heap = self._heap
        while heap and heap[0][0] <= t:
            self._step()
        self.now = max(self.now, t)

    def run_while(self, condition: Callable[[], bool]) -> None:
        """Process events in time order while ``condition()`` holds and events remain."""
        heap = self._heap
        count = 0
        while heap and condition():
            self._step()
            count += 1
            if count > MAX_EVENTS_PER_RUN:
                raise RuntimeError("simulation did not settle: event limit reached")

    def _step(self) -> None:
        at, _, kind, a, b = heapq.heappop(self._heap)
        self.now = at
        self.events_processed += 1
        if kind == DELIVER:
            node: SimCore = a
            src, payload = b
            if not node.alive:
                self.messages_to_dead += 1
                return
            self.messages_delivered += 1
            if type(payload) is bytes:
                self.bytes_delivered += len(payload)
                node.core.receive_message(src.node_id, src.contact.address, payload, at)
            else:
                self.bytes_delivered += self._size(payload)
                node.core.receive_object(src.node_id, src.contact.address, payload, at)
            self._flush(node)
        elif kind == _TIMER:
            node = a
            if node.timer_at != at or not node.alive:
                return  # superseded by a later _flush, or dead
            node.timer_at = None
            node.core.handle_timer(at)
            self._flush(node)
            self._check_spin(node, at)
        else:
            a()

    @staticmethod
    def _check_spin(node: SimCore, at: float) -> None:
        """Raise if ``node``'s core keeps asking for its timer at the instant ``at``."""
        if node.timer_at != at:
            node.spins = 0
            return
        node.spins += 1
        if node.spins > MAX_TIMER_SPINS:
            raise RuntimeError(
                f"node {node.index}'s core asks for its timer at {at!r} again after "
                f"handling it {MAX_TIMER_SPINS} times: it cannot make progress"
            )

    def _push(self, at: float, kind: int, a: Any, b: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, kind, a, b))

    def _flush(self, node: SimCore) -> None:
        """Move what ``node``'s core produced into the loop: messages, events, timer."""
        core = node.core
        now = self.now
        rng = self.rng
        alive = node.alive
        # Handling an event may start work (a join ping's answer starts the
        # bootstrap lookup), so drain events and messages until both are empty.
        while True:
            while (event := core.next_event()) is not None:
                self._on_event(node, event)
            out = core.objects_to_send() if self.pass_objects else core.messages_to_send()
            if not out:
                break
            if not alive:
                continue
            for dst_id, _addr, payload in out:
                dst = self._by_id.get(dst_id)
                if dst is None:
                    self.messages_to_dead += 1
                    continue
                if self.loss and rng.random() < self.loss:
                    self.messages_lost += 1
                    continue
                delay = self._delay[node.index] + self._delay[dst.index]
                if self.jitter:
                    delay += rng.random() * self.jitter
                self._push(now + delay, DELIVER, dst, (node, payload))
        if not alive:
            return
        timer = core.get_timer()
        if timer is not None and timer != node.timer_at:
            # A superseded queue entry finds timer_at changed and is skipped.
            node.timer_at = max(timer, now)
            self._push(node.timer_at, _TIMER, node, None)

    def _size(self, message: Any) -> int:
        """The encoded size of ``message``, taken once per shape (module docstring)."""
        kind = type(message)
        if kind is Nodes:
            shape: Any = (kind, len(message.nodes))
        else:
            record = getattr(message, "record", None)
            shape = (
                kind if record is None else (kind, type(record), len(getattr(record, "value", b"")))
            )
        size = self._sizes.get(shape)
        if size is None:
            size = self._sizes[shape] = len(
                encode_nodes(message) if kind is Nodes else encode(message)
            )
        return size

    def _on_event(self, node: SimCore, event: DhtEvent) -> None:
        kind = type(event)
        if kind not in _TRACKED:
            return  # routing-table changes, stored values, ...: nothing to track
        key = (node.index, getattr(event, "handle", 0))
        if kind is RequestCompleted or kind is RequestFailed:
            if key in self._join_pings:
                self._join_pings.discard(key)
                self._on_join_ping(node, type(event) is RequestCompleted)
            return
        if type(event) is LookupCompleted:
            op = self._ops.pop(key, None)
            if event.kind == "bootstrap" and op is None:
                if event.contacts:
                    node.joined = True
                    if self.join_refresh:
                        self._refresh_after_join(node)
                else:
                    # Nobody answered the own-ID lookup (its requests were lost):
                    # join again through another node, as a node would retry.
                    self._on_join_ping(node, answered=False)
                return
            if op is None:
                return
            op.contacts = event.contacts
            op.value = event.value
            op.succeeded = event.succeeded
            op.trace = event.trace
            op.finished_at = self.now
        elif type(event) is PutCompleted:
            op = self._ops.pop(key, None)
            if op is None:
                return
            op.stored_at = event.stored_at
            op.succeeded = event.succeeded
            op.trace = event.trace
            op.finished_at = self.now

    def _on_join_ping(self, node: SimCore, answered: bool) -> None:
        if answered:
            node.core.start_lookup(node.node_id, self.now, kind="bootstrap")
            return
        if node.join_attempts < MAX_JOIN_ATTEMPTS and node.alive:
            other = self._random_alive(exclude=node)
            if other is not None:
                self._join_through(node, other)

    def _refresh_after_join(self, node: SimCore) -> None:
        routing = node.core.routing
        last = routing.bucket_count - 1
        for index in range(max(0, last - self.join_refresh), last):
            try:
                node.core.start_lookup(routing.random_id_in_bucket(index), self.now, kind="refresh")
            except LookupFailedError:
                break

    def stats(self) -> dict[str, int]:
        """Simulation counters: nodes, events, messages delivered / lost / to dead nodes."""
        return {
            "nodes": self.added,
            "alive": len(self._live),
            "joined": sum(1 for n in self.nodes if n.joined),
            "events": self.events_processed,
            "delivered": self.messages_delivered,
            "bytes_delivered": self.bytes_delivered,
            "lost": self.messages_lost,
            "to_dead": self.messages_to_dead,
        }
