"""Latency histograms and counters: recorded by the bots, shipped each second, merged at the end.

Every step name (``connect``, ``echo``, ``post``, ...) has an HdrHistogram of its latencies in
microseconds (1 us to one hour, three significant figures: fixed memory, exact merging) and
counters of completions and errors by kind. A generator records into a ``Recorder``; once a
second ``Recorder.interval()`` hands over what it saw since the last call as an ``Interval``,
with each step's histogram encoded (HdrHistogram's compressed V2 form, a few hundred bytes),
so it crosses a process boundary as a string and is decoded and added at the controller.

The hot path is ``Recorder.record``: HdrHistogram's Python ``record_value`` is too dear to call
per sample (docs/benchmarks.md, "bots"), so a sample only bumps a count in a dict keyed by its
microsecond value, and the dict is poured into the histogram (``record_value(value, count)``)
once per interval. That is exact: the histogram ends up with the very same counts.

At the controller, ``RunStats`` keeps the totals per step (histograms added, counters summed)
and a timeline of one ``Point`` per second of the run (throughput, latency percentiles of that
second over all steps, users online), finished once every generator has reported the second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
SIGNIFICANT_FIGURES = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


def decode_histogram(encoded: str) -> HdrHistogram:
    return HdrHistogram.decode(encoded)


def percentiles_ms(histogram: HdrHistogram, mean: bool = False) -> dict[str, float]:
    """p50, p90, p99, p99.9 and max of a histogram in milliseconds (zeros when empty), and the
    mean when asked for (it walks every bucket in Python: a few ms, so not once a second)."""
    empty = histogram.get_total_count() == 0
    values = {} if empty else histogram.get_percentile_to_value_dict(list(PERCENTILES))
    result = {
        "p50_ms": values.get(50.0, 0) / 1000,
        "p90_ms": values.get(90.0, 0) / 1000,
        "p99_ms": values.get(99.0, 0) / 1000,
        "p999_ms": values.get(99.9, 0) / 1000,
        "max_ms": histogram.get_max_value() / 1000,
    }
    if mean:
        result["mean_ms"] = 0.0 if empty else histogram.get_mean_value() / 1000
    return result


class _StepCounts:
    """One step's samples since the last interval: microseconds -> count, and errors."""

    __slots__ = ("errors", "samples")

    def __init__(self) -> None:
        self.samples: dict[int, int] = {}
        self.errors: dict[str, int] = {}


@dataclass
class StepInterval:
    """One step's part of an interval: completions, errors by kind, encoded histogram."""

    ok: int
    errors: dict[str, int]
    histogram: str | None


@dataclass
class Interval:
    """What one generator saw during one second (``second`` counts from the run's start)."""

    worker: int
    second: int
    steps: dict[str, StepInterval]
    users: int
    late: int = 0
    dropped: int = 0
    pushes: int = 0
    lag_ms: float = 0.0  # the generator's own worst event-loop lag in the second
    cpu_percent: float = 0.0  # the generator process's CPU in the second (100: one core)


class Recorder:
    """Where the bots of one generator record their step latencies and errors."""

    __slots__ = ("_cpu", "_steps", "_wall", "dropped", "lag", "late", "pushes", "users", "worker")

    def __init__(self, worker: int = 0) -> None:
        self.worker = worker
        self._steps: dict[str, _StepCounts] = {}
        self.users = 0  # bots online (signed in) now
        self.late = 0  # open model: sends that left later than intended
        self.dropped = 0  # open model: sends or sessions that never happened
        self.pushes = 0  # messages the server sent that no request waited for
        self.lag = 0.0  # worst lag of this generator's loop since the last interval, seconds
        self._cpu = time.process_time()
        self._wall = time.monotonic()

    def _step(self, name: str) -> _StepCounts:
        step = self._steps.get(name)
        if step is None:
            step = self._steps[name] = _StepCounts()
        return step

    def record(self, name: str, latency_ns: int) -> None:
        """One successful step that took ``latency_ns`` nanoseconds."""
        step = self._steps.get(name) or self._step(name)
        micros = latency_ns // 1000 if latency_ns > 0 else 0
        samples = step.samples
        samples[micros] = samples.get(micros, 0) + 1

    def error(self, name: str, kind: str) -> None:
        """One failed step; ``kind`` is a short code such as ``connection-refused``."""
        errors = self._step(name).errors
        errors[kind] = errors.get(kind, 0) + 1

    def interval(self, second: int, users: int | None = None) -> Interval:
        """Everything recorded since the last call, and reset for the next interval. ``users``
        overrides the bots online now (the last interval counts those online when the run
        stopped, not the none left after signing them out)."""
        steps: dict[str, StepInterval] = {}
        for name, counts in self._steps.items():
            if not counts.samples and not counts.errors:
                continue
            ok = 0
            encoded = None
            if counts.samples:
                histogram = new_histogram()
                for micros, count in counts.samples.items():
                    histogram.record_value(min(micros, HIGHEST_US), count)
                    ok += count
                encoded = histogram.encode().decode("ascii")
            steps[name] = StepInterval(ok, counts.errors, encoded)
        self._steps = {}
        cpu, wall = time.process_time(), time.monotonic()
        busy = 100.0 * (cpu - self._cpu) / max(wall - self._wall, 1e-3)
        online = self.users if users is None else users
        interval = Interval(
            self.worker, second, steps, online, self.late, self.dropped, self.pushes,
            round(self.lag * 1000, 3), round(busy, 1),
        )  # fmt: skip
        self.late = self.dropped = self.pushes = 0
        self.lag = 0.0
        self._cpu, self._wall = cpu, wall
        return interval


