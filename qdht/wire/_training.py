"""Federated training messages (``protocol-spec/14-training.md``).

======================  =====================  ==============================================
message (``fl-`` rule)  direction              meaning
======================  =====================  ==============================================
``round_announce``      coordinator → devices  a signed round: model, hyperparameters, q, deadline
``round_update``        device → coordinator   one device's (compressed, clipped) update
``secagg_setup``        coordinator → devices  SecAgg+ parameters and the cohort of a round
``secagg_keys``         device → coordinator   the device's two X-Wing public keys
``secagg_neighbours``   coordinator → device   the keys of the device's graph neighbours
``secagg_shares``       device → coordinator   encrypted Shamir shares, mask ciphertexts, escrows
``secagg_forward``      coordinator → device   what the device's neighbours sent it
``secagg_masked``       device → coordinator   the masked, quantised update
``secagg_unlinked``     device → coordinator   the same, anonymous: no index (§9.5)
``secagg_submitted``    device → coordinator   signed claim: my unlinked input is sent (§9.5)
``secagg_unmask``       coordinator → devices  who is in the sum and who dropped out
``secagg_reveal``       device → coordinator   the shares that remove the masks
``gossip_model``        device → device        a gossip-learning model and its age
``device_signed``       device → coordinator   a signed message for the mixnet (§9.5)
``enrolment``           device → DHT set       a device's contact, bound to its keys (§9.1)
======================  =====================  ==============================================

The CBOR profile has no floats (00-conventions.md §2): hyperparameters are
integers in fixed units (micro-units, or 2^-32 for the sampling
probability) and vectors are little-endian float32, uint8 or uint32 bytes.
Pairs and triples inside arrays are CBOR arrays, not maps.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any, ClassVar, Final

import attrs

from qdht.errors import ConfigError, DecodeError
from qdht.wire._contact import NODE_ID_SIZE, Contact
from qdht.wire._fields import FieldReader, check_bytes, check_uint, child_path
from qdht.wire._registry import register

__all__ = [
    "COMPRESSIONS",
    "ENROLMENT_NONCE_SIZE",
    "FL_AGGREGATORS",
    "FL_SIGNED_CONTEXT",
    "MAX_COHORT",
    "MAX_NEIGHBOURS",
    "MAX_SIGNED_MESSAGE",
    "MAX_UPDATE_VALUES",
    "ROUND_ANNOUNCE_CONTEXT",
    "ROUND_ID_SIZE",
    "SHARE_SIZE",
    "DeviceSigned",
    "Enrolment",
    "GossipModel",
    "RoundAnnounce",
    "RoundUpdate",
    "SecAggForward",
    "SecAggKeys",
    "SecAggMasked",
    "SecAggNeighbours",
    "SecAggReveal",
    "SecAggSetup",
    "SecAggShares",
    "SecAggSubmitted",
    "SecAggUnlinked",
    "SecAggUnmask",
    "signed_message_bytes",
]

#: ML-DSA-65 context of a round announcement (03-identity.md §1.3).
ROUND_ANNOUNCE_CONTEXT: Final = b"qdht/v1/fl-round-announce"
ROUND_ID_SIZE: Final = 32
HASH_SIZE: Final = 32
XWING_PK: Final = 1216
XWING_CT: Final = 1120
MLDSA_SIG: Final = 3309
#: A Shamir share: a field element mod 2^521 - 1, 66 bytes big-endian.
SHARE_SIZE: Final = 66
#: AEAD box of a share pair (b-share ‖ s-share ‖ 16-byte tag).
BOX_SIZE: Final = 2 * SHARE_SIZE + 16
#: AEAD escrow of a 32-byte pairwise secret.
ESCROW_SIZE: Final = 32 + 16
#: Most values in one update (an update must fit one message, 00-conventions.md §3).
MAX_UPDATE_VALUES: Final = 16_000
#: Most devices in one SecAgg cohort; most graph neighbours of one device.
MAX_COHORT: Final = 1000
MAX_NEIGHBOURS: Final = 24
COMPRESSIONS: Final = frozenset({"none", "q8", "topk"})
FL_AGGREGATORS: Final = frozenset({"fedavg", "median", "trimmed-mean", "krum"})
_U32: Final = 2**32
_MAX_FIELD: Final = 2**32 - 1

# ------------------------------------------------------------------ validators


def _bytes(size: int | None = None, max_size: int | None = None) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not bytes:
            raise ConfigError(f"{attribute.name} must be bytes")
        if size is not None and len(value) != size:
            raise ConfigError(f"{attribute.name} must be {size} bytes")
        if max_size is not None and len(value) > max_size:
            raise ConfigError(f"{attribute.name} must be at most {max_size} bytes")

    return check


def _uint(lo: int = 0, hi: int = 2**64 - 1) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not int or not lo <= value <= hi:
            raise ConfigError(f"{attribute.name} must be an integer in {lo}..{hi}")

    return check


def _choice(choices: frozenset[str]) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in choices:
            raise ConfigError(f"{attribute.name} must be one of {sorted(choices)}")

    return check


def _tuples(shape: tuple[tuple[str, int], ...], max_len: int) -> Any:
    """Validator of a tuple of tuples shaped like ``shape`` (("uint", hi) or ("bytes", size))."""

    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not tuple or len(value) > max_len:
            raise ConfigError(f"{attribute.name} must be a tuple of at most {max_len} items")
        for item in value:
            if type(item) is not tuple or len(item) != len(shape):
                raise ConfigError(f"{attribute.name} items must be {len(shape)}-tuples")
            for part, (kind, limit) in zip(item, shape, strict=True):
                ok = (
                    type(part) is int and 1 <= part <= limit
                    if kind == "uint"
                    else type(part) is bytes and len(part) == limit
                )
                if not ok:
                    raise ConfigError(f"{attribute.name} item {item!r:.40} is malformed")

    return check


def _read_columns(
    reader: FieldReader, columns: tuple[tuple[str, int | None], ...]
) -> tuple[tuple[Any, ...], ...]:
    """Tuples sent as parallel arrays, one per column: (key, byte size or None for an index).

    (pycddl 0.6 mis-validates arrays of arrays, so qdht sends columns.)
    """
    arrays = []
    for key, size in columns:

        def parse(v: Any, p: str, size: int | None = size) -> Any:
            return check_uint(v, p, 1, MAX_COHORT) if size is None else check_bytes(v, p, size=size)

        arrays.append(reader.array(key, parse, max_len=MAX_NEIGHBOURS))
    for (key, _), array in zip(columns[1:], arrays[1:], strict=True):
        if len(array) != len(arrays[0]):
            raise DecodeError(
                "field-size", child_path(reader.path, key), f"not as long as {columns[0][0]}"
            )
    return tuple(zip(*arrays, strict=True))


def _columns(rows: tuple[tuple[Any, ...], ...], keys: tuple[str, ...]) -> dict[str, list[Any]]:
    return {key: [row[i] for row in rows] for i, key in enumerate(keys)}


def _indices(reader: FieldReader, key: str) -> tuple[int, ...]:
    values: tuple[int, ...] = reader.array(
        key, lambda v, p: check_uint(v, p, 1, MAX_COHORT), max_len=MAX_COHORT
    )
    if any(a >= b for a, b in itertools.pairwise(values)):
        raise DecodeError("field-value", child_path(reader.path, key), "indices must increase")
    return values


def _increasing(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not tuple or any(
        type(v) is not int or not 1 <= v <= MAX_COHORT for v in value
    ):
        raise ConfigError(f"{attribute.name} must be a tuple of indices in 1..{MAX_COHORT}")
    if any(a >= b for a, b in itertools.pairwise(value)):
        raise ConfigError(f"{attribute.name} must be strictly increasing")


_round = _bytes(ROUND_ID_SIZE)
_index = _uint(1, MAX_COHORT)


def _check_uint32s(name: str, value: bytes) -> None:
    """A vector of little-endian 32-bit values: not empty, a multiple of 4 bytes."""
    if not value or len(value) % 4:
        raise ConfigError(f"{name} must be a positive multiple of 4 bytes")


def _read_uint32s(r: FieldReader, path: str, name: str) -> bytes:
    value: bytes = r.bytes_(name, min_size=4, max_size=4 * MAX_UPDATE_VALUES)
    if len(value) % 4:
        raise DecodeError("field-size", child_path(path, name), "not a multiple of 4 bytes")
    return value


# -------------------------------------------------------------- announcement


@register
@attrs.frozen
class RoundAnnounce:
    """A training round, signed by its coordinator (14-training.md §2).

    The round id is derived, not chosen (``round_id`` below), so a
    coordinator cannot grind it to pick which devices sample themselves.
    ``q`` is the sampling probability in units of 2^-32; ``lr`` and ``clip``
    are in micro-units, ``noise`` (the noise multiplier z) in milli-units.
    """

    TYPE: ClassVar[str] = "round_announce"
    coordinator: bytes = attrs.field(validator=_bytes(NODE_ID_SIZE))
    task: bytes = attrs.field(validator=_bytes(HASH_SIZE))
    round: int = attrs.field(validator=_uint(0, _MAX_FIELD))
    model: bytes = attrs.field(validator=_bytes(HASH_SIZE))
    size: int = attrs.field(validator=_uint(1, MAX_UPDATE_VALUES))
    epochs: int = attrs.field(validator=_uint(1, 1000))
    lr: int = attrs.field(validator=_uint(1, 100_000_000))
    batch: int = attrs.field(validator=_uint(1, 65535))
    clip: int = attrs.field(validator=_uint(0, _MAX_FIELD))
    noise: int = attrs.field(validator=_uint(0, 1_000_000))
    q: int = attrs.field(validator=_uint(1, _U32))
    deadline: int = attrs.field(validator=_uint(0, 2**40))
    min_participants: int = attrs.field(validator=_uint(1, MAX_COHORT))
    aggregator: str = attrs.field(validator=_choice(FL_AGGREGATORS))
    compression: str = attrs.field(validator=_choice(COMPRESSIONS))
    secagg: bool = attrs.field(validator=attrs.validators.instance_of(bool))
    sig: bytes = attrs.field(default=b"", validator=_bytes(max_size=MLDSA_SIG))

    def signed_bytes(self) -> bytes:
        """The bytes the coordinator signs: the map without ``sig``."""
        from qdht.wire._cbor import dumps_canonical

        obj = self.to_cbor()
        del obj["sig"]
        return dumps_canonical(obj)

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "coordinator": self.coordinator,
            "task": self.task,
            "round": self.round,
            "model": self.model,
            "size": self.size,
            "epochs": self.epochs,
            "lr": self.lr,
            "batch": self.batch,
            "clip": self.clip,
            "noise": self.noise,
            "q": self.q,
            "deadline": self.deadline,
            "min": self.min_participants,
            "aggregator": self.aggregator,
            "compression": self.compression,
            "secagg": self.secagg,
            "sig": self.sig,
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> RoundAnnounce:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        out = cls(
            r.bytes_("coordinator", size=NODE_ID_SIZE),
            r.bytes_("task", size=HASH_SIZE),
            r.uint("round", max_value=_MAX_FIELD),
            r.bytes_("model", size=HASH_SIZE),
            r.uint("size", min_value=1, max_value=MAX_UPDATE_VALUES),
            r.uint("epochs", min_value=1, max_value=1000),
            r.uint("lr", min_value=1, max_value=100_000_000),
            r.uint("batch", min_value=1, max_value=65535),
            r.uint("clip", max_value=_MAX_FIELD),
            r.uint("noise", max_value=1_000_000),
            r.uint("q", min_value=1, max_value=_U32),
            r.uint("deadline", max_value=2**40),
            r.uint("min", min_value=1, max_value=MAX_COHORT),
            r.text("aggregator", max_len=16, choices=FL_AGGREGATORS),
            r.text("compression", max_len=8, choices=COMPRESSIONS),
            r.bool_("secagg"),
            r.bytes_("sig", size=MLDSA_SIG),
        )
        r.finish()
        return out


# -------------------------------------------------------------------- update


@register
@attrs.frozen
class RoundUpdate:
    """One device's update of ``size`` values for the round ``round_id`` (§3).

    ``enc`` says how ``data`` holds it: ``none``: float32 values; ``q8``:
    uint8 codes between float32 ``lo`` and ``hi``; ``topk``: float32 values
    at the uint32 positions ``idx``.  ``n`` is the device's sample count.
    """

    TYPE: ClassVar[str] = "round_update"
    round_id: bytes = attrs.field(validator=_round)
    node: bytes = attrs.field(validator=_bytes(NODE_ID_SIZE))
    n: int = attrs.field(validator=_uint(1, _MAX_FIELD))
    size: int = attrs.field(validator=_uint(1, MAX_UPDATE_VALUES))
    enc: str = attrs.field(validator=_choice(COMPRESSIONS))
    data: bytes = attrs.field(validator=_bytes(max_size=4 * MAX_UPDATE_VALUES))
    lo: bytes | None = attrs.field(default=None, kw_only=True)
    hi: bytes | None = attrs.field(default=None, kw_only=True)
    idx: bytes | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        try:
            self._check("$", ConfigError)
        except DecodeError as exc:  # pragma: no cover - _check raises the class it is given
            raise ConfigError(str(exc)) from None

    def _check(self, path: str, error: type[Exception]) -> None:
        def fail(field: str, detail: str) -> None:
            if error is DecodeError:
                raise DecodeError("field-size", child_path(path, field), detail)
            raise ConfigError(f"{field}: {detail}")

        q8 = self.enc == "q8"
        if q8 != (self.lo is not None) or q8 != (self.hi is not None):
            fail("lo", "lo and hi are present exactly when enc is q8")
        if (self.enc == "topk") != (self.idx is not None):
            fail("idx", "idx is present exactly when enc is topk")
        for name in ("lo", "hi"):
            value = getattr(self, name)
            if value is not None and (type(value) is not bytes or len(value) != 4):
                fail(name, "must be 4 bytes (float32)")
        if self.enc == "none" and len(self.data) != 4 * self.size:
            fail("data", f"{len(self.data)} bytes, expected {4 * self.size}")
        if q8 and len(self.data) != self.size:
            fail("data", f"{len(self.data)} bytes, expected {self.size}")
        if self.enc == "topk":
            idx = self.idx or b""
            if len(idx) != len(self.data) or len(idx) % 4 or len(idx) > 4 * self.size:
                fail("idx", "idx and data must hold the same number (<= size) of 4-byte values")

    def to_cbor(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "type": self.TYPE,
            "round": self.round_id,
            "node": self.node,
            "n": self.n,
            "size": self.size,
            "enc": self.enc,
            "data": self.data,
        }
        for name in ("lo", "hi", "idx"):
            if getattr(self, name) is not None:
                obj[name] = getattr(self, name)
        return obj

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> RoundUpdate:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        round_id = r.bytes_("round", size=ROUND_ID_SIZE)
        node = r.bytes_("node", size=NODE_ID_SIZE)
        n = r.uint("n", min_value=1, max_value=_MAX_FIELD)
        size = r.uint("size", min_value=1, max_value=MAX_UPDATE_VALUES)
        enc = r.text("enc", max_len=8, choices=COMPRESSIONS)
        data = r.bytes_("data", max_size=4 * MAX_UPDATE_VALUES)
        lo = r.bytes_("lo", optional=True, max_size=64)
        hi = r.bytes_("hi", optional=True, max_size=64)
        idx = r.bytes_("idx", optional=True, max_size=4 * MAX_UPDATE_VALUES)
        r.finish()
        out = object.__new__(cls)
        for name, value in zip(
            ("round_id", "node", "n", "size", "enc", "data", "lo", "hi", "idx"),
            (round_id, node, n, size, enc, data, lo, hi, idx),
            strict=True,
        ):
            object.__setattr__(out, name, value)
        out._check(path, DecodeError)
        return out


# ------------------------------------------------------------------ SecAgg+


@register
@attrs.frozen
class SecAggSetup:
    """SecAgg+ parameters of a round and its cohort (14-training.md §5.1).

    Device ``ids[i]`` has index i + 1.  ``k`` is the number of graph
    neighbours, ``t`` the Shamir threshold, ``bits`` the quantisation
    levels per value (2^bits), ``range`` the clipping range in micro-units;
    the sum is taken mod 2^32.
    """

    TYPE: ClassVar[str] = "secagg_setup"
    round_id: bytes = attrs.field(validator=_round)
    ids: tuple[bytes, ...]
    k: int = attrs.field(validator=_uint(2, MAX_NEIGHBOURS))
    t: int = attrs.field(validator=_uint(2, MAX_NEIGHBOURS))
    bits: int = attrs.field(validator=_uint(8, 24))
    range: int = attrs.field(validator=_uint(1, _MAX_FIELD))
    size: int = attrs.field(validator=_uint(1, MAX_UPDATE_VALUES))
    graph: bytes = attrs.field(validator=_bytes(HASH_SIZE))

    def __attrs_post_init__(self) -> None:
        if (
            type(self.ids) is not tuple
            or not 3 <= len(self.ids) <= MAX_COHORT
            or any(type(i) is not bytes or len(i) != NODE_ID_SIZE for i in self.ids)
        ):
            raise ConfigError(f"ids must be 3..{MAX_COHORT} node ids")
        if len(set(self.ids)) != len(self.ids):
            raise ConfigError("ids must be distinct")
        if self.t > self.k or self.k > len(self.ids) - 1:
            raise ConfigError("need t <= k <= len(ids) - 1")
        if len(self.ids) << self.bits > _U32:
            raise ConfigError("len(ids) * 2^bits must not exceed 2^32")

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "round": self.round_id,
            "ids": list(self.ids),
            "k": self.k,
            "t": self.t,
            "bits": self.bits,
            "range": self.range,
            "size": self.size,
            "graph": self.graph,
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> SecAggSetup:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        round_id = r.bytes_("round", size=ROUND_ID_SIZE)
        ids = r.array(
            "ids", lambda v, p: check_bytes(v, p, size=NODE_ID_SIZE), min_len=3, max_len=MAX_COHORT
        )
        k = r.uint("k", min_value=2, max_value=MAX_NEIGHBOURS)
        t = r.uint("t", min_value=2, max_value=MAX_NEIGHBOURS)
        bits = r.uint("bits", min_value=8, max_value=24)
        rng = r.uint("range", min_value=1, max_value=_MAX_FIELD)
        size = r.uint("size", min_value=1, max_value=MAX_UPDATE_VALUES)
        graph = r.bytes_("graph", size=HASH_SIZE)
        r.finish()
        try:
            return cls(round_id, ids, k, t, bits, rng, size, graph)
        except ConfigError as exc:
            raise DecodeError("field-value", path, str(exc)) from None


@register
@attrs.frozen
class SecAggKeys:
    """A device's channel key ``cpk`` and masking key ``spk`` (X-Wing) for one round."""

    TYPE: ClassVar[str] = "secagg_keys"
    round_id: bytes = attrs.field(validator=_round)
    index: int = attrs.field(validator=_index)
    cpk: bytes = attrs.field(validator=_bytes(XWING_PK))
    spk: bytes = attrs.field(validator=_bytes(XWING_PK))

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "round": self.round_id,
            "index": self.index,
            "cpk": self.cpk,
            "spk": self.spk,
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> SecAggKeys:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        out = cls(
            r.bytes_("round", size=ROUND_ID_SIZE),
            r.uint("index", min_value=1, max_value=MAX_COHORT),
            r.bytes_("cpk", size=XWING_PK),
            r.bytes_("spk", size=XWING_PK),
        )
        r.finish()
        return out


