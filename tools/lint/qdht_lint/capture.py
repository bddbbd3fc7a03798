"""Lint the qdht traffic of a packet capture, decrypted with a key log.

``qdht-lint capture FILE --keylog PATH`` (``protocol-spec/09-keylog.md``):

1. read pcap or pcapng with dpkt; link types Ethernet, Linux cooked (SLL,
   SLL2), BSD loopback/null and raw IP; IPv4 and IPv6; UDP only (other
   packets are counted, not judged);
2. every UDP payload is a candidate datagram (``05-transport.md`` §9.1): a
   CBOR map whose ``type`` is ``hs``, ``cookie`` or ``data`` is linted as
   that packet; anything else is ``NOT-QDHT``;
3. a ``data`` packet is mapped to its keys by its ``rid`` (an entry's local
   index names its receive key, its peer index its send key) and opened
   with the nonce and associated data of ``05-transport.md`` §2; no key →
   ``UNDECRYPTABLE``; keys but no tag verifies → ``INVALID`` (``bad-tag``);
4. the frame inside is linted (``session-msg``/``frag``/``keepalive``/
   ``close``), fragments are reassembled per (source, destination, ``id``),
   and each whole application message is linted with the engine.

One verdict per UDP packet, the worst of its parts: ``INVALID`` >
``NON-DETERMINISTIC`` > ``NON-STRICT`` > ``UNDECRYPTABLE`` > ``NOT-QDHT`` >
``OK``.  Never raises on any capture content; an unreadable file raises
:class:`CaptureError`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final

import attrs
import cbor2
import dpkt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from qdht.errors import DecodeError
from qdht.session import KeyLogEntry
from qdht.wire import loads_canonical
from qdht_lint.engine import INVALID, NON_DETERMINISTIC, NON_STRICT, OK, Linter, Verdict

__all__ = [
    "CAPTURE_VERDICTS",
    "DATAGRAM_SIZE",
    "INVALID",
    "NON_DETERMINISTIC",
    "NON_STRICT",
    "NOT_QDHT",
    "OK",
    "UNDECRYPTABLE",
    "CaptureError",
    "CaptureReport",
    "PacketVerdict",
    "lint_capture",
    "read_udp",
]

UNDECRYPTABLE: Final = "UNDECRYPTABLE"
NOT_QDHT: Final = "NOT-QDHT"
#: Every packet verdict, best first (the exit status fails on the last three).
CAPTURE_VERDICTS: Final = (OK, NOT_QDHT, UNDECRYPTABLE, NON_STRICT, NON_DETERMINISTIC, INVALID)
_RANK: Final = {v: i for i, v in enumerate(CAPTURE_VERDICTS)}

#: Link types (https://www.tcpdump.org/linktypes.html) this reader understands.
LINKTYPE_NULL: Final = 0
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = 101
LINKTYPE_LOOP: Final = 108
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LINUX_SLL2: Final = 276
#: DLT_RAW's platform-dependent values (OpenBSD 14, others 12), as libpcap maps them.
_RAW_ALIASES: Final = (12, 14)
LINKTYPES: Final = {
    LINKTYPE_NULL: "null",
    LINKTYPE_ETHERNET: "ethernet",
    LINKTYPE_RAW: "raw",
    LINKTYPE_LOOP: "loop",
    LINKTYPE_LINUX_SLL: "linux-sll",
    LINKTYPE_IPV4: "ipv4",
    LINKTYPE_IPV6: "ipv6",
    LINKTYPE_LINUX_SLL2: "linux-sll2",
}

_DATA_AD: Final = b"qdht-data"
_SESSION_PACKETS: Final = frozenset({"hs", "cookie", "data"})
_FRAMES: Final = frozenset({"msg", "frag", "keepalive", "close"})
_SESSION_TYPES: Final = _SESSION_PACKETS | _FRAMES | {"hello"}
#: Partial fragmented messages held at once (oldest dropped beyond): bounded memory.
MAX_PARTIAL: Final = 4096
#: Bytes held in partial messages at once.
MAX_PARTIAL_BYTES: Final = 64 * 1024 * 1024
#: (rid, n) pairs remembered to spot replays.
MAX_SEEN: Final = 1_000_000
#: The default ``datagram_size`` (05-transport.md §7): a larger datagram is dropped.
DATAGRAM_SIZE: Final = 1200


class CaptureError(Exception):
    """The capture or key log itself is unusable (unreadable, not pcap, unknown link type)."""


@attrs.frozen
class UdpDatagram:
    """One UDP datagram found in a capture."""

    #: 1-based frame number in the capture (as Wireshark counts).
    frame: int
    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


@attrs.define
class PacketVerdict:
    """The verdict on one UDP packet and what was found inside it."""

    frame: int
    time: float
    src: str
    dst: str
    size: int
    verdict: str = OK
    #: ``hs kind 1 (0/2)``, ``data msg ping``, ``data frag 2/5`` ...
    what: str = ""
    rule: str | None = None
    reason: str | None = None
    path: str | None = None
    detail: str = ""
    should: tuple[str, ...] = ()

    def worsen(self, verdict: str, *, reason: str | None = None, detail: str = "") -> None:
        """Keep the worse of the current verdict and ``verdict`` (details of the worst)."""
        if _RANK[verdict] > _RANK[self.verdict]:
            self.verdict = verdict
            self.reason = reason
            self.detail = detail
        elif detail and verdict == self.verdict and verdict != OK:
            self.detail = f"{self.detail}; {detail}" if self.detail else detail

    def apply(self, verdict: Verdict, where: str) -> None:
        """Fold a linter verdict on the part ``where`` of this packet into it."""
        if verdict.verdict == OK:
            return
        if _RANK[verdict.verdict] > _RANK[self.verdict]:
            self.rule, self.path, self.should = verdict.rule, verdict.path, verdict.should
        reason = verdict.reason or (",".join(verdict.should) or None)
        self.worsen(verdict.verdict, reason=reason, detail=f"{where}: {verdict.detail}".strip())

    def to_json(self) -> dict[str, Any]:
        return {
            "frame": self.frame,
            "time": self.time,
            "src": self.src,
            "dst": self.dst,
            "size": self.size,
            "verdict": self.verdict,
            "what": self.what,
            "rule": self.rule,
            "reason": self.reason,
            "path": self.path,
            "detail": self.detail,
            "should": list(self.should),
        }


@attrs.define
class CaptureReport:
    """Verdicts on every UDP packet of a capture, and what was skipped."""

    linktype: str
    #: The verdicts kept (every packet, or with ``keep_ok=False`` those not OK).
    packets: list[PacketVerdict] = attrs.Factory(list)
    #: Packets judged, by verdict (all of them, kept or not).
    counts: Counter[str] = attrs.Factory(Counter)
    #: Frames that are not UDP over IP (ARP, TCP, ICMP, IP fragments, truncated ...).
    skipped: Counter[str] = attrs.Factory(Counter)
    #: Key log entries used and lines skipped.
    keylog_entries: int = 0
    keylog_skipped: list[int] = attrs.Factory(list)
    #: Whole application messages linted, by type.
    messages: Counter[str] = attrs.Factory(Counter)
    #: Distinct keys that opened at least one packet.
    keys_used: int = 0

    @property
    def total(self) -> int:
        """UDP packets judged."""
        return sum(self.counts.values())

    def failed(self, *, strict: bool = False) -> bool:
        """Whether any packet breaks the spec (``strict``: or could not be checked)."""
        worst = _RANK[NON_STRICT] if not strict else _RANK[NOT_QDHT]
        return any(n and _RANK[v] >= worst for v, n in self.counts.items())

    def summary(self) -> dict[str, Any]:
        counts = self.counts
        return {
            "linktype": self.linktype,
            "packets": self.total,
            **{v: counts[v] for v in CAPTURE_VERDICTS},
            "skipped": dict(sorted(self.skipped.items())),
            "messages": dict(sorted(self.messages.items())),
            "keylog_entries": self.keylog_entries,
            "keylog_skipped_lines": list(self.keylog_skipped),
            "keys_used": self.keys_used,
        }

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary(), "packets": [p.to_json() for p in self.packets]}


# ------------------------------------------------------------------ reading


def _open_reader(fileobj: BinaryIO) -> Any:
    head = fileobj.read(4)
    fileobj.seek(0)
    try:
        if head == b"\x0a\x0d\x0d\x0a":
            return dpkt.pcapng.Reader(fileobj)
        return dpkt.pcap.Reader(fileobj)
    except (ValueError, dpkt.UnpackError, struct.error) as exc:
        raise CaptureError(f"not a pcap or pcapng file ({exc})") from None


def _network_layer(linktype: int, frame: bytes) -> Any:
    """The IP or IPv6 packet of ``frame`` (a dpkt object), or None."""
    if linktype == LINKTYPE_ETHERNET:
        return dpkt.ethernet.Ethernet(frame).data
    if linktype == LINKTYPE_LINUX_SLL:
        return dpkt.sll.SLL(frame).data
    if linktype == LINKTYPE_LINUX_SLL2:
        return dpkt.sll2.SLL2(frame).data
    if linktype == LINKTYPE_NULL:
        return dpkt.loopback.Loopback(frame).data
    if linktype == LINKTYPE_LOOP:
        # Like NULL, but the family is always in network byte order.
        family = int.from_bytes(frame[:4], "big")
        return _raw_ip(frame[4:]) if family in (2, 24, 28, 30) else None
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6, *_RAW_ALIASES):
        return _raw_ip(frame)
    return None


def _raw_ip(data: bytes) -> Any:
    version = data[0] >> 4 if data else 0
    if version == 4:
        return dpkt.ip.IP(data)
    if version == 6:
        return dpkt.ip6.IP6(data)
    return None


def _addr(packed: bytes) -> str:
    return str(ipaddress.ip_address(packed))


def read_udp(
    fileobj: BinaryIO, skipped: Counter[str] | None = None
) -> tuple[str, Iterator[UdpDatagram]]:
    """The link type's name and the UDP datagrams of a pcap/pcapng stream.

    Frames that are not complete UDP datagrams are counted in ``skipped`` by
    kind. Raises :class:`CaptureError` for a stream that is not a capture or
    whose link type is not supported.
    """
    reader = _open_reader(fileobj)
    linktype = int(reader.datalink())
    if linktype not in LINKTYPES and linktype not in _RAW_ALIASES:
        raise CaptureError(
            f"link type {linktype} is not supported "
            f"(supported: {', '.join(f'{n} ({k})' for k, n in LINKTYPES.items())})"
        )
    counts = skipped if skipped is not None else Counter()
    return LINKTYPES.get(linktype, "raw"), _datagrams(reader, linktype, counts)


def _datagrams(reader: Any, linktype: int, skipped: Counter[str]) -> Iterator[UdpDatagram]:
    frames = iter(reader)
    number = 0
    while True:
        try:
            ts, frame = next(frames)
        except StopIteration:
            return
        except (ValueError, dpkt.UnpackError, struct.error):
            skipped["unreadable-tail"] += 1  # a truncated file: keep what was read
            return
        number += 1
        try:
            net = _network_layer(linktype, frame)
        except (dpkt.UnpackError, struct.error, ValueError, IndexError):
            skipped["bad-link-layer"] += 1
            continue
        if isinstance(net, dpkt.ip.IP):
            if net.mf or net.offset:
                skipped["ip-fragment"] += 1
                continue
            src, dst = _addr(net.src), _addr(net.dst)
        elif isinstance(net, dpkt.ip6.IP6):
            src, dst = _addr(net.src), _addr(net.dst)
        else:
            skipped["not-ip"] += 1
            continue
        udp = net.data
        if not isinstance(udp, dpkt.udp.UDP):
            skipped["not-udp"] += 1
            continue
        payload = bytes(udp.data)
        if udp.ulen - 8 != len(payload):
            skipped["truncated"] += 1  # snaplen cut it, or a bad length field
            continue
        yield UdpDatagram(number, float(ts), (src, udp.sport), (dst, udp.dport), payload)


# ------------------------------------------------------------------ linting


@attrs.define
class _Key:
    """One transport key, and who sends and receives with it when the log says so."""

    aead: ChaCha20Poly1305
    key: bytes
    #: Node ID of the node that seals packets with this key (None: not logged).
    sender: bytes | None = None
    #: Node ID of the node that opens them.
    receiver: bytes | None = None


class _Keys:
    """Key log entries indexed by the ``rid`` of the packets each key opens.

    An entry's local index names its receive key, sealed by the entry's peer;
    its peer index names its send key, opened by the peer (09-keylog.md §4).
    When both ends logged a session, their two entries describe the same two
    keys; together they name both ends.
    """

    def __init__(self, entries: Iterable[KeyLogEntry]) -> None:
        self.by_rid: dict[int, list[_Key]] = {}
        index: dict[tuple[int, bytes], _Key] = {}
        for entry in entries:
            for rid, key, sender, receiver in (
                (entry.local_index, entry.recv_key, entry.peer_id, None),
                (entry.peer_index, entry.send_key, None, entry.peer_id),
            ):
                known = index.get((rid, key))
                if known is None:
                    known = index[(rid, key)] = _Key(ChaCha20Poly1305(key), key)
                    self.by_rid.setdefault(rid, []).append(known)
                known.sender = known.sender or sender
                known.receiver = known.receiver or receiver
        self.used: set[bytes] = set()

    def open(self, rid: int, n: int, ct: bytes) -> tuple[bytes, _Key] | bool | None:
        """The plaintext and its key; None if no key names ``rid``; False if none verifies."""
        candidates = self.by_rid.get(rid)
        if not candidates:
            return None
        nonce = b"\x00\x00\x00\x00" + n.to_bytes(8, "little")
        ad = _DATA_AD + rid.to_bytes(4, "big")
        for candidate in candidates:
            try:
                plain = candidate.aead.decrypt(nonce, ct, ad)
            except InvalidTag:
                continue
            self.used.add(candidate.key)
            return plain, candidate
        return False


#: Addresses whose node ID a capture teaches (bounded; later ones are not learned).
MAX_KNOWN_ADDRESSES: Final = 65_536


def _learn_node_ids(datagrams: Iterable[UdpDatagram], keys: _Keys) -> dict[tuple[str, int], bytes]:
    """Node IDs by UDP address, from the data packets the key log opens.

    A packet opened with a key whose sender (receiver) the log names came
    from (went to) that node. Used to check the mac1 of handshake fragments,
    which is keyed by the responder's node ID (04 §5.1).
    """
    ids: dict[tuple[str, int], bytes] = {}
    for dgram in datagrams:
        try:
            obj = loads_canonical(dgram.payload)
        except DecodeError:
            continue
        if type(obj) is not dict or obj.get("type") != "data":
            continue
        rid, n, ct = obj.get("rid"), obj.get("n"), obj.get("ct")
        if not (isinstance(rid, int) and isinstance(n, int) and isinstance(ct, bytes)):
            continue
        opened = keys.open(rid, n, ct)
        if not isinstance(opened, tuple):
            continue
        key = opened[1]
        for addr, node_id in ((dgram.src, key.sender), (dgram.dst, key.receiver)):
            if node_id is not None and len(ids) < MAX_KNOWN_ADDRESSES:
                ids.setdefault(addr, node_id)
    keys.used.clear()
    return ids


@attrs.define
class _Partial:
    count: int
    parts: dict[int, bytes]
    size: int = 0


class _Linting:
    """State while walking one capture."""

    def __init__(
        self, linter: Linter, keys: _Keys, report: CaptureReport, datagram_size: int
    ) -> None:
        self.linter = linter
        self.datagram_size = datagram_size
        self.keys = keys
        self.report = report
        self.partial: dict[tuple[Any, ...], _Partial] = {}
        self.partial_bytes = 0
        self.seen: dict[tuple[int, int], int] = {}
        #: Node IDs by address (learned in a first pass) for the mac1 check.
        self.node_ids: dict[tuple[str, int], bytes] = {}

    def packet(self, dgram: UdpDatagram) -> PacketVerdict:
        src = _endpoint(dgram.src)
        dst = _endpoint(dgram.dst)
        pv = PacketVerdict(dgram.frame, dgram.time, src, dst, len(dgram.payload))
        try:
            obj = loads_canonical(dgram.payload)
        except DecodeError as exc:
            if exc.reason != "non-deterministic":
                pv.what = "udp"
                pv.worsen(NOT_QDHT, reason=exc.reason, detail=f"not a CBOR map ({exc.reason})")
                return pv
            obj = _permissive(dgram.payload)
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind not in _SESSION_PACKETS:
            pv.what = "udp"
            pv.worsen(NOT_QDHT, reason="not-a-packet", detail="not a qdht session packet")
            return pv
        pv.apply(self.linter.lint(dgram.payload), str(kind))
        if len(dgram.payload) > self.datagram_size:
            pv.worsen(
                INVALID,
                reason="oversized",
                detail=f"{len(dgram.payload)} bytes, over datagram_size {self.datagram_size} "
                "(05 §2: the receiver drops it)",
            )
        if kind == "hs":
            pv.what = _hs_what(obj)
            if pv.verdict != INVALID:
                self._mac1(pv, dgram, obj)
            return pv
        if kind == "cookie":
            pv.what = "cookie"
            return pv
        pv.what = "data"
        rid, n, ct = obj.get("rid"), obj.get("n"), obj.get("ct")
        if pv.verdict == INVALID or not (
            isinstance(rid, int) and isinstance(n, int) and isinstance(ct, bytes)
        ):
            return pv
        self._data(pv, dgram, rid, n, ct)
        return pv

    def _mac1(self, pv: PacketVerdict, dgram: UdpDatagram, frag: dict[str, Any]) -> None:
        """Check mac1 (04 §5.1) when the responder's node ID is known from the key log."""
        kind = frag["kind"]
        responder = self.node_ids.get(dgram.dst if kind in (1, 3, 5) else dgram.src)
        if responder is None:
            return
        mac_input = (
            b"qdht-hs"
            + bytes([kind])
            + frag["sid"].to_bytes(4, "big")
            + frag["rid"].to_bytes(4, "big")
            + bytes([frag["i"], frag["c"]])
            + frag["body"]
        )
        key = hashlib.blake2b(b"qdht-mac1" + responder, digest_size=32).digest()
        if hashlib.blake2b(mac_input, key=key, digest_size=16).digest() != frag["mac1"]:
            pv.worsen(
                INVALID,
                reason="bad-mac1",
                detail=f"mac1 is not keyed by the responder's node ID {responder.hex()[:16]}…",
            )
        else:
            pv.what += " (mac1 ok)"

    def _data(self, pv: PacketVerdict, dgram: UdpDatagram, rid: int, n: int, ct: bytes) -> None:
        opened = self.keys.open(rid, n, ct)
        if opened is None:
            pv.worsen(UNDECRYPTABLE, reason="no-key", detail=f"no key log entry names rid {rid}")
            return
        if opened is False:
            pv.worsen(
                INVALID, reason="bad-tag", detail=f"no key logged for rid {rid} verifies the tag"
            )
            return
        assert isinstance(opened, tuple)
        plain = opened[0]
        first = self.seen.get((rid, n))
        if first is not None:
            pv.detail = f"replay of frame {first} (rid {rid}, n {n})"
        elif len(self.seen) < MAX_SEEN:
            self.seen[(rid, n)] = dgram.frame
        verdict = self.linter.lint(plain)
        pv.apply(verdict, "frame")
        try:
            frame = loads_canonical(plain)
        except DecodeError:
            frame = _permissive(plain)
        ftype = frame.get("type") if isinstance(frame, dict) else None
        if ftype not in _FRAMES:
            pv.what = f"data {ftype if isinstance(ftype, str) else '?'}"
            pv.worsen(INVALID, reason="bad-frame", detail="the plaintext is not a frame (05 §3)")
            return
        if verdict.verdict == INVALID:
            pv.what = f"data {ftype}"
            return
        if ftype == "msg":
            self._message(pv, frame["p"], "data msg")
        elif ftype == "frag":
            self._fragment(pv, dgram, frame)
        else:
            pv.what = f"data {ftype}"

    def _fragment(self, pv: PacketVerdict, dgram: UdpDatagram, frame: dict[str, Any]) -> None:
        msg_id, index, count, part = frame["id"], frame["i"], frame["c"], frame["p"]
        pv.what = f"data frag {index + 1}/{count} id {msg_id}"
        key = (dgram.src, dgram.dst, msg_id)
        partial = self.partial.get(key)
        if partial is not None and partial.count != count:
            pv.worsen(
                INVALID,
                reason="bad-fragment",
                detail=f"fragment count {count} disagrees with {partial.count} (05 §4)",
            )
            return
        if partial is None:
            while self.partial and (
                len(self.partial) >= MAX_PARTIAL or self.partial_bytes > MAX_PARTIAL_BYTES
            ):
                oldest = next(iter(self.partial))
                self.partial_bytes -= self.partial.pop(oldest).size
            partial = self.partial[key] = _Partial(count, {})
        if index in partial.parts:
            return  # a duplicate (retransmitted or replayed) fragment
        partial.parts[index] = part
        partial.size += len(part)
        self.partial_bytes += len(part)
        if len(partial.parts) < count:
            return
        del self.partial[key]
        self.partial_bytes -= partial.size
        message = b"".join(partial.parts[i] for i in range(count))
        self._message(pv, message, f"data frag {index + 1}/{count} id {msg_id}, message")

    def _message(self, pv: PacketVerdict, payload: bytes, what: str) -> None:
        verdict = self.linter.lint(payload)
        mtype = verdict.rule or "?"
        try:
            obj = _permissive(payload)
            if isinstance(obj, dict) and isinstance(obj.get("type"), str):
                mtype = obj["type"]
        except Exception:  # any bytes: the verdict already says what is wrong
            pass
        pv.what = f"{what} {mtype}"
        self.report.messages[mtype] += 1
        pv.apply(verdict, "message")
        if verdict.verdict != INVALID and mtype in _SESSION_TYPES:
            pv.worsen(
                INVALID,
                reason="bad-frame",
                detail=f"a session-layer {mtype!r} carried as an application message",
            )


