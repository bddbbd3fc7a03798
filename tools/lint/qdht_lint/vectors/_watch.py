"""Test vectors for watching keys (``protocol-spec/08-watch.md``).

Request IDs and keys come from fixed labels hashed with SHA3-256.  The
records a ``notify`` carries are real signed records of the records
vectors' fixed owners (alice, bob), so a watcher implementation can also
check that they validate under the vector's ``key``; ML-DSA-65 signing is
hedged, so ``watch-notify.json`` pins the signatures it uses in its
``signatures`` list, as the records vectors do.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

import cbor2

from qdht.wire import MAX_WATCH_TTL, ImmutableRecord, Notified, Notify, Watch, Watching, encode
from qdht_lint._cddl import default_spec_dir
from qdht_lint.vectors._common import Case, Valid, vector_file
from qdht_lint.vectors._dht import _common_invalid
from qdht_lint.vectors._records import DAY, NOW, _entry, _mutable, _owners, _Signer, _tombstone

__all__ = ["vector_files"]

SPEC: Final = "08-watch.md"


def _bytes(label: str, size: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha3_256(f"qdht/vectors/watch/{label}/{counter}".encode()).digest()
        counter += 1
    return out[:size]


RID: Final = _bytes("rid", 8)
KEY: Final = _bytes("key", 32)


def _canon(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


class _WatchSigner(_Signer):
    """The records vectors' signer, with its pins in ``vectors/watch/``."""

    def __init__(self, rule: str) -> None:
        self.pinned: dict[tuple[str, str, str], str] = {}
        self.used: list[dict[str, str]] = []
        path = default_spec_dir() / "vectors" / "watch" / f"{rule}.json"
        if path.is_file():
            for entry in json.loads(path.read_text(encoding="utf-8")).get("signatures", []):
                self.pinned[(entry["key"], entry["context"], entry["message_sha3"])] = entry[
                    "signature"
                ]


def _without(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != name}


def _ttl_cases(base: dict[str, Any]) -> list[Case]:
    return [
        (
            f"ttl {MAX_WATCH_TTL + 1}",
            ["wrong-field-value"],
            _canon(dict(base, ttl=MAX_WATCH_TTL + 1)),
            "field-value",
        ),
        ("ttl negative", ["wrong-field-type"], _canon(dict(base, ttl=-1)), "field-type"),
        ("ttl is text", ["wrong-field-type"], _canon(dict(base, ttl="600")), "field-type"),
        ("ttl missing", ["missing-field"], _canon(_without(base, "ttl")), "missing-field"),
    ]


def _watch() -> dict[str, Any]:
    typical = Watch(RID, KEY, 600)
    base = typical.to_cbor()
    valid: list[Valid] = [
        ("first subscription, 600 s", [], encode(typical)),
        ("renewal with since", [], encode(Watch(RID, KEY, 300, since=7))),
        ("unwatch (ttl 0)", [], encode(Watch(RID, KEY, 0))),
        ("client-mode watcher", [], encode(Watch(RID, KEY, 600, since=0, ro=True))),
        ("over WebSocket, with ws port", [], encode(Watch(RID, KEY, 120, ws=8443))),
        ("since at 2^64-1", [], encode(Watch(RID, KEY, 1, since=2**64 - 1))),
    ]
    invalid = _common_invalid(base)
    invalid += _ttl_cases(base)
    invalid += [
        ("key of 31 bytes", ["undersize-field"], _canon(dict(base, key=KEY[:31])), "field-size"),
        ("key missing", ["missing-field"], _canon(_without(base, "key")), "missing-field"),
        ("since negative", ["wrong-field-type"], _canon(dict(base, since=-1)), "field-type"),
        ("since is null", ["wrong-field-type"], _canon(dict(base, since=None)), "field-type"),
        ("ro false", ["wrong-field-value"], _canon(dict(base, ro=False)), "field-value"),
        ("ws port 0", ["wrong-field-value"], _canon(dict(base, ws=0)), "field-value"),
    ]
    return vector_file("watch-watch", SPEC, valid, invalid)


