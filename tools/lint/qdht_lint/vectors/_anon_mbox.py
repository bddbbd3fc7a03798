"""Test vectors for mailbox requests through an exit (``protocol-spec/10-mixnet.md`` §14.6).

The requests carried are the ``mbox`` area's (the same labels and records).
"""

from __future__ import annotations

from typing import Any, Final

from qdht.wire import AnonMbox, encode
from qdht_lint.vectors._common import Case, Valid, vector_file
from qdht_lint.vectors._dht import _canon, _common_invalid
from qdht_lint.vectors._mbox import KEY, RID, _intro_obj, _slot_obj
from qdht_lint.vectors._messaging import _bytes

__all__ = ["vector_files"]

SPEC: Final = "10-mixnet.md"


def _exit_mbox() -> dict[str, Any]:
    put = {"type": "mbox_put", "rid": RID, "key": KEY}
    get = {"type": "mbox_get", "rid": RID, "key": KEY, "intro": False, "skip": 0}
    requests = [
        ("a slot write", dict(put, slot=_slot_obj())),
        ("a slot deletion", dict(put, secret=_bytes("mbox/secret", 32))),
        ("an intro entry", dict(put, intro=_intro_obj())),
        ("a slot read", get),
        ("an intro box read", dict(get, intro=True, skip=4)),
    ]
    valid: list[Valid] = [
        (comment, [], encode(AnonMbox.from_cbor({"type": "exit_mbox", "request": obj}, "$")))
        for comment, obj in requests
    ]
    as_map = {"type": "exit_mbox", "request": get}
    reply = dict(get, type="mbox_reply", ok=True, reason="", intros=[], more=False)
    invalid: list[Case] = _common_invalid(as_map)
    invalid += [
        ("request missing", ["missing-field"], _canon({"type": "exit_mbox"}), "missing-field"),
        ("request is bytes", ["wrong-field-type"], _canon(dict(as_map, request=b"x")), "not-a-map"),
        (
            "an mbox_reply as the request",
            ["wrong-field-type"],
            _canon(dict(as_map, request=reply)),
            "unexpected-type",
        ),
        (
            "a request with a 7-byte rid",
            ["undersize-field"],
            _canon(dict(as_map, request=dict(get, rid=RID[:7]))),
            "field-size",
        ),
        (
            "a put with neither slot, intro nor secret",
            ["missing-field"],
            _canon(dict(as_map, request=put)),
            "field-value",
        ),
    ]
    return vector_file("mix-exit_mbox", SPEC, valid, invalid)


def vector_files() -> dict[str, dict[str, Any]]:
    """``mix/mix-exit_mbox.json``."""
    return {"mix/mix-exit_mbox.json": _exit_mbox()}
