"""Adversaries for core-level simulations: lying, silent, forging and flooding nodes.

An :class:`AdversarialNetwork` is a :class:`~qdht.testing.CoreNetwork` in
which some nodes run :class:`AdversaryCore`, a production
:class:`~qdht.dht.DhtCore` that behaves honestly until a strategy is set
(so adversaries join and enter honest routing tables like anyone), and then:

``drop``
    answers nothing (and does nothing with what it receives);
``misroute``
    answers every FIND_NODE / FIND_VALUE with the adversaries closest to the
    target (never a value), to pull lookups into the coalition;
``forge``
    answers FIND_VALUE with a forged value or record: its own copy with one
    byte changed, or, when it holds nothing for the key, a corrupted copy of
    the last value it served (format-agnostic: the largest byte string in the
    answer is altered, which breaks a hash binding or a signature);
``stale``
    keeps the first version it stored of every key and replays it forever: a
    later STORE for a held key is acknowledged (``stored``) but not applied;
``eclipse``
    ``misroute`` plus acknowledging STOREs without keeping them: with IDs
    minted next to one key (:meth:`AdversarialNetwork.add_eclipse`) the
    coalition holds the k closest positions to it;
``flood``
    answers nothing and sends FIND_NODE requests to honest nodes at
    ``flood_rate`` per second (:meth:`AdversarialNetwork.flood`).

``combined`` (for :meth:`AdversarialNetwork.activate`) deals ``drop``,
``misroute``, ``forge``, ``stale`` and ``flood`` round-robin.

**The identity puzzle is not simulated** (as in ``CoreNetwork``, the
simulator vouches for node IDs): eclipse IDs are placed next to the key
directly.  What minting them would cost under the puzzle is reported by
:func:`eclipse_puzzle_cost`: an ID sharing ``b`` leading bits with a key
and solving difficulty ``d`` takes about ``2^(b + d)`` hashes.
"""

from __future__ import annotations

import copy
import heapq
import math
from collections.abc import Hashable, Sequence
from typing import Any, Final

import cbor2

from qdht.dht import DhtCore, Outgoing
from qdht.errors import ConfigError, DecodeError
from qdht.testing._coresim import CoreNetwork, SimCore
from qdht.wire import (
    MAX_NODES,
    Address,
    Contact,
    FindNode,
    FindValue,
    Nodes,
    Store,
    Stored,
    decode_object,
    encode,
    intern_contact,
    loads_canonical,
)

__all__ = [
    "STRATEGIES",
    "AdversarialNetwork",
    "AdversaryCore",
    "Coalition",
    "eclipse_puzzle_cost",
]

#: Strategies an :class:`AdversaryCore` can follow (``None``: honest).
STRATEGIES: Final = ("drop", "misroute", "forge", "stale", "eclipse", "flood")
#: The strategies ``combined`` deals out round-robin.
COMBINED: Final = ("drop", "misroute", "forge", "stale", "flood")
#: Keys whose first version a ``stale`` adversary remembers (bounded like everything).
MAX_FROZEN_KEYS: Final = 100_000
#: Flood requests one adversary may have queued before its network delivers them.
MAX_FLOOD_QUEUE: Final = 10_000


class Coalition:
    """What colluding adversaries share: each other's contacts, nearest-first lookups."""

    def __init__(self) -> None:
        self.contacts: list[Contact] = []

    def add(self, contact: Contact) -> None:
        self.contacts.append(contact)

    def closest(self, target: bytes, n: int, *, exclude: bytes | None = None) -> list[Contact]:
        t = int.from_bytes(target, "big")
        pool = (c for c in self.contacts if c.node_id != exclude)
        return heapq.nsmallest(n, pool, key=lambda c: int.from_bytes(c.node_id, "big") ^ t)


def _corrupt(obj: Any) -> Any:
    """A copy of ``obj`` (decoded CBOR) with the last byte of its largest byte string
    (other than the request ID) flipped: a value that no longer hashes to its key,
    or a record whose signature no longer verifies."""
    obj = copy.deepcopy(obj)
    best: tuple[int, Any, Any] | None = None
    stack = [obj]
    while stack:
        node = stack.pop()
        items: Any = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(value, bytes) and value and key != "rid":
                if best is None or len(value) > best[0]:
                    best = (len(value), node, key)
            elif isinstance(value, dict | list):
                stack.append(value)
    if best is not None:
        _, container, key = best
        value = container[key]
        container[key] = value[:-1] + bytes([value[-1] ^ 0x01])
    return obj


