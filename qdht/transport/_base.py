"""What every qdht transport offers: unreliable datagrams between addresses.

A transport moves whole datagrams, unordered and unreliable, like UDP; the
session layer above it provides authentication, replay protection and
fragmentation.  Every transport (UDP, WebSocket, the in-memory network, the
fault injector around any of them) has the same shape, so the same session
code runs over all of them unchanged.

Error contract (DESIGN §3): problems caused by the remote side or the network
(unreachable hosts, ICMP errors, a peer that went away, malformed frames) are
never raised out of ``send``/``receive``; they are dropped and counted in
``stats()`` under ``"drop_<reason>"``.  Local misuse (a payload larger than
``max_datagram_size``, an address of a transport this object does not speak,
using a closed transport) raises.
"""

from __future__ import annotations

from typing import Final, Protocol, runtime_checkable

from qdht.errors import ConfigError, TransportError
from qdht.wire import Address

__all__ = ["DatagramTransport", "DropCounter", "check_payload"]

#: Prefix of the stats keys that count dropped datagrams, one key per reason.
DROP_PREFIX: Final = "drop_"


@runtime_checkable
class DatagramTransport(Protocol):
    """Unreliable, unordered datagrams to and from :class:`~qdht.wire.Address` es."""

    @property
    def local_addresses(self) -> tuple[Address, ...]:
        """The addresses this transport listens on (to advertise in a contact)."""
        ...

    @property
    def max_datagram_size(self) -> int:
        """The largest payload :meth:`send` accepts, in bytes."""
        ...

    async def send(self, data: bytes, addr: Address) -> None:
        """Send one datagram; network-side failures are counted, not raised."""
        ...

    async def receive(self) -> tuple[bytes, Address]:
        """Wait for the next datagram and return it with its sender's address."""
        ...

    async def aclose(self) -> None:
        """Close the transport; blocked and later calls raise ``trio.ClosedResourceError``."""
        ...

    def stats(self) -> dict[str, int]:
        """Counters: ``datagrams_sent``, ``bytes_sent``, ``datagrams_received``,
        ``bytes_received`` and ``drop_<reason>`` for each reason seen."""
        ...


class DropCounter:
    """Counts datagrams dropped per reason; cheap enough for the hot path."""

    __slots__ = ("_drops",)

    def __init__(self) -> None:
        self._drops: dict[str, int] = {}

    def drop(self, reason: str, n: int = 1) -> None:
        self._drops[reason] = self._drops.get(reason, 0) + n

    def as_stats(self) -> dict[str, int]:
        return {DROP_PREFIX + reason: n for reason, n in self._drops.items()}

    def __getitem__(self, reason: str) -> int:
        return self._drops.get(reason, 0)


def check_payload(
    data: bytes, addr: Address, max_size: int, transport: str, owner: str = "transport"
) -> None:
    """Raise for local misuse of ``send``: wrong payload type, oversize, wrong transport."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ConfigError(f"data must be bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise TransportError(
            f"data is {len(data)} bytes; this {owner} sends at most {max_size} bytes "
            "per datagram (max_datagram_size)"
        )
    if not isinstance(addr, Address):
        raise ConfigError(f"addr must be a qdht.wire.Address, got {type(addr).__name__}")
    if addr.transport != transport:
        raise ConfigError(
            f"addr {addr} uses transport {addr.transport!r}; this {owner} sends {transport!r}"
        )
