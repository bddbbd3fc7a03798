"""The ``models`` service's sans-IO core: chunk serving and chunk transfer (13-models.md §8).

:class:`ModelsCore` owns the ``get_chunk`` and ``chunk`` message types.  As a
holder it queues the ``get_chunk`` requests it accepts (at most
``ModelsConfig.max_serving`` waiting, ``peer_queue`` per peer) and answers
them from its :class:`~qdht.models.ChunkStore`, at most ``peer_rate`` a second
per peer, when the service's serving task calls :meth:`ModelsCore.serve_pending`.  As a fetcher
it runs one :class:`~qdht.models.ModelFetch` planner per fetch the Trio face
started (:meth:`ModelsCore.start_fetch`): it sends the planner's requests as
``get_chunk`` with fresh ``rid`` values, matches the answers by (peer,
``rid``), feeds them back, and reports the planners' events tagged with
the fetch's handle.  Time is an argument; randomness is injectable.
"""

from __future__ import annotations

import os
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Final

import attrs

from qdht import validators
from qdht.errors import ConfigError
from qdht.models._fetch import (
    FetchComplete,
    FetchLimits,
    FetchStuck,
    HolderDropped,
    ModelFetch,
    Penalty,
    Progress,
)
from qdht.models._store import ChunkStore
from qdht.node import Outgoing
from qdht.ratelimit import TokenBuckets
from qdht.wire import (
    MLDSA_PUBLIC_KEY_SIZE,
    RID_SIZE,
    Chunk,
    Contact,
    GetChunk,
    ManifestRef,
    ModelManifest,
    decode,
    encode,
)

__all__ = [
    "FetchEnded",
    "FetchHolderDropped",
    "FetchPenalty",
    "FetchProgress",
    "FetchStalled",
    "ModelsConfig",
    "ModelsCore",
    "ServeReady",
]

#: Peers whose request rate is tracked at once (least recently seen forgotten first).
MAX_RATE_PEERS: Final = 4096


def _public_keys(value: Iterable[bytes]) -> tuple[bytes, ...]:
    return tuple(value)


def _check_keys(_: object, attribute: attrs.Attribute[Any], value: tuple[bytes, ...]) -> None:
    for pk in value:
        if type(pk) is not bytes or len(pk) != MLDSA_PUBLIC_KEY_SIZE:
            raise ConfigError(
                f"{attribute.name}: a trusted publisher is an ML-DSA-65 public key "
                f"({MLDSA_PUBLIC_KEY_SIZE} bytes)"
            )


@attrs.frozen
class ModelsConfig:
    """The model store layer (``qdht.Config.models``; None: off).  13-models.md §8."""

    #: ML-DSA-65 public keys of the publishers whose manifests are accepted
    #: (the network's master nodes).  The node's own key is always trusted.
    trusted: tuple[bytes, ...] = attrs.field(
        default=(), converter=_public_keys, validator=_check_keys
    )
    #: Directory of the chunk store; None: ``<data_dir>/models``, or a
    #: temporary directory removed when the node stops if it has no data_dir.
    store_dir: str | None = attrs.field(
        default=None, validator=validators.optional(validators.instance_of(str))
    )
    #: The bounds of each fetch (in flight, per holder, timeout, stalls).
    fetch: FetchLimits = attrs.field(
        factory=FetchLimits, validator=validators.instance_of(FetchLimits)
    )
    #: Fetches running at once; more wait for one to end.
    max_fetches: int = attrs.field(default=4, validator=validators.positive_int)
    #: ``get_chunk`` requests accepted and not yet answered, over all peers;
    #: more are dropped (``busy``).
    max_serving: int = attrs.field(default=64, validator=validators.positive_int)
    #: ``get_chunk`` requests accepted and not yet answered from one peer; more
    #: are dropped (``peer-busy``).  A fetcher keeping to 13-models.md §6.2 has 4.
    peer_queue: int = attrs.field(default=16, validator=validators.positive_int)
    #: ``get_chunk`` requests answered a second to one peer, with bursts of
    #: ``peer_burst``; a peer's further requests wait in its queue.
    peer_rate: float = attrs.field(default=400.0, validator=validators.positive)
    peer_burst: int = attrs.field(default=64, validator=validators.positive_int)
    #: Chunks read and answered per step of the serving task.
    serve_batch: int = attrs.field(default=8, validator=validators.positive_int)
    #: Lifetime of a provider record; it is renewed at half of it.
    provider_ttl: float = attrs.field(default=86400.0, validator=validators.positive)
    #: Lifetime of a published manifest record (republished by the DHT until then).
    manifest_ttl: float = attrs.field(default=7 * 86400.0, validator=validators.positive)
    #: Announce the models this node holds (published or fetched) as a provider.
    announce: bool = attrs.field(default=True, validator=validators.boolean)
    #: A fetch with no holder left for its missing chunks looks for providers
    #: again after ``retry_interval`` seconds, ``max_retries`` times, then fails.
    retry_interval: float = attrs.field(default=5.0, validator=validators.positive)
    max_retries: int = attrs.field(default=6, validator=validators.non_negative_int)


