"""Tools for testing and simulating qdht: like :mod:`trio.testing`, public.

The in-memory network for simulations of thousands of nodes in one process,
the fault injector for any transport, and reusable ``check_*`` conformance
helpers that another implementation can run against itself.
"""

from qdht.testing._checks import TransportPairFactory, check_datagram_transport
from qdht.testing._delay import DelayLine
from qdht.testing._faults import FaultInjector
from qdht.testing._memory import MemoryNetwork, MemoryTransport

__all__ = [
    "DelayLine",
    "FaultInjector",
    "MemoryNetwork",
    "MemoryTransport",
    "TransportPairFactory",
    "check_datagram_transport",
]