_KEY_TRIPLE: Final = (("uint", MAX_COHORT), ("bytes", XWING_PK), ("bytes", XWING_PK))
_BOX_TRIPLE: Final = (("uint", MAX_COHORT), ("bytes", XWING_CT), ("bytes", BOX_SIZE))
_MASK_TRIPLE: Final = (("uint", MAX_COHORT), ("bytes", XWING_CT), ("bytes", ESCROW_SIZE))
_KEY_COLUMNS: Final = ("from", "cpks", "spks")
_MASK_PAIR: Final = (("uint", MAX_COHORT), ("bytes", XWING_CT))
_SHARE_PAIR: Final = (("uint", MAX_COHORT), ("bytes", SHARE_SIZE))


@register
@attrs.frozen
class SecAggNeighbours:
    """The keys of the recipient's neighbours that advertised: ``[index, cpk, spk]`` each."""

    TYPE: ClassVar[str] = "secagg_neighbours"
    round_id: bytes = attrs.field(validator=_round)
    keys: tuple[tuple[int, bytes, bytes], ...] = attrs.field(
        validator=_tuples(_KEY_TRIPLE, MAX_NEIGHBOURS)
    )

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "round": self.round_id,
            **_columns(self.keys, _KEY_COLUMNS),
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> SecAggNeighbours:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        out = cls(
            r.bytes_("round", size=ROUND_ID_SIZE),
            _read_columns(r, tuple(zip(_KEY_COLUMNS, (None, XWING_PK, XWING_PK), strict=True))),
        )
        r.finish()
        return out


