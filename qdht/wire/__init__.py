"""The wire layer: strict deterministic CBOR and one class per protocol message.

``encode(message) -> bytes`` and ``decode(data) -> message`` are the only way
bytes become messages and back; see ``protocol-spec/00-conventions.md``.
"""

from qdht.wire._bootstrap import CONTACT_LIST_CONTEXT, MAX_LIST_CONTACTS, ContactList
from qdht.wire._cbor import (
    DEFAULT_LIMITS,
    CborLimits,
    dumps_canonical,
    format_path,
    loads_canonical,
)
from qdht.wire._contact import (
    MAX_ADDRESSES,
    NODE_ID_SIZE,
    TRANSPORTS,
    WS_PATH,
    Address,
    Contact,
)
from qdht.wire._dht import (
    KEY_SIZE,
    MAX_VALUE_SIZE,
    RID_SIZE,
    ErrorCode,
    ErrorMessage,
    FindNode,
    FindValue,
    Nodes,
    Ping,
    Pong,
    Store,
    Stored,
    Value,
    immutable_key,
    new_rid,
)
from qdht.wire._fields import FieldReader, check_bytes, check_uint, child_path
from qdht.wire._registry import (
    WireMessage,
    decode,
    decode_object,
    encode,
    message_types,
    register,
)

# isort: off
# Message modules register their classes on import.  One line per module.
# -- message modules --
from qdht.wire import _training  # noqa: F401
from qdht.wire import _watch  # noqa: F401
from qdht.wire import _records  # noqa: F401
from qdht.wire import _bootstrap  # noqa: F401
from qdht.wire import _session  # noqa: F401
from qdht.wire import _identity  # noqa: F401
from qdht.wire import _dht  # noqa: F401

__all__ = [
    "CONTACT_LIST_CONTEXT",
    "DEFAULT_LIMITS",
    "KEY_SIZE",
    "MAX_ADDRESSES",
    "MAX_LIST_CONTACTS",
    "MAX_VALUE_SIZE",
    "NODE_ID_SIZE",
    "RID_SIZE",
    "TRANSPORTS",
    "WS_PATH",
    "Address",
    "CborLimits",
    "Contact",
    "ContactList",
    "ErrorCode",
    "ErrorMessage",
    "FieldReader",
    "FindNode",
    "FindValue",
    "Nodes",
    "Ping",
    "Pong",
    "Store",
    "Stored",
    "Value",
    "WireMessage",
    "check_bytes",
    "check_uint",
    "child_path",
    "decode",
    "decode_object",
    "dumps_canonical",
    "encode",
    "format_path",
    "immutable_key",
    "loads_canonical",
    "message_types",
    "new_rid",
    "register",
]
