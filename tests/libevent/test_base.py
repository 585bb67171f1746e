"""EventBase: dispatch and loop flags, loopexit and loopbreak, an owned loop, and ownership:
events added and deleted leave nothing registered and nothing alive."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from residentd import loop as loops
from residentd.libevent import (
    EV_PERSIST,
    EV_READ,
    EV_WRITE,
    EVLOOP_NO_EXIT_ON_EMPTY,
    EVLOOP_NONBLOCK,
    EVLOOP_ONCE,
    Event,
    EventBase,
    SignalEvent,
    Timer,
)

from .helpers import settle

Run = Callable[[Coroutine[Any, Any, None]], None]


def count(counter: list[int]) -> Callable[[int, int, Any], None]:
    def callback(fd: int, what: int, arg: Any) -> None:
        counter[0] += 1

    return callback


def test_loop_returns_1_when_no_event_is_left(run: Run) -> None:
    async def main() -> None:
        base = EventBase()
        assert await base.dispatch_async() == 1
        fired = [0]
        Timer(base, count(fired)).add(0.01)
        Timer(base, count(fired)).add(0.03)
        assert await base.dispatch_async() == 1
        assert fired == [2]
        assert not base.got_exit()
        assert not base.got_break()
        base.free()

    run(main())


def test_loopexit_after_a_delay(run: Run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        base = EventBase()
        ticks = [0]
        ticker = Timer(base, count(ticks), persist=True)
        ticker.add(0.01)
        start = loop.time()
        base.loopexit(0.1)
        base.loopexit(5)  # A later exit does not move the earlier one.
        assert await base.dispatch_async() == 0
        assert loop.time() - start >= 0.095
        assert base.got_exit()
        assert not base.got_break()
        assert ticks[0] >= 2
        assert ticker.pending()  # Exiting the loop deletes nothing.
        base.free()

    run(main())


def test_loopexit_now_then_later_keeps_the_exit_now(loop_kind: str) -> None:
    # uvloop schedules a call_at that is due now as a plain Handle, which has no when().
    base = EventBase(kind=loop_kind)
    try:
        Timer(base, lambda *_: None).add(5)
        base.loopexit()
        base.loopexit(0.5)
        assert base.dispatch() == 0
        assert base.got_exit()
        assert base.num_events() == 1
    finally:
        base.free()


def test_loopbreak_from_a_callback(
    run: Run, socketpair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = socketpair

    async def main() -> None:
        base = EventBase()
        reads = [0]

        def on_read(fd: int, what: int, arg: Any) -> None:
            reads[0] += 1
            a.recv(10)
            base.loopbreak()

        event = Event(base, a, EV_READ | EV_PERSIST, on_read)
        event.add()
        Timer(base, lambda *_: b.send(b"x")).add(0.01)
        assert await base.loop_async() == 0
        assert base.got_break()
        assert not base.got_exit()
        assert reads == [1]
        assert event.pending() == EV_READ
        # The flags describe the last loop only.
        assert await base.loop_async(EVLOOP_NONBLOCK) == 0
        assert not base.got_break()
        base.free()

    run(main())


def test_loop_once_and_nonblock(run: Run, socketpair: tuple[socket.socket, socket.socket]) -> None:
    a, b = socketpair

    async def main() -> None:
        base = EventBase()
        reads = [0]

        def on_read(fd: int, what: int, arg: Any) -> None:
            a.recv(10)
            reads[0] += 1

        Event(base, a, EV_READ | EV_PERSIST, on_read).add()
        far = Timer(base, count([0]))
        far.add(60)
        # Nothing ready: NONBLOCK returns at once; ONCE waits for the first event to fire.
        assert await base.loop_async(EVLOOP_NONBLOCK) == 0
        assert reads == [0]
        near = [0]
        Timer(base, count(near)).add(0.02)
        assert await base.loop_async(EVLOOP_ONCE) == 0
        assert near == [1]
        b.send(b"x")
        assert await base.loop_async(EVLOOP_ONCE) == 0
        assert reads == [1]
        b.send(b"y")
        assert await base.loop_async(EVLOOP_NONBLOCK) == 0
        assert reads == [2]
        # Events fire whenever the loop runs, not only inside loop().
        b.send(b"z")
        await asyncio.sleep(0.01)
        assert reads == [3]
        assert far.pending()
        base.free()

    run(main())


def test_no_exit_on_empty_waits_for_loopexit(run: Run) -> None:
    async def main() -> None:
        base = EventBase()
        base.event_loop.call_later(0.02, base.loopexit)
        assert await base.loop_async(EVLOOP_NO_EXIT_ON_EMPTY) == 0
        assert base.got_exit()
        base.free()

    run(main())


def test_loopexit_that_fires_between_loops_ends_the_next_one(run: Run) -> None:
    async def main() -> None:
        base = EventBase()
        Timer(base, count([0])).add(60)
        base.loopexit(0)
        await settle()
        assert await base.loop_async() == 0
        assert base.got_exit()
        base.free()

    run(main())


def test_one_base_loops_at_a_time(run: Run) -> None:
    async def main() -> None:
        base = EventBase()
        Timer(base, count([0])).add(60)
        first = asyncio.ensure_future(base.loop_async())
        await settle()
        with pytest.raises(RuntimeError):
            await base.loop_async()
        with pytest.raises(RuntimeError):
            base.dispatch()  # The loop is running: dispatch() cannot run it.
        base.loopbreak()
        assert await first == 0
        base.free()

    run(main())


def test_free_deletes_pending_events_and_ends_the_loop(run: Run) -> None:
    async def main() -> None:
        base = EventBase()
        timer = Timer(base, count([0]))
        timer.add(60)
        waiting = asyncio.ensure_future(base.loop_async())
        await settle()
        base.free()
        assert await waiting == 1
        assert timer.pending() == 0
        with pytest.raises(RuntimeError):
            timer.add(1)

    run(main())


def test_a_base_that_owns_its_loop(loop_kind: str) -> None:
    base = EventBase(kind=loop_kind)
    loop = base.event_loop
    assert loops.loop_name(loop) == loop_kind
    a, b = socket.socketpair()
    got: list[bytes] = []
    caught: list[int] = []
    try:
        Event(base, a, EV_READ, lambda *_: got.append(a.recv(10))).add()
        Timer(base, lambda *_: b.send(b"ping")).add(0.01)
        assert base.dispatch() == 1
        assert got == [b"ping"]
        # Signals reach an owned loop while it dispatches.

        def on_signal(signum: int, what: int, arg: Any) -> None:
            caught.append(signum)
            base.loopbreak()

        signal_event = SignalEvent(base, signal.SIGUSR2, on_signal)
        signal_event.add()
        Timer(base, lambda *_: os.kill(os.getpid(), signal.SIGUSR2)).add(0.01)
        assert base.dispatch() == 0
        assert base.got_break()
        assert caught == [signal.SIGUSR2]
        signal_event.delete()
    finally:
        base.free()
        a.close()
        b.close()
    assert loop.is_closed()


def _live_libevent_objects() -> int:
    gc.collect()
    modules = (getattr(type(o), "__module__", None) for o in gc.get_objects())
    return sum(isinstance(name, str) and name.startswith("residentd.libevent") for name in modules)


def test_ten_thousand_events_added_and_deleted_leave_nothing_behind(
    run: Run, loop_kind: str
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        base = EventBase()
        pairs = [socket.socketpair() for _ in range(50)]
        fds = [s.fileno() for pair in pairs for s in pair]
        calls = [0]
        callback = count(calls)
        baseline = _live_libevent_objects()
        refs = []
        events = []
        for i in range(10_000):
            fd = fds[i % len(fds)]
            match i % 5:
                case 0:
                    event = Event(base, fd, EV_READ | EV_PERSIST, callback, i)
                case 1:
                    event = Event(base, fd, EV_WRITE, callback)
                case 2:
                    event = Event(base, fd, EV_READ | EV_WRITE | EV_PERSIST, callback)
                case 3:
                    event = SignalEvent(base, signal.SIGUSR2, callback)
                case _:
                    event = Timer(base, callback, persist=True)
            event.add(30 if i % 2 else None)
            events.append(event)
            refs.append(weakref.ref(event))
        assert base.num_events() == 10_000
        assert _live_libevent_objects() > baseline + 10_000
        for event in events:
            event.delete()
        assert base.num_events() == 0
        del events, event
        # Nothing fires any more, though every fd is readable and writable now.
        for a, b in pairs:
            a.send(b"x")
            b.send(b"x")
        await settle(0.05)
        assert calls == [0]
        # No event, and nothing the base registered for one, is alive.
        assert _live_libevent_objects() == baseline
        assert [ref for ref in refs if ref() is not None] == []
        if loop_kind == "asyncio":  # uvloop's remove_reader does not say what it removed.
            assert not any(loop.remove_reader(fd) or loop.remove_writer(fd) for fd in fds)
        assert not loop.remove_signal_handler(signal.SIGUSR2)
        base.free()
        for a, b in pairs:
            a.close()
            b.close()

    run(main())