@register
@attrs.frozen
class SecAggShares:
    """What a device sends its neighbours through the coordinator (§5.3).

    ``boxes``: ``[to, channel ciphertext, AEAD(b-share ‖ s-share)]`` for
    every neighbour; ``masks``: ``[to, masking ciphertext, escrow]`` for
    every neighbour with a higher index.
    """

    TYPE: ClassVar[str] = "secagg_shares"
    round_id: bytes = attrs.field(validator=_round)
    index: int = attrs.field(validator=_index)
    boxes: tuple[tuple[int, bytes, bytes], ...] = attrs.field(
        validator=_tuples(_BOX_TRIPLE, MAX_NEIGHBOURS)
    )
    masks: tuple[tuple[int, bytes, bytes], ...] = attrs.field(
        validator=_tuples(_MASK_TRIPLE, MAX_NEIGHBOURS)
    )

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "round": self.round_id,
            "index": self.index,
            **_columns(self.boxes, ("box_to", "box_cts", "boxes")),
            **_columns(self.masks, ("mask_to", "mask_cts", "escrows")),
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> SecAggShares:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        out = cls(
            r.bytes_("round", size=ROUND_ID_SIZE),
            r.uint("index", min_value=1, max_value=MAX_COHORT),
            _read_columns(r, (("box_to", None), ("box_cts", XWING_CT), ("boxes", BOX_SIZE))),
            _read_columns(r, (("mask_to", None), ("mask_cts", XWING_CT), ("escrows", ESCROW_SIZE))),
        )
        r.finish()
        return out


