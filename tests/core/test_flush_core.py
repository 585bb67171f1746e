"""The flush queue's per-iteration part in C against its Python reference, step by step.

flushing.py builds ``FlushQueue`` on the C ``FlushCore`` (_connection_core.c) when it was built,
else on the Python one (flush_core.py). Each test here runs one script against both, with a
stand-in loop that records every ``call_soon`` and items that record every ``_flush``, and
compares the two logs: the calls in order, the queue's fields after each step, and the log
records. Without the C speedups only the Python one runs (the scripts still check it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from residentd.net import flush_core
from residentd.speedups import native

NATIVE = native("residentd.net._connection_core", "FlushCore")
CORES: list[type] = [flush_core.FlushCore] if NATIVE is None else [flush_core.FlushCore, NATIVE]


class StandInLoop:
    """Records each ``call_soon``; ``run_once`` runs what was scheduled, as one iteration."""

    def __init__(self, events: list[Any]) -> None:
        self.events = events
        self.ready: list[Callable[[], object]] = []

    def call_soon(self, callback: Callable[[], object]) -> object:
        self.events.append(("call_soon", getattr(callback, "__name__", "?")))
        self.ready.append(callback)
        return object()

    def run_once(self) -> None:
        ready, self.ready = self.ready, []
        for callback in ready:
            callback()


class Item:
    """Something with output to flush: records its flushes, raises when told to."""

    def __init__(self, name: str, events: list[Any], error: BaseException | None = None) -> None:
        self.name = name
        self.events = events
        self.error = error
        self.then: Callable[[], object] | None = None

    def _flush(self) -> None:
        self.events.append(("flush", self.name))
        if self.then is not None:
            self.then()
        if self.error is not None:
            raise self.error


def gated_class(base: type) -> type:
    """``base`` with a ``_run_gated`` that records what it got, then flushes it (as FlushQueue
    does when the app holds nothing)."""

    class Gated(base):  # type: ignore[misc, valid-type]
        __slots__ = ("events",)

        def _run_gated(self, pending: list[Any]) -> None:
            self.events.append(("gated", [item.name for item in pending], self._due))
            self._due = False  # type: ignore[misc]
            self._flush_all(pending)

    return Gated


def fields(queue: Any) -> tuple[Any, ...]:
    return (
        [item.name for item in queue._pending],
        [item.name for item in queue._held],
        queue._scheduled,
        queue._due,
        queue.gate_each,
    )


@contextmanager
def captured_logs() -> Iterator[list[Any]]:
    records: list[Any] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            error = record.exc_info[1] if record.exc_info else None
            records.append((record.name, record.levelname, record.getMessage(), repr(error)))

    logger = logging.getLogger("residentd.conn")
    handler = Capture()
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


Script = Callable[[Any, StandInLoop, list[Any]], None]


def run_script(base: type, script: Script) -> list[Any]:
    """The script's whole log against a queue built on ``base``."""
    events: list[Any] = []
    loop = StandInLoop(events)
    queue = gated_class(base)(loop)
    queue.events = events
    with captured_logs() as records:
        script(queue, loop, events)
    return [*events, ("logs", records)]


def both_agree(script: Script) -> list[Any]:
    """Run ``script`` on every core; they must log the same. Returns the Python one's log."""
    logs = [run_script(core, script) for core in CORES]
    for other in logs[1:]:
        assert other == logs[0]
    return logs[0]


def test_the_first_add_of_an_iteration_schedules_one_run_that_flushes_in_order() -> None:
    def script(queue: Any, loop: StandInLoop, events: list[Any]) -> None:
        queue.gate_each = False
        events.append(("fields", fields(queue)))
        for name in "abc":
            queue.add(Item(name, events))
        events.append(("fields", fields(queue)))
        loop.run_once()
        events.append(("fields", fields(queue)))

    log = both_agree(script)
    assert log == [
        ("fields", ([], [], False, False, False)),
        ("call_soon", "_run"),
        ("fields", (["a", "b", "c"], [], True, False, False)),
        ("flush", "a"),
        ("flush", "b"),
        ("flush", "c"),
        ("fields", ([], [], False, False, False)),
        ("logs", []),
    ]


