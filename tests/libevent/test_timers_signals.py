"""Pure timers and signal events: the two things the talk's daemon could not rely on, with
libevent's semantics (signals caught between rounds, periodic timers without drift)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from residentd.libevent import EV_SIGNAL, EV_TIMEOUT, EventBase, SignalEvent, Timer

from .helpers import PATIENCE, kill_from_another_process, one_round, settle, until, until_len

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


def test_signals_sent_between_loop_rounds_are_delivered_in_the_next_round(loop_kind: str) -> None:
    """The PHP daemon's loop: ``loop(EVLOOP_ONCE)``, work, again. A signal that another process
    sends before the first round or between two rounds fires in the next round (uvloop, which
    listens only while it runs, lost them while the base used ``add_signal_handler``)."""
    base = EventBase(kind=loop_kind)
    caught: list[tuple[int, int]] = []
    event = SignalEvent(
        base, signal.SIGUSR1, lambda signum, what, arg: caught.append((signum, what))
    )
    event.add()
    try:
        for n in range(1, 21):
            kill_from_another_process(signal.SIGUSR1)
            assert one_round(base), f"the signal sent before round {n} was lost"
            assert len(caught) == n, f"the signal sent before round {n} was lost"
        assert set(caught) == {(signal.SIGUSR1, EV_SIGNAL)}
        assert event.pending() == EV_SIGNAL
    finally:
        base.free()


def test_a_signal_from_another_process_wakes_a_sleeping_loop(loop_kind: str) -> None:
    base = EventBase(kind=loop_kind)
    caught: list[int] = []

    def on_signal(signum: int, what: int, arg: Any) -> None:
        caught.append(signum)
        base.loopbreak()

    SignalEvent(base, signal.SIGUSR1, on_signal).add()
    guard = Timer(base, lambda *_: base.loopbreak())
    guard.add(PATIENCE)
    sender = subprocess.Popen(["sh", "-c", f"sleep 0.05; kill -USR1 {os.getpid()}"])
    try:
        assert base.dispatch() == 0
        assert caught == [signal.SIGUSR1]
        assert guard.pending()  # It was the signal that ended the loop.
    finally:
        sender.wait()
        base.free()


def test_the_previous_signal_handler_is_back_when_no_event_waits(loop_kind: str) -> None:
    def previous(signum: int, frame: object) -> None:
        pass

    old = signal.signal(signal.SIGUSR1, previous)
    base = EventBase(kind=loop_kind)
    try:
        events = [SignalEvent(base, signal.SIGUSR1, lambda *_: None) for _ in range(2)]
        for event in events:
            event.add()
        assert signal.getsignal(signal.SIGUSR1) is not previous
        events[0].delete()
        assert signal.getsignal(signal.SIGUSR1) is not previous
        events[1].delete()
        assert signal.getsignal(signal.SIGUSR1) is previous
    finally:
        base.free()
        signal.signal(signal.SIGUSR1, old)


INTERVAL = 0.1


def test_a_periodic_timer_keeps_its_cadence_when_the_loop_is_late(run: Run) -> None:
    """libevent's event_persist_closure: after a timeout, the next deadline is a period after
    the deadline that fired, not after the (late) moment it ran. The loop is held up 30 ms just
    before two deadlines; the deadlines that follow stay on the start + n * interval grid."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        base = EventBase()
        fired: list[tuple[float, float, float]] = []  # (loop time, deadline, next deadline)
        due = [0.0]

        def tick(fd: int, what: int, arg: Any) -> None:
            next_deadline = timer.deadline
            assert next_deadline is not None
            fired.append((loop.time(), due[0], next_deadline))
            due[0] = next_deadline
            if len(fired) in (2, 5):
                # Hold the loop up from 10 ms before the next deadline to 20 ms after it.
                loop.call_at(next_deadline - 0.01, time.sleep, 0.03)
            if len(fired) == 8:
                timer.delete()

        timer = Timer(base, tick, persist=True)
        timer.add(INTERVAL)
        start = timer.deadline
        assert start is not None
        due[0] = start
        await until(lambda: len(fired) == 8, PATIENCE + 8 * INTERVAL)
        anchored_after_a_late_firing = 0
        for n, (now, deadline, next_deadline) in enumerate(fired, 1):
            assert now >= deadline - 0.001, f"firing {n} came early"
            if deadline + INTERVAL >= now:
                # On the grid: the n-th firing's deadline was start + (n - 1) * interval.
                assert next_deadline == pytest.approx(deadline + INTERVAL, abs=1e-9), n
                if n in (3, 6):
                    assert now - deadline >= 0.015  # The hold-up made it late.
                    anchored_after_a_late_firing += 1
            else:
                # More than a whole period late (a very loaded machine): libevent, too, starts
                # again from now rather than firing a burst to catch up.
                assert next_deadline == pytest.approx(now + INTERVAL, abs=0.002), n
        assert anchored_after_a_late_firing, "both held-up firings were a whole period late"
        if all(deadline + INTERVAL >= now for now, deadline, _ in fired):
            # No drift at all: the 8th firing was due at start + 7 intervals, as in libevent.
            assert fired[-1][1] == pytest.approx(start + 7 * INTERVAL, abs=1e-6)
        base.free()

    run(main())


def test_a_periodic_timer_held_up_for_periods_fires_once_then_resumes(run: Run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        base = EventBase()
        fired: list[tuple[float, float]] = []

        def tick(fd: int, what: int, arg: Any) -> None:
            next_deadline = timer.deadline
            assert next_deadline is not None
            fired.append((loop.time(), next_deadline))
            if len(fired) == 1:
                time.sleep(0.25)  # Two and a half periods of 0.1 s missed.
            if len(fired) == 3:
                timer.delete()

        timer = Timer(base, tick, persist=True)
        timer.add(INTERVAL)
        await until(lambda: len(fired) == 3, PATIENCE + 3 * INTERVAL)
        (t1, _), (t2, next2), (t3, _) = fired
        assert t2 - t1 >= 0.25  # No burst of missed firings after the hold-up...
        assert next2 == pytest.approx(t2 + INTERVAL, abs=0.002)  # ...a period from now.
        assert t3 - t2 >= INTERVAL - 0.002
        base.free()

    run(main())
