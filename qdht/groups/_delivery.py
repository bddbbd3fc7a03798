"""Where a group's records go (12-groups.md §12, §14): the :class:`Delivery` interface.

* :class:`DhtDelivery`: this node puts and gets the records itself, and
  watches the keys it waits on.  Holders see this node's address next to
  the group's keys: who is in a group, who writes.
* :class:`AnonymousDelivery`: every put and get goes through the mixnet
  (``node.anonymous``): mixnet exits run them, holders see an exit, and no
  exit learns who asked.  A watch would give the watcher's address away, so
  a key waited on is polled instead, through the mixnet too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

import trio

from qdht.crypto.hashes import sha3_256
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.dht import sign_mutable
from qdht.errors import (
    ConfigError,
    LookupFailedError,
    NodeStateError,
    RecordRejectedError,
    RPCError,
)
from qdht.groups._layout import record_salt
from qdht.wire import MutableRecord, mutable_key

if TYPE_CHECKING:
    from qdht.node import KeyWatch, Node

__all__ = ["AnonymousDelivery", "Delivery", "DhtDelivery", "record_key"]


def record_key(key: MLDSAPrivateKey, name: bytes) -> bytes:
    """The DHT key of the group record (``key``, ``name``)."""
    return mutable_key(sha3_256(key.public_key_bytes()), record_salt(name))


class Delivery(Protocol):
    """Where a group's records go: write-once values named under a signing key."""

    #: Largest value one record may hold (bytes): larger commit slots are split.
    max_value: int
    #: Whether a watch polls (each key read costs a request every ``poll`` seconds).
    polls: bool
    poll: float

    async def store(
        self, key: MLDSAPrivateKey, name: bytes, value: bytes, *, expires: int | None = None
    ) -> bool:
        """Write ``value`` once under (``key``, ``name``), living until ``expires`` (Unix
        seconds; None: the configured lifetime); False if it holds another value."""
        ...

    async def fetch(self, key: MLDSAPrivateKey, name: bytes) -> bytes | None:
        """The value under (``key``, ``name``), or None."""
        ...

    def watch(
        self, key: MLDSAPrivateKey, name: bytes
    ) -> Any:  # an async context manager yielding an AsyncIterator[bytes]
        """Every value seen under (``key``, ``name``), competing writes included."""
        ...

    def release(self, record: bytes) -> None:
        """The record with DHT key ``record`` is of a superseded epoch: stop keeping it
        alive (it stays at its holders until it expires)."""
        ...

    def expiry(self) -> int:
        """The Unix time a record stored now would expire."""
        ...


class _Records:
    """What both deliveries share: signing a write-once record, counting bytes."""

    def __init__(self, node: Node, ttl: float, unix_offset: float) -> None:
        self._node = node
        self._ttl = ttl
        self._unix_offset = unix_offset
        self.bytes_stored = 0
        self.bytes_fetched = 0

    def expiry(self) -> int:
        return int(trio.current_time() + self._unix_offset + self._ttl)

    def _record(
        self, key: MLDSAPrivateKey, name: bytes, value: bytes, expires: int | None
    ) -> MutableRecord:
        when = self.expiry() if expires is None else expires
        return sign_mutable(key, salt=record_salt(name), seq=0, value=value, expires=when)


class DhtDelivery(_Records):
    """Direct delivery: each value is a mutable DHT record under a write-once salt."""

    polls = False
    poll = 0.0

    def __init__(self, node: Node, ttl: float, unix_offset: float) -> None:
        super().__init__(node, ttl, unix_offset)
        self.max_value = node.config.record_limits.max_value_size

    key_of = staticmethod(record_key)

    async def store(
        self, key: MLDSAPrivateKey, name: bytes, value: bytes, *, expires: int | None = None
    ) -> bool:
        try:
            await self._node.put_signed(self._record(key, name, value, expires))
        except (RecordRejectedError, RPCError):
            # Refused by every holder that answered: it holds another write (a
            # leaf record stored before, with another expiry), or was full.
            return False
        self.bytes_stored += len(value)
        return True

    async def fetch(self, key: MLDSAPrivateKey, name: bytes) -> bytes | None:
        try:
            value = await self._node.get(record_key(key, name))
        except (LookupFailedError, RPCError):
            return None
        if value is not None:
            self.bytes_fetched += len(value)
        return value

    @asynccontextmanager
    async def watch(self, key: MLDSAPrivateKey, name: bytes) -> AsyncIterator[_Values]:
        async with self._node.watch(record_key(key, name)) as updates:
            yield _Values(updates, self)

    def release(self, record: bytes) -> None:
        self._node.unpublish(record)


