"""``qdht-lint capture``: real loopback captures of real nodes, decrypted with the key log.

The capture is taken the way tcpdump takes it: an ``AF_PACKET`` raw socket on
``lo`` (root or CAP_NET_RAW; skipped otherwise), outgoing copies dropped as
libpcap does on loopback, written with ``dpkt.pcap.Writer``.  Nodes run on
the real clock over UDP (``trio.fail_after`` only guards against a hang).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import stat
import threading
import time
from collections import Counter
from pathlib import Path

import attrs
import cbor2
import dpkt
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from qdht_interop._target import TargetProcess
from qdht_interop.cli import JS_PEER
from qdht_lint.capture import (
    CAPTURE_VERDICTS,
    INVALID,
    NOT_QDHT,
    OK,
    UNDECRYPTABLE,
    CaptureError,
    CaptureReport,
    lint_capture,
)
from qdht_lint.cli import main
from qdht_lint.engine import Linter

import qdht
from qdht.session import KEYLOG_ENV, KeyLogEntry, KeyLogFile, parse_keylog

#: Guards against a hung node only (not a speed assertion).
HANG_GUARD = 90
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
#: The RPCs (and answers) one capture must hold.
EVERY_RPC = {"ping", "pong", "find_node", "nodes", "find_value", "value", "store", "stored"}


class Sniffer:
    """UDP frames on ``lo`` to or from ``ports``, as (time, ethernet frame)."""

    def __init__(self) -> None:
        self.ports: set[int] = set()
        self.frames: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        try:
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError:
            pytest.skip("capturing on lo needs root or CAP_NET_RAW")
        # Room for a whole exchange: a sniffer thread starved of CPU on a busy
        # machine must not lose frames to a full buffer (root may force it).
        force = getattr(socket, "SO_RCVBUFFORCE", 33)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, force, 32 << 20)
        except OSError:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sniffer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()

    def _run(self) -> None:
        # Every frame of the exchange is in the socket's buffer once the nodes
        # have sent it; after the stop, read until the buffer is empty.
        while True:
            try:
                frame, addr = self._sock.recvfrom(65536)
            except TimeoutError:
                if self._stop.is_set():
                    return
                continue
            if addr[2] == PACKET_OUTGOING:  # loopback shows every packet twice
                continue
            if self._wanted(frame):
                self.frames.append((time.time(), frame))

    def _wanted(self, frame: bytes) -> bool:
        try:
            ip = dpkt.ethernet.Ethernet(frame).data
        except (dpkt.UnpackError, ValueError):
            return False
        udp = getattr(ip, "data", None)
        return isinstance(udp, dpkt.udp.UDP) and bool({udp.sport, udp.dport} & self.ports)

    def pcap(self) -> bytes:
        out = io.BytesIO()
        writer = dpkt.pcap.Writer(out, snaplen=65535, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, frame in self.frames:
            writer.writepkt(frame, ts)
        return out.getvalue()


@attrs.frozen
class Captured:
    pcap: bytes
    keylog: Path
    key: bytes
    #: The JS peer's ``IP:PORT`` in a JS capture.
    js: str | None = None


def _config(**kw: object) -> qdht.Config:
    return qdht.Config(listen=("udp://127.0.0.1:0",), puzzle_difficulty=4, **kw)  # type: ignore[arg-type]


async def _python_exchange(sniffer: Sniffer) -> bytes:
    """B serves; A joins through B and puts a 5 KB value (fragments); C joins and gets it."""
    value = os.urandom(5000)
    async with qdht.open_node(_config()) as b:
        sniffer.ports.add(b.contact.addresses[0].port)
        async with qdht.open_node(_config()) as a:
            sniffer.ports.add(a.contact.addresses[0].port)
            assert await a.bootstrap([b.contact_uri]) == 1  # PING
            await a.find_node(os.urandom(32))  # FIND_NODE
            key = await a.put(value)  # STORE
        async with qdht.open_node(_config(client_mode=True)) as c:  # stores nothing: gets ask
            sniffer.ports.add(c.contact.addresses[0].port)
            assert await c.bootstrap([b.contact_uri]) == 1
            assert await c.get(key) == value  # FIND_VALUE
    return key


def _capture(tmp: Path, exchange: str) -> Captured:
    keylog = tmp / "keys.log"
    old = os.environ.get(KEYLOG_ENV)
    os.environ[KEYLOG_ENV] = str(keylog)
    try:
        with Sniffer() as sniffer:

            async def run() -> tuple[bytes, str | None]:
                with trio.fail_after(HANG_GUARD):
                    if exchange == "js":
                        return await _js_exchange(sniffer, keylog)
                    return await _python_exchange(sniffer), None

            key, js = trio.run(run)
    finally:
        if old is None:
            del os.environ[KEYLOG_ENV]
        else:
            os.environ[KEYLOG_ENV] = old
    return Captured(sniffer.pcap(), keylog, key, js)


@pytest.fixture(scope="module")
def python_capture(tmp_path_factory: pytest.TempPathFactory) -> Captured:
    return _capture(tmp_path_factory.mktemp("capture"), "python")


def _lint(data: bytes, keylog: Path | None) -> CaptureReport:
    entries: list[KeyLogEntry] = []
    if keylog is not None:
        entries, skipped = parse_keylog(keylog.read_text())
        assert skipped == []
    return lint_capture(io.BytesIO(data), entries)


def _assert_clean(report: CaptureReport) -> None:
    bad = [p for p in report.packets if p.verdict != OK]
    assert bad == [], [(p.frame, p.verdict, p.what, p.reason, p.detail) for p in bad]
    assert set(report.messages) >= EVERY_RPC, report.messages
    kinds = Counter(p.what.split()[0] for p in report.packets)
    assert kinds["hs"] >= 4, kinds
    assert kinds["data"] >= 10, kinds
    assert any(p.what.startswith("data frag") for p in report.packets)


def test_key_log_file_is_private_and_parses(python_capture: Captured) -> None:
    mode = stat.S_IMODE(python_capture.keylog.stat().st_mode)
    assert mode == 0o600
    entries, skipped = parse_keylog(python_capture.keylog.read_text())
    assert skipped == []
    # A-B and C-B sessions, each logged by both ends (one shared file).
    assert len(entries) >= 4
    pairs = {(e.local_index, e.peer_index, e.send_key, e.recv_key) for e in entries}
    for local, remote, send, recv in pairs:
        assert (remote, local, recv, send) in pairs  # the other end's view of the same keys


def test_python_capture_lints_clean_with_the_key_log(python_capture: Captured) -> None:
    report = _lint(python_capture.pcap, python_capture.keylog)
    _assert_clean(report)
    assert report.linktype == "ethernet"
    assert report.keys_used >= 4  # both directions of both sessions


def test_cli_on_a_real_capture(
    python_capture: Captured, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pcap = tmp_path / "lo.pcap"
    pcap.write_bytes(python_capture.pcap)
    assert main(["capture", str(pcap), "--keylog", str(python_capture.keylog), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["INVALID"] == 0
    assert data["summary"]["packets"] == len(data["packets"]) > 0
    assert data["summary"]["OK"] == data["summary"]["packets"]
    assert main(["capture", str(pcap), "--keylog", str(python_capture.keylog), "-q"]) == 0
    out = capsys.readouterr().out
    assert " 0 INVALID" in out
    assert "store" in out


def _tamper_first(pcap: bytes, packet_type: str, field: str) -> tuple[bytes, int]:
    """The capture with the last bit of ``field`` of the first ``packet_type`` packet flipped."""
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out, snaplen=65535, linktype=dpkt.pcap.DLT_EN10MB)
    tampered = 0
    for number, (ts, frame) in enumerate(dpkt.pcap.Reader(io.BytesIO(pcap)), 1):
        eth = dpkt.ethernet.Ethernet(frame)
        udp = eth.data.data
        obj = cbor2.loads(udp.data) if udp.data else None
        if not tampered and isinstance(obj, dict) and obj.get("type") == packet_type:
            value = bytearray(obj[field])
            value[-1] ^= 0x01  # for `ct`, the tag's last byte
            udp.data = cbor2.dumps({**obj, field: bytes(value)}, canonical=True)
            udp.sum = 0
            eth.data.sum = 0
            tampered = number
            frame = bytes(eth)
        writer.writepkt(frame, ts)
    assert tampered
    return out.getvalue(), tampered


def test_tampered_packet_is_invalid(
    python_capture: Captured, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, frame = _tamper_first(python_capture.pcap, "data", "ct")
    report = _lint(data, python_capture.keylog)
    verdicts = {p.frame: p for p in report.packets}
    assert verdicts[frame].verdict == INVALID
    assert verdicts[frame].reason == "bad-tag"
    assert [p.frame for p in report.packets if p.verdict != OK] == [frame]
    pcap = tmp_path / "tampered.pcap"
    pcap.write_bytes(data)
    assert main(["capture", str(pcap), "--keylog", str(python_capture.keylog)]) == 1
    assert "bad-tag" in capsys.readouterr().out


def test_handshake_mac1_is_checked_when_the_key_log_names_the_responder(
    python_capture: Captured,
) -> None:
    report = _lint(python_capture.pcap, python_capture.keylog)
    handshakes = [p for p in report.packets if p.what.startswith("hs")]
    assert handshakes
    assert all(p.what.endswith("(mac1 ok)") for p in handshakes)
    data, frame = _tamper_first(python_capture.pcap, "hs", "mac1")
    tampered = {p.frame: p for p in _lint(data, python_capture.keylog).packets}[frame]
    assert (tampered.verdict, tampered.reason) == (INVALID, "bad-mac1")


def test_without_key_log_data_is_undecryptable(
    python_capture: Captured, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _lint(python_capture.pcap, None)
    by_kind: dict[str, set[str]] = {}
    for p in report.packets:
        by_kind.setdefault(p.what.split()[0], set()).add(p.verdict)
    assert by_kind["data"] == {UNDECRYPTABLE}
    assert by_kind["hs"] == {OK}  # handshakes are linted in the clear
    assert report.messages == Counter()
    pcap = tmp_path / "lo.pcap"
    pcap.write_bytes(python_capture.pcap)
    assert main(["capture", str(pcap)]) == 0  # nothing wrong was seen ...
    assert main(["capture", str(pcap), "--strict"]) == 1  # ... but nothing was checked
    assert "UNDECRYPTABLE" in capsys.readouterr().out


def _rewrap(pcap: bytes, linktype: int, *, ipv6: bool = False, pcapng: bool = False) -> bytes:
    """The capture's UDP datagrams under another link type (and IP version, file format)."""
    out = io.BytesIO()
    writer: dpkt.pcap.Writer | dpkt.pcapng.Writer
    if pcapng:
        writer = dpkt.pcapng.Writer(out, snaplen=65535, linktype=linktype)
    else:
        writer = dpkt.pcap.Writer(out, snaplen=65535, linktype=linktype)
    for ts, frame in dpkt.pcap.Reader(io.BytesIO(pcap)):
        ip = dpkt.ethernet.Ethernet(frame).data
        net: bytes = bytes(ip)
        family = 2
        if ipv6:
            udp = ip.data
            udp.sum = 0
            ip6 = dpkt.ip6.IP6(
                src=b"\x00" * 15 + b"\x01", dst=b"\x00" * 15 + b"\x01", nxt=17, hlim=64
            )
            ip6.data = udp
            ip6.plen = len(bytes(udp))
            net = bytes(ip6)
            family = 30
        if linktype == dpkt.pcap.DLT_NULL:
            link = family.to_bytes(4, "little") + net
        elif linktype == 276:  # LINUX_SLL2
            ethtype = 0x86DD if ipv6 else 0x0800
            header = ethtype.to_bytes(2, "big") + bytes(2) + (1).to_bytes(4, "big")
            link = header + (772).to_bytes(2, "big") + bytes([0, 6]) + bytes(8) + net
        elif linktype == dpkt.pcap.DLT_LINUX_SLL:
            ethtype = 0x86DD if ipv6 else 0x0800
            link = bytes(2) + (772).to_bytes(2, "big") + bytes([0, 6]) + bytes(8)
            link += ethtype.to_bytes(2, "big") + net
        else:
            link = net
        writer.writepkt(link, ts)
    return out.getvalue()