def _watching() -> dict[str, Any]:
    typical = Watching(RID, 600)
    base = typical.to_cbor()
    valid: list[Valid] = [
        ("granted 600 s", [], encode(typical)),
        ("granted less than asked", [], encode(Watching(RID, 60))),
        ("unwatch confirmed (ttl 0)", [], encode(Watching(RID, 0))),
    ]
    invalid = _common_invalid(base) + _ttl_cases(base)
    return vector_file("watch-watching", SPEC, valid, invalid)


def _notify() -> dict[str, Any]:
    alice, bob = _owners()
    signer = _WatchSigner("watch-notify")
    mutable = _mutable(signer, alice, seq=8, value=b"new profile")
    tombstone = _tombstone(signer, alice, seq=9)
    entry = _entry(signer, bob, seq=2, value=b"mix descriptor")
    immutable = ImmutableRecord(b"hello, qdht", NOW + DAY)
    mkey = mutable.key()
    update = Notify(RID, mkey, mutable)
    expired = Notify(RID, mkey)
    valid: list[Valid] = [
        ("update: a new mutable version", [], encode(update)),
        ("deleted: the tombstone", [], encode(Notify(RID, mkey, tombstone))),
        ("expired: no record", [], encode(expired)),
        ("update: an immutable record", [], encode(Notify(RID, immutable.key(), immutable))),
        ("update: one set entry", [], encode(Notify(RID, entry.key(), entry))),
        (
            "update from a holder that listens on WebSocket",
            [],
            encode(Notify(RID, mkey, mutable, ws=443)),
        ),
    ]
    up = update.to_cbor()
    invalid = _common_invalid(up)
    invalid += [
        ("key of 33 bytes", ["oversize-field"], _canon(dict(up, key=KEY + b"\0")), "field-size"),
        ("key missing", ["missing-field"], _canon(_without(up, "key")), "missing-field"),
        ("record is bytes", ["wrong-field-type"], _canon(dict(up, record=b"record")), "not-a-map"),
        ("record is null", ["wrong-field-type"], _canon(dict(up, record=None)), "not-a-map"),
        (
            "record with an unknown field",
            ["unknown-field"],
            _canon(dict(up, record=dict(up["record"], extra=0))),
            "unknown-field",
        ),
        (
            "record without sig",
            ["missing-field"],
            _canon(dict(up, record=_without(up["record"], "sig"))),
            "missing-field",
        ),
        (
            "record of a non-record type",
            ["wrong-type"],
            _canon(dict(up, record={"type": "ping", "rid": RID})),
            "unexpected-type",
        ),
        (
            "record value of 65537 bytes",
            ["oversize-field"],
            _canon(dict(up, record=dict(up["record"], value=bytes(65537)))),
            "field-size",
        ),
        (
            "record sig of 3308 bytes",
            ["undersize-field"],
            _canon(dict(up, record=dict(up["record"], sig=bytes(3308)))),
            "field-size",
        ),
        (
            "event field (not part of notify)",
            ["unknown-field"],
            _canon(dict(up, event="update")),
            "unknown-field",
        ),
        ("ro false", ["wrong-field-value"], _canon(dict(up, ro=False)), "field-value"),
    ]
    content = vector_file(
        "watch-notify",
        SPEC,
        valid,
        invalid,
        owners=[alice.describe(), bob.describe()],
    )
    content["signatures"] = signer.used
    return content


def _notified() -> dict[str, Any]:
    typical = Notified(RID)
    base = typical.to_cbor()
    valid: list[Valid] = [
        ("acknowledged", [], encode(typical)),
        ("not watching: stop", [], encode(Notified(RID, stop=True))),
    ]
    invalid = _common_invalid(base)
    invalid += [
        ("stop false", ["wrong-field-value"], _canon(dict(base, stop=False)), "field-value"),
        ("stop is 1", ["wrong-field-type"], _canon(dict(base, stop=1)), "field-type"),
    ]
    return vector_file("watch-notified", SPEC, valid, invalid)


def vector_files() -> dict[str, dict[str, Any]]:
    """``watch/watch-<type>.json`` for the four watch messages."""
    return {
        "watch/watch-watch.json": _watch(),
        "watch/watch-watching.json": _watching(),
        "watch/watch-notify.json": _notify(),
        "watch/watch-notified.json": _notified(),
    }
