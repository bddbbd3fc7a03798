"""Messages larger than one payload: fragments and bounded reassembly (10-mixnet.md §14.6).

A message too big for one packet's user payload ``U`` is cut into ``count``
fragments, each the data of its own packet (payload kind 3 from a client, with
its own reply block; kind 4 back through a reply block)::

    fragment = message id (16) ‖ index (u8) ‖ count (u8) ‖ chunk

A sender fills every chunk (``U - 18`` bytes) but the last of its data;
fragments past the data (a request asking for more reply blocks) are empty.
A receiver joins the chunks in index order.  A receiver collects the
fragments of a message id in a :class:`Reassembler` whose state is bounded:
at most ``max_fragments`` per message, at most ``max_open`` messages open at
once (the oldest is evicted), each open for at most ``timeout`` seconds.
Sans-IO: ``now`` is passed in; a drop is counted under its reason.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Sequence
from typing import Final

import attrs

from qdht.errors import ConfigError
from qdht.mixnet._geometry import Geometry
from qdht.mixnet._sphinx import Surb

__all__ = [
    "FRAGMENT_HEADER_SIZE",
    "MAX_FRAGMENT_COUNT",
    "MESSAGE_ID_SIZE",
    "Fragment",
    "Reassembled",
    "Reassembler",
    "fragment_chunk_size",
    "fragment_count",
    "parse_fragment",
    "split_message",
]

MESSAGE_ID_SIZE: Final = 16
#: ``message id ‖ index ‖ count``.
FRAGMENT_HEADER_SIZE: Final = MESSAGE_ID_SIZE + 2
#: ``count`` is one byte.
MAX_FRAGMENT_COUNT: Final = 255


@attrs.frozen
class Fragment:
    """One fragment of message ``message_id``: chunk ``index`` of ``count``."""

    message_id: bytes
    index: int
    count: int
    chunk: bytes

    def to_bytes(self) -> bytes:
        return self.message_id + bytes([self.index, self.count]) + self.chunk


def fragment_chunk_size(geometry: Geometry) -> int:
    """The message bytes one fragment carries."""
    return geometry.user_payload_size - FRAGMENT_HEADER_SIZE


def fragment_count(geometry: Geometry, size: int) -> int:
    """How many fragments a message of ``size`` bytes needs (at least one)."""
    return max(1, math.ceil(size / fragment_chunk_size(geometry)))


def split_message(
    geometry: Geometry, data: bytes, message_id: bytes, *, count: int | None = None
) -> list[Fragment]:
    """``data`` in fragments of one payload each; ``count`` may ask for more (empty) ones.

    A request sends as many fragments as it wants reply blocks back (§14.6),
    so a short request can still come in ``count`` fragments: the ones past
    the data carry an empty chunk.
    """
    if type(message_id) is not bytes or len(message_id) != MESSAGE_ID_SIZE:
        raise ConfigError(f"message id must be {MESSAGE_ID_SIZE} bytes")
    size = fragment_chunk_size(geometry)
    needed = fragment_count(geometry, len(data))
    total = needed if count is None else count
    if not needed <= total <= MAX_FRAGMENT_COUNT:
        raise ConfigError(
            f"a message of {len(data)} bytes takes {needed}..{MAX_FRAGMENT_COUNT} fragments "
            f"of {size} bytes, not {total}"
        )
    return [Fragment(message_id, i, total, data[i * size : (i + 1) * size]) for i in range(total)]


def parse_fragment(geometry: Geometry, data: bytes) -> Fragment | None:
    """The fragment in a payload's data, or None if its header is invalid."""
    if not FRAGMENT_HEADER_SIZE <= len(data) <= geometry.user_payload_size:
        return None
    index, count = data[MESSAGE_ID_SIZE], data[MESSAGE_ID_SIZE + 1]
    if count == 0 or index >= count:
        return None
    return Fragment(data[:MESSAGE_ID_SIZE], index, count, data[FRAGMENT_HEADER_SIZE:])


@attrs.frozen
class Reassembled:
    """A whole message: its data and the reply blocks its fragments carried, in order."""

    message_id: bytes
    data: bytes
    surbs: tuple[Surb, ...]


@attrs.define
class _Partial:
    count: int
    deadline: float
    chunks: dict[int, bytes] = attrs.Factory(dict)
    surbs: dict[int, Surb] = attrs.Factory(dict)


class Reassembler:
    """The open messages of one receiver, bounded in number, size and time."""

    def __init__(self, max_fragments: int, max_open: int, timeout: float) -> None:
        self.max_fragments = max_fragments
        self.max_open = max_open
        self.timeout = timeout
        self._open: OrderedDict[bytes, _Partial] = OrderedDict()
        self.drops: Counter[str] = Counter()

    def add(self, fragment: Fragment, surb: Surb | None, now: float) -> Reassembled | None:
        """Take ``fragment`` (and its reply block); the message once it is whole."""
        self.expire(now)
        if fragment.count > self.max_fragments:
            self.drops["fragment-too-many"] += 1
            return None
        partial = self._open.get(fragment.message_id)
        if partial is None:
            if fragment.count == 1:
                single: tuple[Surb, ...] = (surb,) if surb is not None else ()
                return Reassembled(fragment.message_id, fragment.chunk, single)
            while len(self._open) >= self.max_open:
                self._open.popitem(last=False)
                self.drops["fragment-evicted"] += 1
            partial = _Partial(fragment.count, now + self.timeout)
            self._open[fragment.message_id] = partial
        if partial.count != fragment.count:
            self.drops["fragment-mismatch"] += 1
            return None
        if fragment.index in partial.chunks:
            self.drops["fragment-duplicate"] += 1
            return None
        partial.chunks[fragment.index] = fragment.chunk
        if surb is not None:
            partial.surbs[fragment.index] = surb
        if len(partial.chunks) < partial.count:
            return None
        del self._open[fragment.message_id]
        data = b"".join(partial.chunks[i] for i in range(partial.count))
        surbs = tuple(partial.surbs[i] for i in sorted(partial.surbs))
        return Reassembled(fragment.message_id, data, surbs)

    def discard(self, message_ids: Sequence[bytes]) -> None:
        """Forget these messages' fragments (their operation ended)."""
        for message_id in message_ids:
            self._open.pop(message_id, None)

    def expire(self, now: float) -> None:
        """Drop every message whose fragments did not all arrive in time."""
        while self._open:
            message_id, partial = next(iter(self._open.items()))
            if partial.deadline > now:
                break
            del self._open[message_id]
            self.drops["fragment-timeout"] += 1

    def get_timer(self) -> float | None:
        """When the oldest open message times out (opened first: deadlines are in order)."""
        if not self._open:
            return None
        return next(iter(self._open.values())).deadline

    def __len__(self) -> int:
        return len(self._open)
