"""The compiled DHT core of ``qdht-bench durability``: what keeps the source
compilable, and the check that stops a run whose compiled core decides
differently from the pure-Python one (the build itself takes minutes: it is
run by the benchmark, not here)."""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
from pathlib import Path

import pytest
from qdht_bench import _compiled, _durability
from qdht_bench._common import BenchResult

ROOT = _compiled.package_root()


@pytest.mark.parametrize("path", _compiled.HOT_MODULES)
def test_no_hot_module_defines_an_attrs_field_default(path: str) -> None:
    # mypyc compiles an attrs class as a native class and takes an
    # ``attrs.field(...)`` default for the attribute's value: the import fails.
    tree = ast.parse((ROOT / path).read_text())
    fields = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("field", "ib")
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in ("attrs", "attr")
    ]
    assert fields == [], f"{path}: attrs.field at lines {fields}; move the class to _config.py"


def test_every_base_class_of_a_compiled_class_is_compiled() -> None:
    # A native class calls its own methods through a vtable: a Python subclass
    # (or a Python base in between) would silently not override them.
    hot = set(map(_compiled.module_name, _compiled.HOT_MODULES))
    missing = set()
    for name in hot:
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != name:
                continue
            for base in cls.__mro__[1:]:
                if base.__module__.startswith("qdht") and base.__module__ not in hot:
                    missing.add(f"{cls.__qualname__} < {base.__module__}.{base.__qualname__}")
    assert missing == set()


def test_the_build_digest_follows_every_source_file(tmp_path: Path) -> None:
    package = tmp_path / "qdht"
    (package / "dht").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "dht" / "_routing.py").write_text("X = 1\n")
    first = _compiled.digest(tmp_path)
    assert _compiled.digest(tmp_path) == first
    (package / "dht" / "_routing.py").write_text("X = 2\n")
    assert _compiled.digest(tmp_path) != first
    (package / "dht" / "_routing.py").write_text("X = 1\n")
    (package / "dht" / "_new.py").write_text("")
    assert _compiled.digest(tmp_path) != first


def test_a_process_that_says_it_runs_the_compiled_core_must(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(_compiled.ENV, raising=False)
    assert _compiled.running_compiled() is False
    monkeypatch.setenv(_compiled.ENV, str(tmp_path))
    with pytest.raises(RuntimeError, match="not compiled there"):
        _compiled.running_compiled()


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    _durability.add_arguments(parser)
    args = parser.parse_args(list(argv))
    args.argv = list(argv)
    return args


def test_the_python_core_runs_as_it_is() -> None:
    result = BenchResult("durability")
    _durability.check_core(_args("--core", "python"), result)
    assert result.metrics["core_compiled"] == 0


def test_a_compiled_run_cannot_be_checkpointed(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--core python"):
        _durability.check_core(
            _args("--checkpoint", str(tmp_path / "c")), BenchResult("durability")
        )


def test_a_compiled_core_that_decides_differently_stops_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # In the compiled process the reference scenario is run again and compared
    # figure by figure with the pure-Python process's; here the "compiled"
    # process is this one, so the figures agree unless the reference is altered.
    monkeypatch.setattr(_compiled, "running_compiled", lambda: True)
    args = _args()
    reference = _durability.reference_metrics(args)
    assert reference["messages"] > 0
    assert reference["departures"] > 0
    monkeypatch.setenv(_compiled.REFERENCE_ENV, json.dumps(reference))
    monkeypatch.setenv(_compiled.BUILD_ENV, "12.5")
    result = BenchResult("durability")
    _durability.check_core(args, result)
    assert result.metrics["core_compiled"] == 1
    assert result.metrics["core_build_s"] == 12.5

    altered = {**reference, "messages": reference["messages"] + 1}
    monkeypatch.setenv(_compiled.REFERENCE_ENV, json.dumps(altered))
    with pytest.raises(SystemExit, match=r"differs .* in \['messages'\]"):
        _durability.check_core(args, BenchResult("durability"))


def test_a_compiled_run_needs_its_command_line_before_it_builds(tmp_path: Path) -> None:
    # The compiled process is the same command run again: without the command
    # line (a caller of run() that did not come through cli.main) it says so at
    # once, before minutes of building.
    args = _args("--core-cache", str(tmp_path))
    del args.argv
    with pytest.raises(SystemExit, match="--core python"):
        _durability.check_core(args, BenchResult("durability"))
    assert list(tmp_path.iterdir()) == []