@register
@attrs.frozen
class SecAggForward:
    """What the recipient's neighbours sent it.

    ``boxes``: ``[from, channel ciphertext, box]``; ``masks``: ``[from,
    masking ciphertext]`` from every neighbour with a lower index.
    """

    TYPE: ClassVar[str] = "secagg_forward"
    round_id: bytes = attrs.field(validator=_round)
    boxes: tuple[tuple[int, bytes, bytes], ...] = attrs.field(
        validator=_tuples(_BOX_TRIPLE, MAX_NEIGHBOURS)
    )
    masks: tuple[tuple[int, bytes], ...] = attrs.field(
        validator=_tuples(_MASK_PAIR, MAX_NEIGHBOURS)
    )

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "round": self.round_id,
            **_columns(self.boxes, ("box_from", "box_cts", "boxes")),
            **_columns(self.masks, ("mask_from", "mask_cts")),
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> SecAggForward:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        out = cls(
            r.bytes_("round", size=ROUND_ID_SIZE),
            _read_columns(r, (("box_from", None), ("box_cts", XWING_CT), ("boxes", BOX_SIZE))),
            _read_columns(r, (("mask_from", None), ("mask_cts", XWING_CT))),
        )
        r.finish()
        return out


@register
@attrs.frozen
class SecAggMasked:
    """The masked quantised update: ``size`` little-endian uint32 values mod 2^32."""

    TYPE: ClassVar[str] = "secagg_masked"
    round_id: bytes = attrs.field(validator=_round)
    index: int = attrs.field(validator=_index)
    y: bytes = attrs.field(validator=_bytes(max_size=4 * MAX_UPDATE_VALUES))

    def __attrs_post_init__(self) -> None:
        _check_uint32s("y", self.y)

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "round": self.round_id, "index": self.index, "y": self.y}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> SecAggMasked:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        round_id = r.bytes_("round", size=ROUND_ID_SIZE)
        index = r.uint("index", min_value=1, max_value=MAX_COHORT)
        y = _read_uint32s(r, path, "y")
        r.finish()
        return cls(round_id, index, y)


