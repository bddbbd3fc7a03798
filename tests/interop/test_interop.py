"""qdht-interop against both implementations, against broken targets, and its reports.

These run real processes on loopback UDP, so they use the real clock; every
run is bounded by the harness's own timeouts, and ``trio.fail_after`` only
guards against a hung harness (it is not a speed assertion).
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import shutil
import socket
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import cbor2
import pytest
import trio
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from qdht_interop import (
    CASES,
    FAILED,
    INFORMATIONAL,
    NON_STRICT,
    OK,
    UNIMPLEMENTED,
    CaseResult,
    RunOptions,
    RunReport,
    run_suite,
)
from qdht_interop._probe import Probe
from qdht_interop._report import render_html
from qdht_interop._runner import select_cases
from qdht_interop.cli import JS_PEER, main, python_command
from qdht_interop.pynode import argv
from qdht_lint.engine import Linter

from qdht.identity import Identity
from qdht.session import KeyLogEntry, MessageReceived, SessionConfig, SessionEndpoint
from qdht.wire import Contact, Stored, dumps_canonical, encode

PY = shlex.quote(sys.executable)
#: Guards against a hung harness only; the harness bounds every wait itself.
HANG_GUARD = 120


def grades(report: RunReport) -> dict[str, str]:
    return {r.id: r.grade for r in report.results}


def fake(code: str) -> str:
    """A ``--command`` running a tiny Python script as the target."""
    return f"{PY} -c {shlex.quote(code)}"


async def test_python_node_passes_every_case() -> None:
    with trio.fail_after(HANG_GUARD):
        report = await run_suite(RunOptions(command=python_command(), name="python"))
    assert report.setup_error is None
    assert report.contact is not None
    result = grades(report)
    assert set(result) == {c.id for c in CASES}
    # Without the stdin control interface the target-side lookup is only reported.
    assert result.pop("dht/4.2/3") == INFORMATIONAL
    assert set(result.values()) == {OK}, [(r.id, r.details) for r in report.results]
    # Every message the target sent was linted.
    assert sum(r.linted for r in report.results) >= len(CASES)


@pytest.fixture(scope="session")
def node_with_js_peer() -> str:
    """Node.js, with the JS peer's locked dependencies installed (``npm ci``) if missing.

    The README's test command runs on a fresh clone, where nothing has run
    ``npm ci`` yet; the peer cannot start without its libraries.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js (node and npm) is not installed: the JS peer cannot run")
    peer_dir = JS_PEER.parent.parent
    if not (peer_dir / "node_modules").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=peer_dir,
            check=True,
            capture_output=True,
            timeout=300,
        )
    return node


async def test_js_peer_passes_every_case(node_with_js_peer: str) -> None:
    command = f"{shlex.quote(node_with_js_peer)} {shlex.quote(str(JS_PEER))}"
    with trio.fail_after(HANG_GUARD):
        report = await run_suite(RunOptions(command=command, name="js", control=True))
    assert report.setup_error is None
    result = grades(report)
    # The JS peer has no model store (13-models.md is an optional layer).
    assert result.pop("model/5.3/1") == UNIMPLEMENTED
    # It runs the mix role (QDHT_MIX=1): the mix cases are graded like the rest.
    assert any(case_id.startswith("mix/") for case_id in result)
    assert set(result.values()) == {OK}, [(r.id, r.details) for r in report.results]


BROKEN_TARGETS = {
    "never prints": (
        fake("import time; time.sleep(60)"),
        "printed no contact URI within 2 s",
    ),
    "crashes at once": (fake("import sys; sys.exit(3)"), "exited with status 3 before printing"),
    "prints garbage": (
        fake("print('hello', flush=True); import time; time.sleep(60)"),
        "first stdout line is not a contact URI",
    ),
    "crashes after printing": (
        fake("print('qdht+udp://127.0.0.1:9/' + 'ab' * 32, flush=True); raise SystemExit(4)"),
        "status 4",
    ),
    "hangs (prints, never answers)": (
        fake(
            "import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.bind(('127.0.0.1', 0)); "
            "print(f'qdht+udp://127.0.0.1:{s.getsockname()[1]}/' + 'cd' * 32, flush=True); "
            "time.sleep(60)"
        ),
        "handshake with the target failed",
    ),
}


@pytest.mark.parametrize("name", list(BROKEN_TARGETS))
async def test_broken_target_gets_failed_cases_with_a_reason(name: str) -> None:
    command, reason = BROKEN_TARGETS[name]
    options = RunOptions(
        command=command, cases=("dht/2/1",), startup_timeout=2.0, network=False, name=name
    )
    with trio.fail_after(HANG_GUARD):
        report = await run_suite(options)
    assert [r.id for r in report.results] == ["dht/2/1"]
    (result,) = report.results
    assert result.grade == FAILED
    assert result.details
    assert reason in " ".join(result.details)
    assert report.failed


