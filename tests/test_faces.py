"""Package faces: each package exports what others use, and nobody reaches past a face.

As trio checks its own exports: every name a private module lists in its
``__all__`` is exported by its package, and no module — in ``qdht``, in the
tools or in the tests — imports another package's ``_private`` module or a
``_private`` name.  The few white-box tests that patch a module's internals
are listed in :data:`TESTING_HOOKS`, each with its reason.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[1]
#: The library's packages.  ``qdht.cli`` is left out of the completeness check:
#: its face is the command (``main``); its modules' names wire the command.
PACKAGES: Final = sorted(
    f"qdht.{path.parent.name}"
    for path in (ROOT / "qdht").glob("*/__init__.py")
    if path.parent.name != "cli"
)

#: (importing file, imported module) pairs allowed to reach a private module,
#: with the reason.  Keep this short: prefer a public name.
TESTING_HOOKS: Final = {
    ("tests/records/test_store_sqlite.py", "qdht.dht._sqlitestore"): (
        "patches MIGRATIONS to test that schema migrations run in order, once"
    ),
    ("tests/dht/test_routing.py", "qdht.dht._routing"): (
        "patches PREFIX_SLOTS to test the per-prefix limit with few peers"
    ),
    ("tests/wire/test_cbor.py", "qdht.wire._cbor"): (
        "calls the encoder-side limit check on values no decoder can produce"
    ),
    ("tests/cli/test_demo.py", "qdht.cli._demo"): "unit-tests the demo report's percentile",
    ("tests/cli/test_demo.py", "qdht.cli._output"): "unit-tests the CLI's number formatting",
    ("tools/bench/qdht_bench/session.py", "qdht.session._peers"): (
        "clears the endpoint's process-wide caches to measure per-session memory"
    ),
}


def _sources() -> list[Path]:
    roots = [ROOT / "qdht", ROOT / "tests", *(ROOT / "tools").glob("*/qdht_*")]
    return sorted(path for root in roots for path in root.rglob("*.py"))


def _own_package(path: Path) -> str | None:
    """``qdht.<pkg>`` for a module inside a subpackage, ``qdht`` for top-level ones."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[0] != "qdht":
        return None
    return f"qdht.{parts[1]}" if len(parts) > 2 else "qdht"


def _library(module: str) -> bool:
    """The rule guards the library's faces; each tool is a package of its own."""
    return module == "qdht" or module.startswith("qdht.")


def _private(module: str) -> bool:
    return any(part.startswith("_") for part in module.split(".")[1:])


def _violations(path: Path) -> list[str]:
    own = _own_package(path)
    rel = str(path.relative_to(ROOT))
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        imports: list[tuple[str, list[str]]] = []
        if isinstance(node, ast.ImportFrom) and node.module and _library(node.module):
            imports.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            imports += [(a.name, []) for a in node.names if _library(a.name)]
        for module, names in imports:
            parts = module.split(".")
            target = "qdht" if len(parts) < 2 or parts[1].startswith("_") else ".".join(parts[:2])
            # Inside qdht, a package may use its own internals and the root
            # package's shared ones; nobody else's.
            if own is not None and target in (own, "qdht"):
                continue
            private_names = [name for name in names if name.startswith("_")]
            if not (_private(module) or private_names):
                continue
            hooks = [f"{module}.{n}" for n in private_names] or [module]
            if (rel, module) in TESTING_HOOKS or all((rel, h) in TESTING_HOOKS for h in hooks):
                continue
            found.append(f"{rel}:{getattr(node, 'lineno', 0)}: {module} {private_names or ''}")
    return found


def test_nobody_imports_another_packages_private_modules_or_names() -> None:
    violations = [v for path in _sources() for v in _violations(path)]
    assert violations == []


def test_the_testing_hooks_are_still_needed() -> None:
    used = set()
    for rel, module in TESTING_HOOKS:
        text = (ROOT / rel).read_text(encoding="utf-8")
        package, name = module.rsplit(".", 1)
        if f"from {module} import" in text or (f"from {package} import" in text and name in text):
            used.add((rel, module))
    assert used == set(TESTING_HOOKS)


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_exports_every_name_its_modules_export(package: str) -> None:
    face = importlib.import_module(package)
    exported = set(face.__all__)
    for name in exported:
        assert hasattr(face, name), f"{package}.__all__ names {name}, which it lacks"
    directory = ROOT / package.replace(".", "/")
    for path in sorted(directory.glob("_*.py")):
        if path.name.startswith("__"):
            continue
        module = importlib.import_module(f"{package}.{path.stem}")
        missing = sorted(set(getattr(module, "__all__", ())) - exported)
        assert missing == [], f"{package} does not export {missing} of {path.name}"