@dataclass
class StepTotals:
    """A step over the whole run, all generators merged."""

    name: str
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    histogram: HdrHistogram = field(default_factory=new_histogram)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def count(self) -> int:
        return self.ok + self.error_count

    def add(self, part: StepInterval, histogram: HdrHistogram | None) -> None:
        self.ok += part.ok
        for kind, n in part.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + n
        if histogram is not None:
            self.histogram.add(histogram)

    def summary(self, elapsed: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "count": self.count,
            "ok": self.ok,
            "errors": self.error_count,
            "rps": self.count / elapsed if elapsed > 0 else 0.0,
            **percentiles_ms(self.histogram, mean=True),
            "error_kinds": dict(sorted(self.errors.items())),
        }


@dataclass
class Point:
    """One second of the run: the generators' side (the server's is added by the controller)."""

    second: int
    count: int = 0
    errors: int = 0
    users: int = 0
    late: int = 0
    dropped: int = 0
    latency: dict[str, float] = field(default_factory=dict)
    generator_lag_ms: float = 0.0  # the worst over the generators
    generator_cpu_percent: float = 0.0  # the busiest generator

    def as_dict(self) -> dict[str, Any]:
        return {
            "t": self.second,
            "rps": self.count,
            "errors": self.errors,
            "users": self.users,
            "late": self.late,
            "dropped": self.dropped,
            **{k: self.latency.get(k, 0.0) for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")},
            "generator_lag_ms": self.generator_lag_ms,
            "generator_cpu_percent": self.generator_cpu_percent,
        }


class _OpenSecond:
    """A second still waiting for some generators' intervals."""

    __slots__ = ("histogram", "point", "reported")

    def __init__(self, second: int) -> None:
        self.point = Point(second)
        self.histogram = new_histogram()
        self.reported: set[int] = set()


class RunStats:
    """The controller's view: totals per step and the per-second timeline, merged from all
    generators' intervals."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.steps: dict[str, StepTotals] = {}
        self.timeline: list[Point] = []
        self.late = 0
        self.dropped = 0
        self.pushes = 0
        self.users_now: dict[int, int] = {}
        self.peak_users = 0
        self._open: dict[int, _OpenSecond] = {}

    def add(self, interval: Interval) -> None:
        second = self._open.get(interval.second)
        if second is None:
            second = self._open[interval.second] = _OpenSecond(interval.second)
        point = second.point
        for name, part in interval.steps.items():
            histogram = decode_histogram(part.histogram) if part.histogram else None
            totals = self.steps.get(name)
            if totals is None:
                totals = self.steps[name] = StepTotals(name)
            totals.add(part, histogram)
            point.count += part.ok + sum(part.errors.values())
            point.errors += sum(part.errors.values())
            if histogram is not None:
                second.histogram.add(histogram)
        point.users += interval.users
        point.late += interval.late
        point.dropped += interval.dropped
        point.generator_lag_ms = max(point.generator_lag_ms, interval.lag_ms)
        point.generator_cpu_percent = max(point.generator_cpu_percent, interval.cpu_percent)
        self.late += interval.late
        self.dropped += interval.dropped
        self.pushes += interval.pushes
        self.users_now[interval.worker] = interval.users
        self.peak_users = max(self.peak_users, self.users)
        second.reported.add(interval.worker)
        if len(second.reported) >= self.workers:
            self._close_through(interval.second)

    @property
    def users(self) -> int:
        return sum(self.users_now.values())

    def _close_through(self, last: int) -> None:
        for number in sorted(s for s in self._open if s <= last):
            self._close(self._open.pop(number))

    def _close(self, second: _OpenSecond) -> None:
        second.point.latency = percentiles_ms(second.histogram)
        self.timeline.append(second.point)
        self.timeline.sort(key=lambda point: point.second)

    def finish(self) -> None:
        """Close every second still open (a generator that stopped early never reports it)."""
        self._close_through(max(self._open, default=-1))

    @property
    def last_point(self) -> Point | None:
        return self.timeline[-1] if self.timeline else None

    def totals(self) -> StepTotals:
        """All steps together, as one."""
        merged = StepTotals("total")
        for step in self.steps.values():
            merged.ok += step.ok
            for kind, n in step.errors.items():
                key = f"{step.name}: {kind}"
                merged.errors[key] = merged.errors.get(key, 0) + n
            merged.histogram.add(step.histogram)
        return merged
