"""Cross-process acceptance: ``qdht node`` processes and ``qdht put``/``get`` over real sockets.

Each test starts real ``qdht`` subprocesses on loopback (ports chosen by the
kernel, read back from the nodes' first line of output); the harness kills
them in teardown whatever happens.
"""

from __future__ import annotations

import json
import os
import signal
import stat
from contextlib import ExitStack
from pathlib import Path

import pytest

from qdht.wire import Contact, immutable_key

from ._procs import DIFFICULTY, QdhtProcess, qdht_node, run_qdht

pytestmark = pytest.mark.slow


def _client(*args: str, stdin: bytes = b"", timeout: str = "20") -> tuple[int, bytes, str]:
    done = run_qdht(*args, "--difficulty", DIFFICULTY, "--timeout", timeout, stdin=stdin)
    return done.returncode, done.stdout, done.stderr.decode("utf-8", "replace")


def _joined(line: str) -> bool:
    return line.startswith("bootstrapped:")


def _stopped(line: str) -> bool:
    return line.startswith("stopped")


def _put_get_between_two_nodes(listen: str, tmp_path: Path) -> None:
    with ExitStack() as processes:
        seed, seed_uri = processes.enter_context(
            qdht_node("--listen", listen, "--status-interval", "0")
        )
        peer, peer_uri = processes.enter_context(
            qdht_node("--listen", listen, "--bootstrap", seed_uri, "--status-interval", "0")
        )
        assert peer.wait_for_line(_joined) == "bootstrapped: 1 peer in the routing table"
        value = os.urandom(3000)  # larger than one datagram: fragmented
        code, out, err = _client("put", "-", "--bootstrap", seed_uri, stdin=value)
        assert code == 0, err
        key = out.decode().strip()
        assert key == immutable_key(value).hex()

        code, out, err = _client("get", key, "--bootstrap", peer_uri)
        assert code == 0, err
        assert out == value

        text = tmp_path / "text.txt"
        text.write_text("hello from a file\n")
        code, out, err = _client("put", "--file", str(text), "--bootstrap", peer_uri)
        assert code == 0, err
        fetched = tmp_path / "fetched.txt"
        text_key = out.decode().strip()
        code, out, err = _client("get", text_key, "--output", str(fetched), "--bootstrap", seed_uri)
        assert (code, out) == (0, b""), err
        assert fetched.read_text() == "hello from a file\n"

        seed_id = Contact.from_uri(seed_uri).node_id.hex()
        code, out, err = _client("find-node", seed_id, "--bootstrap", peer_uri)
        assert code == 0, err
        assert out.decode().splitlines()[0] == seed_uri

        for proc in (peer, seed):
            proc.send_signal(signal.SIGINT)
            assert proc.wait() == 0, proc.describe()
            assert proc.wait_for_line(_stopped) == "stopped (SIGINT)"


def test_put_and_get_across_processes_over_udp(tmp_path: Path) -> None:
    _put_get_between_two_nodes("udp://127.0.0.1:0", tmp_path)


def test_put_and_get_across_processes_over_websocket(tmp_path: Path) -> None:
    _put_get_between_two_nodes("ws://127.0.0.1:0", tmp_path)


@pytest.mark.parametrize(
    "listen",
    # A WebSocket peer dials in from an ephemeral port; its requests name the
    # port it listens on (``ws``, 02-dht-rpc.md §1.3), so the seed can add it.
    ["udp://127.0.0.1:0", "ws://127.0.0.1:0"],
)
def test_find_node_through_the_seed_finds_a_peer_that_joined_it(listen: str) -> None:
    with ExitStack() as processes:
        _seed, seed_uri = processes.enter_context(
            qdht_node("--listen", listen, "--status-interval", "0")
        )
        peer, peer_uri = processes.enter_context(
            qdht_node("--listen", listen, "--bootstrap", seed_uri, "--status-interval", "0")
        )
        peer.wait_for_line(_joined)
        peer_id = Contact.from_uri(peer_uri).node_id.hex()
        code, out, err = _client("find-node", peer_id, "--bootstrap", seed_uri, timeout="10")
        assert code == 0, err
        assert out.decode().splitlines()[0] == peer_uri