@pytest.mark.parametrize(
    ("linktype", "ipv6", "pcapng", "name"),
    [
        (dpkt.pcap.DLT_NULL, False, False, "null"),
        (276, True, False, "linux-sll2"),
        (dpkt.pcap.DLT_LINUX_SLL, False, True, "linux-sll"),
        (101, True, True, "raw"),
    ],
)
def test_link_types_ip_versions_and_pcapng(
    python_capture: Captured, linktype: int, ipv6: bool, pcapng: bool, name: str
) -> None:
    data = _rewrap(python_capture.pcap, linktype, ipv6=ipv6, pcapng=pcapng)
    report = _lint(data, python_capture.keylog)
    assert report.linktype == name
    _assert_clean(report)
    if ipv6:
        assert all(p.src.startswith("[::1]:") for p in report.packets)


def test_foreign_and_broken_input_never_crashes(
    python_capture: Captured, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out, snaplen=65535, linktype=dpkt.pcap.DLT_EN10MB)
    for payload in (b"", b"\x00\x01 dns-ish", b"\xa1\x64type\x62hs", os.urandom(300)):
        udp = dpkt.udp.UDP(sport=5353, dport=5353, data=payload)
        udp.ulen = 8 + len(payload)
        ip = dpkt.ip.IP(src=b"\x7f\x00\x00\x01", dst=b"\x7f\x00\x00\x01", p=17, data=udp)
        ip.len = 20 + udp.ulen
        writer.writepkt(bytes(dpkt.ethernet.Ethernet(type=0x0800, data=ip)), 0.0)
    writer.writepkt(b"\x00" * 10, 0.0)  # a runt frame
    report = lint_capture(io.BytesIO(out.getvalue()))
    assert [p.verdict for p in report.packets][:2] == [NOT_QDHT, NOT_QDHT]
    assert report.packets[2].verdict in (INVALID, NOT_QDHT)  # a broken "hs" map
    assert sum(report.skipped.values()) == 1
    # A capture cut short in the middle of a packet keeps what was read.
    cut = python_capture.pcap[: len(python_capture.pcap) - 100]
    assert lint_capture(io.BytesIO(cut)).packets
    with pytest.raises(CaptureError):
        lint_capture(io.BytesIO(b"not a capture at all"))
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    assert main(["capture", str(bad)]) == 2
    assert main(["capture", str(tmp_path / "missing.pcap")]) == 2
    assert "qdht-lint: error:" in capsys.readouterr().err


