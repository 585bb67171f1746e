"""Detaching into the background, with the starting process reporting whether the start worked.

:func:`daemonize` does the classic double fork: fork, ``setsid`` in the child to leave the
terminal's session, fork again so the daemon is not a session leader and can never acquire a
terminal, then ``chdir``, ``umask``, stdio pointed at ``/dev/null`` (or appended to a file), and
every other descriptor it inherited closed: a pipe or socket of the shell or the program that
started it would otherwise stay open for as long as the daemon lives (a caller reading the pipe
would never see its end). So a daemon opens its files in its start hooks, not at import.

The process that called it does not return. It waits on a pipe whose other end the daemon
holds, as a :class:`ReadyChannel`, and exits 0 once the daemon calls
:meth:`ReadyChannel.ready` (after it has bound its sockets, say), or exits 1 with the reason on
stderr when the daemon calls :meth:`ReadyChannel.failed`, dies before either (the pipe closes
with nothing said), or stays silent past the timeout. So a shell script or an init system that
runs ``residentd run --daemon`` learns from the exit code whether the daemon is serving.

Call it before anything that a fork does not carry over: before the event loop exists, before
logging's writer thread starts, and before other threads.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from typing import NoReturn

__all__ = ["ReadyChannel", "daemonize"]

# What the daemon says on the pipe: "pid N\n" first, then "ready\n", or "failed SIZE\n" and
# SIZE bytes of UTF-8 reason.


class ReadyChannel:
    """The daemon's end of the pipe to the process that started it.

    Whichever of :meth:`ready` and :meth:`failed` is called first is told; the pipe is closed
    then, and later calls do nothing. A channel made without a descriptor (for a daemon that
    runs in the foreground) does nothing at all.
    """

    __slots__ = ("_fd",)

    def __init__(self, fd: int | None = None) -> None:
        self._fd = fd

    @property
    def pending(self) -> bool:
        """True until the outcome has been told (always False without a descriptor)."""
        return self._fd is not None

    def ready(self) -> None:
        """Tell the starting process that the daemon is serving: it exits 0."""
        self._finish(b"ready\n")

    def failed(self, reason: str) -> None:
        """Tell the starting process why the daemon cannot start: it prints that, exits 1."""
        data = reason.encode("utf-8", "replace")
        self._finish(b"failed %d\n%s" % (len(data), data))

    def _announce(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                _write_all(self._fd, b"pid %d\n" % os.getpid())

    def _finish(self, message: bytes) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            _write_all(fd, message)
        except OSError:
            pass  # the starting process is gone: nobody is left to tell
        finally:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def daemonize(
    *,
    workdir: str = "/",
    umask: int = 0o022,
    stdio_to: str | None = None,
    timeout: float | None = 30.0,
) -> ReadyChannel:
    """Detach into a background daemon; only the daemon returns from this call.

    ``stdio_to`` is a file that stdout and stderr are appended to (created if missing);
    without it they go to ``/dev/null``, like stdin always does. ``timeout`` is how long the
    starting process waits for the outcome (None: forever). ``workdir`` and ``stdio_to`` are
    opened before forking, so a bad path raises :class:`OSError` here, in the foreground.
    """
    opened: list[int] = []
    try:
        opened.append(os.open(workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        opened.append(os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC))
        if stdio_to is not None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            opened.append(os.open(stdio_to, flags, 0o640))
    except BaseException:
        for fd in opened:
            os.close(fd)
        raise
    workdir_fd, null_fd, out_fd = opened[0], opened[1], opened[-1]
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()  # or the children write out the same buffered text again

    read_fd, write_fd = os.pipe()
    first_child = os.fork()
    if first_child > 0:
        os.close(write_fd)
        _wait_for_daemon(read_fd, first_child, timeout)
    os.close(read_fd)
    channel = ReadyChannel(write_fd)
    try:
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        channel._announce()
        os.fchdir(workdir_fd)
        os.umask(umask)
        os.dup2(null_fd, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        _close_inherited(keep=write_fd)
    except BaseException as exc:
        channel.failed(f"cannot daemonize: {exc}")
        os._exit(1)
    return channel


def _close_inherited(keep: int) -> None:
    """Close every descriptor above stderr but ``keep`` (close_range(2) where there is one)."""
    os.closerange(3, keep)
    os.closerange(keep + 1, _max_fd())


def _max_fd() -> int:
    try:
        limit = os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        limit = -1
    return limit if limit > 0 else 65536


def _wait_for_daemon(fd: int, first_child: int, timeout: float | None) -> NoReturn:
    """In the starting process: wait for the daemon's outcome, report it and exit."""
    status, message = 1, "interrupted while waiting for the daemon to start"
    try:
        os.waitpid(first_child, 0)
        status, message = _await_outcome(fd, timeout)
    finally:
        if message:
            with contextlib.suppress(Exception):
                sys.stderr.write(message + "\n")
                sys.stderr.flush()
        os._exit(status)


def _await_outcome(fd: int, timeout: float | None) -> tuple[int, str]:
    """Read the daemon's messages until it says ready (0, "") or failed (1, reason)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    buffer = b""
    while True:
        pid, outcome = _parse(buffer)
        if outcome is not None:
            return outcome
        daemon = "daemon" if pid is None else f"daemon (pid {pid})"
        if deadline is None:
            wait_ms = None
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                still = "" if pid is None else f"; pid {pid} is still running"
                return 1, f"daemon did not become ready within {timeout:g}s{still}"
            wait_ms = max(1, round(remaining * 1000))
        if not poller.poll(wait_ms):
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return 1, f"{daemon} exited before it was ready"
        buffer += chunk


def _parse(buffer: bytes) -> tuple[int | None, tuple[int, str] | None]:
    """The daemon's pid, if said yet, and its outcome, if complete yet."""
    pid = None
    rest = buffer
    while b"\n" in rest:
        line, _, rest = rest.partition(b"\n")
        word, _, arg = line.partition(b" ")
        if word == b"pid" and arg.isdigit():
            pid = int(arg)
        elif word == b"ready":
            return pid, (0, "")
        elif word == b"failed" and arg.isdigit():
            size = int(arg)
            if len(rest) < size:
                break
            return pid, (1, f"daemon failed to start: {rest[:size].decode('utf-8', 'replace')}")
        else:
            return pid, (1, f"daemon sent a garbled message: {line[:80]!r}")
    return pid, None
