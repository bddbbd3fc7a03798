"""Tree math and the secret tree of RFC 9420 (Appendix C, §9).

Nodes of a left-balanced binary tree are numbered in-order: leaves are even,
parents odd, a node's level is its count of trailing one bits.  The secret
tree derives, from the epoch's encryption secret, a handshake and an
application hash ratchet per leaf (§9.1); used keys are deleted (§9.2).
"""

from __future__ import annotations

from typing import Any

from qdht.errors import GroupError
from qdht.messaging._group_schedule import NH, NK, NN, derive_tree_secret, expand_with_label

__all__: list[str] = []


def level(x: int) -> int:
    """The level of node ``x``: 0 for leaves, the count of trailing one bits."""
    k = 0
    while (x >> k) & 1:
        k += 1
    return k


def node_width(n_leaves: int) -> int:
    """How many nodes a tree of ``n_leaves`` leaves has."""
    return 0 if n_leaves == 0 else 2 * (n_leaves - 1) + 1


def root(n_leaves: int) -> int:
    """The root node of a tree with ``n_leaves`` leaves."""
    w = node_width(n_leaves)
    return (1 << (w.bit_length() - 1)) - 1


def left(x: int) -> int:
    """The left child of the parent node ``x``."""
    k = level(x)
    if k == 0:
        raise GroupError("a leaf has no children")
    return x ^ (0x01 << (k - 1))


def right(x: int) -> int:
    """The right child of the parent node ``x``."""
    k = level(x)
    if k == 0:
        raise GroupError("a leaf has no children")
    return x ^ (0x03 << (k - 1))


def parent(x: int, n_leaves: int) -> int:
    """The parent of node ``x`` in a tree of ``n_leaves`` leaves."""
    if x == root(n_leaves):
        raise GroupError("the root has no parent")
    k = level(x)
    b = (x >> (k + 1)) & 0x01
    return (x | (1 << k)) ^ (b << (k + 1))


def sibling(x: int, n_leaves: int) -> int:
    """The other child of ``x``'s parent."""
    p = parent(x, n_leaves)
    return right(p) if x < p else left(p)


class HashRatchet:
    """One of a leaf's two hash ratchets (RFC 9420 §9.1): keys and nonces by generation.

    Keys for skipped generations are kept, up to ``max_skip`` ahead, until
    used; a used or passed generation is gone for good (forward secrecy).
    """

    __slots__ = ("_generation", "_max_skip", "_secret", "_skipped")

    def __init__(self, secret: bytes, max_skip: int = 1000) -> None:
        self._secret = secret
        self._generation = 0
        self._max_skip = max_skip
        self._skipped: dict[int, tuple[bytes, bytes]] = {}

    @property
    def generation(self) -> int:
        """The next generation this ratchet would hand out."""
        return self._generation

    def _advance(self) -> tuple[bytes, bytes]:
        g = self._generation
        key = derive_tree_secret(self._secret, b"key", g, NK)
        nonce = derive_tree_secret(self._secret, b"nonce", g, NN)
        self._secret = derive_tree_secret(self._secret, b"secret", g, NH)
        self._generation = g + 1
        return key, nonce

    def next(self) -> tuple[int, bytes, bytes]:
        """(generation, key, nonce) for the sender's next message; the secret moves on."""
        g = self._generation
        key, nonce = self._advance()
        return g, key, nonce

    def get(self, generation: int) -> tuple[bytes, bytes]:
        """(key, nonce) for a received ``generation``; GroupError if gone or too far ahead.

        The key stays until :meth:`delete` (after the message authenticated),
        so a forged message cannot burn the key of a genuine one.
        """
        if generation in self._skipped:
            return self._skipped[generation]
        if generation < self._generation:
            raise GroupError(f"generation {generation} was already used or deleted")
        if generation - self._generation > self._max_skip:
            raise GroupError(f"generation {generation} is too far ahead")
        while self._generation <= generation:
            g = self._generation
            self._skipped[g] = self._advance()
        return self._skipped[generation]

    def delete(self, generation: int) -> None:
        """Forget the key of ``generation`` (RFC 9420 §9.2: delete after use)."""
        self._skipped.pop(generation, None)

    def to_obj(self) -> list[object]:
        """The ratchet's state as CBOR-ready data: what is left of it, nothing used."""
        skipped = [[g, key, nonce] for g, (key, nonce) in sorted(self._skipped.items())]
        return [self._secret, self._generation, self._max_skip, skipped]

    @classmethod
    def from_obj(cls, obj: list[Any]) -> HashRatchet:
        """The ratchet :meth:`to_obj` described."""
        secret, generation, max_skip, skipped = obj
        ratchet = cls(bytes(secret), int(max_skip))
        ratchet._generation = int(generation)
        ratchet._skipped = {int(g): (bytes(k), bytes(n)) for g, k, n in skipped}
        return ratchet


