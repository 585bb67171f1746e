"""Writing a snapshot in a forked child while the parent keeps serving (Redis's BGSAVE).

The child has a copy-on-write image of the whole state at the instant of the fork. It writes the
snapshot to a temporary file, fsyncs it, renames it into place and fsyncs the directory, then
leaves with ``os._exit``: it never touches the event loop or the logging queue, and an error
goes back to the parent as text through a pipe. The parent learns of the child's end without
blocking, from a pidfd the loop watches (``os.pidfd_open`` + ``add_reader``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from residentd.state.api import SnapshotFormat, StateMachine
from residentd.state.fsync import replace_durably


def write_snapshot(path: str, machine: StateMachine, fmt: SnapshotFormat) -> int:
    """Write a snapshot of ``machine`` to ``path`` durably and atomically; return its size."""
    return replace_durably(path, lambda file: fmt.write(file, machine.dump))


class ChildJob:
    """One forked child running ``work`` while the loop goes on; ``on_done(error)`` after."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        work: Callable[[], Any],
        on_done: Callable[[str | None, float], None],
    ) -> None:
        self.loop = loop
        self.on_done = on_done
        self.started = time.monotonic()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            _child(read_end, write_end, work)
        os.close(write_end)
        self.pid = pid
        self._pipe = read_end
        self._pidfd = os.pidfd_open(pid)
        loop.add_reader(self._pidfd, self._reap)

    def _reap(self) -> None:
        self.loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        _, status = os.waitpid(self.pid, 0)
        message = b""
        try:
            while chunk := os.read(self._pipe, 65536):
                message += chunk
        finally:
            os.close(self._pipe)
        error: str | None = None
        if os.WIFSIGNALED(status):
            error = f"snapshot child killed by signal {os.WTERMSIG(status)}"
        elif os.waitstatus_to_exitcode(status) != 0:
            error = message.decode("utf-8", "replace") or "snapshot child failed"
        self.on_done(error, time.monotonic() - self.started)

    def kill(self) -> None:
        """Stop the child (a stop of the daemon while it writes) and wait for it."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self._reap()


def _child(read_end: int, write_end: int, work: Callable[[], Any]) -> None:
    code = 0
    try:
        os.close(read_end)
        # The loop's signal handlers would wake the parent's loop: the child takes the defaults.
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(signum, signal.SIG_DFL)
        work()
    except BaseException as exc:
        code = 1
        with contextlib.suppress(BaseException):
            text = exc.strerror if isinstance(exc, OSError) and exc.strerror else None
            os.write(write_end, (text or f"{type(exc).__name__}: {exc}").encode()[:4000])
    finally:
        os._exit(code)
