"""Transports: unreliable datagrams over UDP, WebSocket, or several at once.

Every transport satisfies :class:`DatagramTransport`; the session layer runs
over any of them unchanged.  The in-memory network and the fault injector for
tests and simulations live in :mod:`qdht.testing`.
"""

from qdht.transport._base import DatagramTransport, DropCounter, check_payload
from qdht.transport._multi import MultiTransport
from qdht.transport._udp import (
    DEFAULT_RECEIVE_BUFFER_SIZE,
    MAX_UDP_PAYLOAD_V4,
    MAX_UDP_PAYLOAD_V6,
    UdpTransport,
    open_udp_transport,
)
from qdht.transport._websocket import (
    DEFAULT_MAX_CONNECTIONS,
    WEBSOCKET_PATH,
    WebSocketTransport,
    open_websocket_transport,
)

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_RECEIVE_BUFFER_SIZE",
    "MAX_UDP_PAYLOAD_V4",
    "MAX_UDP_PAYLOAD_V6",
    "WEBSOCKET_PATH",
    "DatagramTransport",
    "DropCounter",
    "MultiTransport",
    "UdpTransport",
    "WebSocketTransport",
    "check_payload",
    "open_udp_transport",
    "open_websocket_transport",
]
