"""The fetch planner: which chunk to ask of which holder, and what to do with the answer.

Sans-IO (13-models.md §6): a driver tells it which holders exist
(:meth:`ModelFetch.add_holder`, from provider records), sends the
``get_chunk`` requests it plans (:meth:`ModelFetch.next_requests`), and feeds
back answers (:meth:`ModelFetch.receive_chunk`, :meth:`ModelFetch.chunk_missing`)
and time (:meth:`ModelFetch.get_timer`, :meth:`ModelFetch.handle_timer`).
Events come out of :meth:`ModelFetch.next_event`.  The planner never reads a
clock, sleeps or touches a socket; it writes each verified chunk to its sink
(a :class:`~qdht.models.ChunkStore`) as it arrives, so memory holds only the
chunks in flight.

* Every chunk is checked (key and length) before it is written; a holder that
  sends a wrong chunk is dropped for the rest of the fetch and reported as
  :class:`Penalty` ``forged-record``.
* At most ``max_in_flight`` requests in total and ``per_holder`` per holder;
  rarest chunks first, each from the least busy holder that has it.
* A request unanswered after ``request_timeout`` is asked elsewhere
  (:class:`Penalty` ``timeout``); a holder with ``max_stalls`` timeouts is dropped.
* Chunks already in the store (an interrupted fetch, or an earlier version
  sharing tensors) are never asked for.

The node's Trio driver (one task tree per fetch) is the lead's part: it sends
each :class:`ChunkRequest` as a ``get_chunk`` to its holder's contact and
calls :meth:`ModelFetch.receive_chunk` with the ``chunk`` answer's ``data``,
or :meth:`ModelFetch.chunk_missing` when ``data`` is absent or the answer is
an ``error``.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Hashable
from typing import Any, Generic, Protocol, TypeVar

import attrs

from qdht.errors import ConfigError
from qdht.models._chunks import chunk_key, chunk_lengths
from qdht.models._manifest import has_chunk
from qdht.wire import MAX_CHUNK_SIZE, ManifestRef, ModelManifest

__all__ = [
    "ChunkRequest",
    "FetchComplete",
    "FetchEvent",
    "FetchLimits",
    "FetchStuck",
    "HolderDropped",
    "ModelFetch",
    "Penalty",
    "Progress",
]

H = TypeVar("H", bound=Hashable)


def _positive(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{attribute.name} must be positive, got {value!r}")


@attrs.frozen
class FetchLimits:
    """The bounds of one fetch (13-models.md §6.2)."""

    #: Requests in flight at once, over all holders.
    max_in_flight: int = attrs.field(default=16, validator=_positive)
    #: Requests in flight at once to one holder.
    per_holder: int = attrs.field(default=4, validator=_positive)
    #: Seconds a holder has to answer one request.
    request_timeout: float = attrs.field(default=10.0, validator=_positive)
    #: Timeouts after which a holder is dropped from the fetch.
    max_stalls: int = attrs.field(default=2, validator=_positive)


@attrs.frozen
class ChunkRequest(Generic[H]):
    """Send ``get_chunk`` for ``key`` to ``holder``."""

    holder: H
    key: bytes


@attrs.frozen
class Progress:
    """Chunks and bytes verified so far, out of the model's (repeated chunks counted once)."""

    chunks_done: int
    chunks_total: int
    bytes_done: int
    bytes_total: int


@attrs.frozen
class Penalty(Generic[H]):
    """Report ``offence`` (a reputation offence kind) against ``holder``."""

    holder: H
    offence: str


@attrs.frozen
class HolderDropped(Generic[H]):
    """``holder`` takes no further part in this fetch (``bad-chunk`` or ``stalled``)."""

    holder: H
    reason: str


@attrs.frozen
class FetchStuck:
    """``missing`` chunks are needed and no holder left can supply them: find more holders."""

    missing: int


@attrs.frozen
class FetchComplete:
    """Every chunk of the manifest is in the store: assemble the file."""


FetchEvent = Progress | Penalty[Any] | HolderDropped[Any] | FetchStuck | FetchComplete


class ChunkWriter(Protocol):
    def has(self, key: bytes) -> bool: ...
    def put(self, key: bytes, data: bytes | memoryview) -> None: ...


