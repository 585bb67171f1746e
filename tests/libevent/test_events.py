"""Events on descriptors: READ and WRITE, one-shot and persistent, timeouts, pending, delete."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from residentd.libevent import (
    EV_PERSIST,
    EV_READ,
    EV_SIGNAL,
    EV_TIMEOUT,
    EV_WRITE,
    Event,
    EventBase,
)

from .helpers import settle, until, until_len

Run = Callable[[Coroutine[Any, Any, None]], None]
Fired = list[tuple[int, int, Any]]


def recorder(fired: Fired) -> Callable[[int, int, Any], None]:
    return lambda fd, what, arg: fired.append((fd, what, arg))


def test_persistent_read_fires_on_every_arrival(run: Run, channel: tuple[int, int]) -> None:
    read_fd, write_fd = channel

    async def main() -> None:
        base = EventBase()
        got: list[bytes] = []
        event = Event(
            base, read_fd, EV_READ | EV_PERSIST, lambda *_: got.append(os.read(read_fd, 100))
        )
        event.add()
        for n in range(1, 4):
            os.write(write_fd, b"msg%d" % n)
            await until_len(got, n)
        assert got == [b"msg1", b"msg2", b"msg3"]
        assert event.pending() == EV_READ
        event.delete()
        os.write(write_fd, b"late")
        await settle()
        assert len(got) == 3
        base.free()

    run(main())


def test_one_shot_read_fires_once_until_added_again(run: Run, channel: tuple[int, int]) -> None:
    read_fd, write_fd = channel

    async def main() -> None:
        base = EventBase()
        fired: Fired = []
        event = Event(base, read_fd, EV_READ, recorder(fired), "arg")
        event.add()
        os.write(write_fd, b"x")
        await until(lambda: fired)
        await settle()  # The byte is still unread: a persistent event would fire again and again.
        assert fired == [(read_fd, EV_READ, "arg")]
        assert event.pending() == 0
        assert base.num_events() == 0
        event.add()
        await until(lambda: len(fired) == 2)
        base.free()

    run(main())


def test_write_events_one_shot_and_persistent(run: Run, channel: tuple[int, int]) -> None:
    _, write_fd = channel

    async def main() -> None:
        base = EventBase()
        once: Fired = []
        many: Fired = []
        Event(base, write_fd, EV_WRITE, recorder(once)).add()
        persistent = Event(base, write_fd, EV_WRITE | EV_PERSIST, recorder(many))
        persistent.add()
        await until(lambda: len(many) >= 5)
        assert once == [(write_fd, EV_WRITE, None)]
        assert {what for _, what, _ in many} == {EV_WRITE}
        persistent.delete()
        count = len(many)
        await settle()
        assert len(many) == count
        base.free()

    run(main())


def test_read_and_write_on_one_event(run: Run, channel: tuple[int, int]) -> None:
    _, write_fd = channel

    async def main() -> None:
        base = EventBase()
        fired: Fired = []
        event = Event(base, write_fd, EV_READ | EV_WRITE, recorder(fired))
        event.add()
        await until(lambda: fired)
        await settle()
        # A one-shot event is done after its first callback, whichever side was ready.
        assert fired == [(write_fd, EV_WRITE, None)]
        assert event.pending() == 0
        base.free()

    run(main())


def test_several_events_on_one_fd_all_fire(run: Run, channel: tuple[int, int]) -> None:
    read_fd, write_fd = channel

    async def main() -> None:
        base = EventBase()
        order: list[str] = []
        deleting: list[Event] = []

        def first_cb(fd: int, what: int, arg: Any) -> None:
            order.append("first")
            for event in deleting:
                event.delete()

        first = Event(base, read_fd, EV_READ | EV_PERSIST, first_cb)
        second = Event(base, read_fd, EV_READ | EV_PERSIST, lambda *_: order.append("second"))
        third = Event(base, read_fd, EV_READ, lambda *_: order.append("third"))
        for event in (first, second, third):
            event.add()
        os.write(write_fd, b"x")  # Never read: the persistent events fire every round.
        await until(lambda: len(order) >= 3)
        assert order[:3] == ["first", "second", "third"]
        # Deleted by an earlier callback of the same round, a ready event is not called.
        deleting.append(third)
        third.add()
        await until(lambda: len(order) >= 9)
        assert order.count("third") == 1
        assert order.count("first") - order.count("second") in (0, 1)
        base.free()

    run(main())


def test_a_failing_callback_is_reported_and_others_still_run(
    run: Run, channel: tuple[int, int]
) -> None:
    read_fd, write_fd = channel

    async def main() -> None:
        loop = asyncio.get_running_loop()
        reported: list[BaseException] = []
        loop.set_exception_handler(lambda _loop, context: reported.append(context["exception"]))
        base = EventBase()
        fired: Fired = []

        def broken(fd: int, what: int, arg: Any) -> None:
            raise ZeroDivisionError("in a callback")

        Event(base, read_fd, EV_READ, broken).add()
        Event(base, read_fd, EV_READ, recorder(fired)).add()
        os.write(write_fd, b"x")
        await until(lambda: fired)
        assert [type(exc) for exc in reported] == [ZeroDivisionError]
        base.free()

    run(main())


# Timeouts.


def test_timeout_only_event_fires_with_ev_timeout(run: Run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        base = EventBase()
        fired: Fired = []
        event = Event(base, -1, 0, recorder(fired), "t")
        start = loop.time()
        event.add(0.05)
        assert event.pending() == EV_TIMEOUT
        await until(lambda: fired)
        assert loop.time() - start >= 0.045
        assert fired == [(-1, EV_TIMEOUT, "t")]
        assert event.pending() == 0
        base.free()

    run(main())


def test_io_event_whose_timeout_expires_gets_ev_timeout(run: Run, channel: tuple[int, int]) -> None:
    read_fd, _ = channel

    async def main() -> None:
        base = EventBase()
        fired: Fired = []
        event = Event(base, read_fd, EV_READ, recorder(fired))
        event.add(0.05)
        assert event.pending() == EV_READ | EV_TIMEOUT
        assert event.pending(EV_WRITE | EV_TIMEOUT) == EV_TIMEOUT
        await until(lambda: fired)
        assert fired == [(read_fd, EV_TIMEOUT, None)]
        assert event.pending() == 0
        base.free()

    run(main())


def test_persistent_event_timeout_restarts_on_activity(run: Run, channel: tuple[int, int]) -> None:
    read_fd, write_fd = channel

    async def main() -> None:
        loop = asyncio.get_running_loop()
        base = EventBase()
        fired: list[tuple[int, float]] = []

        def on_event(fd: int, what: int, arg: Any) -> None:
            fired.append((what, loop.time()))
            if what & EV_READ:
                os.read(read_fd, 100)

        event = Event(base, read_fd, EV_READ | EV_PERSIST, on_event)
        event.add(0.3)
        for _ in range(4):
            await asyncio.sleep(0.05)
            os.write(write_fd, b"x")
        await until(lambda: any(what == EV_TIMEOUT for what, _ in fired))
        reads = [when for what, when in fired if what == EV_READ]
        timeouts = [when for what, when in fired if what == EV_TIMEOUT]
        assert reads
        assert timeouts[0] - reads[-1] >= 0.29
        # Still pending: the timeout starts again after it fired.
        await until(lambda: len([w for w, _ in fired if w == EV_TIMEOUT]) == 2)
        assert event.pending() == EV_READ | EV_TIMEOUT
        base.free()

    run(main())


def test_add_on_a_pending_event_resets_its_timeout(run: Run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        base = EventBase()
        fired: list[float] = []
        event = Event(base, -1, 0, lambda *_: fired.append(loop.time()))
        start = loop.time()
        event.add(0.2)
        await asyncio.sleep(0.1)
        event.add(0.2)  # Later than before.
        event.add()  # No timeout given: the one set stays.
        await until(lambda: fired)
        assert fired[0] - start >= 0.29
        event.add(30)
        event.add(0.01)  # Earlier than before.
        await until(lambda: len(fired) == 2)
        assert event.deadline is None
        base.free()

    run(main())


def test_delete_cancels_everything(run: Run, channel: tuple[int, int]) -> None:
    read_fd, write_fd = channel

    async def main() -> None:
        base = EventBase()
        fired: Fired = []
        event = Event(base, read_fd, EV_READ, recorder(fired))
        event.add(0.01)
        event.delete()
        event.delete()
        os.write(write_fd, b"x")
        await settle(0.05)
        assert fired == []
        assert event.pending() == 0
        assert event.deadline is None
        base.free()

    run(main())


def test_free_drops_the_callback(run: Run, channel: tuple[int, int]) -> None:
    read_fd, _ = channel

    async def main() -> None:
        base = EventBase()
        event = Event(base, read_fd, EV_READ, recorder([]), object())
        event.add(1)
        event.free()
        assert event.pending() == 0
        assert event.arg is None
        with pytest.raises(RuntimeError):
            event.add()
        base.free()

    run(main())


def test_bad_arguments_are_refused() -> None:
    base = EventBase(kind="asyncio")
    try:
        with pytest.raises(ValueError):
            Event(base, 5, EV_SIGNAL | EV_READ, recorder([]))
        with pytest.raises(ValueError):
            Event(base, -1, EV_READ, recorder([]))
        with pytest.raises(ValueError):
            Event(base, 5, 0x100, recorder([]))
        with pytest.raises(ValueError):
            Event(base, -1, 0, recorder([])).add(-1)
    finally:
        base.free()
