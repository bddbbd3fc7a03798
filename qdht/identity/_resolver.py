"""Identity resolution, sans-IO: a node's certificate by its node ID (``16-resolve.md``).

The core of a node service: :class:`ResolverCore` answers RESOLVE with this
node's certificate or one it resolved earlier, and resolves node IDs by
asking peers, accepting only certificates that verify (03-identity.md §5.2)
and prove the node ID asked for.  What it learns goes into a bounded cache,
each entry until the certificate's ``naf`` or ``cache_ttl``, whichever is
first; among certificates of one ML-DSA key the highest serial wins (an
X-Wing rotation retires the older node ID), and a verified revocation of the
key makes a resolution fail.  Its Trio side is ``qdht.node``'s
``ResolverFace`` (``node.resolve_identity(node_id)``), the built-in layer
``resolve`` (``Config.resolve``).
"""

from __future__ import annotations

import heapq
import os
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Final

import attrs

from qdht import validators
from qdht.crypto.hashes import sha3_256
from qdht.errors import ConfigError, DecodeError, IdentityError, LookupFailedError
from qdht.identity._certs import revokes, verify_certificate, verify_revocation
from qdht.identity._identity import Identity
from qdht.wire import (
    NODE_ID_SIZE,
    RID_SIZE,
    IdentityCertificate,
    IdentityResolved,
    ResolveIdentity,
    Revocation,
    decode,
    encode,
)

__all__ = [
    "IdentityResolution",
    "ResolveConfig",
    "ResolverCore",
]

#: ``(destination node ID, address, payload)``, as every service core sends.
Outgoing = tuple[bytes, Hashable, bytes]

#: Lifetime of this node's own certificate, renewed a day before it ends.
OWN_CERT_LIFETIME: Final = 30 * 86400
_RENEW_BEFORE: Final = 86400


@attrs.frozen
class ResolveConfig:
    """Tunables of identity resolution (16-resolve.md); every table is bounded."""

    #: A resolved certificate is kept at most this long (seconds), so that a
    #: rotation or revocation is seen within it.
    cache_ttl: float = attrs.field(default=3600.0, validator=validators.positive)
    #: Certificates kept (least recently used forgotten).
    max_cached: int = attrs.field(default=4096, validator=validators.positive_int)
    #: Revocations kept (oldest forgotten).
    max_revocations: int = attrs.field(default=1024, validator=validators.positive_int)
    #: How long a resolution waits for a valid answer (seconds).
    timeout: float = attrs.field(default=5.0, validator=validators.positive)
    #: Nodes asked at once besides the node itself (the closest known to its ID).
    ask_others: int = attrs.field(default=2, validator=validators.non_negative_int)
    #: Resolutions waiting for answers at once.
    max_pending: int = attrs.field(default=256, validator=validators.positive_int)


@attrs.frozen
class IdentityResolution:
    """How the resolution started as ``handle`` ended: ``certificate`` (None on
    failure) and ``outcome``: ``"resolved"``, ``"unknown"`` (every node asked
    answered without one), ``"revoked"``, ``"timeout"`` or ``"unreachable"``."""

    handle: int
    certificate: IdentityCertificate | None
    outcome: str


class _Entry:
    __slots__ = ("cert", "until")

    def __init__(self, cert: IdentityCertificate, until: float) -> None:
        self.cert = cert
        self.until = until


class _Op:
    __slots__ = ("handle", "node_id", "waiting")

    def __init__(self, handle: int, node_id: bytes) -> None:
        self.handle = handle
        self.node_id = node_id
        self.waiting: dict[bytes, bytes] = {}  # rid -> the peer asked


