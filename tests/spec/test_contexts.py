"""Every ML-DSA signature context in the code is unique and listed in the spec.

``03-identity.md`` §1.3 promises that no two signed object types share a
context string, so a signature on one kind of object never verifies as
another.  The contexts are discovered from the code (module constants named
``*CONTEXT`` and classes' ``CONTEXT``), so a new signed object type cannot be
added without its row in the spec's table.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import qdht

SPEC = Path(__file__).resolve().parents[2] / "protocol-spec" / "03-identity.md"


def _contexts_in_code() -> dict[bytes, list[str]]:
    found: dict[bytes, list[str]] = {}
    for info in pkgutil.walk_packages(qdht.__path__, "qdht."):
        if info.name.startswith("qdht.cli"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            owners = []
            if name.endswith("CONTEXT") and isinstance(value, bytes):
                owners.append((f"{info.name}.{name}", value))
            if isinstance(value, type) and value.__module__ == info.name:
                context = vars(value).get("CONTEXT")
                if isinstance(context, bytes):
                    owners.append((f"{info.name}.{value.__name__}.CONTEXT", context))
            for owner, context in owners:
                found.setdefault(context, [])
                if owner not in found[context]:
                    found[context].append(owner)
    return found


def _contexts_in_spec() -> list[bytes]:
    text = SPEC.read_text(encoding="utf-8")
    section = text.split("### 1.3", 1)[1].split("\n## ", 1)[0]
    return [m.encode() for m in re.findall(r"^\| `(qdht/v1/[^`]+)` \|", section, re.MULTILINE)]


def test_signature_contexts_are_unique_and_specified() -> None:
    in_code = _contexts_in_code()
    in_spec = _contexts_in_spec()
    assert len(in_code) >= 8, sorted(in_code)
    shared = {c: owners for c, owners in in_code.items() if len(owners) > 1}
    # One constant may be re-exported under its own name elsewhere; a context
    # shared by two *different* names would be two object types signing alike.
    assert not {c: o for c, o in shared.items() if len({n.rsplit(".", 1)[-1] for n in o}) > 1}
    assert len(in_spec) == len(set(in_spec)), "a context is listed twice in 03-identity.md §1.3"
    assert set(in_code) == set(in_spec)
