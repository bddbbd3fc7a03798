"""Deterministic generators for ``protocol-spec/vectors/``.

Each area module (``_dht``, ``_identity``, ...) exposes ``vector_files()``:
a mapping from a path relative to ``protocol-spec/vectors/`` (for example
``"dht/dht-ping.json"``) to the JSON object to write there.  Generation uses
fixed seeds only, so running it twice gives identical files; the test suite
regenerates them in memory and compares them with the checked-in copies.

Run ``python -m qdht_lint.vectors [SPEC_DIR]`` to rewrite the files.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Final

__all__ = ["AREAS", "all_vector_files", "render", "write_all"]

#: Area modules, in spec order.  Add one line per area.
AREAS: Final[tuple[str, ...]] = (
    # -- vector areas --
    "_anon_mbox",
    "_mbox",
    "_resolve",
    "_anon",
    "_echo",
    "_models",
    "_messaging",
    "_groups",
    "_mixnet",
    "_training",
    "_watch",
    "_records",
    "_bootstrap",
    "_session",
    "_identity",
    "_dht",
)


def all_vector_files() -> dict[str, dict[str, Any]]:
    """Every vector file of every area: relative path → JSON object."""
    files: dict[str, dict[str, Any]] = {}
    for area in AREAS:
        module = importlib.import_module(f"qdht_lint.vectors.{area}")
        for name, content in module.vector_files().items():
            if name in files:
                raise RuntimeError(f"vector file {name} generated twice")
            files[name] = content
    return files


def render(content: dict[str, Any]) -> str:
    """The exact text of a vector file (stable key order, trailing newline)."""
    return json.dumps(content, indent=2, ensure_ascii=False) + "\n"


def write_all(spec_dir: Path) -> list[Path]:
    """Write every vector file under ``spec_dir/vectors``; return the paths written."""
    written = []
    for name, content in sorted(all_vector_files().items()):
        path = spec_dir / "vectors" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(content), encoding="utf-8")
        written.append(path)
    return written