@register
@attrs.frozen
class SecAggUnlinked:
    """A masked quantised update sent anonymously through the mixnet: no ``index`` (§9.5)."""

    TYPE: ClassVar[str] = "secagg_unlinked"
    round_id: bytes = attrs.field(validator=_round)
    y: bytes = attrs.field(validator=_bytes(max_size=4 * MAX_UPDATE_VALUES))

    def __attrs_post_init__(self) -> None:
        _check_uint32s("y", self.y)

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "round": self.round_id, "y": self.y}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> SecAggUnlinked:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        round_id = r.bytes_("round", size=ROUND_ID_SIZE)
        y = _read_uint32s(r, path, "y")
        r.finish()
        return cls(round_id, y)


@register
@attrs.frozen
class SecAggSubmitted:
    """A cohort member's claim that its unlinked masked update for the round is sent (§9.5)."""

    TYPE: ClassVar[str] = "secagg_submitted"
    round_id: bytes = attrs.field(validator=_round)
    index: int = attrs.field(validator=_index)

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "round": self.round_id, "index": self.index}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> SecAggSubmitted:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        out = cls(
            r.bytes_("round", size=ROUND_ID_SIZE),
            r.uint("index", min_value=1, max_value=MAX_COHORT),
        )
        r.finish()
        return out


