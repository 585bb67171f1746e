"""Pure timers and signal events: the two things the talk's daemon could not rely on."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from residentd.libevent import EV_SIGNAL, EV_TIMEOUT, EventBase, SignalEvent, Timer

from .helpers import PATIENCE, settle, until, until_len

Run = Callable[[Coroutine[Any, Any, None]], None]


def test_timer_fires_once_within_a_generous_bound(run: Run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        base = EventBase()
        fired: list[tuple[int, int, Any, float]] = []
        timer = Timer(base, lambda fd, what, arg: fired.append((fd, what, arg, loop.time())), 7)
        start = loop.time()
        timer.add(0.05)
        await until(lambda: fired)
        await settle(0.1)
        assert len(fired) == 1
        fd, what, arg, when = fired[0]
        assert (fd, what, arg) == (-1, EV_TIMEOUT, 7)
        assert 0.045 <= when - start < PATIENCE
        assert not timer.pending()
        base.free()

    run(main())


def test_persistent_timer_repeats_until_deleted(run: Run) -> None:
    async def main() -> None:
        base = EventBase()
        ticks: list[int] = []
        timer = Timer(base, lambda fd, what, arg: ticks.append(what), persist=True)
        timer.add(0.01)
        await until(lambda: len(ticks) >= 5)
        assert set(ticks) == {EV_TIMEOUT}
        assert timer.pending() == EV_TIMEOUT
        timer.delete()
        seen = len(ticks)
        await settle(0.05)
        assert len(ticks) == seen
        base.free()

    run(main())


def test_every_sigusr2_reaches_the_signal_event(run: Run) -> None:
    async def main() -> None:
        base = EventBase()
        fired: list[tuple[int, int, Any]] = []
        event = SignalEvent(base, signal.SIGUSR2, lambda *args: fired.append(args), "usr2")
        event.add()
        for n in range(1, 101):
            os.kill(os.getpid(), signal.SIGUSR2)
            await until_len(fired, n)
        assert fired == [(signal.SIGUSR2, EV_SIGNAL, "usr2")] * 100
        assert event.pending() == EV_SIGNAL
        base.free()

    run(main())


def test_several_events_on_one_signal_all_fire(run: Run) -> None:
    async def main() -> None:
        base = EventBase()
        counts = [0, 0, 0]

        def bump(signum: int, what: int, index: int) -> None:
            counts[index] += 1

        events = [SignalEvent(base, signal.SIGUSR2, bump, i) for i in range(2)]
        once = SignalEvent(base, signal.SIGUSR2, bump, 2, persist=False)
        for event in (*events, once):
            event.add()
        os.kill(os.getpid(), signal.SIGUSR2)
        await until(lambda: counts == [1, 1, 1])
        assert not once.pending()
        events[0].delete()
        os.kill(os.getpid(), signal.SIGUSR2)
        await until(lambda: counts[1] == 2)
        await settle()
        assert counts == [1, 2, 1]
        base.free()

    run(main())