def test_node_keeps_its_identity_in_the_data_dir_and_stops_on_sigterm(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    args = ("--listen", "udp://127.0.0.1:0", "--data-dir", str(data_dir))
    with qdht_node(*args, "--status-interval", "0.2") as (node, uri):
        contact = Contact.from_uri(uri)
        assert contact.address.transport == "udp"
        assert contact.address.host == "127.0.0.1"
        assert contact.address.port != 0
        status = node.wait_for_line(lambda line: line.startswith("status:"))
        assert "peers 0" in status
        node.send_signal(signal.SIGTERM)
        assert node.wait() == 0, node.describe()
        assert f"created identity {contact.node_id.hex()}" in node.stderr
    key_file = data_dir / "identity.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    with qdht_node(*args, "--status-interval", "0") as (node, uri):
        assert Contact.from_uri(uri).node_id == contact.node_id
        node.send_signal(signal.SIGINT)
        assert node.wait() == 0, node.describe()
        assert "created identity" not in node.stderr


def test_bootstrap_uri_with_the_wrong_node_id_fails_clearly() -> None:
    with qdht_node("--listen", "udp://127.0.0.1:0", "--status-interval", "0") as (_, uri):
        contact = Contact.from_uri(uri)
        wrong = Contact(bytes(32), contact.addresses).to_uri()
        code, out, err = _client("get", "ab" * 32, "--bootstrap", wrong, timeout="3")
        assert code == 1
        assert out == b""
        assert err.startswith(
            f"qdht: error: bootstrap failed: no answer from {contact.address} within 3 s"
        )
        assert "is the node ID in the contact URI its own?" in err
        assert err.count("\n") == 1, err
        assert "Traceback" not in err


def test_get_of_a_missing_key_exits_1() -> None:
    with qdht_node("--listen", "udp://127.0.0.1:0", "--status-interval", "0") as (_, uri):
        code, out, err = _client("get", "cd" * 32, "--bootstrap", uri)
        assert code == 1
        assert out == b""
        assert err == f"qdht: error: no value found for key {'cd' * 32}\n"


def test_mutable_records_delete_and_watch_across_processes(tmp_path: Path) -> None:
    owner = str(tmp_path / "owner.key")
    with ExitStack() as processes:
        seed, seed_uri = processes.enter_context(
            qdht_node("--listen", "udp://127.0.0.1:0", "--status-interval", "0")
        )
        peer, peer_uri = processes.enter_context(
            qdht_node(
                "--listen", "udp://127.0.0.1:0", "--bootstrap", seed_uri, "--status-interval", "0"
            )
        )
        peer.wait_for_line(_joined)
        put = ("put", "--mutable", "--identity", owner, "--salt", "profile")
        code, out, err = _client(*put, "version 1", "--bootstrap", seed_uri)
        assert code == 0, err
        key = out.decode().strip()
        code, out, err = _client("get", key, "--bootstrap", peer_uri)
        assert (code, out) == (0, b"version 1"), err

        watch = QdhtProcess(
            "watch", key, "--count", "2", "--difficulty", DIFFICULTY, "--bootstrap", peer_uri
        )
        processes.callback(watch.kill)
        first = json.loads(watch.wait_for_line(lambda line: line.startswith("{")))
        assert (first["kind"], first["seq"]) == ("update", 0)
        assert bytes.fromhex(first["value"]) == b"version 1"

        # compare-and-swap against the wrong version is refused with a clear error
        code, out, err = _client(*put, "lost", "--cas", "7", "--bootstrap", peer_uri)
        assert code == 1
        assert "cas-mismatch" in err
        code, out, err = _client(
            "delete", "--identity", owner, "--salt", "profile", "--bootstrap", peer_uri
        )
        assert (code, out.decode().strip()) == (0, key), err
        second = json.loads(watch.wait_for_line(lambda line: line.startswith("{")))
        assert (second["kind"], second["seq"], second["value"]) == ("deleted", 1, None)
        assert watch.wait() == 0, watch.describe()
        code, out, err = _client("get", key, "--bootstrap", seed_uri)
        assert code == 1
        assert "deleted by its owner" in err
        for proc in (peer, seed):
            proc.send_signal(signal.SIGINT)
            assert proc.wait() == 0, proc.describe()