class AdversaryCore(DhtCore):
    """A :class:`~qdht.dht.DhtCore` that follows ``strategy`` (``None``: honest)."""

    __slots__ = ("_find_values", "_flood_out", "_frozen", "_template", "coalition", "strategy")

    def __init__(
        self, local_id: bytes, *, now: float, coalition: Coalition, **options: Any
    ) -> None:
        super().__init__(local_id, now=now, **options)
        self.coalition = coalition
        self.strategy: str | None = None
        self._find_values: set[bytes] = set()  # rids of FIND_VALUEs being answered
        self._frozen: set[bytes] = set()  # keys a stale adversary holds
        self._template: dict[str, Any] | None = None  # last VALUE answer, decoded
        self._flood_out: list[Outgoing] = []

    def set_strategy(self, strategy: str | None) -> None:
        if strategy is not None and strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {STRATEGIES} or None, got {strategy!r}")
        self.strategy = strategy

    def receive_message(
        self, node_id: bytes, addr: Hashable, payload: bytes, now: float, *, early: bool = False
    ) -> None:
        strategy = self.strategy
        if strategy is None:
            super().receive_message(node_id, addr, payload, now, early=early)
            return
        if strategy in ("drop", "flood"):
            self.bytes_received += len(payload)
            return
        try:
            message = decode_object(loads_canonical(payload))
        except DecodeError:
            message = None
        if strategy in ("misroute", "eclipse") and isinstance(message, FindNode | FindValue):
            target = message.target if isinstance(message, FindNode) else message.key
            k = min(self.lookup_config.k, MAX_NODES)
            nodes = self.coalition.closest(target, k, exclude=node_id)
            self._send(node_id, addr, Nodes(message.rid, tuple(nodes)))
            return
        if isinstance(message, Store) and strategy in ("stale", "eclipse"):
            key = message.key
            if strategy == "eclipse" or key in self._frozen:
                self._send(node_id, addr, Stored(message.rid))
                return
            if len(self._frozen) < MAX_FROZEN_KEYS:
                self._frozen.add(key)
        if strategy == "forge" and isinstance(message, FindValue):
            self._find_values.add(message.rid)
        super().receive_message(node_id, addr, payload, now, early=early)

    def messages_to_send(self) -> list[Outgoing]:
        out = super().messages_to_send()
        if self._flood_out:
            out.extend(self._flood_out)
            self._flood_out = []
        if self.strategy != "forge" or not self._find_values:
            return out
        forged: list[Outgoing] = []
        for dst, addr, payload in out:
            obj = loads_canonical(payload)
            rid = obj.get("rid") if isinstance(obj, dict) else None
            if rid not in self._find_values:
                forged.append((dst, addr, payload))
                continue
            self._find_values.discard(rid)
            if obj.get("type") == "value":
                self._template = obj
                obj = _corrupt(obj)
            elif self._template is not None:
                obj = _corrupt(dict(self._template, rid=rid))
            forged.append((dst, addr, cbor2.dumps(obj, canonical=True)))
        return forged

    def flood(self, victim: Contact, rid: bytes, target: bytes) -> None:
        """Queue one unsolicited FIND_NODE to ``victim`` (delivered with the next flush)."""
        if len(self._flood_out) < MAX_FLOOD_QUEUE:
            payload = encode(FindNode(rid, target))
            self._flood_out.append((victim.node_id, victim.address, payload))


def eclipse_puzzle_cost(shared_bits: int, difficulty: int, count: int) -> float:
    """Expected hashes to mint ``count`` IDs sharing ``shared_bits`` leading bits with a
    key when node IDs must solve the static puzzle at ``difficulty`` (03-identity.md §4)."""
    return count * 2.0 ** (shared_bits + difficulty)


