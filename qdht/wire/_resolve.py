"""RESOLVE and RESOLVED: a node's identity certificate by its node ID
(``protocol-spec/16-resolve.md``).

A node asks a peer for the certificate of a node ID; the answer carries the
certificate when the peer knows one (its own, or one it resolved and still
holds), and the revocation of the certificate's key it knows, if any.  A
certificate proves its node ID by itself (03-identity.md §3, §5): the asker
verifies it and never needs to trust the answerer.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from qdht.errors import ConfigError
from qdht.wire._contact import NODE_ID_SIZE
from qdht.wire._dht import RID_SIZE
from qdht.wire._fields import FieldReader
from qdht.wire._identity import IdentityCertificate, Revocation
from qdht.wire._registry import register

__all__ = ["IdentityResolved", "ResolveIdentity"]


def _sized(size: int) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not bytes or len(value) != size:
            raise ConfigError(f"{attribute.name} must be {size} bytes")

    return check


def _optional(cls: type) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None and not isinstance(value, cls):
            raise ConfigError(f"{attribute.name} must be a {cls.__name__} or None")

    return check


@register
@attrs.frozen
class ResolveIdentity:
    """RESOLVE: the identity certificate of node ``node_id``, please (answer ``rid``)."""

    TYPE: ClassVar[str] = "resolve"
    rid: bytes = attrs.field(validator=_sized(RID_SIZE))
    node_id: bytes = attrs.field(validator=_sized(NODE_ID_SIZE))

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "rid": self.rid, "id": self.node_id}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> ResolveIdentity:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        rid = reader.bytes_("rid", size=RID_SIZE)
        node_id = reader.bytes_("id", size=NODE_ID_SIZE)
        reader.finish()
        return cls(rid, node_id)


@register
@attrs.frozen
class IdentityResolved:
    """RESOLVED: the certificate the answerer knows for the node ID asked
    (None: it knows none), and a revocation of its key it knows (if any)."""

    TYPE: ClassVar[str] = "resolved"
    rid: bytes = attrs.field(validator=_sized(RID_SIZE))
    cert: IdentityCertificate | None = attrs.field(
        default=None, validator=_optional(IdentityCertificate)
    )
    revocation: Revocation | None = attrs.field(default=None, validator=_optional(Revocation))

    def to_cbor(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.TYPE, "rid": self.rid}
        if self.cert is not None:
            out["cert"] = self.cert.to_cbor()
        if self.revocation is not None:
            out["revocation"] = self.revocation.to_cbor()
        return out

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> IdentityResolved:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        rid = reader.bytes_("rid", size=RID_SIZE)
        cert = reader.nested("cert", IdentityCertificate.from_cbor, optional=True)
        revocation = reader.nested("revocation", Revocation.from_cbor, optional=True)
        reader.finish()
        return cls(rid, cert, revocation)
