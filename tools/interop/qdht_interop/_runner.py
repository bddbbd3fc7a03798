"""Running the suite: target lifecycle, the harness network, per-case timeouts, grading."""

from __future__ import annotations

import contextlib
import fnmatch
import importlib.util
import tempfile
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Final

import attrs
import trio
import trio.lowlevel
from qdht_lint.engine import Linter

import qdht
from qdht.errors import ContactError, QdhtError
from qdht.identity import Identity
from qdht.node import Node, open_node
from qdht.wire import Contact
from qdht_interop._cases import CASES, Case, Context, Notes
from qdht_interop._grades import FAILED, UNIMPLEMENTED, CaseFailed, CaseUnimplemented, worst
from qdht_interop._model import InteropModel, interop_model
from qdht_interop._target import TargetError, TargetProcess, printable

__all__ = [
    "DEFAULT_DIFFICULTY",
    "LINT_EXTRA_MISSING",
    "NETWORK_SIZE",
    "CaseResult",
    "RunOptions",
    "RunReport",
    "run_suite",
    "select_cases",
]

#: Puzzle difficulty of the harness's identities and network (QDHT_DIFFICULTY).
DEFAULT_DIFFICULTY: Final = 8
#: Python nodes in the harness's network.
NETWORK_SIZE: Final = 3
#: Seconds the harness network may take to start and join.
NETWORK_TIMEOUT: Final = 15.0


#: Why the harness cannot run without the ``lint`` extra (it lints every message).
LINT_EXTRA_MISSING: Final = (
    "qdht-interop needs the 'lint' extra (pycddl, for linting every message the "
    "target sends): pip install 'qdht[lint]'"
)


def require_lint_extra() -> None:
    """Raise ImportError with :data:`LINT_EXTRA_MISSING` if pycddl is not installed."""
    if importlib.util.find_spec("pycddl") is None:
        raise ImportError(LINT_EXTRA_MISSING)


@attrs.frozen
class RunOptions:
    """One run: exactly one of ``command`` and ``target``."""

    command: str | None = None
    target: str | None = None
    name: str = ""
    difficulty: int = DEFAULT_DIFFICULTY
    cases: tuple[str, ...] = ("*",)
    startup_timeout: float = 20.0
    #: The target speaks the stdin control interface (``--control``).
    control: bool = False
    #: Start the harness's Python network for the network cases.
    network: bool = True
    listen: str = "udp://127.0.0.1:0"
    #: Multiplies every case timeout (slow machines).
    timeout_scale: float = 1.0


@attrs.frozen
class CaseResult:
    id: str
    title: str
    spec: str
    grade: str
    details: tuple[str, ...]
    duration: float
    linted: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "spec": self.spec,
            "grade": self.grade,
            "details": list(self.details),
            "duration": round(self.duration, 3),
            "messages_linted": self.linted,
        }


@attrs.frozen
class RunReport:
    name: str
    target: str
    contact: str | None
    started: float
    duration: float
    results: tuple[CaseResult, ...]
    setup_error: str | None = None

    @property
    def failed(self) -> bool:
        return any(r.grade == FAILED for r in self.results) or self.setup_error is not None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.grade] = out.get(r.grade, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "contact": self.contact,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "duration": round(self.duration, 3),
            "setup_error": self.setup_error,
            "counts": self.counts(),
            "passed": not self.failed,
            "cases": [r.to_json() for r in self.results],
        }


def select_cases(globs: Sequence[str]) -> list[Case]:
    """The cases whose ID matches any of ``globs`` (fnmatch), in suite order."""
    return [c for c in CASES if any(fnmatch.fnmatchcase(c.id, g) for g in globs)]


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


async def _start_network(difficulty: int, stack: AsyncExitStack) -> list[Node]:
    nodes: list[Node] = []
    for _ in range(NETWORK_SIZE):
        config = qdht.Config(
            identity=await trio.to_thread.run_sync(Identity.generate, difficulty),
            listen=("udp://127.0.0.1:0",),
            puzzle_difficulty=difficulty,
        )
        nodes.append(await stack.enter_async_context(open_node(config)))
    with trio.move_on_after(NETWORK_TIMEOUT):
        for node in nodes[1:]:
            if await node.bootstrap([nodes[0].contact]) != 1:
                raise TargetError("a harness node could not join the first one")
        return nodes
    raise TargetError(f"the harness nodes did not join each other within {NETWORK_TIMEOUT:g} s")


