"""``Event``: libevent's event on a file descriptor, a signal, or nothing but a timeout.

An event is made once with what it waits for (``EV_READ``, ``EV_WRITE``, ``EV_SIGNAL``, maybe
``EV_PERSIST``) and a callback ``callback(fd, what, arg)``, then added and deleted any number of
times. ``add(timeout)`` makes it pending: its fd or signal is watched through the base and, with a
timeout, a loop timer is set. When it fires, the callback is told why in ``what``: the flag that
was ready, or ``EV_TIMEOUT``. A non-persistent event is no longer pending by then (add it again
to wait again); a persistent one stays pending and its timeout starts again, as in libevent: a
period after the deadline that fired when it timed out (so a periodic timer keeps its cadence
however late its callbacks run), from now after I/O. Adding a pending event with a timeout
resets the timeout; ``delete`` stops all waiting and drops every handle the
loop held for it, so an event nobody references can be collected.

Timeouts are lazy: moving a deadline later (a persistent event that fired, a re-add) only
records it; the loop timer, when it goes off early, sets itself again for the new deadline. So a
busy persistent event with a timeout costs no timer churn per callback.

``Timer`` and ``SignalEvent`` are the shorthands ``evtimer_new`` and ``evsignal_new``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

from residentd.libevent.flags import (
    EV_PERSIST,
    EV_READ,
    EV_SIGNAL,
    EV_TIMEOUT,
    EV_WRITE,
    describe,
)

if TYPE_CHECKING:
    from residentd.libevent.base import EventBase

EventCallback = Callable[[int, int, Any], object]
"""``callback(fd, what, arg)``: ``fd`` is the signal number for a signal event, -1 for a timer."""


class HasFileno(Protocol):
    def fileno(self) -> int: ...


_WATCHED: Final = (EV_READ, EV_WRITE, EV_SIGNAL)
_ALL_FLAGS: Final = EV_TIMEOUT | EV_READ | EV_WRITE | EV_SIGNAL | EV_PERSIST
_ALL_PENDING: Final = EV_TIMEOUT | EV_READ | EV_WRITE | EV_SIGNAL
# A loop timer that goes off this close to its deadline counts as on time (uvloop keeps
# milliseconds, and re-arming for the last fraction of one would spin).
_EARLY: Final = 0.001


def _freed(fd: int, what: int, arg: Any) -> None:
    raise RuntimeError("the event was freed")


class Event:
    __slots__ = (
        "__weakref__",
        "_arg",
        "_base",
        "_callback",
        "_deadline",
        "_events",
        "_fd",
        "_pending",
        "_registered",
        "_timeout",
        "_timer",
        "_timer_when",
    )

    def __init__(
        self,
        base: EventBase,
        fd: int | HasFileno,
        events: int,
        callback: EventCallback,
        arg: Any = None,
    ) -> None:
        """``event_new``: ``fd`` is a descriptor or an object with ``fileno()`` for
        ``EV_READ``/``EV_WRITE``, a signal number for ``EV_SIGNAL``, and -1 for a timer."""
        fileno = fd if isinstance(fd, int) else fd.fileno()
        if events & ~_ALL_FLAGS:
            raise ValueError(f"unknown event flags {events & ~_ALL_FLAGS:#x}")
        if events & EV_SIGNAL and events & (EV_READ | EV_WRITE):
            raise ValueError("EV_SIGNAL cannot be combined with EV_READ or EV_WRITE")
        if events & (EV_READ | EV_WRITE | EV_SIGNAL) and fileno < 0:
            raise ValueError(f"{describe(events)} needs a file descriptor or signal, not {fd!r}")
        self._base: EventBase | None = base
        self._fd = fileno
        self._events = events
        self._callback = callback
        self._arg = arg
        self._pending = False
        self._registered = 0
        self._timeout: float | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0

    def __repr__(self) -> str:
        pending = describe(self.pending()) if self._pending else "not pending"
        return f"<{type(self).__name__} fd={self._fd} {describe(self._events)} {pending}>"

    @property
    def fd(self) -> int:
        return self._fd

    @property
    def events(self) -> int:
        return self._events

    @property
    def callback(self) -> EventCallback:
        return self._callback

    @property
    def arg(self) -> Any:
        return self._arg

    @property
    def base(self) -> EventBase:
        return self._live_base()

    @property
    def timeout(self) -> float | None:
        """The timeout in seconds given to ``add`` (None: none), restarted by a persistent
        event each time it fires."""
        return self._timeout

    @property
    def deadline(self) -> float | None:
        """When (``loop.time()``) the timeout fires, if the event is pending with one."""
        return self._deadline if self._timer is not None else None

    def add(self, timeout: float | None = None) -> None:
        """Make the event pending (``event_add``), with a timeout in seconds or None.

        Adding a pending event sets a new timeout; ``None`` then keeps the one it has.
        """
        base = self._live_base()
        base._check_open()
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be at least 0 seconds, not {timeout!r}")
        if not self._pending:
            self._watch(base)
            self._pending = True
            self._timeout = timeout
            base._added.add(self)
        elif timeout is not None:
            self._timeout = timeout
        if timeout is not None:
            self._schedule(base._loop.time() + timeout)

    def delete(self) -> None:
        """Stop waiting (``event_del``); nothing happens if the event is not pending."""
        if not self._pending:
            return
        base = self._live_base()
        self._pending = False
        self._unwatch(base)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        base._added.discard(self)
        base._pending_changed()

    def pending(self, what: int = _ALL_PENDING) -> int:
        """Which of ``what`` the event waits for now (``event_pending``); 0 if none."""
        if not self._pending:
            return 0
        flags = self._registered | (EV_TIMEOUT if self._timer is not None else 0)
        return flags & what

    def free(self) -> None:
        """Delete the event and drop its callback, argument and base (``event_free``)."""
        self.delete()
        self._base = None
        self._callback = _freed
        self._arg = None

    # Internals.

    def _live_base(self) -> EventBase:
        if self._base is None:
            raise RuntimeError("the event was freed")
        return self._base

    def _watch(self, base: EventBase) -> None:
        try:
            for what in _WATCHED:
                if self._events & what:
                    base._watch(what, self._fd, self)
                    self._registered |= what
        except BaseException:
            self._unwatch(base)
            raise

    def _unwatch(self, base: EventBase) -> None:
        for what in _WATCHED:
            if self._registered & what:
                base._unwatch(what, self._fd, self)
        self._registered = 0

    def _schedule(self, deadline: float) -> None:
        self._deadline = deadline
        timer = self._timer
        if timer is not None:
            if self._timer_when <= deadline:
                return  # It goes off first and sets itself again.
            timer.cancel()
        self._arm()

    def _move_timer(self) -> None:
        # The base has a new loop (``EventBase.reinit``): set the timer again on it.
        if self._timer is not None:
            self._timer.cancel()
            self._arm()

    def _arm(self) -> None:
        self._timer_when = self._deadline
        self._timer = self._live_base()._loop.call_at(self._deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        base = self._base
        assert base is not None, "a pending event has a base"
        if base._loop.time() + _EARLY < self._deadline:
            self._arm()
        else:
            self._activate(EV_TIMEOUT)

    def _next_deadline(self, now: float, what: int) -> float:
        # libevent's event_persist_closure: after a timeout, the next one is due a period after
        # the deadline that fired, so a periodic timer does not drift by its callbacks' lateness;
        # unless that is past already (the loop was held up), then a period from now. After
        # I/O, the timeout starts again now.
        timeout = self._timeout
        assert timeout is not None
        if what == EV_TIMEOUT:
            anchored = self._deadline + timeout
            if anchored >= now:
                return anchored
        return now + timeout

    def _activate(self, what: int) -> None:
        # Called by the base's watches and by _on_timer, only while the event is pending.
        base = self._base
        assert base is not None, "a pending event has a base"
        if not self._events & EV_PERSIST:
            self.delete()
        elif self._timeout is not None:
            self._schedule(self._next_deadline(base._loop.time(), what))
        try:
            self._callback(self._fd, what, self._arg)
        except Exception as exc:
            base._report(exc, self)
        base._fired()


class Timer(Event):
    """A pure timer (``evtimer_new``): ``add(timeout)`` fires ``callback(-1, EV_TIMEOUT, arg)``
    once, or every ``timeout`` seconds with ``persist=True``."""

    __slots__ = ()

    def __init__(
        self, base: EventBase, callback: EventCallback, arg: Any = None, *, persist: bool = False
    ) -> None:
        super().__init__(base, -1, EV_PERSIST if persist else 0, callback, arg)


class SignalEvent(Event):
    """A signal event (``evsignal_new``): ``callback(signum, EV_SIGNAL, arg)`` on each delivery.

    Persistent unless ``persist=False``, as in libevent. Any number of events of one base may
    wait on one signal, and each delivery fires them all. While any of them is pending the base
    holds the process's handler for the signal (``signal.signal``; see ``signals``), so a
    delivery while the loop is not running fires them in its next round; deleting the last one
    puts back the handler that was there before. Only in the main thread, as ``signal.signal``.
    """

    __slots__ = ()

    def __init__(
        self,
        base: EventBase,
        signum: int,
        callback: EventCallback,
        arg: Any = None,
        *,
        persist: bool = True,
    ) -> None:
        super().__init__(base, signum, EV_SIGNAL | (EV_PERSIST if persist else 0), callback, arg)
