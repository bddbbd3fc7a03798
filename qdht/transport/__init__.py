"""Transports: unreliable datagrams over UDP, WebSocket, or several at once.

Every transport satisfies :class:`DatagramTransport`; the session layer runs
over any of them unchanged.  The in-memory network and the fault injector for
tests and simulations live in :mod:`qdht.testing`.
"""

from qdht.transport._base import DatagramTransport, DropCounter
from qdht.transport._multi import MultiTransport
from qdht.transport._udp import (
    MAX_UDP_PAYLOAD_V4,
    MAX_UDP_PAYLOAD_V6,
    UdpTransport,
    open_udp_transport,
)
from qdht.transport._websocket import (
    WEBSOCKET_PATH,
    WebSocketTransport,
    open_websocket_transport,
)

__all__ = [
    "MAX_UDP_PAYLOAD_V4",
    "MAX_UDP_PAYLOAD_V6",
    "WEBSOCKET_PATH",
    "DatagramTransport",
    "DropCounter",
    "MultiTransport",
    "UdpTransport",
    "WebSocketTransport",
    "open_udp_transport",
    "open_websocket_transport",
]
