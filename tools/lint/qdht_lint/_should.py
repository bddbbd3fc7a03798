"""SHOULD-level checks: what a message may break and still be valid (NON-STRICT).

Each check is registered under the message ``type`` values it applies to, or
``within=`` a CDDL rule (it then runs on every message whose rule can contain
that rule: a contact check runs on NODES and on anything else that carries
contacts, but not on PING).  A check yields the broken SHOULD rules as
:class:`Breach` values, named by the rule IDs the spec defines
(``S-<AREA>-<n>``).  Areas add theirs with :func:`should_check`.  Checks run
only on messages already valid against the CDDL, so they may assume the
shapes the CDDL guarantees.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import Any, Final

import attrs

from qdht.wire import dumps_canonical, format_path, peek_type

__all__ = [
    "BY_TYPE",
    "CHECKED_IDS",
    "WITHIN_RULE",
    "Breach",
    "ShouldCheck",
    "breaches",
    "checks_for",
    "should_check",
]


@attrs.frozen
class Breach:
    """One SHOULD rule a message breaks, and where."""

    rule_id: str
    path: str
    detail: str


ShouldCheck = Callable[[dict[str, Any]], Iterator[Breach]]

#: message ``type`` → its checks, in registration order.
BY_TYPE: Final[dict[str, list[ShouldCheck]]] = {}
#: CDDL rule name → checks for every message whose rule can contain it.
WITHIN_RULE: Final[dict[str, list[ShouldCheck]]] = {}
#: Every SHOULD rule ID some check reports.
CHECKED_IDS: Final[set[str]] = set()


def should_check(
    *types: str, ids: tuple[str, ...], within: str | None = None
) -> Callable[[ShouldCheck], ShouldCheck]:
    """Decorator: run the check on messages of these ``type`` values, and/or on
    every message whose CDDL rule reaches the rule ``within``.  ``ids`` are the
    SHOULD rule IDs the check may report (``qdht-lint spec`` compares them
    with the IDs the spec defines)."""

    def register(check: ShouldCheck) -> ShouldCheck:
        for name in types:
            BY_TYPE.setdefault(name, []).append(check)
        if within is not None:
            WITHIN_RULE.setdefault(within, []).append(check)
        CHECKED_IDS.update(ids)
        return check

    return register


def checks_for(type_name: str | None, reachable_rules: Collection[str]) -> tuple[ShouldCheck, ...]:
    """The checks for a message of ``type_name`` whose rule reaches ``reachable_rules``."""
    found: list[ShouldCheck] = list(BY_TYPE.get(type_name, ())) if type_name else []
    for rule, checks in WITHIN_RULE.items():
        if rule in reachable_rules:
            found.extend(c for c in checks if c not in found)
    return tuple(found)


def breaches(message: dict[str, Any], checks: Collection[ShouldCheck]) -> list[Breach]:
    """Every SHOULD rule ``message`` breaks under ``checks`` (empty: strict)."""
    out: list[Breach] = []
    for check in checks:
        out.extend(check(message))
    return out


# ---------------------------------------------------------------- contacts

#: Most contacts a NODES message should carry (the bucket size k).
NODES_MAX_CONTACTS: Final = 20
#: Longest ERROR ``message`` text, in UTF-8 bytes.
ERROR_MESSAGE_MAX_BYTES: Final = 128


def _contacts(obj: object, parts: list[str | int]) -> Iterator[tuple[dict[str, Any], str]]:
    """Every contact map (``{id, addrs}``) anywhere in ``obj``, with its path."""
    if type(obj) is dict:
        if "id" in obj and type(obj.get("addrs")) is list:
            yield obj, format_path(parts)
        for key, value in obj.items():
            if type(value) is dict or type(value) is list:
                parts.append(key)
                yield from _contacts(value, parts)
                parts.pop()
    elif type(obj) is list:
        for index, value in enumerate(obj):
            if type(value) is dict or type(value) is list:
                parts.append(index)
                yield from _contacts(value, parts)
                parts.pop()


def _address_key(address: object) -> object:
    """A hashable stand-in for an address: equal addresses, equal keys."""
    if type(address) is dict:
        try:
            return frozenset(address.items())
        except TypeError:  # a nested container: fall back to its encoding
            pass
    try:
        return dumps_canonical(address)
    except Exception:  # unencodable values cannot reach here after the CDDL check
        return repr(address)


@should_check(within="contact", ids=("S-CONTACT-1",))
def _contact_addresses_unique(message: dict[str, Any]) -> Iterator[Breach]:
    """S-CONTACT-1: a contact SHOULD NOT list the same address twice (anywhere)."""
    for contact, path in _contacts(message, []):
        addrs = contact["addrs"]
        if len(addrs) < 2:
            continue
        seen: set[object] = set()
        for index, address in enumerate(addrs):
            key = _address_key(address)
            if key in seen:
                yield Breach("S-CONTACT-1", f"{path}.addrs[{index}]", "address listed twice")
            seen.add(key)


# ---------------------------------------------------------------- dht


@should_check("nodes", ids=("S-DHT-1", "S-DHT-2"))
def _nodes_contacts(message: dict[str, Any]) -> Iterator[Breach]:
    """S-DHT-1 (at most 20 contacts) and S-DHT-2 (no node ID twice) for NODES."""
    nodes = message.get("nodes")
    if type(nodes) is not list:
        return
    if len(nodes) > NODES_MAX_CONTACTS:
        yield Breach("S-DHT-1", "$.nodes", f"{len(nodes)} contacts > {NODES_MAX_CONTACTS}")
    seen: set[object] = set()
    for index, contact in enumerate(nodes):
        node_id = contact.get("id") if type(contact) is dict else None
        if type(node_id) is not bytes:
            continue
        if node_id in seen:
            yield Breach("S-DHT-2", f"$.nodes[{index}].id", "node ID listed twice")
        seen.add(node_id)


@should_check("error", ids=("S-DHT-3",))
def _error_message_length(message: dict[str, Any]) -> Iterator[Breach]:
    """S-DHT-3: an ERROR message's text SHOULD be at most 128 bytes."""
    text = message.get("message")
    if type(text) is str:
        size = len(text.encode("utf-8"))
        if size > ERROR_MESSAGE_MAX_BYTES:
            yield Breach("S-DHT-3", "$.message", f"{size} bytes > {ERROR_MESSAGE_MAX_BYTES}")