def test_key_log_lines_and_file() -> None:
    entry = KeyLogEntry(b"\xab" * 32, 7, 4294967295, b"\x02" * 32, b"\x03" * 32, b"\x04" * 64)
    line = entry.line()
    assert line.split()[:4] == ["QDHT_SESSION", "ab" * 32, "7", "4294967295"]
    text = "\n".join(["# comment", "", line, "QDHT_SESSION junk", line.upper(), line + " x"])
    entries, skipped = parse_keylog(text)
    assert entries == [entry]
    assert skipped == [4, 5, 6]


def test_key_log_file_appends_and_refuses_bad_paths(tmp_path: Path) -> None:
    path = tmp_path / "k.log"
    path.write_text("# existing\n")
    os.chmod(path, 0o640)
    log = KeyLogFile(path)
    log("QDHT_SESSION a")
    log("QDHT_SESSION b")
    assert path.read_text() == "# existing\nQDHT_SESSION a\nQDHT_SESSION b\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # an existing file keeps its mode
    with pytest.raises(qdht.errors.ConfigError, match="QDHT_KEYLOGFILE"):
        KeyLogFile(tmp_path / "no" / "such" / "dir.log")


# ------------------------------------------------------------- the JS peer


async def _js_exchange(sniffer: Sniffer, keylog: Path) -> tuple[bytes, str]:
    """Every RPC both ways between a Python node and the JS peer (both logging keys).

    B (Python) serves; the JS peer joins through B (PING, FIND_NODE) and puts a
    5 KB value (STORE, fragmented) and gets an unknown key (FIND_VALUE); A
    (Python, client mode: it stores nothing, so its get asks) joins through
    the JS peer, gets the JS peer's value (FIND_VALUE answered VALUE) and puts
    its own (STORE to the JS peer).
    """
    node = shutil.which("node")
    assert node is not None
    value = os.urandom(5000)
    async with qdht.open_node(_config()) as b, trio.open_nursery() as nursery:
        sniffer.ports.add(b.contact.addresses[0].port)
        env = {
            "QDHT_LISTEN": "udp://127.0.0.1:0",
            "QDHT_DIFFICULTY": "4",
            "QDHT_BOOTSTRAP": b.contact_uri,
            KEYLOG_ENV: str(keylog),
        }
        process, contact = await TargetProcess.start(nursery, f"{node} {JS_PEER}", env, 30)
        try:
            sniffer.ports.add(contact.address.port)
            stored = await process.control(f"put {value.hex()}", "stored", 30)
            assert stored is not None
            assert stored.startswith("stored ")
            key = bytes.fromhex(stored.split()[1])
            unknown = os.urandom(32).hex()
            assert await process.control(f"get {unknown}", "notfound", 30) == f"notfound {unknown}"
            async with qdht.open_node(_config(client_mode=True)) as a:
                sniffer.ports.add(a.contact.addresses[0].port)
                assert await a.bootstrap([contact.to_uri()]) == 1
                assert await a.get(key) == value
                await a.put(os.urandom(3000))
        finally:
            await process.stop()
            nursery.cancel_scope.cancel()
    return key, f"127.0.0.1:{contact.address.port}"


