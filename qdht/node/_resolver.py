"""Identity resolution's Trio side: ``node.resolve_identity(node_id)`` (``16-resolve.md``).

The built-in layer ``resolve`` (``Config.resolve``): the sans-IO
:class:`~qdht.identity.ResolverCore` behind the face :class:`ResolverFace`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from qdht.errors import ConfigError, IdentityError, LookupFailedError
from qdht.identity import IdentityResolution, ResolveConfig, ResolverCore
from qdht.node._service import Operations, Service, ServiceContext
from qdht.wire import NODE_ID_SIZE, Contact, IdentityCertificate, IdentityResolved, ResolveIdentity

if TYPE_CHECKING:
    from qdht.node._node import Node

__all__ = ["ResolverFace", "resolver_service"]


class ResolverFace:
    """The Trio side of identity resolution: ``node.resolve_identity(node_id)``."""

    def __init__(self, core: ResolverCore) -> None:
        self.core = core
        self.operations = Operations()

    async def resolve(self, node: Node, node_id: bytes) -> IdentityCertificate:
        """The current identity certificate of ``node_id`` (16-resolve.md §3).

        Asks the node itself (found in the routing table, or by a FIND_NODE
        lookup) and up to ``ask_others`` of the nodes closest to its ID.  After
        an X-Wing rotation the newer certificate is returned (its node ID, from
        :func:`~qdht.identity.certificate_node_id`, differs).  Raises
        :class:`~qdht.errors.IdentityError` when the key is revoked, and
        :class:`~qdht.errors.LookupFailedError` when no valid certificate came.
        """
        if type(node_id) is not bytes or len(node_id) != NODE_ID_SIZE:
            raise ConfigError(f"node_id must be {NODE_ID_SIZE} bytes")
        core = self.core
        peers: list[Contact] = []
        if node_id != node.node_id and core.cached(node_id, trio.current_time()) is None:
            known = node.core.routing.closest(node_id, core.config.ask_others + 1)
            if not known or known[0].node_id != node_id:
                known = (await node.find_node(node_id))[: core.config.ask_others + 1]
            target = [c for c in known if c.node_id == node_id]
            others = [c for c in known if c.node_id != node_id][: core.config.ask_others]
            peers = target + others
        asked = [(c.node_id, c.addresses[0] if c.addresses else None) for c in peers]
        result = await self.operations.run(
            node, lambda now: core.start_resolve(node_id, asked, now)
        )
        assert type(result) is IdentityResolution
        if result.outcome == "revoked":
            raise IdentityError(f"node {node_id.hex()[:16]}: its identity key is revoked")
        if result.certificate is None:
            raise LookupFailedError(f"resolve {node_id.hex()[:16]}: {result.outcome}")
        return result.certificate


def resolver_service(context: ServiceContext) -> Service:
    """The factory of the ``resolve`` layer (``Config.resolve``)."""
    config = context.config.resolve
    if not isinstance(config, ResolveConfig):
        raise ConfigError("the resolve layer needs Config.resolve (a ResolveConfig)")
    core = ResolverCore(
        context.identity,
        difficulty=context.config.puzzle_difficulty,
        unix_offset=context.unix_offset,
        config=config,
    )
    face = ResolverFace(core)
    return Service(
        "resolve",
        core,
        {ResolveIdentity.TYPE, IdentityResolved.TYPE},
        on_event=face.operations.resolve,
        face=face,
    )
