"""``node.watch(key)``: the Trio side of watching keys (``protocol-spec/08-watch.md``).

The DHT core does the protocol (lookups, WATCH, NOTIFY, validation,
deduplication, local expiry) and reports :class:`~qdht.dht.WatchUpdate`
events.  This module turns them into one async iterator per caller::

    async with node.watch(key) as updates:
        async for update in updates:
            print(update.kind, update.value)

The node wires it in with three lines (see :class:`WatchHub`): create one hub
per node, hand it the core's ``WatchUpdate`` events, and close it when the
node stops.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Final

import trio

from qdht.dht import WatchUpdate
from qdht.errors import ConfigError, NodeStateError
from qdht.wire import KEY_SIZE

if TYPE_CHECKING:
    from qdht.dht import DhtCore

__all__ = ["DEFAULT_WATCH_BUFFER", "MAX_LOCAL_WATCHES", "KeyWatch", "WatchHub"]

#: Updates one :class:`KeyWatch` buffers before the oldest are dropped.
DEFAULT_WATCH_BUFFER: Final = 64
#: :class:`KeyWatch` objects open at once on one node (all keys together).
MAX_LOCAL_WATCHES: Final = 1024


class KeyWatch:
    """The updates of one watched key, for one caller: ``async with node.watch(key) as w``.

    Iterating yields :class:`~qdht.dht.WatchUpdate` (``kind`` ``"update"``,
    ``"deleted"`` or ``"expired"``, ``record`` validated by this node).  The
    first updates are what the key holds now, as far as the holders report
    it; then every change, each once, in rank order.

    The buffer holds ``buffer`` updates.  A consumer that falls behind loses
    the *oldest* ones (counted in :attr:`dropped`), never the newest: each
    update describes the key's whole state, so the latest is what matters.
    Leaving the ``async with`` block, :meth:`aclose` or cancellation ends the
    subscription (the holders are told when no other caller watches the key);
    iteration ends when the node stops.
    """

    def __init__(self, hub: WatchHub, key: bytes, buffer: int) -> None:
        self._hub = hub
        self.key = key
        self._buffer = buffer
        self._queue: deque[WatchUpdate] = deque()
        self._wake = trio.Event()
        self._open = False
        self._closed = False
        #: Updates lost because the consumer fell ``buffer`` updates behind.
        self.dropped = 0

    def _offer(self, update: WatchUpdate) -> None:
        if self._closed:
            return
        if len(self._queue) >= self._buffer:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(update)
        self._wake.set()

    def _end(self) -> None:
        self._closed = True
        self._wake.set()

    async def aclose(self) -> None:
        """Stop watching (also done by leaving the ``async with`` block)."""
        if self._open and not self._closed:
            self._closed = True
            self._wake.set()
            await self._hub._release(self)

    async def __aenter__(self) -> KeyWatch:
        if self._open or self._closed:
            raise NodeStateError("a KeyWatch can be entered once")
        await self._hub._start(self)
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> KeyWatch:
        return self

    async def __anext__(self) -> WatchUpdate:
        if not self._open:
            raise NodeStateError("use the watch as a context manager: async with node.watch(key)")
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._wake = trio.Event()
            await self._wake.wait()
        return self._queue.popleft()


class WatchHub:
    """One node's watches: hands each ``WatchUpdate`` to the callers watching its key.

    Wiring in :class:`qdht.Node` (the node owns the hub)::

        self._watches = WatchHub(self.core, self._flush)      # in __init__
        def watch(self, key, *, buffer=None):
            self._check_running(); return self._watches.watch(key, buffer=buffer)
        # in _dispatch, before the event subscribers:
        if type(event) is WatchUpdate: self._watches.dispatch(event); return
        self._watches.close()                                  # in _stop

    ``flush`` is the node's coroutine that moves the core's output to the
    network (``Node._flush``).
    """

    def __init__(
        self,
        core: DhtCore,
        flush: Callable[[], Awaitable[None]],
        *,
        buffer: int = DEFAULT_WATCH_BUFFER,
        max_watches: int = MAX_LOCAL_WATCHES,
    ) -> None:
        if type(buffer) is not int or buffer < 1:
            raise ConfigError(f"buffer must be a positive integer, got {buffer!r}")
        self._core = core
        self._flush = flush
        self._buffer = buffer
        self._max_watches = max_watches
        self._by_key: dict[bytes, set[KeyWatch]] = {}
        self._count = 0
        self._closed = False

    def watch(self, key: bytes, *, buffer: int | None = None) -> KeyWatch:
        """A watch of ``key`` (32 bytes), started by ``async with``.

        ``buffer`` overrides the hub's buffer size for this watch.
        """
        if type(key) is not bytes or len(key) != KEY_SIZE:
            raise ConfigError(f"key must be {KEY_SIZE} bytes")
        if buffer is not None and (type(buffer) is not int or buffer < 1):
            raise ConfigError(f"buffer must be a positive integer, got {buffer!r}")
        if self._closed:
            raise NodeStateError("the node has stopped")
        return KeyWatch(self, key, buffer if buffer is not None else self._buffer)

    async def _start(self, watch: KeyWatch) -> None:
        if self._closed:
            raise NodeStateError("the node has stopped")
        if self._count >= self._max_watches:
            raise NodeStateError(f"{self._count} watches open already (max_watches)")
        key = watch.key
        # May raise NodeStateError (WatchConfig.max_watched_keys): nothing to undo yet.
        self._core.start_watch(key, trio.current_time())
        watchers = self._by_key.setdefault(key, set())
        if watchers:
            # Others watch this key already: start from what they were told.
            for record in self._core.watching.reported_records(key):
                watch._offer(WatchUpdate(key, "deleted" if record.deleted else "update", record))
        watchers.add(watch)
        self._count += 1
        await self._flush()

    async def _release(self, watch: KeyWatch) -> None:
        watchers = self._by_key.get(watch.key)
        if watchers is None or watch not in watchers:
            return
        watchers.discard(watch)
        self._count -= 1
        if not watchers:
            del self._by_key[watch.key]
        if self._closed:
            return
        self._core.stop_watch(watch.key, trio.current_time())
        # The unwatch messages go out even when the caller is being cancelled.
        with trio.CancelScope(shield=True):
            await self._flush()

    def dispatch(self, update: WatchUpdate) -> None:
        """Hand a core ``WatchUpdate`` to every caller watching its key."""
        for watch in self._by_key.get(update.key, ()):
            watch._offer(update)

    def close(self) -> None:
        """The node stops: end every watch's iteration."""
        self._closed = True
        for watchers in self._by_key.values():
            for watch in watchers:
                watch._end()
        self._by_key.clear()
        self._count = 0