@pytest.fixture(scope="module")
def js_capture(tmp_path_factory: pytest.TempPathFactory) -> Captured:
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed: the JS peer cannot run")
    if not (JS_PEER.parent.parent / "node_modules").is_dir():
        pytest.skip("the JS peer's dependencies are not installed (npm ci)")
    return _capture(tmp_path_factory.mktemp("js-capture"), "js")


def test_python_and_js_peer_capture_lints_clean(js_capture: Captured) -> None:
    report = _lint(js_capture.pcap, js_capture.keylog)
    _assert_clean(report)
    # Every request went both ways: sent by the JS peer, and sent to it.
    requests = ("ping", "find_node", "store", "find_value")
    sent: dict[str, set[bool]] = {}
    for p in report.packets:
        rpc = p.what.split()[-1]
        if p.what.startswith("data") and rpc in requests:
            sent.setdefault(rpc, set()).add(p.src == js_capture.js)
    assert sent == {rpc: {True, False} for rpc in requests}
    # Both implementations logged their keys in the one file.
    entries, _ = parse_keylog(js_capture.keylog.read_text())
    assert len({e.handshake_hash for e in entries}) < len(entries)


def test_unknown_field_in_a_value_records_element_is_invalid() -> None:
    """dht-value's group choice (record // records): the closed-map check reaches records[i]."""
    vectors = json.loads(
        (Path(__file__).parents[2] / "protocol-spec/vectors/dht/dht-value.json").read_text()
    )
    valid = next(
        t for t in vectors["tests"] if t["result"] == "valid" and "set entr" in t["comment"]
    )
    message = cbor2.loads(bytes.fromhex(valid["cbor"]))
    linter = Linter()
    assert linter.lint(bytes.fromhex(valid["cbor"])).verdict == OK
    message["records"][0]["x"] = 1
    verdict = linter.lint(cbor2.dumps(message, canonical=True))
    assert verdict.verdict == INVALID
    assert verdict.reason == "unknown-field"
    assert verdict.path == "$.records[0].x"