@register
@attrs.frozen
class SecAggUnmask:
    """Who is in the sum (``alive``) and who shared but sent no input (``dropped``)."""

    TYPE: ClassVar[str] = "secagg_unmask"
    round_id: bytes = attrs.field(validator=_round)
    alive: tuple[int, ...] = attrs.field(validator=_increasing)
    dropped: tuple[int, ...] = attrs.field(validator=_increasing)

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "round": self.round_id,
            "alive": list(self.alive),
            "dropped": list(self.dropped),
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> SecAggUnmask:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        out = cls(
            r.bytes_("round", size=ROUND_ID_SIZE), _indices(r, "alive"), _indices(r, "dropped")
        )
        r.finish()
        return out


@register
@attrs.frozen
class SecAggReveal:
    """Shares the device holds: b-shares of ``alive`` and s-shares of ``dropped`` neighbours."""

    TYPE: ClassVar[str] = "secagg_reveal"
    round_id: bytes = attrs.field(validator=_round)
    index: int = attrs.field(validator=_index)
    b: tuple[tuple[int, bytes], ...] = attrs.field(validator=_tuples(_SHARE_PAIR, MAX_NEIGHBOURS))
    s: tuple[tuple[int, bytes], ...] = attrs.field(validator=_tuples(_SHARE_PAIR, MAX_NEIGHBOURS))

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "round": self.round_id,
            "index": self.index,
            **_columns(self.b, ("b_of", "b")),
            **_columns(self.s, ("s_of", "s")),
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> SecAggReveal:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        out = cls(
            r.bytes_("round", size=ROUND_ID_SIZE),
            r.uint("index", min_value=1, max_value=MAX_COHORT),
            _read_columns(r, (("b_of", None), ("b", SHARE_SIZE))),
            _read_columns(r, (("s_of", None), ("s", SHARE_SIZE))),
        )
        r.finish()
        return out