async def _run_case(case: Case, ctx: Context, scale: float) -> CaseResult:
    notes = Notes()
    started = trio.current_time()
    grades: list[str] = []
    process = ctx.process
    if process is not None and (code := process.returncode()) is not None:
        return CaseResult(
            case.id,
            case.title,
            case.spec,
            FAILED,
            (f"the target is not running (exited with status {code})",),
            0.0,
        )
    timeout = case.timeout * scale
    try:
        with trio.move_on_after(timeout) as scope:
            await case.fn(ctx, notes)
        if scope.cancelled_caught:
            grades.append(FAILED)
            notes.details.append(f"no result within {timeout:g} s (the target hangs?)")
    except (Exception, BaseExceptionGroup) as exc:  # the harness survives any target
        for leaf in _leaves(exc):
            if isinstance(leaf, CaseFailed):
                grades.append(FAILED)
                notes.details.append(str(leaf))
            elif isinstance(leaf, CaseUnimplemented):
                grades.append(UNIMPLEMENTED)
                notes.details.append(str(leaf))
            elif isinstance(leaf, Exception):
                grades.append(FAILED)
                notes.details.append(
                    f"harness error: {type(leaf).__name__}: {printable(str(leaf))}"
                )
            else:
                raise
    if process is not None:
        await trio.lowlevel.checkpoint()
        if (code := process.returncode()) is not None:
            grades.append(FAILED)
            notes.details.append(
                f"the target exited with status {code} during the case" + process.stderr_note()
            )
    grade = worst(grades + notes.grades)
    return CaseResult(
        case.id,
        case.title,
        case.spec,
        grade,
        tuple(notes.details),
        trio.current_time() - started,
        notes.linted,
    )


def _failed_all(cases: list[Case], reason: str) -> tuple[CaseResult, ...]:
    return tuple(CaseResult(c.id, c.title, c.spec, FAILED, (reason,), 0.0) for c in cases)


async def run_suite(options: RunOptions, linter: Linter | None = None) -> RunReport:
    """Run the selected cases against one target; never raises for anything the target does."""
    if (options.command is None) == (options.target is None):
        raise ValueError("pass exactly one of command and target")
    cases = select_cases(options.cases)
    if linter is None:
        require_lint_extra()
        linter = Linter()
    started = time.time()
    clock = trio.current_time()
    label = options.command if options.command is not None else str(options.target)
    name = options.name or label
    contact: Contact | None = None
    results: tuple[CaseResult, ...] = ()
    setup_error: str | None = None
    process: TargetProcess | None = None
    async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
        try:
            network: list[Node] = []
            network_error = None
            if options.network and any(c.network for c in cases):
                try:
                    network = await _start_network(options.difficulty, stack)
                except (TargetError, QdhtError, OSError) as exc:
                    network_error = f"the harness network did not start: {exc}"
            model: InteropModel | None = None
            if options.command is not None:
                model = interop_model()
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                (folder / "model.safetensors").write_bytes(model.file)
                env = {
                    "QDHT_LISTEN": options.listen,
                    "QDHT_BOOTSTRAP": " ".join(n.contact_uri for n in network),
                    "QDHT_DIFFICULTY": str(options.difficulty),
                    "QDHT_MODEL_FILE": str(folder / "model.safetensors"),
                    "QDHT_MIX": "1",
                }
                process, contact = await TargetProcess.start(
                    nursery, options.command, env, options.startup_timeout
                )
            else:
                try:
                    contact = Contact.from_uri(str(options.target))
                except ContactError as exc:
                    raise TargetError(str(exc)) from None
                # The harness nodes join through the target (a dead one costs
                # NETWORK_TIMEOUT once, and the network cases then fail).
                with trio.move_on_after(NETWORK_TIMEOUT), contextlib.suppress(QdhtError):
                    for node in network:
                        await node.bootstrap([contact])
            ctx = Context(
                contact, options.difficulty, linter, process, options.control, network, model
            )
            out = []
            for case in cases:
                if case.network and network_error is not None:
                    out.append(_failed_all([case], network_error)[0])
                    continue
                if case.network and not options.network:
                    out.append(
                        CaseResult(
                            case.id,
                            case.title,
                            case.spec,
                            "INFORMATIONAL",
                            ("skipped: --no-network",),
                            0.0,
                        )
                    )
                    continue
                out.append(await _run_case(case, ctx, options.timeout_scale))
            results = tuple(out)
        except TargetError as exc:
            setup_error = str(exc)
            results = _failed_all(cases, setup_error)
        finally:
            if process is not None:
                await process.stop()
            nursery.cancel_scope.cancel()
    return RunReport(
        name,
        label,
        contact.to_uri() if contact is not None else None,
        started,
        trio.current_time() - clock,
        results,
        setup_error,
    )


def all_ok(report: RunReport) -> bool:
    return not report.failed and all(r.grade != FAILED for r in report.results)