class _Values:
    """The values of a watched key's updates (deletions and expiries skipped)."""

    def __init__(self, updates: KeyWatch, delivery: _Records) -> None:
        self._updates = updates
        self._delivery = delivery

    def __aiter__(self) -> _Values:
        return self

    async def __anext__(self) -> bytes:
        while True:
            update = await self._updates.__anext__()
            value = update.record.value
            if update.kind == "update" and value is not None:
                self._delivery.bytes_fetched += len(value)
                return value


class AnonymousDelivery(_Records):
    """Delivery through the mixnet: puts and gets run by exits (``node.anonymous``).

    Exits store the records once (``put_record``): nobody republishes them,
    holders keep them until they expire.  A key waited on is read every
    ``poll_interval`` seconds.
    """

    def __init__(
        self, node: Node, ttl: float, unix_offset: float, poll_interval: float, concurrency: int
    ) -> None:
        super().__init__(node, ttl, unix_offset)
        self.polls = True
        self.poll = poll_interval
        # A Loopix client sends at a fixed rate: more requests at once than it
        # sends in a few ticks only fill its queue (and then fail).
        self._limiter = trio.CapacityLimiter(concurrency)
        # What one anonymous request carries, in at most max_fragments packets
        # (10-mixnet.md §14.6): the record's keys, signature and framing take
        # the rest (12 §14).
        from qdht.mixnet import fragment_chunk_size  # the mixnet layer is on here

        mixnet = node.anonymous.config
        carried = mixnet.max_fragments * fragment_chunk_size(mixnet.geometry)
        self.max_value = min(node.config.record_limits.max_value_size, carried - RECORD_OVERHEAD)
        if self.max_value < MIN_VALUE:
            raise ConfigError(
                f"groups through the mixnet need requests of ≥ {MIN_VALUE + RECORD_OVERHEAD} "
                f"bytes; max_fragments times the payload chunk allows {carried}"
            )

    async def store(
        self, key: MLDSAPrivateKey, name: bytes, value: bytes, *, expires: int | None = None
    ) -> bool:
        try:
            async with self._limiter:
                await self._node.anonymous.put_record(self._record(key, name, value, expires))
        except (LookupFailedError, RPCError, NodeStateError, ConfigError):
            # No exit stored it: a holder keeps another write, or no exit answered.
            return False
        self.bytes_stored += len(value)
        return True

    async def fetch(self, key: MLDSAPrivateKey, name: bytes) -> bytes | None:
        try:
            async with self._limiter:
                value = await self._node.anonymous.get(record_key(key, name))
        except (LookupFailedError, RPCError, NodeStateError, ConfigError):
            # ConfigError: the client's send queue is full (too many requests at once).
            return None
        if value is not None:
            self.bytes_fetched += len(value)
        return value

    @asynccontextmanager
    async def watch(self, key: MLDSAPrivateKey, name: bytes) -> AsyncIterator[AsyncIterator[bytes]]:
        async def poll() -> AsyncIterator[bytes]:
            last: bytes | None = None
            while True:
                value = await self.fetch(key, name)
                if value is not None and value != last:
                    last = value
                    yield value
                await trio.sleep(self.poll)

        values = poll()
        try:
            yield values
        finally:
            await values.aclose()  # type: ignore[attr-defined]

    def release(self, record: bytes) -> None:
        pass  # exits store once: nothing republishes it


#: Bytes an anonymous put of a group record needs besides its value: the
#: record's ML-DSA-65 public key (1952) and signature (3309), salt, framing.
RECORD_OVERHEAD = 5632
#: The smallest value worth a record: a commit slot split finer is absurd.
MIN_VALUE = 1024


class NoDelivery:
    """The delivery of a service that is not running: every use is misuse."""

    max_value = 0
    polls = False
    poll = 0.0

    async def store(
        self, key: MLDSAPrivateKey, name: bytes, value: bytes, *, expires: int | None = None
    ) -> bool:
        raise ConfigError("the groups service is not running")

    async def fetch(self, key: MLDSAPrivateKey, name: bytes) -> bytes | None:
        raise ConfigError("the groups service is not running")

    def watch(self, key: MLDSAPrivateKey, name: bytes) -> Any:
        raise ConfigError("the groups service is not running")

    def release(self, record: bytes) -> None:
        pass

    def expiry(self) -> int:
        raise ConfigError("the groups service is not running")
