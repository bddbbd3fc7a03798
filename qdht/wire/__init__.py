"""The wire layer: strict deterministic CBOR and one class per protocol message.

``encode(message) -> bytes`` and ``decode(data) -> message`` are the only way
bytes become messages and back; see ``protocol-spec/00-conventions.md``.
"""

from qdht.wire._cbor import (
    DEFAULT_LIMITS,
    CborLimits,
    dumps_canonical,
    format_path,
    loads_canonical,
)
from qdht.wire._contact import MAX_ADDRESSES, NODE_ID_SIZE, TRANSPORTS, Address, Contact
from qdht.wire._fields import FieldReader, check_bytes, check_uint, child_path
from qdht.wire._registry import (
    WireMessage,
    decode,
    decode_object,
    encode,
    message_types,
    register,
)

# Message modules register their classes on import.  One line per module.
# -- message modules --

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_ADDRESSES",
    "NODE_ID_SIZE",
    "TRANSPORTS",
    "Address",
    "CborLimits",
    "Contact",
    "FieldReader",
    "WireMessage",
    "check_bytes",
    "check_uint",
    "child_path",
    "decode",
    "decode_object",
    "dumps_canonical",
    "encode",
    "format_path",
    "loads_canonical",
    "message_types",
    "register",
]