# ------------------------------------------------------------------- gossip


@register
@attrs.frozen
class GossipModel:
    """Gossip learning: a model (float32 ``params``) for ``task`` and its ``age`` (§8)."""

    TYPE: ClassVar[str] = "gossip_model"
    task: bytes = attrs.field(validator=_bytes(HASH_SIZE))
    age: int = attrs.field(validator=_uint(0, _MAX_FIELD))
    params: bytes = attrs.field(validator=_bytes(max_size=4 * MAX_UPDATE_VALUES))

    def __attrs_post_init__(self) -> None:
        if not self.params or len(self.params) % 4:
            raise ConfigError("params must be a positive multiple of 4 bytes")

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "task": self.task, "age": self.age, "params": self.params}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> GossipModel:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        task = r.bytes_("task", size=HASH_SIZE)
        age = r.uint("age", max_value=_MAX_FIELD)
        params = r.bytes_("params", min_size=4, max_size=4 * MAX_UPDATE_VALUES)
        r.finish()
        if len(params) % 4:
            raise DecodeError("field-size", child_path(path, "params"), "not a multiple of 4")
        return cls(task, age, params)


# ------------------------------------------------------------------- through the mixnet (§9.5)

#: ML-DSA-65 context of a device's signed message to its coordinator (03-identity.md §1.3).
FL_SIGNED_CONTEXT: Final = b"qdht/v1/fl-signed"
#: The largest training message a device signs for the mixnet.
MAX_SIGNED_MESSAGE: Final = 65536