async def test_crashed_target_fails_every_following_case() -> None:
    options = RunOptions(
        command=BROKEN_TARGETS["crashes after printing"][0],
        cases=("dht/2/1", "dht/3/1"),
        network=False,
    )
    with trio.fail_after(HANG_GUARD):
        report = await run_suite(options)
    assert [r.grade for r in report.results] == [FAILED, FAILED]
    assert "not running (exited with status 4)" in " ".join(report.results[-1].details)


def test_case_ids_are_unique_and_name_a_spec_section() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    for case in CASES:
        assert case.spec.endswith(f"§{case.id.split('/')[1]}")
        spec_file = Path(__file__).parents[2] / "protocol-spec" / case.spec.split(" ")[0]
        assert spec_file.exists()
    assert [c.id for c in select_cases(["tr/*"])] == [c.id for c in CASES if c.id[:3] == "tr/"]
    assert select_cases(["nothing/*"]) == []


def test_pynode_maps_the_contract_variables_to_qdht_node_flags() -> None:
    args = argv(
        {
            "QDHT_LISTEN": "udp://127.0.0.1:0",
            "QDHT_BOOTSTRAP": "qdht+udp://127.0.0.1:1/aa qdht+udp://127.0.0.1:2/bb",
            "QDHT_DIFFICULTY": "8",
            "QDHT_MIX": "1",
        }
    )
    assert "--mix" in args
    assert args[1:5] == ["-m", "qdht.cli", "node", "--status-interval"]
    assert args[args.index("--listen") + 1] == "udp://127.0.0.1:0"
    assert args[args.index("--difficulty") + 1] == "8"
    assert [args[i + 1] for i, a in enumerate(args) if a == "--bootstrap"] == [
        "qdht+udp://127.0.0.1:1/aa",
        "qdht+udp://127.0.0.1:2/bb",
    ]
    assert "--publish-model" not in args
    with_model = argv({"QDHT_MODEL_FILE": "/tmp/m.safetensors"})
    assert with_model[with_model.index("--publish-model") + 1] == "/tmp/m.safetensors"
    assert with_model[with_model.index("--model-name") + 1] == "qdht-interop"


