"""Load models: how many bots run, when they start, and when each sends.

* **closed** (``--users N --spawn-rate R``): N bots, started R per second; each runs a task,
  thinks (``--think``: constant, ``uniform:A:B`` or ``exp:MEAN`` seconds), runs the next. The
  server's speed sets the pace, as with real users who wait for an answer before going on.
* **open** (``--rate R``): the N bots connect as above, then each sends on a schedule of its own,
  one task every N/R seconds from a random phase, whatever the server does, as wrk2 does. A bot
  still waiting for a reply sends late; the latency of every task counts from its *intended*
  start, so a server stall shows up in the latency of every request that should have gone out
  during it (coordinated omission corrected). A task sent over 10 ms after its intended time
  counts as ``late``; a task still unsent when the run ends counts as ``dropped``.
* **sessions** (``--session-rate R``): R new bots arrive per second, each connects, signs in,
  runs ``--iterations`` tasks, leaves. The session's steps are timed from its intended arrival
  and the whole of it is recorded as step ``session``. An arrival finding ``--users`` sessions
  still running is ``dropped``; one the generator started over 10 ms late is ``late``.

Every run ends by itself: at ``--duration``, or when ``--requests`` tasks have run. Bots that
are thinking stop at once, bots in the middle of a task get ``drain`` seconds to finish it, then
the rest is cancelled. A bot whose connection fails counts the error and reconnects a second
later.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from residentd.bots.scenario import Context, Scenario, error_kind
from residentd.bots.stats import Interval, Recorder
from residentd.bots.transports import Watchdog

Model = Literal["closed", "open", "sessions"]
LATE_AFTER = 0.010
LAG_PROBE = 0.05  # seconds between two looks at the generator's own loop lag
RECONNECT_DELAY = 1.0


@dataclass(frozen=True)
class Think:
    """Think time between a bot's tasks: ``0.5``, ``uniform:0.1:0.5`` or ``exp:0.2`` seconds."""

    kind: Literal["constant", "uniform", "exponential"]
    a: float
    b: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Think:
        kind, _, rest = str(text).partition(":")
        try:
            if not rest:
                return cls._checked("constant", float(kind))
            if kind == "uniform":
                low, _, high = rest.partition(":")
                return cls._checked("uniform", float(low), float(high))
            if kind in ("exp", "exponential"):
                return cls._checked("exponential", float(rest))
        except ValueError:
            pass
        raise ValueError(f"think time {text!r} is not one of SECONDS, uniform:MIN:MAX or exp:MEAN")

    @classmethod
    def _checked(cls, kind: str, a: float, b: float = 0.0) -> Think:
        if a < 0 or b < 0 or (kind == "uniform" and b < a) or not math.isfinite(a + b):
            raise ValueError("think times must be finite, >= 0, and MIN <= MAX")
        return cls(kind, a, b)  # type: ignore[arg-type]

    def sample(self, rng: random.Random) -> float:
        if self.kind == "constant":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        return rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0

    def __str__(self) -> str:
        if self.kind == "constant":
            return f"{self.a:g}"
        if self.kind == "uniform":
            return f"uniform:{self.a:g}:{self.b:g}"
        return f"exp:{self.a:g}"


@dataclass(frozen=True)
class Plan:
    """One generator's share of the load."""

    model: Model
    users: int  # closed/open: bots; sessions: most sessions at once
    spawn_rate: float  # bots started per second (closed, open)
    think: Think
    duration: float
    rate: float = 0.0  # open: tasks/s; sessions: sessions/s
    requests: int = 0  # stop after this many tasks (0: no limit)
    iterations: int = 1  # sessions: tasks per session
    drain: float = 2.0
    first_index: int = 0  # the index of this generator's first bot, over all generators


