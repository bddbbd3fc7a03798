"""Tools for testing and simulating qdht: like :mod:`trio.testing`, public.

The in-memory network for simulations of thousands of nodes in one process,
the fault injector for any transport, network builders for simulations
(``build_network``: full-stack nodes; ``CoreNetwork``: 10,000 DHT cores in a
discrete-event loop) with churn schedules, and reusable ``check_*``
conformance helpers that another implementation can run against itself.
"""

from qdht.testing._adversary import (
    STRATEGIES,
    AdversarialNetwork,
    AdversaryCore,
    Coalition,
    eclipse_puzzle_cost,
)
from qdht.testing._checks import TransportPairFactory, check_datagram_transport
from qdht.testing._churn import ChurnEvent, ChurnSchedule, SessionLengths
from qdht.testing._coresim import DELIVER, CoreNetwork, SimCore, SimOperation
from qdht.testing._delay import DEFAULT_MAX_PENDING, DelayLine
from qdht.testing._echo import (
    ECHO_TIMEOUT,
    EchoCore,
    EchoFace,
    EchoFailed,
    EchoReplied,
    echo,
    echo_service,
)
from qdht.testing._faults import FaultInjector
from qdht.testing._groupnet import GroupNetwork, open_group_network
from qdht.testing._memory import DEFAULT_QUEUE_SIZE, MemoryNetwork, MemoryTransport
from qdht.testing._mixnet import (
    AnonymousOutcomes,
    MixNetwork,
    loop_latencies,
    open_mix_network,
    percentile,
)
from qdht.testing._sim import SimNetwork, build_network, seeded_identity

__all__ = [
    "DEFAULT_MAX_PENDING",
    "DEFAULT_QUEUE_SIZE",
    "DELIVER",
    "ECHO_TIMEOUT",
    "STRATEGIES",
    "AdversarialNetwork",
    "AdversaryCore",
    "AnonymousOutcomes",
    "ChurnEvent",
    "ChurnSchedule",
    "Coalition",
    "CoreNetwork",
    "DelayLine",
    "EchoCore",
    "EchoFace",
    "EchoFailed",
    "EchoReplied",
    "FaultInjector",
    "GroupNetwork",
    "MemoryNetwork",
    "MemoryTransport",
    "MixNetwork",
    "SessionLengths",
    "SimCore",
    "SimNetwork",
    "SimOperation",
    "TransportPairFactory",
    "build_network",
    "check_datagram_transport",
    "echo",
    "echo_service",
    "eclipse_puzzle_cost",
    "loop_latencies",
    "open_group_network",
    "open_mix_network",
    "percentile",
    "seeded_identity",
]