class ResolverCore:
    """Sans-IO identity resolution (see the module docstring).

    ``now`` is the node's clock; Unix time is ``now + unix_offset`` (the
    certificates' validity is in Unix seconds).  ``difficulty`` is the
    network's puzzle difficulty.
    """

    def __init__(
        self,
        identity: Identity,
        *,
        difficulty: int,
        unix_offset: float,
        config: ResolveConfig | None = None,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not isinstance(identity, Identity):
            raise ConfigError("identity must be a qdht.identity.Identity")
        self.identity = identity
        self.difficulty = difficulty
        self.unix_offset = unix_offset
        self.config = config if config is not None else ResolveConfig()
        self._rng = rng
        self._own: IdentityCertificate | None = None
        self._cache: OrderedDict[bytes, _Entry] = OrderedDict()  # node ID -> entry
        self._newest: dict[bytes, tuple[int, bytes]] = {}  # key hash -> (serial, node ID)
        self._revoked: OrderedDict[bytes, Revocation] = OrderedDict()  # key hash -> revocation
        self._ops: dict[int, _Op] = {}
        self._rids: dict[bytes, int] = {}  # rid -> handle
        self._deadlines: list[tuple[float, int]] = []
        self._new_deadline = float("inf")
        self._next_handle = 1
        self._out: list[Outgoing] = []
        self._events: list[IdentityResolution] = []
        self.counts = {"answered": 0, "resolved": 0, "failed": 0, "cache_hits": 0}
        self.drops: dict[str, int] = {}

    def _drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1

    # ------------------------------------------------------------ certificates

    def own_certificate(self, now: float) -> IdentityCertificate:
        """This node's certificate, signed again a day before it would expire."""
        unix = int(now + self.unix_offset)
        own = self._own
        if own is None or own.not_after - _RENEW_BEFORE <= unix:
            own = self._own = self.identity.certificate(now=unix, lifetime=OWN_CERT_LIFETIME)
        return own

    def cached(self, node_id: bytes, now: float) -> IdentityCertificate | None:
        """The certificate held for ``node_id`` (the newer one of its key after a
        rotation), or None: unknown, expired from the cache, or revoked."""
        entry = self._cache.get(node_id)
        if entry is None:
            return None
        if entry.until <= now:
            del self._cache[node_id]
            return None
        cert = entry.cert
        key = sha3_256(cert.mldsa_public)
        revocation = self._revoked.get(key)
        if revocation is not None and revokes(revocation, cert):
            return None
        newest = self._newest.get(key)
        if newest is not None and newest[0] > cert.serial and newest[1] != node_id:
            newer = self._cache.get(newest[1])
            if newer is not None and newer.until > now:
                cert = newer.cert  # retired by a rotation: the current certificate
        self._cache.move_to_end(node_id)
        return cert

    def learn(
        self,
        node_id: bytes,
        cert: IdentityCertificate,
        revocation: Revocation | None,
        now: float,
    ) -> bool:
        """Verify ``cert`` (and ``revocation``) as an answer for ``node_id``; keep
        them.  Returns whether the certificate was valid and proves ``node_id``."""
        unix = int(now + self.unix_offset)
        try:
            proved = verify_certificate(cert, now=unix, difficulty=self.difficulty)
        except IdentityError:
            self._drop("invalid-certificate")
            return False
        if proved != node_id:
            self._drop("wrong-node-id")
            return False
        key = sha3_256(cert.mldsa_public)
        if revocation is not None:
            if revocation.mldsa_public != cert.mldsa_public:
                self._drop("unrelated-revocation")
            else:
                try:
                    verify_revocation(revocation)
                except IdentityError:
                    self._drop("invalid-revocation")
                else:
                    self._keep_revocation(key, revocation)
        until = min(now + self.config.cache_ttl, cert.not_after - self.unix_offset)
        self._cache[node_id] = _Entry(cert, until)
        self._cache.move_to_end(node_id)
        while len(self._cache) > self.config.max_cached:
            self._cache.popitem(last=False)
        newest = self._newest.get(key)
        if newest is None or cert.serial > newest[0]:
            self._newest[key] = (cert.serial, node_id)
            if len(self._newest) > self.config.max_cached:
                self._newest.pop(next(iter(self._newest)))
        return True

    def _keep_revocation(self, key: bytes, revocation: Revocation) -> None:
        held = self._revoked.get(key)
        if held is not None and (
            held.serial is None
            or (revocation.serial is not None and revocation.serial <= held.serial)
        ):
            return  # what we hold revokes at least as much
        self._revoked[key] = revocation
        self._revoked.move_to_end(key)
        while len(self._revoked) > self.config.max_revocations:
            self._revoked.popitem(last=False)

    # ------------------------------------------------------------ resolving

    def start_resolve(
        self, node_id: bytes, peers: Sequence[tuple[bytes, Hashable]], now: float
    ) -> int:
        """Resolve ``node_id`` by asking ``peers`` (``(node ID, address)``); the
        answer comes as an :class:`IdentityResolution` with the returned handle.
        A certificate held already answers at once."""
        if type(node_id) is not bytes or len(node_id) != NODE_ID_SIZE:
            raise ConfigError(f"node_id must be {NODE_ID_SIZE} bytes")
        handle, self._next_handle = self._next_handle, self._next_handle + 1
        if node_id == self.identity.node_id:
            self._events.append(IdentityResolution(handle, self.own_certificate(now), "resolved"))
            return handle
        held = self.cached(node_id, now)
        if held is not None:
            self.counts["cache_hits"] += 1
            self._events.append(IdentityResolution(handle, held, "resolved"))
            return handle
        if self._is_revoked(node_id):
            self._events.append(IdentityResolution(handle, None, "revoked"))
            return handle
        if not peers:
            self._fail(handle, "unreachable")
            return handle
        if len(self._ops) >= self.config.max_pending:
            raise LookupFailedError(f"{len(self._ops)} resolutions are waiting already")
        op = self._ops[handle] = _Op(handle, node_id)
        for peer, addr in peers:
            rid = self._rng(RID_SIZE)
            op.waiting[rid] = peer
            self._rids[rid] = handle
            self._out.append((peer, addr, encode(ResolveIdentity(rid, node_id))))
        deadline = now + self.config.timeout
        heapq.heappush(self._deadlines, (deadline, handle))
        self._new_deadline = min(self._new_deadline, deadline)
        return handle

    def _is_revoked(self, node_id: bytes) -> bool:
        entry = self._cache.get(node_id)
        if entry is None:
            return False
        revocation = self._revoked.get(sha3_256(entry.cert.mldsa_public))
        return revocation is not None and revokes(revocation, entry.cert)

    def _fail(self, handle: int, outcome: str) -> None:
        self.counts["failed"] += 1
        self._events.append(IdentityResolution(handle, None, outcome))

    def _finish(self, op: _Op, cert: IdentityCertificate | None, outcome: str) -> None:
        del self._ops[op.handle]
        for rid in op.waiting:
            self._rids.pop(rid, None)
        if cert is None:
            self._fail(op.handle, outcome)
        else:
            self.counts["resolved"] += 1
            self._events.append(IdentityResolution(op.handle, cert, outcome))

    # ------------------------------------------------------------ ServiceCore

    def receive_message(
        self, node_id: bytes, addr: Hashable, payload: bytes, now: float, *, early: bool = False
    ) -> None:
        try:
            message = decode(payload, expect=(ResolveIdentity, IdentityResolved))
        except DecodeError:
            self._drop("malformed")
            return
        if type(message) is ResolveIdentity:
            self._answer(node_id, addr, message, now)  # idempotent: early data is fine
            return
        assert type(message) is IdentityResolved
        handle = self._rids.get(message.rid)
        op = None if handle is None else self._ops.get(handle)
        if early or op is None or op.waiting.get(message.rid) != node_id:
            self._drop("unexpected-resolved")
            return
        del op.waiting[message.rid]
        del self._rids[message.rid]
        if message.cert is not None and self.learn(
            op.node_id, message.cert, message.revocation, now
        ):
            if self._is_revoked(op.node_id):
                self._finish(op, None, "revoked")
            else:
                self._finish(op, self.cached(op.node_id, now), "resolved")
            return
        if not op.waiting:
            self._finish(op, None, "unknown")

    def _answer(self, node_id: bytes, addr: Hashable, request: ResolveIdentity, now: float) -> None:
        self.counts["answered"] += 1
        cert: IdentityCertificate | None = None
        revocation: Revocation | None = None
        if request.node_id == self.identity.node_id:
            cert = self.own_certificate(now)
        else:
            entry = self._cache.get(request.node_id)
            if entry is not None and entry.until > now:
                cert = entry.cert
                revocation = self._revoked.get(sha3_256(cert.mldsa_public))
        self._out.append((node_id, addr, encode(IdentityResolved(request.rid, cert, revocation))))

    def messages_to_send(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> object | None:
        return self._events.pop(0) if self._events else None

    @property
    def new_deadline(self) -> float:
        return self._new_deadline

    def get_timer(self) -> float | None:
        self._new_deadline = float("inf")
        while self._deadlines and self._deadlines[0][1] not in self._ops:
            heapq.heappop(self._deadlines)  # ended already
        return self._deadlines[0][0] if self._deadlines else None

    def handle_timer(self, now: float) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            _, handle = heapq.heappop(self._deadlines)
            op = self._ops.get(handle)
            if op is not None:
                self._finish(op, None, "timeout")

    def peer_unreachable(self, node_id: bytes, now: float, reason: str) -> None:
        for op in list(self._ops.values()):
            for rid, peer in list(op.waiting.items()):
                if peer == node_id:
                    del op.waiting[rid]
                    self._rids.pop(rid, None)
            if not op.waiting:
                self._finish(op, None, "unreachable")

    def stats(self) -> dict[str, Any]:
        return {
            **self.counts,
            "cached": len(self._cache),
            "revocations": len(self._revoked),
            "waiting": len(self._ops),
            "drops": dict(self.drops),
        }