def _permissive(data: bytes) -> Any:
    try:
        return cbor2.loads(data)
    except Exception:  # any bytes: cbor2 raises assorted errors on garbage
        return None


def _hs_what(obj: dict[str, Any]) -> str:
    kind, i, c = obj.get("kind"), obj.get("i"), obj.get("c")
    if isinstance(i, int) and isinstance(c, int):
        return f"hs kind {kind} {i + 1}/{c}"
    return f"hs kind {kind}"


def _endpoint(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def lint_capture(
    capture: Path | BinaryIO,
    keylog: Iterable[KeyLogEntry] = (),
    *,
    linter: Linter | None = None,
    keep_ok: bool = True,
    datagram_size: int = DATAGRAM_SIZE,
) -> CaptureReport:
    """Verdicts on every UDP packet of ``capture`` (a path or a binary stream).

    ``datagram_size`` is the network's (05-transport.md §7); a qdht packet
    over it is INVALID (``oversized``).

    With ``keep_ok=False`` only the verdicts that are not OK are kept (the
    counts cover every packet), so memory follows the problems found, not
    the size of the capture.
    """
    entries = list(keylog)
    if linter is None:
        linter = Linter()
    if isinstance(capture, Path):
        try:
            with capture.open("rb") as fileobj:
                return lint_capture(
                    fileobj, entries, linter=linter, keep_ok=keep_ok, datagram_size=datagram_size
                )
        except OSError as exc:
            raise CaptureError(f"{capture}: cannot read: {exc.strerror or exc}") from None
    keys = _Keys(entries)
    node_ids: dict[tuple[str, int], bytes] = {}
    if entries and capture.seekable():
        # A first pass learns which node is at which address (for mac1).
        start = capture.tell()
        node_ids = _learn_node_ids(read_udp(capture, Counter())[1], keys)
        capture.seek(start)
    skipped: Counter[str] = Counter()
    linktype, datagrams = read_udp(capture, skipped)
    report = CaptureReport(linktype, skipped=skipped, keylog_entries=len(entries))
    state = _Linting(linter, keys, report, datagram_size)
    state.node_ids = node_ids
    for dgram in datagrams:
        verdict = state.packet(dgram)
        report.counts[verdict.verdict] += 1
        if keep_ok or verdict.verdict != OK:
            report.packets.append(verdict)
    report.keys_used = len(keys.used)
    return report
