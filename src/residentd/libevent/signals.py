"""Signal catching for event bases: one process-wide handler per signal, a self-pipe per base.

The loop's ``add_signal_handler`` is not enough for libevent's semantics: uvloop listens for
signals only while its loop runs, so a signal that arrives before ``dispatch()`` or between two
``loop(EVLOOP_ONCE)`` rounds (the way PHP daemons loop) was lost. As libevent's evsignal does, a
base here catches signals itself. ``signal.signal`` installs a Python handler that Python runs in
the main thread at the next bytecode, whether the loop is running or not; it records the signal
in each listening base's ``SignalPipe`` and writes a byte to that base's self-pipe, a socketpair
the loop watches like any descriptor. A signal caught while nobody loops waits in the pipe and
fires its events in the next round.

A loop asleep in ``epoll_wait`` is woken to run the handler by the interrupted system call
(asyncio's selector runs the handlers and polls again) or, while uvloop runs, by uvloop's own
``signal.set_wakeup_fd`` descriptor. The base does not set the wakeup descriptor itself: uvloop
saves and restores it around every run, and would restore one the base had closed meanwhile.

The handler that was in place before a base listened is put back when no base listens any more.
"""

from __future__ import annotations

import contextlib
import signal
import socket
from collections import deque
from collections.abc import Callable
from types import FrameType
from typing import Any

# Per signal: the pipes listening, and the handler to put back when the last one stops.
_listeners: dict[int, list[SignalPipe]] = {}
_previous: dict[int, Any] = {}


def _handler(signum: int, frame: FrameType | None) -> None:
    for pipe in tuple(_listeners.get(signum, ())):
        pipe.caught(signum)


class SignalPipe:
    """The signals caught for one base and not yet delivered, and the pipe that wakes it."""

    __slots__ = ("__weakref__", "_queue", "_reader", "_writer", "signals")

    def __init__(self) -> None:
        self._reader, self._writer = _socketpair()
        self._queue: deque[int] = deque()
        self.signals: set[int] = set()

    @property
    def fileno(self) -> int:
        """The descriptor the loop watches: readable when caught signals wait."""
        return self._reader.fileno()

    def listen(self, signum: int) -> None:
        """Catch ``signum`` for this pipe (from the main thread, as ``signal.signal`` wants)."""
        listeners = _listeners.get(signum)
        if listeners is None:
            # Registered before the handler goes in, so a delivery at once finds this pipe.
            _listeners[signum] = [self]
            try:
                _previous[signum] = signal.signal(signum, _handler)
            except BaseException:
                del _listeners[signum]
                raise
        else:
            listeners.append(self)
        self.signals.add(signum)

    def unlisten(self, signum: int) -> None:
        """Stop catching ``signum``; the last pipe to stop puts the previous handler back."""
        self.signals.discard(signum)
        listeners = _listeners[signum]
        listeners.remove(self)
        if not listeners:
            del _listeners[signum]
            previous = _previous.pop(signum)
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)

    def caught(self, signum: int) -> None:
        """Record one delivery and wake the loop (called by the signal handler)."""
        self._queue.append(signum)
        with contextlib.suppress(OSError):  # Full: a wake-up is waiting already.
            self._writer.send(b"\0")

    def deliver(self, fire: Callable[[int], object]) -> None:
        """Empty the pipe and call ``fire(signum)`` for each signal caught, in order."""
        while True:
            try:
                if not self._reader.recv(4096):
                    break
            except OSError:
                break
        queue = self._queue
        while queue:
            fire(queue.popleft())

    def reopen(self) -> None:
        """A new socketpair in place of one shared with the parent after ``fork()`` (signals
        caught and not yet delivered stay queued)."""
        self._reader.close()
        self._writer.close()
        self._reader, self._writer = _socketpair()
        if self._queue:
            self._writer.send(b"\0")

    def close(self) -> None:
        """Stop catching every signal and close the pipe; undelivered signals are dropped."""
        for signum in tuple(self.signals):
            self.unlisten(signum)
        self._reader.close()
        self._writer.close()


def _socketpair() -> tuple[socket.socket, socket.socket]:
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    return reader, writer
