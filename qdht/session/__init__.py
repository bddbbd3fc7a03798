"""Sessions between nodes: PQNoise handshakes over X-Wing, AEAD transport, fragmentation.

The sans-IO core is :class:`SessionEndpoint` (``protocol-spec/04-handshake.md``,
``05-transport.md``); :func:`open_session_host` runs it over any datagram transport.
"""

from typing import TYPE_CHECKING

from qdht._lazy import lazy_exports
from qdht.session._config import KEYLOG_ENV, SessionConfig
from qdht.session._endpoint import SessionEndpoint
from qdht.session._events import (
    Event,
    HandshakeFailed,
    MessageReceived,
    SessionClosed,
    SessionEstablished,
)
from qdht.session._noise import (
    HASHLEN,
    PATTERNS,
    PQIK,
    PQXX,
    CipherState,
    HandshakeState,
    KemOps,
    SymmetricState,
    protocol_name,
)
from qdht.session._peers import (
    BISCUIT_SIZE,
    DATA_OVERHEAD,
    HS_OVERHEAD,
    KEEPALIVE_FRAME,
    Keypair,
    cookie_mac,
    mac1_key,
)
from qdht.session._replay import ReplayWindow
from qdht.session._trio import (
    DatagramTransportLike,
    SessionDriver,
    SessionHost,
    open_session_host,
    wait_out_stall,
)

# The session key log (09-keylog.md, debugging only): loaded when QDHT_KEYLOGFILE
# is set or on first use of one of its names (issue 19: a phone's memory).
if TYPE_CHECKING:
    from qdht.session._keylog import (
        KEYLOG_LABEL,
        KeyLogEntry,
        KeyLogFile,
        keylog_from_environ,
        parse_keylog,
    )
else:
    __getattr__ = lazy_exports(
        globals(),
        dict.fromkeys(
            ["KEYLOG_LABEL", "KeyLogEntry", "KeyLogFile", "keylog_from_environ", "parse_keylog"],
            "qdht.session._keylog",
        ),
    )

__all__ = [
    "BISCUIT_SIZE",
    "DATA_OVERHEAD",
    "HASHLEN",
    "HS_OVERHEAD",
    "KEEPALIVE_FRAME",
    "KEYLOG_ENV",
    "KEYLOG_LABEL",
    "PATTERNS",
    "PQIK",
    "PQXX",
    "CipherState",
    "DatagramTransportLike",
    "Event",
    "HandshakeFailed",
    "HandshakeState",
    "KemOps",
    "KeyLogEntry",
    "KeyLogFile",
    "Keypair",
    "MessageReceived",
    "ReplayWindow",
    "SessionClosed",
    "SessionConfig",
    "SessionDriver",
    "SessionEndpoint",
    "SessionEstablished",
    "SessionHost",
    "SymmetricState",
    "cookie_mac",
    "keylog_from_environ",
    "mac1_key",
    "open_session_host",
    "parse_keylog",
    "protocol_name",
    "wait_out_stall",
]