@attrs.frozen
class ServeReady:
    """``get_chunk`` requests wait: the serving task should call ``serve_pending``."""


@attrs.frozen
class FetchProgress:
    """Fetch ``handle`` verified ``progress`` (chunks and bytes out of the total)."""

    handle: int
    progress: Progress


@attrs.frozen
class FetchPenalty:
    """Fetch ``handle`` holds ``offence`` against holder ``node_id`` (for its reputation)."""

    handle: int
    node_id: bytes
    offence: str


@attrs.frozen
class FetchHolderDropped:
    """Fetch ``handle`` no longer asks ``node_id`` (``bad-chunk``, ``stalled``, unreachable)."""

    handle: int
    node_id: bytes
    reason: str


@attrs.frozen
class FetchStalled:
    """Fetch ``handle`` lacks ``missing`` chunks that no holder left has: find more holders."""

    handle: int
    missing: int


@attrs.frozen
class FetchEnded:
    """Fetch ``handle`` has every chunk in the store, after receiving ``received_bytes``."""

    handle: int
    received_bytes: int


ModelsEvent = (
    ServeReady | FetchProgress | FetchPenalty | FetchHolderDropped | FetchStalled | FetchEnded
)


class _Fetch:
    __slots__ = ("addresses", "dropped", "planner")

    def __init__(self, planner: ModelFetch[bytes]) -> None:
        self.planner = planner
        #: node ID → where it answers get_chunk.
        self.addresses: dict[bytes, Hashable] = {}
        #: Holders dropped for the rest of the fetch (lied or stalled, §6.1, §6.2).
        self.dropped: set[bytes] = set()