class AdversarialNetwork(CoreNetwork):
    """A :class:`~qdht.testing.CoreNetwork` with adversary nodes mixed in.

    :meth:`add_node` takes ``adversary=True`` (the node runs an
    :class:`AdversaryCore`, honest until :meth:`activate`) and ``node_id``
    (to place an eclipse).  :meth:`build_mixed` grows a network with a given
    fraction of adversaries joining in random order among honest nodes.
    """

    def __init__(self, *, seed: int, **options: Any) -> None:
        super().__init__(seed=seed, **options)
        self.coalition = Coalition()
        self.adversaries: list[SimCore] = []
        self.flood_messages = 0

    @property
    def honest(self) -> list[SimCore]:
        """Live nodes that are not adversaries."""
        return [n for n in self.nodes if n.alive and not isinstance(n.core, AdversaryCore)]

    def add_node(
        self,
        *,
        bootstrap: Sequence[SimCore] = (),
        adversary: bool = False,
        node_id: bytes | None = None,
    ) -> SimCore:
        """A new node (see :meth:`CoreNetwork.add_node`), an adversary if ``adversary``."""
        if not adversary:
            return super().add_node(bootstrap=bootstrap, node_id=node_id)
        index = self._new_index()
        if node_id is None:
            node_id = self.rng.randbytes(32)
        if type(node_id) is not bytes or len(node_id) != 32 or node_id in self._by_id:
            raise ConfigError("node_id must be 32 bytes and not used by another node")
        host = f"{10 + (index >> 16)}.{(index >> 8) & 255}.{index & 255}.1"
        contact = intern_contact(Contact(node_id, (Address("udp", host, 6881),)))
        core = AdversaryCore(
            node_id,
            now=self.now,
            coalition=self.coalition,
            rng=self.rng.randbytes,
            **self.core_options,
        )
        node = SimCore(index, node_id, contact, core)
        self.nodes.append(node)
        self._by_id[node_id] = node
        low, high = self.access_latency
        self._delay.append(self.rng.uniform(low, high))
        self.adversaries.append(node)
        self.coalition.add(contact)
        for other in bootstrap:
            if other is not node:
                self._join_through(node, other)
        if not bootstrap:
            node.joined = True
        self._flush(node)
        return node

    def build_mixed(
        self, n: int, fraction: float, *, join_interval: float = 0.05, settle: float = 30.0
    ) -> None:
        """Grow to ``n`` nodes of which ``fraction`` are (dormant) adversaries, in random order."""
        if not 0 <= fraction < 1:
            raise ConfigError(f"fraction must be in [0, 1), got {fraction!r}")
        if type(n) is not int or n < 2:
            raise ConfigError(f"n must be an integer >= 2, got {n!r}")
        count = round(n * fraction)
        kinds = [True] * count + [False] * (n - count)
        self.rng.shuffle(kinds)
        kinds[0] = False  # the first node is honest: someone has to be found first
        start = self.now
        for i, adversary in enumerate(kinds):
            self.run_until(start + i * join_interval)
            other = self._random_alive()
            self.add_node(bootstrap=[other] if other is not None else [], adversary=adversary)
        self.run_until(self.now + settle)

    def add_eclipse(
        self, key: bytes, count: int, *, shared_bits: int, join_interval: float = 0.05
    ) -> list[SimCore]:
        """``count`` adversaries with IDs sharing ``shared_bits`` leading bits with ``key``."""
        if type(shared_bits) is not int or not 0 <= shared_bits <= 240:
            raise ConfigError(f"shared_bits must be in 0..240, got {shared_bits!r}")
        k = int.from_bytes(key, "big")
        added = []
        start = self.now
        for i in range(count):
            self.run_until(start + i * join_interval)
            suffix = self.rng.getrandbits(256 - shared_bits)
            high = (k >> (256 - shared_bits)) << (256 - shared_bits) if shared_bits else 0
            node_id = (high | suffix).to_bytes(32, "big")
            while node_id in self._by_id:
                node_id = (high | self.rng.getrandbits(256 - shared_bits)).to_bytes(32, "big")
            other = self._random_alive()
            added.append(
                self.add_node(
                    bootstrap=[other] if other is not None else [], adversary=True, node_id=node_id
                )
            )
        return added

    def activate(self, strategy: str | None, fraction_of_network: float | None = None) -> int:
        """Give the first adversaries ``strategy`` (``"combined"``: round-robin over
        :data:`COMBINED`), enough to make ``fraction_of_network`` of all nodes
        adversarial (default: all of them); the others turn honest.  Returns how
        many are active."""
        if fraction_of_network is None:
            active = len(self.adversaries)
        else:
            active = min(len(self.adversaries), round(len(self.nodes) * fraction_of_network))
        for i, node in enumerate(self.adversaries):
            assert isinstance(node.core, AdversaryCore)
            if i >= active or strategy is None:
                node.core.set_strategy(None)
            elif strategy == "combined":
                node.core.set_strategy(COMBINED[i % len(COMBINED)])
            else:
                node.core.set_strategy(strategy)
        return 0 if strategy is None else active

    def flood(self, *, rate: float, duration: float, victims: int = 1) -> None:
        """Every active ``flood`` adversary sends ``rate`` FIND_NODE per second to
        ``victims`` random honest nodes for ``duration`` simulated seconds."""
        if not rate > 0 or not duration > 0:
            raise ConfigError("rate and duration must be positive")
        honest = self.honest
        if not honest:
            return
        flooders = [
            n
            for n in self.adversaries
            if isinstance(n.core, AdversaryCore) and n.core.strategy == "flood" and n.alive
        ]
        interval = 1.0 / rate
        sends = math.ceil(duration * rate)
        for node in flooders:
            targets = self.rng.sample(honest, min(victims, len(honest)))
            offset = self.rng.random() * interval
            for victim in targets:
                for j in range(sends):
                    self.call_at(self.now + offset + j * interval, self._flood_one(node, victim))

    def _flood_one(self, node: SimCore, victim: SimCore) -> Any:
        def send() -> None:
            core = node.core
            assert isinstance(core, AdversaryCore)
            if core.strategy != "flood" or not node.alive:
                return
            core.flood(victim.contact, self.rng.randbytes(8), self.rng.randbytes(32))
            self.flood_messages += 1
            self._flush(node)

        return send
