"""The implementation under test as a child process (``--command``).

The contract (``tools/interop/README.md``): the harness runs the command
through ``/bin/sh -c`` with ``QDHT_LISTEN``, ``QDHT_BOOTSTRAP`` and
``QDHT_DIFFICULTY`` in its environment, reads the contact URI from the first
stdout line, optionally speaks the stdin control interface, and stops it
with SIGTERM (SIGKILL after a grace period).  Nothing the child does raises
out of here except :class:`TargetError`, whose message is the reason.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections import deque
from typing import Final

import trio
import trio.lowlevel

from qdht.errors import ContactError
from qdht.wire import Contact

__all__ = ["MAX_LINE", "TargetError", "TargetProcess", "printable"]

#: Longest stdout line kept (bytes); a longer one is cut there.
MAX_LINE: Final = 64 * 1024
#: Stdout lines queued for control answers (oldest dropped beyond).
MAX_QUEUED_LINES: Final = 1024
#: Bytes of stderr kept for failure reports (the tail).
STDERR_TAIL: Final = 4096
#: Seconds between SIGTERM and SIGKILL when stopping the target.
STOP_GRACE: Final = 3.0


class TargetError(Exception):
    """The target cannot be used: the message says why, for the report."""


def printable(data: bytes | str, limit: int = 160) -> str:
    """Remote text made safe for one report line (control characters escaped, cut)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit] + "…"


class TargetProcess:
    """One running target; create with :meth:`start` inside a nursery."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self._stderr: deque[bytes] = deque()
        self._stderr_bytes = 0
        self._lines_send, self._lines = trio.open_memory_channel[bytes](MAX_QUEUED_LINES)
        self.stdout_closed = trio.Event()

    @classmethod
    async def start(
        cls,
        nursery: trio.Nursery,
        command: str,
        env: dict[str, str],
        startup_timeout: float,
    ) -> tuple[TargetProcess, Contact]:
        """Start ``command`` and wait for its contact URI (TargetError if it fails)."""
        try:
            process = await trio.lowlevel.open_process(
                ["/bin/sh", "-c", command],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, **env},
                start_new_session=True,
            )
        except OSError as exc:
            raise TargetError(f"cannot start the target: {exc}") from None
        target = cls(process)
        nursery.start_soon(target._read_stdout)
        nursery.start_soon(target._read_stderr)
        try:
            contact = await target._first_line(startup_timeout)
        except BaseException:
            await target.stop()
            raise
        return target, contact

    async def _first_line(self, seconds: float) -> Contact:
        line = None
        with trio.move_on_after(seconds), contextlib.suppress(trio.EndOfChannel):
            line = await self._lines.receive()
        if line is None:
            if self.stdout_closed.is_set():
                # stdout closes as the process exits: give it a moment to be reaped.
                with trio.move_on_after(1.0):
                    await self.process.wait()
            code = self.returncode()
            if code is not None:
                raise TargetError(
                    f"the target exited with status {code} before printing its contact URI"
                    + self.stderr_note()
                )
            if self.stdout_closed.is_set():
                raise TargetError("the target closed stdout without printing its contact URI")
            raise TargetError(
                f"the target printed no contact URI within {seconds:g} s" + self.stderr_note()
            )
        text = line.decode("utf-8", "replace").strip()
        try:
            contact = Contact.from_uri(text)
        except ContactError as exc:
            raise TargetError(
                f"the first stdout line is not a contact URI: {printable(text)!r} ({exc})"
            ) from None
        if contact.address.transport != "udp":
            raise TargetError(f"the contact URI is not a udp address: {printable(text)!r}")
        return contact

    async def _read_stdout(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        buffer = bytearray()
        try:
            while True:
                try:
                    chunk = await stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    chunk = b""
                if not chunk:
                    break
                buffer += chunk
                while (end := buffer.find(b"\n")) >= 0:
                    self._push(bytes(buffer[:end]))
                    del buffer[: end + 1]
                if len(buffer) > MAX_LINE:
                    self._push(bytes(buffer[:MAX_LINE]))
                    buffer.clear()
            if buffer:
                self._push(bytes(buffer))
        finally:
            self.stdout_closed.set()
            self._lines_send.close()

    def _push(self, line: bytes) -> None:
        # Nobody reads when the queue is full: answers are awaited right after a command.
        with contextlib.suppress(trio.WouldBlock):
            self._lines_send.send_nowait(line)

    async def _read_stderr(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not chunk:
                return
            self._stderr.append(bytes(chunk))
            self._stderr_bytes += len(chunk)
            while self._stderr_bytes - len(self._stderr[0]) >= STDERR_TAIL:
                self._stderr_bytes -= len(self._stderr.popleft())

    def stderr_tail(self) -> str:
        return b"".join(self._stderr)[-STDERR_TAIL:].decode("utf-8", "replace")

    def stderr_note(self) -> str:
        """``; stderr: <last line>`` for a failure reason, or empty."""
        lines = [line for line in self.stderr_tail().splitlines() if line.strip()]
        return f"; stderr: {printable(lines[-1])}" if lines else ""

    def returncode(self) -> int | None:
        return self.process.poll()

    async def control(self, command: str, expect: str, seconds: float) -> str | None:
        """Send one stdin control line; the first answer line starting with ``expect``.

        Lines starting with ``error`` also end the wait (returned as is); None
        on timeout or when the target is gone.
        """
        stdin = self.process.stdin
        if stdin is None or self.returncode() is not None:
            return None
        try:
            await stdin.send_all(command.encode() + b"\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return None
        with trio.move_on_after(seconds):
            while True:
                try:
                    line = (await self._lines.receive()).decode("utf-8", "replace").strip()
                except trio.EndOfChannel:
                    return None
                if line.startswith((expect, "error")):
                    return line
        return None

    async def stop(self) -> None:
        """SIGTERM the target's process group, SIGKILL it after :data:`STOP_GRACE`."""
        with trio.CancelScope(shield=True):
            if self.process.poll() is None:
                self._signal(signal.SIGTERM)
                with trio.move_on_after(STOP_GRACE):
                    await self.process.wait()
            if self.process.poll() is None:
                self._signal(signal.SIGKILL)
                with trio.move_on_after(STOP_GRACE):
                    await self.process.wait()
            # The group may hold children the shell started; they go too.
            self._signal(signal.SIGKILL)
            for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
                if stream is not None:
                    await stream.aclose()

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)
