"""Running ``qdht`` in subprocesses for the cross-process acceptance tests.

Every process started here is killed and reaped when its context exits, even
when the test fails, so no node outlives its test.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Final

#: Puzzle difficulty of the test networks (minting takes microseconds).
DIFFICULTY: Final = "4"
#: Seconds a test waits for a process to print an expected line or to exit.
#: Generous: the machine is shared; a healthy run takes a fraction of this.
WAIT: Final = 30.0


def qdht_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "qdht.cli", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("QDHT_HOME", None)
    return env


class QdhtProcess:
    """A ``qdht`` subprocess whose stdout is read line by line by a thread."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.popen = subprocess.Popen(
            qdht_argv(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
        )
        assert self.popen.stdout is not None
        assert self.popen.stderr is not None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.stdout_lines: list[str] = []
        self._stderr: list[bytes] = []
        self._threads = [
            threading.Thread(target=self._read_lines, args=(self.popen.stdout,), daemon=True),
            threading.Thread(target=self._read_all, args=(self.popen.stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_lines(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._lines.put(None)

    def _read_all(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self._stderr.append(raw)

    @property
    def stderr(self) -> str:
        return b"".join(self._stderr).decode("utf-8", "replace")

    def describe(self) -> str:
        return (
            f"qdht {' '.join(self.args)} (exit {self.popen.poll()})\n"
            f"stdout so far: {self.stdout_lines!r}\nstderr: {self.stderr}"
        )

    def wait_for_line(self, accept: Callable[[str], bool], timeout: float = WAIT) -> str:
        """The next stdout line ``accept`` returns true for (earlier lines are kept)."""
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no expected line in {timeout} s: {self.describe()}"
                ) from None
            if line is None:
                self._lines.put(None)
                raise AssertionError(f"stdout closed: {self.describe()}")
            self.stdout_lines.append(line)
            if accept(line):
                return line

    def send_signal(self, signum: signal.Signals) -> None:
        self.popen.send_signal(signum)

    def wait(self, timeout: float = WAIT) -> int:
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"did not exit in {timeout} s: {self.describe()}") from None
        for thread in self._threads:
            thread.join(timeout)
        return code

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()
        for thread in self._threads:
            thread.join(WAIT)
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def qdht_node(*args: str) -> Iterator[tuple[QdhtProcess, str]]:
    """A running ``qdht node`` and its contact URI (its first line of output)."""
    proc = QdhtProcess("node", "--difficulty", DIFFICULTY, *args)
    try:
        uri = proc.wait_for_line(lambda line: True)
        assert uri.startswith("qdht+"), proc.describe()
        yield proc, uri
    finally:
        proc.kill()


def run_qdht(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """Run a one-shot ``qdht`` command to completion."""
    return subprocess.run(
        qdht_argv(*args),
        input=stdin,
        capture_output=True,
        env=_env(),
        timeout=2 * WAIT,
        check=False,
    )