_PCAP_HEADER = bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(
        st.tuples(st.binary(max_size=120), st.integers(min_value=0, max_value=200)), max_size=6
    ),
    linktype=st.sampled_from([0, 1, 101, 108, 113, 228, 229, 276]),
)
def test_any_capture_content_gives_verdicts_not_crashes(
    records: list[tuple[bytes, int]], linktype: int
) -> None:
    """Frames of any bytes (and lying caplen fields) under every link type."""
    data = bytearray(_PCAP_HEADER)
    data[20:24] = linktype.to_bytes(4, "little")
    for body, caplen in records:
        data += (0).to_bytes(8, "little") + caplen.to_bytes(4, "little")
        data += len(body).to_bytes(4, "little") + body
    try:
        report = lint_capture(io.BytesIO(bytes(data)), linter=_LINTER)
    except CaptureError:
        return
    assert all(p.verdict in CAPTURE_VERDICTS for p in report.packets)
    frames = [p.frame for p in report.packets]
    assert frames == sorted(set(frames))


_LINTER = Linter()


def test_a_packet_over_datagram_size_is_invalid() -> None:
    payload = cbor2.dumps({"type": "data", "rid": 5, "n": 0, "ct": bytes(1250)}, canonical=True)
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out, snaplen=65535, linktype=101)
    udp = dpkt.udp.UDP(sport=1000, dport=2000, data=payload)
    udp.ulen = 8 + len(payload)
    ip = dpkt.ip.IP(src=b"\x7f\x00\x00\x01", dst=b"\x7f\x00\x00\x01", p=17, data=udp)
    ip.len = 20 + udp.ulen
    writer.writepkt(bytes(ip), 0.0)
    (packet,) = lint_capture(io.BytesIO(out.getvalue()), linter=_LINTER).packets
    assert (packet.verdict, packet.reason) == (INVALID, "oversized")
    (packet,) = lint_capture(io.BytesIO(out.getvalue()), linter=_LINTER, datagram_size=1400).packets
    assert packet.verdict == UNDECRYPTABLE