class ModelsCore:
    """Sans-IO: serve chunks from ``store`` and transfer the chunks of running fetches."""

    def __init__(
        self,
        node_id: bytes,
        store: ChunkStore,
        config: ModelsConfig | None = None,
        *,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.node_id = node_id
        self.store = store
        self.config = config or ModelsConfig()
        self._rng = rng
        self._rates: TokenBuckets[bytes] = TokenBuckets(
            rate=self.config.peer_rate, burst=self.config.peer_burst, max_keys=MAX_RATE_PEERS
        )
        #: Accepted requests by peer, in the order the peers first asked.
        self._serving: dict[bytes, deque[tuple[Hashable, GetChunk]]] = {}
        self._queued = 0
        self._out: list[Outgoing] = []
        self._events: deque[ModelsEvent] = deque()
        self._fetches: dict[int, _Fetch] = {}
        #: rid → (fetch handle, holder, chunk key, deadline).
        self._rids: dict[bytes, tuple[int, bytes, bytes, float]] = {}
        self._next_handle = 1
        self._new_deadline = float("inf")
        self._drops: Counter[str] = Counter()
        self.served = 0
        self.served_bytes = 0
        self.received_bytes = 0
        #: Models (and manifest pages) this node announces, and announcements made;
        #: the face keeps these up to date.
        self.held = 0
        self.announced = 0

    # ------------------------------------------------------------ serving

    def drop(self, reason: str) -> None:
        """Count a drop under ``reason`` (the face's drops: bad provider records, manifests)."""
        self._drops[reason] += 1

    def chunk_data(self, key: bytes) -> bytes | None:
        """The bytes this holder answers for ``key``: the checked chunk, or None if not held."""
        return self.store.get(key)

    def serve_pending(self, now: float, limit: int | None = None) -> int:
        """Answer up to ``limit`` (default ``serve_batch``) waiting requests; returns how many.

        Peers take turns, one request each; a peer over ``peer_rate`` waits for
        its bucket to refill (its requests stay queued).  0 while requests wait
        means every waiting peer is over its rate: call again a little later.
        """
        count = 0
        limit = self.config.serve_batch if limit is None else limit
        progress = True
        while self._queued and count < limit and progress:
            progress = False
            for node_id in list(self._serving):
                if count >= limit:
                    break
                if not self._rates.allow(node_id, now):
                    continue
                queue = self._serving[node_id]
                addr, request = queue.popleft()
                if not queue:
                    del self._serving[node_id]
                self._queued -= 1
                self._answer_request(node_id, addr, request)
                count += 1
                progress = True
        return count

    def _answer_request(self, node_id: bytes, addr: Hashable, request: GetChunk) -> None:
        data = self.chunk_data(request.key)
        if data is None:
            self._drops["not-held"] += 1
        else:
            self.served += 1
            self.served_bytes += len(data)
        self._out.append((node_id, addr, encode(Chunk(request.rid, data))))

    @property
    def serving(self) -> int:
        """Requests accepted and not yet answered."""
        return self._queued

    def _accept(self, node_id: bytes, addr: Hashable, request: GetChunk, now: float) -> None:
        queue = self._serving.get(node_id)
        if queue is not None and len(queue) >= self.config.peer_queue:
            self._drops["peer-busy"] += 1
            return
        if self._queued >= self.config.max_serving:
            self._drops["busy"] += 1
            return
        if not self._queued:
            self._events.append(ServeReady())
        if queue is None:
            queue = self._serving[node_id] = deque()
        queue.append((addr, request))
        self._queued += 1

    # ------------------------------------------------------------ fetching

    def start_fetch(
        self,
        manifest: ModelManifest | ManifestRef,
        holders: Iterable[tuple[Contact, bytes | None]],
        now: float,
    ) -> int:
        """Fetch the missing chunks (or pages) of ``manifest`` from ``holders``; returns a handle.

        ``holders`` are (contact, ``have`` bitfield or None) from provider
        records.  Events about the fetch carry the handle; it ends with
        :class:`FetchEnded` (or when the face calls :meth:`cancel_fetch`).
        """
        handle, self._next_handle = self._next_handle, self._next_handle + 1
        fetch = _Fetch(ModelFetch(manifest, self.store, self.config.fetch))
        self._fetches[handle] = fetch
        self._add(fetch, holders)
        self._pump(now)
        return handle

    def add_holders(
        self, handle: int, holders: Iterable[tuple[Contact, bytes | None]], now: float
    ) -> int:
        """More holders for fetch ``handle`` (a later provider lookup); they are asked afresh.

        Returns how many were taken (this node and holders dropped from the
        fetch are not).
        """
        fetch = self._fetches.get(handle)
        if fetch is None:
            raise ConfigError(f"no fetch with handle {handle} is running")
        added = self._add(fetch, holders, fresh=True)
        self._pump(now)
        return added

    def _add(
        self, fetch: _Fetch, holders: Iterable[tuple[Contact, bytes | None]], fresh: bool = False
    ) -> int:
        added = 0
        for contact, have in holders:
            if (
                contact.node_id == self.node_id
                or contact.node_id in fetch.dropped
                or not contact.addresses
            ):
                continue
            if fresh:
                fetch.planner.remove_holder(contact.node_id)  # forget what it lacked
            fetch.addresses[contact.node_id] = contact.addresses[0]
            fetch.planner.add_holder(contact.node_id, have)
            added += 1
        return added

    def cancel_fetch(self, handle: int) -> None:
        """Stop fetch ``handle``; answers still on their way are dropped."""
        self._fetches.pop(handle, None)

    def fetch_stats(self, handle: int) -> dict[str, Any]:
        """The planner's counters of fetch ``handle`` (holders, in flight, bytes, drops)."""
        fetch = self._fetches.get(handle)
        if fetch is None:
            raise ConfigError(f"no fetch with handle {handle} is running")
        return fetch.planner.stats()

    def _pump(self, now: float) -> None:
        """Send every fetch's planned requests, report its events."""
        timeout = self.config.fetch.request_timeout
        for handle, fetch in list(self._fetches.items()):
            planner = fetch.planner
            for request in planner.next_requests(now):
                rid = self._rng(RID_SIZE)
                deadline = now + timeout
                self._rids[rid] = (handle, request.holder, request.key, deadline)
                self._new_deadline = min(self._new_deadline, deadline)
                addr = fetch.addresses.get(request.holder)
                self._out.append((request.holder, addr, encode(GetChunk(rid, request.key))))
            while (event := planner.next_event()) is not None:
                if type(event) is Progress:
                    self._events.append(FetchProgress(handle, event))
                elif type(event) is Penalty:
                    self._events.append(FetchPenalty(handle, event.holder, event.offence))
                elif type(event) is HolderDropped:
                    fetch.dropped.add(event.holder)
                    self._drops[f"holder-{event.reason}"] += 1
                    self._events.append(FetchHolderDropped(handle, event.holder, event.reason))
                elif type(event) is FetchStuck:
                    self._events.append(FetchStalled(handle, event.missing))
                elif type(event) is FetchComplete:
                    del self._fetches[handle]
                    received = planner.stats()["received_bytes"]
                    self._events.append(FetchEnded(handle, received))
                    break

    def _answer(self, node_id: bytes, answer: Chunk, now: float) -> None:
        pending = self._rids.get(answer.rid)
        if pending is None or pending[1] != node_id:
            self._drops["unsolicited"] += 1
            return
        del self._rids[answer.rid]
        handle, holder, key, _ = pending
        fetch = self._fetches.get(handle)
        if fetch is None:
            self._drops["unsolicited"] += 1  # the fetch ended or was cancelled
            return
        if answer.data is None:
            fetch.planner.chunk_missing(holder, key, now)
        else:
            self.received_bytes += len(answer.data)
            fetch.planner.receive_chunk(holder, key, answer.data, now)

    # ------------------------------------------------------------ ServiceCore

    def receive_message(
        self, node_id: bytes, addr: Hashable, payload: bytes, now: float, *, early: bool = False
    ) -> None:
        try:
            message = decode(payload, expect=(GetChunk, Chunk))
        except Exception:  # DecodeError, or a valid message of another type
            self._drops["malformed"] += 1
            return
        if type(message) is GetChunk:
            self._accept(node_id, addr, message, now)  # idempotent: early data is fine
            return
        assert type(message) is Chunk
        if early:
            self._drops["early-answer"] += 1
            return
        self._answer(node_id, message, now)
        self._pump(now)

    def messages_to_send(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> object | None:
        return self._events.popleft() if self._events else None

    @property
    def new_deadline(self) -> float:
        return self._new_deadline

    def get_timer(self) -> float | None:
        self._new_deadline = float("inf")
        deadlines = [d for _, _, _, d in self._rids.values()]
        for fetch in self._fetches.values():
            timer = fetch.planner.get_timer()
            if timer is not None:
                deadlines.append(timer)
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        for rid, (_, _, _, deadline) in list(self._rids.items()):
            if deadline <= now:
                del self._rids[rid]
        for fetch in self._fetches.values():
            fetch.planner.handle_timer(now)
        self._pump(now)

    def peer_unreachable(self, node_id: bytes, now: float, reason: str) -> None:
        for handle, fetch in self._fetches.items():
            if node_id in fetch.addresses:
                del fetch.addresses[node_id]
                fetch.planner.remove_holder(node_id)
                self._events.append(FetchHolderDropped(handle, node_id, reason))
        for rid, pending in list(self._rids.items()):
            if pending[1] == node_id:
                del self._rids[rid]
        self._pump(now)

    def stats(self) -> dict[str, Any]:
        drops = Counter(self._drops)
        drops.update(self.store.stats()["drops"])
        return {
            "served": self.served,
            "served_bytes": self.served_bytes,
            "received_bytes": self.received_bytes,
            "serving": self._queued,
            "fetches": len(self._fetches),
            "held": self.held,
            "announced": self.announced,
            "requests_in_flight": len(self._rids),
            "drops": dict(drops),
        }
