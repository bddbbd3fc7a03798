"""A mypyc-compiled copy of the DHT core, for long simulations (``qdht-bench durability``).

The library itself stays pure Python (a phone runs it as it is); a benchmark
that simulates 2,000 nodes for 48 hours runs the *same source* compiled to C
with mypyc, which takes each function's annotations at their word (native
integers and floats, direct calls between the compiled modules, attribute
slots instead of dictionaries).  Measured at full size (2,000 nodes, 1,000
records, 48 simulated hours, 50 % churn), the same day on the same machine:
966.7 s against 1,566 s pure Python (0.62), with identical figures.

How a run gets it (:func:`reexec`): the ``qdht`` package this process
imported is copied into a cache directory named by a digest of every source
file, of mypyc's version and of this Python, and :data:`HOT_MODULES` are
compiled there once (about two and a half minutes on a 2-core machine); the
benchmark then replaces itself (``os.execve``) with the same command line,
the cache first on ``PYTHONPATH`` and :data:`ENV` naming the copy, so the
compiled modules are the ones imported.  Worker processes inherit both.

Trust, but verify (``_durability.check_core``): before replacing itself, the
pure-Python process runs a small reference scenario and passes its figures
on; the compiled process runs the same scenario and stops with an error
unless every figure (messages, losses, replicas, found, ...) is identical.
The simulation is deterministic for a seed, so a difference means the
compiled core decides differently, and its results would not be the
library's.

What mypyc needs of the code, and what keeps it so: the modules in
:data:`HOT_MODULES` hold no attrs class with ``attrs.field`` defaults (mypyc
compiles attrs classes as native classes and only knows the classic
``attr.s`` API; the config classes live in ``qdht/dht/_config.py`` for that),
every class that a compiled class inherits from is compiled too (a native
class calls its own methods through a table that a Python subclass cannot
override), and no annotation says ``float`` where an ``int`` arrives.
``tests/bench/test_bench_compiled.py`` checks the first two on the source.
Native classes cannot be pickled: with the compiled core a run cannot be
checkpointed, and the mass departure runs from the start instead of
branching off the churn run's state.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Final, NoReturn

import qdht

#: Names the compiled copy in a process running it (set by :func:`reexec`).
ENV: Final = "QDHT_BENCH_COMPILED_CORE"
#: The reference scenario's figures, from the pure-Python process (JSON).
REFERENCE_ENV: Final = "QDHT_BENCH_CORE_REFERENCE"
#: Seconds the pure-Python process spent building the copy.
BUILD_ENV: Final = "QDHT_BENCH_CORE_BUILD_S"

#: What a simulated DHT node runs per message and per timer, relative to the
#: package root.  A compiled class's base classes must be compiled too.
HOT_MODULES: Final = (
    "qdht/dht/_routing.py",
    "qdht/dht/_lookup.py",
    "qdht/dht/_corebase.py",
    "qdht/dht/_serving.py",
    "qdht/dht/_requests.py",
    "qdht/dht/_lookups.py",
    "qdht/dht/_watch_rpc.py",
    "qdht/dht/_core.py",
    "qdht/dht/_replication.py",
    "qdht/dht/_recordstore.py",
    "qdht/dht/_reputation.py",
    "qdht/dht/_rtt.py",
    "qdht/ratelimit.py",
    "qdht/testing/_coresim.py",
)


def module_name(path: str) -> str:
    """The importable name of a :data:`HOT_MODULES` path."""
    return path.removesuffix(".py").replace("/", ".")


def package_root() -> Path:
    """The directory holding the ``qdht`` package this process imported."""
    return Path(qdht.__file__).resolve().parent.parent


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/qdht-bench/mypyc`` (``~/.cache`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qdht-bench" / "mypyc"


def _sources(root: Path) -> list[Path]:
    return sorted(p for p in (root / "qdht").rglob("*.py") if "__pycache__" not in p.parts)


def digest(root: Path) -> str:
    """What a build depends on: every source file of the package (path and
    content), the module list, mypyc's version and this Python's ABI."""
    h = hashlib.sha256()
    try:
        mypy_version = importlib.metadata.version("mypy")
    except importlib.metadata.PackageNotFoundError:
        mypy_version = "none"
    for part in (mypy_version, sys.version, sysconfig.get_config_var("EXT_SUFFIX") or ""):
        h.update(part.encode() + b"\0")
    h.update("\0".join(HOT_MODULES).encode() + b"\0")
    for path in _sources(root):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def build(cache: Path) -> tuple[Path, float]:
    """The compiled copy's directory (to put first on ``sys.path``) and the
    seconds spent building it (0 when the cache had it).

    Raises :class:`RuntimeError` with mypyc's output when the build fails
    (no mypy installed, no C compiler, or code mypyc refuses)."""
    root = package_root()
    dest = cache / digest(root)
    if (dest / "BUILT").exists():
        return dest, 0.0
    if importlib.util.find_spec("mypyc") is None:
        raise RuntimeError(
            "the compiled core needs mypyc (pip install mypy; it comes with "
            "pip install -e '.[test]'), or run with --core python"
        )
    started = time.perf_counter()
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=cache))
    try:
        shutil.copytree(
            root / "qdht", work / "qdht", ignore=shutil.ignore_patterns("__pycache__", "*.so")
        )
        config = root / "pyproject.toml"  # the project's mypy settings, if this is a checkout
        if config.exists():
            shutil.copy(config, work / "pyproject.toml")
        print(
            f"compiling the DHT core with mypyc into {dest} (once per source version)",
            file=sys.stderr,
            flush=True,
        )
        done = subprocess.run(
            [sys.executable, "-m", "mypyc", *HOT_MODULES],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"mypyc failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
        shutil.rmtree(work / "build", ignore_errors=True)
        (work / "BUILT").write_text(f"{time.time():.0f}\n")
        try:
            os.replace(work, dest)
        except OSError:  # built meanwhile by another process: keep theirs
            if not (dest / "BUILT").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest, time.perf_counter() - started


def running_compiled() -> bool:
    """Whether this process imported the compiled copy named by :data:`ENV`."""
    where = os.environ.get(ENV)
    if not where:
        return False
    for name in map(module_name, HOT_MODULES):
        module = importlib.import_module(name)
        origin = Path(module.__file__ or "")
        if not origin.name.endswith(".so") or not origin.is_relative_to(Path(where)):
            raise RuntimeError(
                f"{ENV} names {where}, but {name} was imported from {origin}, not compiled there"
            )
    return True


def reexec(copy: Path, argv: list[str], env: dict[str, str]) -> NoReturn:
    """Replace this process with ``python -m qdht_bench.cli *argv`` importing ``copy``
    first; ``env`` is added to the environment (the reference figures)."""
    bench = Path(__file__).resolve().parent.parent  # the directory holding qdht_bench
    paths = [str(copy), str(bench)]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    full = {**os.environ, **env, ENV: str(copy), "PYTHONPATH": os.pathsep.join(paths)}
    sys.stdout.flush()
    sys.stderr.flush()
    # -P: not the working directory first on sys.path (python -m puts it there),
    # where a checkout's own qdht would shadow the compiled copy.
    os.execve(sys.executable, [sys.executable, "-P", "-m", "qdht_bench.cli", *argv], full)
