"""Usage errors of ``qdht put/get/find-node/node/demo``: exit 2, one line on stderr, no network."""

from __future__ import annotations

import pytest

from qdht.cli import main

URI = "qdht+udp://127.0.0.1:6881/" + "ab" * 32


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["put", "hello"], "the following arguments are required: --bootstrap"),
        (["put", "--bootstrap", URI], "give exactly one of VALUE, - (stdin) or --file F"),
        (
            ["put", "hello", "--file", "x", "--bootstrap", URI],
            "give exactly one of VALUE, - (stdin) or --file F",
        ),
        (["get", "abcd", "--bootstrap", URI], "KEY must be 64 hex digits, got 4 characters"),
        (["get", "zz" * 32, "--bootstrap", URI], "KEY must be 64 hex digits"),
        (["find-node", "00" * 31, "--bootstrap", URI], "ID must be 64 hex digits"),
        (
            ["get", "00" * 32, "--bootstrap", "udp://127.0.0.1:6881"],
            "--bootstrap: contact URI must start with qdht+udp:// or qdht+ws://",
        ),
        (
            ["get", "00" * 32, "--bootstrap", "qdht+udp://127.0.0.1:6881/1234"],
            "--bootstrap: contact URI path must be / and 64 lowercase hex digits",
        ),
        (["get", "00" * 32, "--bootstrap", URI, "--timeout", "0"], "--timeout must be positive"),
        (["node", "--bootstrap", "nonsense"], "--bootstrap: contact URI must start with"),
        (["node", "--status-interval", "-1"], "--status-interval must not be negative"),
        (["node", "--web-token", "x" * 20], "--web-token needs --web"),
        (["node", "--web", "localhost"], "--web: web address must be HOST:PORT"),
        (
            ["node", "--web", "127.0.0.1:8080", "--web-token", "short"],
            "--web: token must be 16..256",
        ),
        (["demo", "--nodes", "1"], "--nodes must be in 2..500"),
        (["demo", "--nodes", "many"], "argument --nodes: invalid int value: 'many'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err
    assert captured.err.startswith("qdht")
    assert captured.err.count("\n") == 1, captured.err