def test_an_item_added_while_flushing_waits_for_the_next_run() -> None:
    def script(queue: Any, loop: StandInLoop, events: list[Any]) -> None:
        queue.gate_each = False
        late = Item("late", events)
        first = Item("first", events)
        first.then = lambda: queue.add(late)
        queue.add(first)
        loop.run_once()
        events.append(("fields", fields(queue)))
        loop.run_once()

    log = both_agree(script)
    assert log == [
        ("call_soon", "_run"),
        ("flush", "first"),
        ("call_soon", "_run"),
        ("fields", (["late"], [], True, False, False)),
        ("flush", "late"),
        ("logs", []),
    ]


def test_an_item_that_raises_is_logged_and_the_others_are_still_flushed() -> None:
    def script(queue: Any, loop: StandInLoop, events: list[Any]) -> None:
        queue.gate_each = False
        queue.add(Item("a", events))
        queue.add(Item("broken", events, OSError("transport gone")))
        queue.add(Item("c", events))
        loop.run_once()

    log = both_agree(script)
    assert log[-1] == (
        "logs",
        [("residentd.conn", "ERROR", "flushing output failed", "OSError('transport gone')")],
    )
    assert [e for e in log if e[0] == "flush"] == [
        ("flush", "a"),
        ("flush", "broken"),
        ("flush", "c"),
    ]


def test_an_exception_that_is_not_an_error_stops_the_run() -> None:
    def script(queue: Any, loop: StandInLoop, events: list[Any]) -> None:
        queue.gate_each = False
        queue.add(Item("a", events, KeyboardInterrupt()))
        queue.add(Item("b", events))
        with pytest.raises(KeyboardInterrupt):
            loop.run_once()
        events.append(("fields", fields(queue)))

    log = both_agree(script)
    assert log == [
        ("call_soon", "_run"),
        ("flush", "a"),
        ("fields", ([], [], False, False, False)),
        ("logs", []),
    ]


def test_the_app_sees_the_run_when_woken_when_it_asks_for_each_or_while_output_is_held() -> None:
    def script(queue: Any, loop: StandInLoop, events: list[Any]) -> None:
        queue.add(Item("each", events))  # gate_each is True by default
        loop.run_once()
        queue.gate_each = False
        queue.add(Item("plain", events))
        loop.run_once()
        queue.wake()
        queue.wake()  # scheduled once
        queue.add(Item("woken", events))
        loop.run_once()
        queue._held = [Item("held", events)]
        queue.add(Item("while-held", events))
        loop.run_once()
        queue._held = []
        queue.wake()  # with nothing pending the app is still called
        loop.run_once()

    log = both_agree(script)
    assert log == [
        ("call_soon", "_run"),
        ("gated", ["each"], False),
        ("flush", "each"),
        ("call_soon", "_run"),
        ("flush", "plain"),
        ("call_soon", "_run"),
        ("gated", ["woken"], True),
        ("flush", "woken"),
        ("call_soon", "_run"),
        ("gated", ["while-held"], False),
        ("flush", "while-held"),
        ("call_soon", "_run"),
        ("gated", [], True),
        ("logs", []),
    ]


def test_a_subclass_that_overrides_add_and_run_is_called_through_them() -> None:
    events: list[Any] = []
    for core in CORES:

        class Recording(core):  # type: ignore[misc, valid-type]
            __slots__ = ()

            def add(self, item: Any) -> None:
                events.append(("add", item.name))
                super().add(item)

            def _run(self) -> None:
                events.append(("run", len(self._pending)))
                super()._run()

        loop = StandInLoop(events)
        queue = Recording(loop)
        queue.gate_each = False
        queue.add(Item("x", events))
        loop.run_once()
    assert events == [("add", "x"), ("call_soon", "_run"), ("run", 1), ("flush", "x")] * len(CORES)
