"""Names a package exports but imports only when first used (PEP 562).

A client node on a phone pays for every module it imports (issue 19: the idle
client's resident memory).  A package face whose names pull in an optional
stack (the WebSocket transport's trio-websocket, wsproto and h11; SQLite) lists
them here instead of importing them, so ``import qdht`` and a default node
import none of it; the first ``package.Name`` imports the module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(namespace: dict[str, Any], table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``table`` (exported name → module that defines it).

    The value is cached in ``namespace`` (the package's ``globals()``), so the
    import happens once and later lookups are plain attribute reads.
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
