"""``EventBase``: libevent's event base, on top of an asyncio (or uvloop) event loop.

An event base does not poll anything itself. Each pending event is registered with the loop:
an fd it reads or writes with ``add_reader``/``add_writer``, a timeout with ``call_at``. Signals
are caught by the base itself (``signals.SignalPipe``): the loop watches the base's self-pipe, so
a signal that arrives while the loop is not running is delivered in the next round. libevent
lets several events wait on one fd (or one signal) while the loop takes one callback per fd, so
the base keeps one ``_Watch`` per fd and direction, or per signal: the loop (or the signal pipe)
calls the watch, and the watch calls its events in the order they were added. The watch leaves
the loop when its last event is deleted, so a base holds nothing for events that are not
pending.

Events fire whenever their loop runs. ``dispatch()`` and ``loop(flags)`` are for a base that owns
its loop: they run it until the base has no pending events, ``loopexit``, ``loopbreak``, or, with
``EVLOOP_ONCE``/``EVLOOP_NONBLOCK``, one round. A base made while a loop is running uses that
loop; ``await loop_async(flags)`` then waits for the same conditions while other asyncio code
keeps running, which is how libevent-style and asyncio-style code share one daemon.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from residentd.libevent import fork
from residentd.libevent.errors import UnwatchableFileError, unwatchable_kind
from residentd.libevent.flags import (
    EV_READ,
    EV_SIGNAL,
    EV_WRITE,
    EVLOOP_NO_EXIT_ON_EMPTY,
    EVLOOP_NONBLOCK,
    EVLOOP_ONCE,
    describe,
)
from residentd.libevent.signals import SignalPipe
from residentd.loop import loop_name, new_event_loop

if TYPE_CHECKING:
    from residentd.libevent.event import Event


class _Watch:
    """The events of one base that wait on one fd in one direction, or on one signal."""

    __slots__ = ("__weakref__", "events", "what")

    def __init__(self, what: int) -> None:
        self.what = what
        self.events: list[Event] = []

    def fire(self) -> None:
        events = self.events
        what = self.what
        if len(events) == 1:
            events[0]._activate(what)
            return
        for event in tuple(events):
            # An earlier callback may have deleted a later event.
            if event._registered & what:
                event._activate(what)


class EventBase:
    __slots__ = (
        "_activity_wakes",
        "_added",
        "_closed",
        "_empty_check",
        "_exit_due",
        "_exit_handle",
        "_exit_on_empty",
        "_exit_when",
        "_got_break",
        "_got_exit",
        "_loop",
        "_owns_loop",
        "_signal_pipe",
        "_waiter",
        "_watches",
    )

    def __init__(
        self, loop: asyncio.AbstractEventLoop | None = None, *, kind: str = "auto"
    ) -> None:
        """Use ``loop``, else the running loop, else a new loop of ``kind`` that the base owns
        (``"auto"``, ``"uvloop"`` or ``"asyncio"``, as in ``residentd.loop``)."""
        self._owns_loop = False
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = new_event_loop(kind)
                self._owns_loop = True
        self._loop = loop
        self._added: set[Event] = set()
        self._watches: dict[int, dict[int, _Watch]] = {EV_READ: {}, EV_WRITE: {}, EV_SIGNAL: {}}
        self._waiter: asyncio.Future[int] | None = None
        self._signal_pipe: SignalPipe | None = None
        # uvloop gives a plain Handle, without when(), for a call_at that is due now.
        self._exit_handle: asyncio.Handle | None = None
        self._exit_when = 0.0
        self._exit_due = False
        self._exit_on_empty = True
        self._activity_wakes = False
        self._empty_check = False
        self._got_exit = False
        self._got_break = False
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._added)} events"
        return f"<EventBase {state} on {type(self._loop).__name__}>"

    def __enter__(self) -> EventBase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.free()

    @property
    def event_loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop the events run on (for mixing in asyncio code)."""
        return self._loop

    def num_events(self) -> int:
        """How many events are pending (``event_base_get_num_events``, ``COUNT_ADDED``)."""
        return len(self._added)

    # Running.

    def dispatch(self) -> int:
        """Run the loop until no event is pending, or loopexit/loopbreak; see ``loop``."""
        return self.loop(0)

    def loop(self, flags: int = 0) -> int:
        """Run this base's loop (which must not be running already) as ``loop_async`` says."""
        if self._loop.is_running():
            raise RuntimeError(
                "the event loop is already running: use 'await base.loop_async()' inside it"
            )
        return self._loop.run_until_complete(self.loop_async(flags))

    async def dispatch_async(self) -> int:
        """``dispatch`` for a base whose loop is running: wait instead of running it."""
        return await self.loop_async(0)

    async def loop_async(self, flags: int = 0) -> int:
        """Wait, on the running loop, until the base has no pending events (return 1), or
        loopexit or loopbreak (return 0).

        ``EVLOOP_ONCE``: return after the first round of callbacks in which an event fired.
        ``EVLOOP_NONBLOCK``: return after one round, firing only what was ready.
        ``EVLOOP_NO_EXIT_ON_EMPTY``: keep waiting when no event is pending.
        """
        self._check_open()
        if asyncio.get_running_loop() is not self._loop:
            raise RuntimeError("this EventBase belongs to another event loop")
        if self._waiter is not None:
            raise RuntimeError("this EventBase is already dispatching")
        self._got_exit = self._got_break = False
        self._exit_on_empty = not flags & EVLOOP_NO_EXIT_ON_EMPTY
        if self._exit_due:
            # A loopexit timer fired while nobody was dispatching: honour it after one round.
            self._exit_due = False
            self._got_exit = True
            flags |= EVLOOP_NONBLOCK
        elif self._exit_on_empty and not self._added:
            return 1
        waiter = self._waiter = self._loop.create_future()
        if flags & EVLOOP_NONBLOCK:
            # One callback later the loop has polled once and run what was ready.
            self._loop.call_soon(self._loop.call_soon, self._wake, 0)
        elif flags & EVLOOP_ONCE:
            self._activity_wakes = True
        try:
            return await waiter
        finally:
            self._waiter = None
            self._activity_wakes = False

    def loopexit(self, delay: float | None = None) -> None:
        """Make the loop return after ``delay`` seconds (None: once the callbacks that are due
        now have run). A later call does not move an exit that is already scheduled earlier."""
        self._check_open()
        when = self._loop.time() + max(delay or 0.0, 0.0)
        handle = self._exit_handle
        if handle is not None:
            if self._exit_when <= when:
                return
            handle.cancel()
        self._exit_when = when
        self._exit_handle = self._loop.call_at(when, self._on_exit)

    def loopbreak(self) -> None:
        """Make the loop return at the end of the current round of callbacks."""
        self._got_break = True
        self._wake(0)

    def got_exit(self) -> bool:
        """Whether the last ``loop`` returned because of ``loopexit``."""
        return self._got_exit

    def got_break(self) -> bool:
        """Whether the last ``loop`` returned because of ``loopbreak``."""
        return self._got_break

    def reinit(self) -> None:
        """Give the base a new loop and move every pending event to it (``event_reinit``).

        For the child after ``fork()``: the loop it inherited shares its epoll instance with
        the parent's, so using it, or closing it plainly, changes what the parent's loop sees.
        The new loop is of the same kind; every pending event stays pending, its timeout at the
        same deadline; the base catches signals through a new self-pipe of its own. The old loop
        is closed without touching the parent's registrations (``fork.abandon``). Only for a
        base that made its own loop (``EventBase(kind=...)``) and is not dispatching.
        """
        self._check_open()
        if not self._owns_loop:
            raise RuntimeError(
                "reinit() is for a base that made its own loop (EventBase(kind=...)); a base on"
                " a loop it was given cannot replace it: fork before making the loop"
            )
        if self._waiter is not None or self._loop.is_running():
            raise RuntimeError("reinit() cannot run while the base is dispatching")
        old = self._loop
        loop = self._loop = new_event_loop(loop_name(old))
        for what in (EV_READ, EV_WRITE):
            for fd, watch in self._watches[what].items():
                self._register(what, fd, watch.fire)
        pipe = self._signal_pipe
        if pipe is not None:
            pipe.reopen()
            loop.add_reader(pipe.fileno, self._deliver_signals)
        for event in self._added:
            event._move_timer()
        if self._exit_handle is not None:
            self._exit_handle.cancel()
            self._exit_handle = loop.call_at(self._exit_when, self._on_exit)
        fork.abandon(old)

    def free(self) -> None:
        """Delete every pending event, drop a scheduled exit, and close the loop if the base
        made it (``event_base_free``). Events are not freed: their owners still hold them."""
        if self._closed:
            return
        for event in tuple(self._added):
            event.delete()
        if self._exit_handle is not None:
            self._exit_handle.cancel()
            self._exit_handle = None
        self._wake(1)
        self._closed = True
        if self._owns_loop and not self._loop.is_running():
            self._loop.close()

    # For Event: loop registrations and pending bookkeeping.

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this EventBase was freed")

    def _watch(self, what: int, key: int, event: Event) -> None:
        watches = self._watches[what]
        watch = watches.get(key)
        if watch is None:
            watch = watches[key] = _Watch(what)
            try:
                self._register(what, key, watch.fire)
            except BaseException:
                del watches[key]
                raise
        watch.events.append(event)

    def _unwatch(self, what: int, key: int, event: Event) -> None:
        watches = self._watches[what]
        watch = watches[key]
        watch.events.remove(event)
        if not watch.events:
            del watches[key]
            self._unregister(what, key)

    def _register(self, what: int, key: int, callback: Callable[[], None]) -> None:
        try:
            if what == EV_READ:
                self._loop.add_reader(key, callback)
            elif what == EV_WRITE:
                self._loop.add_writer(key, callback)
            else:
                self._listen(key)
        except PermissionError as exc:
            kind = unwatchable_kind(key) if what != EV_SIGNAL else None
            if kind is None:
                raise
            raise UnwatchableFileError(key, describe(what), kind) from exc

    def _unregister(self, what: int, key: int) -> None:
        if what == EV_READ:
            self._loop.remove_reader(key)
        elif what == EV_WRITE:
            self._loop.remove_writer(key)
        else:
            self._unlisten(key)

    # Signals: the base's own self-pipe, watched while any signal event is pending.

    def _listen(self, signum: int) -> None:
        pipe = self._signal_pipe
        if pipe is None:
            pipe = self._signal_pipe = SignalPipe()
            self._loop.add_reader(pipe.fileno, self._deliver_signals)
        try:
            pipe.listen(signum)
        finally:
            if not pipe.signals:
                self._close_signal_pipe()

    def _unlisten(self, signum: int) -> None:
        pipe = self._signal_pipe
        assert pipe is not None, "a watched signal has a pipe"
        pipe.unlisten(signum)
        if not pipe.signals:
            self._close_signal_pipe()

    def _close_signal_pipe(self) -> None:
        pipe = self._signal_pipe
        if pipe is not None:
            self._signal_pipe = None
            self._loop.remove_reader(pipe.fileno)
            pipe.close()

    def _deliver_signals(self) -> None:
        pipe = self._signal_pipe
        if pipe is not None:
            pipe.deliver(self._fire_signal)

    def _fire_signal(self, signum: int) -> None:
        watch = self._watches[EV_SIGNAL].get(signum)
        if watch is not None:  # Else its events were deleted after it was caught.
            watch.fire()

    def _pending_changed(self) -> None:
        # An event left the pending set: a loop that exits on empty may have to return.
        if not self._added and self._waiter is not None and not self._empty_check:
            self._empty_check = True
            self._loop.call_soon(self._check_empty)

    def _check_empty(self) -> None:
        self._empty_check = False
        if not self._added and self._exit_on_empty:
            self._wake(1)

    def _fired(self) -> None:
        if self._activity_wakes:
            self._wake(0)

    def _report(self, exc: Exception, event: Event) -> None:
        context: dict[str, Any] = {
            "message": f"Exception in the callback of {event!r}",
            "exception": exc,
        }
        self._loop.call_exception_handler(context)

    def _on_exit(self) -> None:
        self._exit_handle = None
        if self._waiter is None:
            self._exit_due = True
        else:
            self._got_exit = True
            self._wake(0)

    def _wake(self, code: int) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(code)
