"""A default node imports no optional layer (issue 19: a phone pays for what it imports).

Run in a fresh interpreter, since this test session has imported everything:
``import qdht`` and a node opened with the default configuration (no data
directory, UDP only, no layer on) must not have loaded the optional layers'
packages, their messages, the WebSocket stack, SQLite or the numeric stack.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Final

from qdht.wire import LAZY_MESSAGE_MODULES

#: Top-level packages and qdht modules a default node must not import.
OPTIONAL: Final = (
    "qdht.mixnet",
    "qdht.messaging",
    "qdht.groups",
    "qdht.models",
    "qdht.web",
    "qdht.testing",
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
)

_DEFAULT_NODE = """
import json, sys
import trio
import qdht

async def main():
    config = qdht.Config(listen=("udp://127.0.0.1:0",))
    async with qdht.open_node(config) as node:
        node.stats()

trio.run(main)
print(json.dumps(sorted(sys.modules)))
"""


def test_a_default_node_imports_none_of_the_optional_layers() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _DEFAULT_NODE],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    modules = set(json.loads(result.stdout))
    assert "qdht.node" in modules
    optional = (*OPTIONAL, *LAZY_MESSAGE_MODULES)
    loaded = sorted(m for m in modules if any(m == o or m.startswith(o + ".") for o in optional))
    assert loaded == []