class SecretTree:
    """The secret tree of one epoch (RFC 9420 §9) over ``n_leaves`` (a power of two) leaves.

    Node secrets are derived lazily from the root down and deleted once both
    children exist, so a dump of this object reveals no consumed key.
    """

    __slots__ = ("_application", "_handshake", "_max_skip", "_n_leaves", "_nodes")

    def __init__(self, encryption_secret: bytes, n_leaves: int, max_skip: int = 1000) -> None:
        if n_leaves < 1 or n_leaves & (n_leaves - 1):
            raise GroupError(f"n_leaves must be a power of two, got {n_leaves}")
        self._n_leaves = n_leaves
        self._nodes: dict[int, bytes] = {root(n_leaves): encryption_secret}
        self._handshake: dict[int, HashRatchet] = {}
        self._application: dict[int, HashRatchet] = {}
        self._max_skip = max_skip

    @property
    def n_leaves(self) -> int:
        """The number of leaves the tree spans."""
        return self._n_leaves

    def _leaf_secret(self, leaf: int) -> bytes:
        target = 2 * leaf
        path = []
        x = target
        while x not in self._nodes:
            path.append(x)
            x = parent(x, self._n_leaves)
        for child in reversed(path):
            p = parent(child, self._n_leaves)
            secret = self._nodes.pop(p)
            self._nodes[left(p)] = expand_with_label(secret, b"tree", b"left", NH)
            self._nodes[right(p)] = expand_with_label(secret, b"tree", b"right", NH)
        return self._nodes.pop(target)

    def _ratchets(self, leaf: int) -> None:
        if not 0 <= leaf < self._n_leaves:
            raise GroupError(f"leaf {leaf} is outside a tree of {self._n_leaves} leaves")
        if leaf in self._handshake:
            return
        secret = self._leaf_secret(leaf)
        hs = expand_with_label(secret, b"handshake", b"", NH)
        app = expand_with_label(secret, b"application", b"", NH)
        self._handshake[leaf] = HashRatchet(hs, self._max_skip)
        self._application[leaf] = HashRatchet(app, self._max_skip)

    def handshake(self, leaf: int) -> HashRatchet:
        """Leaf ``leaf``'s handshake ratchet."""
        self._ratchets(leaf)
        return self._handshake[leaf]

    def application(self, leaf: int) -> HashRatchet:
        """Leaf ``leaf``'s application ratchet."""
        self._ratchets(leaf)
        return self._application[leaf]

    def to_obj(self) -> list[object]:
        """The tree's state as CBOR-ready data: the node secrets not yet split, and the
        leaves' ratchets where they stand (no consumed secret is in it)."""
        return [
            self._n_leaves,
            self._max_skip,
            sorted(self._nodes.items()),
            [[leaf, r.to_obj()] for leaf, r in sorted(self._handshake.items())],
            [[leaf, r.to_obj()] for leaf, r in sorted(self._application.items())],
        ]

    @classmethod
    def from_obj(cls, obj: list[Any]) -> SecretTree:
        """The tree :meth:`to_obj` described."""
        n_leaves, max_skip, nodes, handshake, application = obj
        tree = cls(b"", int(n_leaves), int(max_skip))
        tree._nodes = {int(i): bytes(secret) for i, secret in nodes}
        tree._handshake = {int(leaf): HashRatchet.from_obj(r) for leaf, r in handshake}
        tree._application = {int(leaf): HashRatchet.from_obj(r) for leaf, r in application}
        return tree