class LoadRunner:
    """Runs one generator's bots on the current loop, by the plan, and reports each second."""

    def __init__(
        self,
        scenario: type[Scenario],
        context: Context,
        plan: Plan,
        emit: Callable[[Interval], None] | None = None,
        start: float | None = None,
    ) -> None:
        self.scenario = scenario
        self.context = context
        self.plan = plan
        self.recorder: Recorder = context.recorder
        self.emit = emit
        # Wall-clock start shared by all generators, so their seconds line up.
        self.start_wall = time.time() if start is None else start
        self.started = 0  # tasks begun, against the --requests budget
        self.stopping = False
        self.stopped_ns = 0  # perf_counter_ns when the run began to stop
        self._cancelling = False  # past the drain: cancellations are no longer wake-ups
        self._next_second = 1
        self.deadline = 0.0  # monotonic time the load ends (set when it begins)
        self.thinking: set[asyncio.Task[None]] = set()
        self.bots: set[asyncio.Task[None]] = set()
        self.rng = random.Random(None if context.seed is None else context.seed - 1)
        self._stop_event: asyncio.Event | None = None

    # -- driving --------------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        watchdog = self.context.watchdog = Watchdog(self.context.timeout)
        watchdog.start()
        delay = self.start_wall - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self.deadline = time.monotonic() + self.plan.duration
        reporter = loop.create_task(self._report())
        lag_probe = loop.create_task(self._measure_lag())
        spawner = loop.create_task(
            self._arrivals() if self.plan.model == "sessions" else self._ramp()
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), self.plan.duration)
        # The reporter stops with the load: while the bots sign out it would report a second
        # with fewer users online, and the last second of the run must count those online at
        # the stop. The drain's requests go into the final interval.
        online_at_stop = self.recorder.users
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        await self._stop(spawner)
        watchdog.stop()
        lag_probe.cancel()
        if self.emit is not None:
            self.emit(self.recorder.interval(self._next_second, online_at_stop))

    async def _stop(self, spawner: asyncio.Task[None]) -> None:
        self.stopping = True
        self.stopped_ns = time.perf_counter_ns()
        spawner.cancel()
        for bot in list(self.thinking):
            bot.cancel()  # a wake-up: see _think
        if self.bots:
            await asyncio.wait(list(self.bots), timeout=self.plan.drain)
        self._cancelling = True
        for bot in list(self.bots):
            bot.cancel()
        if self.bots:
            await asyncio.wait(list(self.bots), timeout=self.plan.drain)
        with contextlib.suppress(asyncio.CancelledError):
            await spawner

    async def _report(self) -> None:
        """Hand over an interval at every whole second after the start."""
        if self.emit is None:
            return
        while True:
            second = self._next_second
            await asyncio.sleep(max(0.0, self.start_wall + second - time.time()))
            self._next_second = second + 1
            self.emit(self.recorder.interval(second))

    async def _measure_lag(self) -> None:
        """How late this generator's loop runs a timer: when it is busy, every latency it
        measures includes its own delay, and the report says so."""
        loop = asyncio.get_running_loop()
        recorder = self.recorder
        while True:
            start = loop.time()
            await asyncio.sleep(LAG_PROBE)
            lag = loop.time() - start - LAG_PROBE
            if lag > recorder.lag:
                recorder.lag = lag

    def _may_start(self) -> bool:
        """Take one task from the ``--requests`` budget; ``False`` (and the run stops) when it
        is spent, so the run makes exactly that many."""
        limit = self.plan.requests
        if not limit:
            return True
        if self.started >= limit:
            if self._stop_event is not None:
                self._stop_event.set()
            return False
        self.started += 1
        if self.started >= limit and self._stop_event is not None:
            self._stop_event.set()
        return True

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        bot = asyncio.get_running_loop().create_task(coro)
        self.bots.add(bot)
        bot.add_done_callback(self.bots.discard)

    # -- closed and open: a fixed set of bots ---------------------------------------------------

    async def _ramp(self) -> None:
        plan = self.plan
        started = time.monotonic()
        for n in range(plan.users):
            if plan.spawn_rate > 0:
                due = started + n / plan.spawn_rate
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            self._spawn(self._bot(plan.first_index + n))

    async def _bot(self, index: int) -> None:
        bot = self.scenario(self.context, index)
        while not self.stopping:
            online = False
            try:
                await bot.connect()
                await bot.on_start()
                online = True
                self.recorder.users += 1
                if self.plan.model == "open":
                    await self._scheduled(bot)
                else:
                    await self._closed(bot)
                if bot.alive:
                    await bot.on_stop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._uncounted(exc)
            finally:
                if online:
                    self.recorder.users -= 1
                bot.disconnect()
            if not self.stopping:
                await self._think(RECONNECT_DELAY)

    async def _closed(self, bot: Scenario) -> None:
        think = self.plan.think
        thinks = think.kind != "constant" or think.a > 0
        budget = self.plan.requests > 0
        only = bot.pick() if len(bot._tasks) == 1 else None  # the hot path: one task
        conn = bot.conn
        while not self.stopping:
            task = only or bot.pick()
            if task is None:
                await self._think(self.plan.duration)
                continue
            if budget and not self._may_start():
                return
            try:
                await task()
            except Exception as exc:
                if not bot.alive:
                    raise
                self._uncounted(exc)
            if thinks and not self.stopping:
                await self._think(think.sample(bot.random))
            if conn.closed is not None:
                raise conn.closed

    async def _scheduled(self, bot: Scenario) -> None:
        """The open model: this bot's tasks at fixed intervals, timed from when they were due."""
        interval_ns = int(self.plan.users / self.plan.rate * 1e9)
        now = time.perf_counter_ns()
        due = now + int(bot.random.uniform(0, interval_ns))
        deadline_ns = now + int((self.deadline - time.monotonic()) * 1e9)
        late_ns = int(LATE_AFTER * 1e9)
        try:
            while not self.stopping:
                task = bot.pick()
                if task is None:
                    return
                wait = due - time.perf_counter_ns()
                if wait > 0:
                    await self._think(wait / 1e9)
                    if self.stopping:
                        break
                elif -wait > late_ns:
                    self.recorder.late += 1
                if not self._may_start():
                    due = deadline_ns  # the budget is spent: nothing more was due
                    break
                bot.intended = due
                due += interval_ns
                try:
                    await task()
                except Exception as exc:
                    bot.intended = 0
                    if not bot.alive:
                        raise
                    self._uncounted(exc)
        finally:
            # What the schedule wanted sent before the end but never was.
            end = min(deadline_ns, self.stopped_ns or time.perf_counter_ns()) - late_ns
            if due < end:
                self.recorder.dropped += (end - due) // interval_ns + 1

    async def _think(self, seconds: float) -> None:
        """Sleep; when the run stops, return at once (the stop cancels the sleep to wake it)."""
        task = asyncio.current_task()
        assert task is not None
        self.thinking.add(task)
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            if not self.stopping or self._cancelling:
                raise
            task.uncancel()
        finally:
            self.thinking.discard(task)

    def _uncounted(self, exc: Exception) -> None:
        """Count a failure no step counted: a lost connection under ``connection``, anything
        else under ``task``."""
        if getattr(exc, "_bots_counted", False):
            return
        step = "connection" if isinstance(exc, ConnectionError) else "task"
        self.recorder.error(step, error_kind(exc))

    # -- sessions: bots arrive at a rate --------------------------------------------------------

    async def _arrivals(self) -> None:
        plan = self.plan
        interval_ns = int(1e9 / plan.rate)
        late_ns = int(LATE_AFTER * 1e9)
        due = time.perf_counter_ns() + int(self.rng.uniform(0, interval_ns))
        index = plan.first_index
        while not self.stopping:
            wait = due - time.perf_counter_ns()
            if wait > 0:
                await asyncio.sleep(wait / 1e9)
            elif -wait > late_ns:
                self.recorder.late += 1
            if len(self.bots) >= plan.users:
                self.recorder.dropped += 1
            else:
                self._spawn(self._session(index, due))
                index += 1
            due += interval_ns

    async def _session(self, index: int, intended: int) -> None:
        bot = self.scenario(self.context, index)
        online = False
        try:
            bot.intended = intended
            await bot.connect()
            await bot.on_start()
            online = True
            self.recorder.users += 1
            for n in range(self.plan.iterations):
                if n:
                    pause = self.plan.think.sample(bot.random)
                    if pause > 0:
                        await self._think(pause)
                task = bot.pick()
                if task is None:
                    break
                if self.stopping or not self._may_start():
                    return  # cut short by the end of the run: not a whole session
                await task()
            if bot.alive:
                await bot.on_stop()
            self.recorder.record("session", time.perf_counter_ns() - intended)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.recorder.error("session", error_kind(exc))
        finally:
            if online:
                self.recorder.users -= 1
            bot.disconnect()


async def run_generator(
    scenario: type[Scenario],
    context: Context,
    plan: Plan,
    emit: Callable[[Interval], None] | None = None,
    start: float | None = None,
) -> Recorder:
    """Run one generator's share of the load on the running loop; returns its recorder."""
    await LoadRunner(scenario, context, plan, emit, start).run()
    return context.recorder
