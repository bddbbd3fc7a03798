"""The optional layers' messages load on first use, and their table is complete.

``qdht.wire.LAZY_MESSAGE_MODULES`` lists, per module, the types it registers,
so a decode of one of them imports it (issue 19: a node that never speaks a
layer does not load its messages).  This checks the table against what the
modules really register, and that decoding and the face's names still work
from a fresh interpreter where nothing was imported yet.
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict

import pytest

from qdht import wire


def test_the_table_lists_exactly_the_types_each_lazy_module_registers() -> None:
    registered: dict[str, set[str]] = defaultdict(set)
    for type_name, cls in wire.message_types().items():
        registered[cls.__module__].add(type_name)
    for module, types in wire.LAZY_MESSAGE_MODULES.items():
        assert set(types) == registered[module], module


def test_register_lazy_refuses_a_type_already_registered() -> None:
    with pytest.raises(RuntimeError, match="registered twice"):
        wire.register_lazy("qdht.wire._dht", ("ping",))


_FRESH = """
import sys
import qdht.wire as wire
from qdht.errors import DecodeError
assert not hasattr(wire, "__wrapped__")  # a probe loads nothing
lazy = [m for m in wire.LAZY_MESSAGE_MODULES if m in sys.modules]
assert lazy == [], lazy
data = bytes.fromhex(sys.argv[1])
try:
    wire.decode(data, expect=(wire.Ping,))
except DecodeError as exc:
    assert exc.reason == "unexpected-type", exc.reason
assert "qdht.wire._echo" not in sys.modules  # refused without loading the layer
message = wire.decode(data)
assert type(message).__name__ == "Echo" and "qdht.wire._echo" in sys.modules
assert wire.MixPacket.TYPE == "packet"
print("ok")
"""


def test_a_fresh_process_decodes_a_lazy_type_and_reaches_its_names() -> None:
    data = wire.encode(wire.Echo(b"\x01" * 8, b"hi"))
    result = subprocess.run(
        [sys.executable, "-c", _FRESH, data.hex()],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = wire.no_such_name  # type: ignore[attr-defined]