class _Holder:
    __slots__ = ("deadlines", "have", "lacks", "stalls")

    def __init__(self, have: bytes | None) -> None:
        self.have = have
        self.deadlines: dict[bytes, float] = {}
        self.lacks: set[bytes] = set()
        self.stalls = 0


def _pieces(manifest: ModelManifest | ManifestRef) -> list[tuple[bytes, int]]:
    """(key, length) of every chunk of a manifest, or of every page of a reference."""
    if isinstance(manifest, ManifestRef):
        lengths = chunk_lengths(manifest.size, MAX_CHUNK_SIZE)
        return list(zip(manifest.page_keys, lengths, strict=True))
    return [
        (key, length)
        for tensor in manifest.tensors
        for key, length in zip(
            tensor.chunk_keys, chunk_lengths(tensor.nbytes, manifest.chunk_size), strict=True
        )
    ]


class ModelFetch(Generic[H]):
    """Plans and checks the download of one manifest's missing chunks (13-models.md §6).

    Given a :class:`ManifestRef` instead, it fetches the manifest's pages
    (§4.4) the same way; holders' ``have`` bitfields, which cover the
    model's chunks, are then ignored.
    """

    def __init__(
        self,
        manifest: ModelManifest | ManifestRef,
        store: ChunkWriter,
        limits: FetchLimits | None = None,
    ) -> None:
        self.manifest = manifest
        self.limits = limits or FetchLimits()
        self._store = store
        self._pages = isinstance(manifest, ManifestRef)
        #: key → its length and its indices in manifest order (for ``have`` bitfields).
        self._length: dict[bytes, int] = {}
        self._indices: dict[bytes, list[int]] = {}
        for index, (key, length) in enumerate(_pieces(manifest)):
            self._length[key] = length
            self._indices.setdefault(key, []).append(index)
        self._total_bytes = sum(self._length.values())
        self._needed = {key for key in self._length if not store.has(key)}
        self._done_bytes = sum(n for k, n in self._length.items() if k not in self._needed)
        self._holders: dict[H, _Holder] = {}
        self._in_flight: dict[bytes, H] = {}
        self._queue: deque[bytes] = deque()
        self._order_stale = True
        self._stuck_reported = False
        self._events: deque[FetchEvent] = deque()
        self._drops: Counter[str] = Counter()
        self._received_bytes = 0
        self._events.append(self._progress())
        if not self._needed:
            self._events.append(FetchComplete())

    # ------------------------------------------------------------- holders

    def add_holder(self, holder: H, have: bytes | None = None) -> None:
        """A holder from a provider record; ``have`` its bitfield (None: every chunk)."""
        if holder in self._holders:
            self._holders[holder].have = have
        else:
            self._holders[holder] = _Holder(have)
        self._order_stale = True
        self._stuck_reported = False

    def remove_holder(self, holder: H) -> None:
        """Forget ``holder`` (gone from the network); its requests are asked elsewhere."""
        state = self._holders.pop(holder, None)
        if state is not None:
            for key in state.deadlines:
                self._in_flight.pop(key, None)
            self._order_stale = True

    def _may_have(self, state: _Holder, key: bytes) -> bool:
        if key in state.lacks:
            return False
        return (
            self._pages
            or state.have is None
            or any(has_chunk(state.have, i) for i in self._indices[key])
        )

    def _drop_holder(self, holder: H, reason: str, offence: str) -> None:
        self.remove_holder(holder)
        self._events.append(Penalty(holder, offence))
        self._events.append(HolderDropped(holder, reason))

    # ------------------------------------------------------------- planning

    def _rebuild_queue(self) -> None:
        """Rarest first, then manifest order (13-models.md §6.2)."""
        states = list(self._holders.values())
        pending = [k for k in self._length if k in self._needed and k not in self._in_flight]
        rarity = {k: sum(self._may_have(s, k) for s in states) for k in pending}
        self._queue = deque(sorted(pending, key=lambda k: rarity[k] or math.inf))
        self._order_stale = False

    def next_requests(self, now: float) -> list[ChunkRequest[H]]:
        """The requests to send now (each to be answered before ``now + request_timeout``)."""
        if self._order_stale:
            self._rebuild_queue()
        out: list[ChunkRequest[H]] = []
        free = {h: s for h, s in self._holders.items() if len(s.deadlines) < self.limits.per_holder}
        skipped: list[bytes] = []
        while self._queue and free and len(self._in_flight) < self.limits.max_in_flight:
            key = self._queue.popleft()
            if key not in self._needed or key in self._in_flight:
                continue
            ranked = sorted(free, key=lambda h: (len(free[h].deadlines), free[h].stalls))
            best = next((h for h in ranked if self._may_have(free[h], key)), None)
            if best is None:
                skipped.append(key)
                continue
            state = free[best]
            state.deadlines[key] = now + self.limits.request_timeout
            self._in_flight[key] = best
            out.append(ChunkRequest(best, key))
            if len(state.deadlines) >= self.limits.per_holder:
                del free[best]
        self._queue.extendleft(reversed(skipped))
        self._check_stuck()
        return out

    def _check_stuck(self) -> None:
        if not self._needed or self._in_flight or self._stuck_reported:
            return
        states = list(self._holders.values())
        if not any(self._may_have(s, k) for k in self._needed for s in states):
            self._stuck_reported = True
            self._events.append(FetchStuck(len(self._needed)))

    # -------------------------------------------------------------- answers

    def receive_chunk(self, holder: H, key: bytes, data: bytes, now: float) -> None:
        """``holder`` answered the request for ``key`` with ``data``: check it, keep it."""
        state = self._holders.get(holder)
        if state is None or key not in state.deadlines:
            self._drops["unsolicited"] += 1  # unknown, dropped, or answered after its timeout
            return
        del state.deadlines[key]
        del self._in_flight[key]
        self._received_bytes += len(data)
        if len(data) != self._length[key] or chunk_key(data) != key:
            self._drops["bad-chunk"] += 1
            self._queue.appendleft(key)
            self._drop_holder(holder, "bad-chunk", "forged-record")
            return
        self._store.put(key, data)
        self._needed.discard(key)
        self._done_bytes += len(data)
        self._events.append(self._progress())
        if not self._needed:
            self._events.append(FetchComplete())

    def chunk_missing(self, holder: H, key: bytes, now: float) -> None:
        """``holder`` does not hold ``key`` (``chunk`` without data, or ``error``)."""
        state = self._holders.get(holder)
        if state is None or key not in state.deadlines:
            self._drops["unsolicited"] += 1
            return
        del state.deadlines[key]
        del self._in_flight[key]
        state.lacks.add(key)
        self._drops["not-held"] += 1
        self._queue.appendleft(key)
        self._check_stuck()

    # ---------------------------------------------------------------- timers

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next run (None: nothing in flight)."""
        deadlines = [d for s in self._holders.values() for d in s.deadlines.values()]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        """Requests past their deadline are asked elsewhere; slow holders are dropped."""
        for holder, state in list(self._holders.items()):
            late = [k for k, deadline in state.deadlines.items() if deadline <= now]
            for key in late:
                del state.deadlines[key]
                del self._in_flight[key]
                self._queue.appendleft(key)
                self._drops["timeout"] += 1
                state.stalls += 1
                self._events.append(Penalty(holder, "timeout"))
            if state.stalls >= self.limits.max_stalls and holder in self._holders:
                self.remove_holder(holder)
                self._events.append(HolderDropped(holder, "stalled"))
        self._check_stuck()

    # ---------------------------------------------------------------- output

    def _progress(self) -> Progress:
        return Progress(
            len(self._length) - len(self._needed),
            len(self._length),
            self._done_bytes,
            self._total_bytes,
        )

    def next_event(self) -> FetchEvent | None:
        """The next event, or None."""
        return self._events.popleft() if self._events else None

    @property
    def complete(self) -> bool:
        """Whether every chunk is in the store."""
        return not self._needed

    @property
    def missing_bytes(self) -> int:
        """Bytes still to fetch."""
        return self._total_bytes - self._done_bytes

    def stats(self) -> dict[str, Any]:
        """Holders, requests in flight, bytes received (verified or not), drops by reason."""
        return {
            "holders": len(self._holders),
            "in_flight": len(self._in_flight),
            "received_bytes": self._received_bytes,
            "missing_chunks": len(self._needed),
            "drops": dict(self._drops),
        }
