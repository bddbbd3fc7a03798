"""Test vectors for the mailbox requests (``protocol-spec/11-messaging.md`` §7.2).

Fields come from fixed labels hashed with SHA3-256; the slot and intro
entries are the ones of the ``msg`` area's vectors.
"""

from __future__ import annotations

from typing import Any, Final

from qdht.crypto.hashes import sha3_256
from qdht.wire import MboxGet, MboxPut, MboxReply
from qdht_lint.vectors._common import Case
from qdht_lint.vectors._messaging import (
    DAY,
    NOW,
    _bytes,
    _canon,
    _first_obj,
    _wire_file,
    _without,
)

__all__ = ["vector_files"]

RID: Final = _bytes("mbox/rid", 8)
KEY: Final = _bytes("mbox/key", 32)


def _slot_obj() -> dict[str, Any]:
    return {
        "type": "slot",
        "token": _bytes("mbox/token", 32),
        "box": _bytes("mbox/box", 2048),
        "dh": sha3_256(_bytes("mbox/delete", 32)),
        "exp": NOW + 14 * DAY,
    }


def _intro_obj() -> dict[str, Any]:
    return {
        "type": "intro",
        "box": KEY,
        "first": _first_obj(),
        "exp": NOW + 7 * DAY,
        "nonce": 4242,
    }


def _put() -> dict[str, Any]:
    base = {"type": "mbox_put", "rid": RID, "key": KEY}
    slot = dict(base, slot=_slot_obj())
    invalid: list[Case] = [
        ("neither slot, intro nor secret", ["missing-field"], _canon(base), "field-value"),
        (
            "slot and secret",
            ["extra-field"],
            _canon(dict(slot, secret=_bytes("mbox/secret", 32))),
            "field-value",
        ),
        ("rid of 7 bytes", ["undersize-field"], _canon(dict(slot, rid=RID[:7])), "field-size"),
        ("rid missing", ["missing-field"], _canon(_without(slot, "rid")), "missing-field"),
    ]
    return _wire_file(
        "mbox-mbox_put",
        MboxPut,
        [
            ("a slot write", slot),
            ("an intro entry", dict(base, intro=_intro_obj())),
            ("a slot deletion", dict(base, secret=_bytes("mbox/secret", 32))),
        ],
        invalid,
    )


def _get() -> dict[str, Any]:
    base = {"type": "mbox_get", "rid": RID, "key": KEY, "intro": False, "skip": 0}
    invalid: list[Case] = [
        ("skip missing", ["missing-field"], _canon(_without(base, "skip")), "missing-field"),
        ("intro is 1", ["wrong-field-type"], _canon(dict(base, intro=1)), "field-type"),
        (
            "skip above 4096",
            ["oversize-field"],
            _canon(dict(base, intro=True, skip=4097)),
            "field-value",
        ),
    ]
    return _wire_file(
        "mbox-mbox_get",
        MboxGet,
        [("a slot read", base), ("an intro box read", dict(base, intro=True, skip=4))],
        invalid,
    )


def _reply() -> dict[str, Any]:
    base = {
        "type": "mbox_reply",
        "rid": RID,
        "ok": True,
        "reason": "",
        "intros": [],
        "more": False,
    }
    invalid: list[Case] = [
        ("reason missing", ["missing-field"], _canon(_without(base, "reason")), "missing-field"),
        (
            "reason of 33 bytes",
            ["oversize-field"],
            _canon(dict(base, ok=False, reason="x" * 33)),
            "field-size",
        ),
        (
            "five intro entries",
            ["oversize-field"],
            _canon(dict(base, intros=[_intro_obj()] * 5)),
            "field-size",
        ),
        ("more is null", ["wrong-field-type"], _canon(dict(base, more=None)), "field-type"),
    ]
    return _wire_file(
        "mbox-mbox_reply",
        MboxReply,
        [
            ("a write accepted, or no slot held", base),
            ("a slot", dict(base, slot=_slot_obj())),
            ("a page of intro entries", dict(base, intros=[_intro_obj()], more=True)),
            ("a refusal", dict(base, ok=False, reason="slot-taken")),
        ],
        invalid,
    )


def vector_files() -> dict[str, dict[str, Any]]:
    """``mbox/mbox-<type>.json`` for the three mailbox requests."""
    return {
        "mbox/mbox-mbox_put.json": _put(),
        "mbox/mbox-mbox_get.json": _get(),
        "mbox/mbox-mbox_reply.json": _reply(),
    }
