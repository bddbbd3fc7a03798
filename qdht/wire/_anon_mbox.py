"""Mailbox requests through a mix exit (10-mixnet.md §14.8, 11-messaging.md §7.4).

Like ``exit_get`` and ``exit_put``, this message never travels over a
session: a messaging client puts ``exit_mbox`` in the payload of one Sphinx
packet with a reply block; the exit runs the ``mbox_get`` or ``mbox_put``
it carries against the holders of its key as an ordinary node would
(11-messaging.md §7.2) and sends one ``mbox_reply`` with the same ``rid``
back through the reply block.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from qdht.errors import ConfigError, DecodeError
from qdht.wire._fields import FieldReader, child_path
from qdht.wire._mbox import MboxGet, MboxPut
from qdht.wire._registry import register

__all__ = ["AnonMbox"]


def _parse_request(obj: Any, path: str) -> MboxGet | MboxPut:
    if not isinstance(obj, dict):
        raise DecodeError("not-a-map", path)
    kind = obj.get("type")
    if kind == MboxGet.TYPE:
        return MboxGet.from_cbor(obj, path)
    if kind == MboxPut.TYPE:
        return MboxPut.from_cbor(obj, path)
    raise DecodeError("unexpected-type", child_path(path, "type"), "an mbox_get or mbox_put")


def _check_request(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, MboxGet | MboxPut):
        raise ConfigError(f"{attribute.name} must be an MboxGet or an MboxPut")


@register
@attrs.frozen
class AnonMbox:
    """EXIT_MBOX: the exit runs ``request`` against the holders of its key."""

    TYPE: ClassVar[str] = "exit_mbox"
    request: MboxGet | MboxPut = attrs.field(validator=_check_request)

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "request": self.request.to_cbor()}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> AnonMbox:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        request = reader.nested("request", _parse_request)
        reader.finish()
        return cls(request)
