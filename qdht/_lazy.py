"""What a client node pays for in memory, kept small (issue 19: the idle client's RSS).

A client node on a phone pays for every module it imports.  A package face
whose names pull in an optional stack (the WebSocket transport's
trio-websocket, wsproto and h11; SQLite; a layer a node turns on in its
``Config``) serves them with :func:`lazy_exports` (PEP 562) instead of
importing them, so ``import qdht`` and a default node import none of it; the
first ``package.Name`` imports the module.  :func:`forget_generated_sources`
drops the source text attrs keeps for the methods it generates (a third of
what attrs costs qdht's ~150 classes), and :func:`release_free_memory` hands
the C allocator's free pages back to the system after a client's join.
"""

from __future__ import annotations

import importlib
import linecache
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["forget_generated_sources", "lazy_exports", "release_free_memory"]


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


def forget_generated_sources(package: str = "qdht") -> int:
    """Drop the ``linecache`` entries attrs made for ``package``'s classes; return how many.

    attrs compiles each class's ``__init__``, ``__repr__``, ``__eq__`` and
    ``__hash__`` from source and keeps that source in :mod:`linecache`, so
    that a debugger can show it: about 0.45 MB for qdht's classes, that no
    running node reads (issue 19: an idle phone's resident memory).  After
    this, a traceback through a generated method shows its file name and
    line number but no source line.  Called once ``import qdht`` has created
    its classes and again when a node starts (lazily imported layers).
    """
    marker = f" {package}."
    names = [
        name for name in linecache.cache if name.startswith("<attrs generated ") and marker in name
    ]
    for name in names:
        del linecache.cache[name]
    return len(names)


def release_free_memory() -> bool:
    """Return the C allocator's free memory at the top of its heaps to the system.

    glibc's ``malloc_trim(0)``: after a join (handshakes, lookups, their
    messages) a client's heap holds freed blocks that an idle node will not
    reuse for a long time; trimming gives back ~0.1 MB of resident memory.
    A no-op returning False where the C library has no ``malloc_trim``
    (macOS, musl).
    """
    try:
        import ctypes

        trim = ctypes.CDLL(None).malloc_trim
    except (ImportError, OSError, AttributeError):
        return False
    trim(0)
    return True