def test_cli_reports_and_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = main(
        [
            "run",
            "--command",
            python_command(),
            "--cases",
            "dht/2/*",
            "--cases",
            "tr/2/1",
            "--no-network",
            "--report",
            str(tmp_path / "good"),
        ]
    )
    bad = main(
        [
            "run",
            "--command",
            BROKEN_TARGETS["crashes at once"][0],
            "--cases",
            "dht/*",
            "--report",
            str(tmp_path / "bad"),
        ]
    )
    out = capsys.readouterr()
    assert (good, bad) == (0, 1)
    assert "Traceback" not in out.out + out.err
    assert "dht/2/1" in out.out
    assert "exited with status 3" in out.out
    data = json.loads((tmp_path / "good" / "report.json").read_text())
    assert data["passed"] is True
    assert [c["id"] for c in data["runs"][0]["cases"]] == ["dht/2/1", "tr/2/1"]
    bad_data = json.loads((tmp_path / "bad" / "report.json").read_text())
    assert bad_data["passed"] is False
    assert {c["grade"] for c in bad_data["runs"][0]["cases"]} == {FAILED}
    markdown = (tmp_path / "good" / "report.md").read_text()
    assert "| `dht/2/1` | 02-dht-rpc.md §2 | **OK** |" in markdown
    page = (tmp_path / "bad" / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "dht/4.3/1" in page
    # Self-contained: nothing is fetched from elsewhere.
    for outside in ("http://", "https://", " src=", "<link", "@import", "url("):
        assert outside not in page


def test_cli_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run"])
    assert exc.value.code == 2
    assert main(["self-test", "--difficulty", "99"]) == 2
    assert "--difficulty" in capsys.readouterr().err


async def _evil_target(sock: trio.socket.SocketType, endpoint: SessionEndpoint) -> None:
    """Answers PING with a non-deterministically encoded PONG and every STORE with STORED."""
    while True:
        data, addr = await sock.recvfrom(65536)
        endpoint.receive_datagram(data, addr, trio.current_time())
        while (event := endpoint.next_event()) is not None:
            if not isinstance(event, MessageReceived):
                continue
            request = cbor2.loads(event.payload)
            if not isinstance(request, dict) or not isinstance(request.get("rid"), bytes):
                continue
            if request.get("type") == "ping":
                answer = cbor2.dumps({"type": "pong", "rid": request["rid"]})  # keys unsorted
            else:
                answer = encode(Stored(request["rid"]))
            endpoint.send_message(event.node_id, answer, trio.current_time())
        for out, to in endpoint.datagrams_to_send(trio.current_time()):
            assert isinstance(to, tuple)
            await sock.sendto(out, to)


async def test_cases_catch_a_target_that_breaks_musts() -> None:
    identity = Identity.generate(8)
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        uri = f"qdht+udp://127.0.0.1:{port}/{identity.node_id.hex()}"
        async with trio.open_nursery() as nursery:
            # A target that never feels under load sends no cookies (04 §5.2).
            many = 10**6
            calm = SessionConfig(
                under_load_handshakes_per_s=many,
                handshake_rate_per_address=many,
                handshake_burst_per_address=many,
                handshake_rate_global=many,
                handshake_burst_global=many,
            )
            nursery.start_soon(_evil_target, sock, SessionEndpoint(identity, calm))
            options = RunOptions(
                target=uri,
                cases=("dht/2/1", "dht/4.3/2", "hs/6/1", "rec/8/1", "rec/8/3", "hs/5.2/1"),
                network=False,
            )
            with trio.fail_after(HANG_GUARD):
                report = await run_suite(options)
            nursery.cancel_scope.cancel()
    result = {r.id: r for r in report.results}
    # The handshake works, the PONG over it is not deterministic CBOR.
    assert result["hs/6/1"].grade == FAILED
    assert "pattern pqXX" in result["hs/6/1"].details[0]
    assert result["dht/2/1"].grade == FAILED
    details = " ".join(result["dht/2/1"].details)
    assert "PING answered with an invalid message (non-deterministic" in details
    assert "lint: NON-DETERMINISTIC dht-pong" in details
    assert result["dht/4.3/2"].grade == FAILED
    assert "mismatched key was answered STORED" in " ".join(result["dht/4.3/2"].details)
    # Records: a target that stores whatever it is given breaks 02 §4.3's error table.
    assert result["rec/8/1"].grade == FAILED
    assert "expected OWNER_KEY_UNKNOWN" in " ".join(result["rec/8/1"].details)
    assert result["rec/8/3"].grade == FAILED
    # No cookie under load is a broken SHOULD, not a failure.
    assert result["hs/5.2/1"].grade == NON_STRICT
    assert "got no cookie reply" in " ".join(result["hs/5.2/1"].details)


class _Page(HTMLParser):
    """The structure of a report page: open/close balance, ids, links, external references."""

    VOID = frozenset({"meta", "br", "link", "img", "input", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        if tag == "a":
            self.links.append(str(values.get("href")))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_report_is_self_contained_and_readable(tmp_path: Path) -> None:
    results = tuple(
        CaseResult(c.id, c.title, c.spec, grade, (f"details of {c.id} <&>",), 0.1, 1)
        for c, grade in zip(
            CASES[:5], (OK, FAILED, NON_STRICT, INFORMATIONAL, UNIMPLEMENTED), strict=True
        )
    )
    report = RunReport("a <target>", "cmd", None, 0.0, 1.0, results)
    page = render_html([report, report])
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert parser.errors == []
    assert parser.stack == ["html"] or parser.stack == []
    text = " ".join(parser.text)
    # Every grade is explained, every matrix cell links to details on the page.
    for grade in (OK, FAILED, NON_STRICT, INFORMATIONAL, UNIMPLEMENTED):
        assert grade in text
    assert "a MUST is broken" in text
    assert parser.links
    assert all(link.startswith("#") and link[1:] in parser.ids for link in parser.links)
    assert "details of dht" in text or "details of hs" in text
    assert "a <target> : FAILED" in " ".join(" ".join(parser.text).split())
    assert "<&>" in text  # escaped in the page, read back as text
    for outside in ("http://", "https://", " src=", "<link", "@import", "url(", "<script"):
        assert outside not in page


def test_missing_lint_extra_is_a_clear_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pycddl" else real(name, *a)
    )
    assert main(["run", "--command", "true", "--no-network"]) == 2
    err = capsys.readouterr().err
    assert "needs the 'lint' extra" in err
    assert "Traceback" not in err


async def test_probe_lints_every_datagram_and_frame_from_the_target() -> None:
    target = Contact.from_uri(f"qdht+udp://127.0.0.1:9/{'ab' * 32}")
    probe = Probe(Identity.generate(4), target, Linter())
    probe.sock.close()
    entry = KeyLogEntry(target.node_id, 7, 9, b"\x01" * 32, b"\x02" * 32, b"\x03" * 64)
    probe.keys.append(entry)

    def sealed(frame: dict[str, object], key: bytes = entry.recv_key) -> bytes:
        nonce = bytes(4) + (0).to_bytes(8, "little")
        ad = b"qdht-data" + (7).to_bytes(4, "big")
        ct = ChaCha20Poly1305(key).encrypt(nonce, dumps_canonical(frame), ad)
        return dumps_canonical({"type": "data", "rid": 7, "n": 0, "ct": ct})

    probe._lint_datagram(sealed({"type": "keepalive"}))
    assert probe.findings == []
    probe._lint_datagram(dumps_canonical({"type": "ping", "rid": b"\x00" * 8}))
    probe._lint_datagram(sealed({"type": "ping", "rid": b"\x00" * 8}))
    probe._lint_datagram(sealed({"type": "keepalive"}, key=b"\x09" * 32))
    probe._lint_datagram(b"\xff")
    texts = [text for _, text in probe.findings]
    assert [v for v, _ in probe.findings] == ["INVALID"] * 4
    assert "bare 'ping'" in texts[0]
    assert "'ping' is not a frame" in texts[1]
    assert "fails its tag" in texts[2]
    assert texts[3].startswith("datagram: INVALID")
    assert probe.datagrams_linted == 5
