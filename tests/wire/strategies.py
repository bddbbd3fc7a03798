"""Hypothesis strategies for wire objects, shared by every test package.

``MESSAGE_STRATEGIES`` maps each message class to a strategy producing valid
instances of it; areas add their classes here so that the spec-drift tests
(``tests/wire/test_spec.py``) check them against their CDDL rules.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import strategies as st

from qdht.wire import (
    KEY_SIZE,
    MAX_ADDRESSES,
    MAX_VALUE_SIZE,
    NODE_ID_SIZE,
    RID_SIZE,
    Address,
    Contact,
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
)
from qdht.wire._dht import MAX_ERROR_MESSAGE_BYTES, MAX_NODES

__all__ = [
    "MESSAGE_STRATEGIES",
    "addresses",
    "contacts",
    "error_texts",
    "keys",
    "messages",
    "node_ids",
    "rids",
    "values",
]

rids = st.binary(min_size=RID_SIZE, max_size=RID_SIZE)
node_ids = st.binary(min_size=NODE_ID_SIZE, max_size=NODE_ID_SIZE)
keys = st.binary(min_size=KEY_SIZE, max_size=KEY_SIZE)
#: Mostly small values, sometimes close to the 64 KiB limit.
values = st.one_of(
    st.binary(max_size=256),
    st.integers(MAX_VALUE_SIZE - 16, MAX_VALUE_SIZE).map(lambda n: b"\xa5" * n),
)

_ipv4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
_ipv6 = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))

addresses = st.builds(
    Address,
    transport=st.sampled_from(["udp", "ws"]),
    host=st.one_of(_ipv4, _ipv6),
    port=st.integers(1, 65535),
)
contacts = st.builds(
    Contact,
    node_id=node_ids,
    addresses=st.lists(addresses, min_size=1, max_size=MAX_ADDRESSES),
)


#: Text of at most 256 UTF-8 bytes (lone surrogates excluded: CBOR text is UTF-8).
error_texts = st.text(st.characters(codec="utf-8"), max_size=MAX_ERROR_MESSAGE_BYTES).map(
    lambda t: t.encode()[:MAX_ERROR_MESSAGE_BYTES].decode("utf-8", "ignore")
)


#: The optional ``ws`` port of a request.
ws_ports = st.none() | st.integers(1, 65535)

MESSAGE_STRATEGIES: dict[type[Any], st.SearchStrategy[Any]] = {
    Ping: st.builds(Ping, rids, ro=st.booleans(), ws=ws_ports),
    Pong: st.builds(Pong, rids),
    FindNode: st.builds(FindNode, rids, node_ids, ro=st.booleans(), ws=ws_ports),
    Nodes: st.builds(Nodes, rids, st.lists(contacts, max_size=MAX_NODES)),
    FindValue: st.builds(FindValue, rids, keys, ro=st.booleans(), ws=ws_ports),
    Value: st.builds(Value, rids, values),
    Store: st.builds(Store, rids, keys, values, ro=st.booleans(), ws=ws_ports),
    Stored: st.builds(Stored, rids),
    ErrorMessage: st.builds(
        ErrorMessage,
        st.one_of(st.sampled_from(ErrorCode), st.integers(0, 2**64 - 1)),
        error_texts,
        st.one_of(st.none(), rids),
    ),
}


def messages() -> st.SearchStrategy[Any]:
    """Any message with a strategy in MESSAGE_STRATEGIES."""
    return st.one_of(*MESSAGE_STRATEGIES.values())
