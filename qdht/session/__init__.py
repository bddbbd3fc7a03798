"""Sessions between nodes: PQNoise handshakes over X-Wing, AEAD transport, fragmentation.

The sans-IO core is :class:`SessionEndpoint` (``protocol-spec/04-handshake.md``,
``05-transport.md``); :func:`open_session_host` runs it over any datagram transport.
"""

from qdht.session._config import SessionConfig
from qdht.session._endpoint import SessionEndpoint
from qdht.session._events import (
    Event,
    HandshakeFailed,
    MessageReceived,
    SessionClosed,
    SessionEstablished,
)
from qdht.session._keylog import (
    KEYLOG_ENV,
    KeyLogEntry,
    KeyLogFile,
    keylog_from_environ,
    parse_keylog,
)
from qdht.session._noise import PQIK, PQXX, CipherState, HandshakeState, KemOps, SymmetricState
from qdht.session._replay import ReplayWindow
from qdht.session._trio import SessionHost, open_session_host

__all__ = [
    "KEYLOG_ENV",
    "PQIK",
    "PQXX",
    "CipherState",
    "Event",
    "HandshakeFailed",
    "HandshakeState",
    "KemOps",
    "KeyLogEntry",
    "KeyLogFile",
    "MessageReceived",
    "ReplayWindow",
    "SessionClosed",
    "SessionConfig",
    "SessionEndpoint",
    "SessionEstablished",
    "SessionHost",
    "SymmetricState",
    "keylog_from_environ",
    "open_session_host",
    "parse_keylog",
]