# ---------------------------------------------------------------- mix


def _mix_geometry_sizes() -> frozenset[int]:
    """Every packet size some geometry gives (10-mixnet.md §2: L in {3, 5}, 256 <= U <= 65536)."""
    from qdht.mixnet import Geometry

    sizes: set[int] = set()
    for hops in (3, 5):
        base = Geometry(hops=hops, user_payload_size=256).packet_size - 256
        sizes.update(range(base + 256, base + 65537))
    return frozenset(sizes)


_PACKET_SIZES: list[frozenset[int]] = []


@should_check("packet", ids=("S-MIX-1",))
def _mix_packet_shape(message: dict[str, Any]) -> Iterator[Breach]:
    """S-MIX-1: a PACKET is a version-1 packet of some geometry's size (§2, §14.5)."""
    data = message.get("data")
    if type(data) is not bytes:
        return
    if not _PACKET_SIZES:
        _PACKET_SIZES.append(_mix_geometry_sizes())
    if len(data) not in _PACKET_SIZES[0]:
        yield Breach("S-MIX-1", "$.data", f"{len(data)} bytes is no geometry's packet size")
    elif data[:2] != b"\x00\x01":
        yield Breach("S-MIX-1", "$.data", f"version {data[:2].hex()}, not 0001")


@should_check("exit_forward", "handoff", ids=("S-MIX-4",))
def _forwarded_message(message: dict[str, Any]) -> Iterator[Breach]:
    """S-MIX-4: a forwarded message is one encoded message: a map with a ``type`` (§14.7)."""
    data = message.get("message")
    if type(data) is bytes and peek_type(data) is None:
        yield Breach("S-MIX-4", "$.message", "not one encoded message (no text type field)")


@should_check("descriptor", ids=("S-MIX-2",))
def _mix_descriptor_verifies(message: dict[str, Any]) -> Iterator[Breach]:
    """S-MIX-2: a descriptor's signature and keys verify (§10.1, at its own issue time)."""
    from qdht.errors import DecodeError
    from qdht.mixnet import verify_descriptor
    from qdht.wire import MixDescriptor, decode_object

    try:
        descriptor = decode_object(message, expect=(MixDescriptor,))
    except DecodeError:
        return  # an order rule: the decoder's verdict, not a SHOULD
    assert type(descriptor) is MixDescriptor
    reason = verify_descriptor(descriptor, now=descriptor.issued, difficulty=0)
    if reason is not None:
        yield Breach("S-MIX-2", "$", reason)


@should_check("directory", ids=("S-MIX-3",))
def _mix_directory_keys(message: dict[str, Any]) -> Iterator[Breach]:
    """S-MIX-3: a directory lists usable keys for 3 or 5 hops (§10.2; its signatures
    need the network's directory keys, which a message alone does not carry)."""
    from qdht.mixnet import usable_key

    if message.get("hops") not in (3, 5):
        yield Breach("S-MIX-3", "$.hops", f"{message.get('hops')} hops: a network uses 3 or 5")
    for index, entry in enumerate(message.get("mixes") or []):
        key = entry.get("key") if type(entry) is dict else None
        if type(key) is bytes and not usable_key(key):
            yield Breach("S-MIX-3", f"$.mixes[{index}].key", "not a usable X-Wing key")
