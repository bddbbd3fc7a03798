"""A default node imports no optional layer (issue 19: a phone pays for what it imports).

Run in a fresh interpreter, since this test session has imported everything:
``import qdht`` and a node opened with the default configuration (no data
directory, UDP only, no layer on), serving or in client mode, must not have
loaded the optional layers' packages, their messages, identity resolution,
the WebSocket stack, SQLite, the numeric stack, or the standard library's
stacks no node uses (asyncio, HTTP, e-mail, JSON, threads' executors); and
attrs' copies of its generated methods' source are gone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Final

import pytest

from qdht.wire import LAZY_MESSAGE_MODULES

#: Top-level packages and qdht modules a default node must not import.
OPTIONAL: Final = (
    "qdht.mixnet",
    "qdht.messaging",
    "qdht.groups",
    "qdht.models",
    "qdht.web",
    "qdht.testing",
    "qdht.identity._resolver",
    "qdht.crypto._oqs",
    "qdht.session._keylog",
    "qdht.node._resolver",
    "qdht.dht._sqlitestore",
    "qdht.transport._websocket",
    "trio_websocket",
    "wsproto",
    "h11",
    "hypercorn",
    "starlette",
    "sqlite3",
    "numpy",
    "torch",
    "matplotlib",
    "asyncio",
    "concurrent.futures",
    "http",
    "email",
    "json",
    "multiprocessing",
)

_DEFAULT_NODE = """
import linecache, sys
import trio
import qdht

async def main():
    config = qdht.Config(listen=("udp://127.0.0.1:0",), client_mode=sys.argv[1] == "client")
    async with qdht.open_node(config) as node:
        node.stats()

trio.run(main)
sources = [name for name in linecache.cache if " qdht." in name]
modules = sorted(sys.modules)
import json  # after the list: the test asserts a node does not import it
print(json.dumps({"modules": modules, "sources": sources}))
"""


@pytest.mark.parametrize("role", ["serving", "client"])
def test_a_default_node_imports_none_of_the_optional_layers(role: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _DEFAULT_NODE, role],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    modules = set(found["modules"])
    assert "qdht.node" in modules
    assert found["sources"] == []  # qdht.forget_generated_sources ran
    optional = (*OPTIONAL, *LAZY_MESSAGE_MODULES)
    loaded = sorted(m for m in modules if any(m == o or m.startswith(o + ".") for o in optional))
    assert loaded == []