@register
@attrs.frozen
class DeviceSigned:
    """A device's message to its coordinator, signed, for carriage through the mixnet (§9.5).

    ``message`` is one encoded ``round_update`` or ``secagg_*`` message (which
    names its round); ``sig`` is ML-DSA-65 by ``node``'s key with context
    :data:`FL_SIGNED_CONTEXT` over ``node ‖ SHA3-256(message)``.
    """

    TYPE: ClassVar[str] = "device_signed"
    node: bytes = attrs.field(validator=_bytes(NODE_ID_SIZE))
    message: bytes = attrs.field(validator=_bytes(max_size=MAX_SIGNED_MESSAGE))
    sig: bytes = attrs.field(validator=_bytes(MLDSA_SIG))

    def __attrs_post_init__(self) -> None:
        if not self.message:
            raise ConfigError("message must not be empty")

    def signed_bytes(self) -> bytes:
        """What ``sig`` covers (without the context)."""
        return signed_message_bytes(self.node, self.message)

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "node": self.node, "message": self.message, "sig": self.sig}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> DeviceSigned:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        node = r.bytes_("node", size=NODE_ID_SIZE)
        message = r.bytes_("message", min_size=1, max_size=MAX_SIGNED_MESSAGE)
        sig = r.bytes_("sig", size=MLDSA_SIG)
        r.finish()
        return cls(node, message, sig)


def signed_message_bytes(node: bytes, message: bytes) -> bytes:
    """``node ‖ SHA3-256(message)``: what a device signs (with :data:`FL_SIGNED_CONTEXT`)."""
    return node + hashlib.sha3_256(message).digest()


#: The size of the puzzle nonce an enrolment carries (03-identity.md §4).
ENROLMENT_NONCE_SIZE: Final = 8


@register
@attrs.frozen
class Enrolment:
    """A device's entry in a task's enrolment set (§9.1): its contact, bound to its key.

    The value of the DHT set entry a device publishes.  ``xwing`` is SHA3-256
    of the device's X-Wing public key and ``nonce`` its puzzle nonce: with
    the set entry's ``owner`` (SHA3-256 of the ML-DSA key that signed the
    entry) they give the node ID (03-identity.md §3), which must be the
    contact's, so a node can enrol itself and nobody else.
    """

    TYPE: ClassVar[str] = "enrolment"
    contact: Contact = attrs.field(validator=attrs.validators.instance_of(Contact))
    xwing: bytes = attrs.field(validator=_bytes(HASH_SIZE))
    nonce: bytes = attrs.field(validator=_bytes(ENROLMENT_NONCE_SIZE))

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "contact": self.contact.to_cbor(),
            "xwing": self.xwing,
            "nonce": self.nonce,
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Enrolment:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        contact = r.nested("contact", Contact.from_cbor)
        xwing = r.bytes_("xwing", size=HASH_SIZE)
        nonce = r.bytes_("nonce", size=ENROLMENT_NONCE_SIZE)
        r.finish()
        return cls(contact, xwing, nonce)
