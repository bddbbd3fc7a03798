"""Transports: unreliable datagrams over UDP, WebSocket, or several at once.

Every transport satisfies :class:`DatagramTransport`; the session layer runs
over any of them unchanged.  The in-memory network and the fault injector for
tests and simulations live in :mod:`qdht.testing`.
"""

from typing import TYPE_CHECKING

from qdht._lazy import lazy_exports
from qdht.transport._base import DatagramTransport, DropCounter, check_payload
from qdht.transport._bpf import (
    MAX_FILTER_SOURCES,
    BpfInstruction,
    SourceRule,
    pack_bpf_program,
    source_filter_program,
)
from qdht.transport._multi import MultiTransport
from qdht.transport._udp import (
    DEFAULT_RECEIVE_BUFFER_SIZE,
    MAX_UDP_PAYLOAD_V4,
    MAX_UDP_PAYLOAD_V6,
    UdpTransport,
    open_udp_transport,
)

# The WebSocket transport (trio-websocket, wsproto, h11) is imported on first
# use: a node listening on UDP only never loads it (issue 19, a phone's memory).
if TYPE_CHECKING:
    from qdht.transport._websocket import (
        DEFAULT_MAX_CONNECTIONS,
        WEBSOCKET_PATH,
        WebSocketTransport,
        open_websocket_transport,
    )
else:
    __getattr__ = lazy_exports(
        globals(),
        dict.fromkeys(
            [
                "DEFAULT_MAX_CONNECTIONS",
                "WEBSOCKET_PATH",
                "WebSocketTransport",
                "open_websocket_transport",
            ],
            "qdht.transport._websocket",
        ),
    )

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_RECEIVE_BUFFER_SIZE",
    "MAX_FILTER_SOURCES",
    "MAX_UDP_PAYLOAD_V4",
    "MAX_UDP_PAYLOAD_V6",
    "WEBSOCKET_PATH",
    "BpfInstruction",
    "DatagramTransport",
    "DropCounter",
    "MultiTransport",
    "SourceRule",
    "UdpTransport",
    "WebSocketTransport",
    "check_payload",
    "open_udp_transport",
    "open_websocket_transport",
    "pack_bpf_program",
    "source_filter_program",
]
