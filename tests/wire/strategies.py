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
    MAX_ERROR_MESSAGE_BYTES,
    MAX_NODES,
    MAX_RECORD_TIME,
    MAX_VALUE_SIZE,
    NODE_ID_SIZE,
    RID_SIZE,
    Address,
    Contact,
    ErrorCode,
    ErrorMessage,
    FindNode,
    FindValue,
    ImmutableRecord,
    MutableRecord,
    Nodes,
    Ping,
    Pong,
    SetEntry,
    Store,
    Stored,
    Tombstone,
    Value,
)

__all__ = [
    "MESSAGE_STRATEGIES",
    "addresses",
    "contacts",
    "error_texts",
    "keys",
    "messages",
    "node_ids",
    "records",
    "rids",
    "set_entries",
    "single_records",
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


_times = st.integers(0, MAX_RECORD_TIME)
_seqs = st.integers(0, 2**64 - 1)
_owners = st.binary(min_size=32, max_size=32)
_salts = st.binary(max_size=64)
_pks = st.none() | st.just(b"\x01" * 1952)
_sigs = st.just(b"\x02" * 3309)
#: Set entries (structurally valid; the signature is a placeholder).
set_entries = st.builds(
    SetEntry,
    st.binary(min_size=1, max_size=64),
    _owners,
    _seqs,
    st.binary(max_size=64),
    _times,
    _sigs,
    _pks,
)
#: Records that a ``value`` carries in ``record``.
single_records = st.one_of(
    st.builds(ImmutableRecord, values, _times),
    st.builds(MutableRecord, _owners, _salts, _seqs, st.binary(max_size=256), _times, _sigs, _pks),
    st.builds(Tombstone, _owners, _salts, _seqs, _times, _sigs, _pks),
)
#: Any record a ``store`` carries.
records = single_records | set_entries


#: The optional ``ws`` port of a request.
ws_ports = st.none() | st.integers(1, 65535)

MESSAGE_STRATEGIES: dict[type[Any], st.SearchStrategy[Any]] = {
    Ping: st.builds(Ping, rids, ro=st.booleans(), ws=ws_ports),
    Pong: st.builds(Pong, rids),
    FindNode: st.builds(FindNode, rids, node_ids, ro=st.booleans(), ws=ws_ports),
    Nodes: st.builds(Nodes, rids, st.lists(contacts, max_size=MAX_NODES)),
    FindValue: st.builds(
        FindValue,
        rids,
        keys,
        have=st.lists(keys, max_size=64),
        ro=st.booleans(),
        ws=ws_ports,
    ),
    Value: st.one_of(
        st.builds(Value, rids, single_records),
        st.builds(
            Value,
            rids,
            records=st.lists(set_entries, min_size=1, max_size=8),
            more=st.booleans(),
        ),
    ),
    Store: st.builds(
        Store, rids, keys, records, cas=st.none() | _seqs, ro=st.booleans(), ws=ws_ports
    ),
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
