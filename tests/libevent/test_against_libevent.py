"""The same scenarios on libevent itself (a small C program, tests/libevent/c/semantics.c) and on
residentd.libevent, with the same outcome expected of both: every signal sent between
``EVLOOP_ONCE`` rounds is delivered, and a periodic timer's deadlines stay a period apart however
late the loop runs it. Skipped where libevent's headers (libevent-dev) or a C compiler are
missing."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from residentd.libevent import EventBase, SignalEvent, Timer

from .helpers import kill_from_another_process, one_round

SOURCE = Path(__file__).parent / "c" / "semantics.c"
INTERVAL_US = 100_000
FIRINGS = 8


@pytest.fixture(scope="module")
def libevent_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not Path("/usr/include/event2/event.h").exists():
        pytest.skip("needs a C compiler and libevent's headers (libevent-dev)")
    program = tmp_path_factory.mktemp("libevent") / "semantics"
    subprocess.run([compiler, "-O1", "-o", str(program), str(SOURCE), "-levent"], check=True)
    return program


def _run(program: Path, scenario: str) -> list[str]:
    done = subprocess.run(
        [str(program), scenario], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.splitlines()


def _residentd_signals(kind: str) -> int:
    base = EventBase(kind=kind)
    caught = [0]
    SignalEvent(base, signal.SIGUSR1, lambda *_: caught.__setitem__(0, caught[0] + 1)).add()
    try:
        for _ in range(20):
            kill_from_another_process(signal.SIGUSR1)
            one_round(base)
    finally:
        base.free()
    return caught[0]


def _residentd_cadence(kind: str) -> list[tuple[int, int]]:
    """semantics.c's cadence scenario: (lateness, gap to the next deadline) per firing, in us."""
    base = EventBase(kind=kind)
    loop = base.event_loop
    out: list[tuple[int, int]] = []
    deadline = [0.0]

    def on_tick(fd: int, what: int, arg: Any) -> None:
        now = loop.time()
        next_deadline = timer.deadline
        assert next_deadline is not None
        out.append((round((now - deadline[0]) * 1e6), round((next_deadline - deadline[0]) * 1e6)))
        deadline[0] = next_deadline
        if len(out) in (2, 5):
            Timer(base, lambda *_: time.sleep(0.03)).add(next_deadline - now - 0.01)
        if len(out) == FIRINGS:
            timer.delete()

    timer = Timer(base, on_tick, persist=True)
    try:
        timer.add(INTERVAL_US / 1e6)
        first = timer.deadline
        assert first is not None
        deadline[0] = first
        base.dispatch()
    finally:
        base.free()
    return out


def _assert_cadence(firings: list[tuple[int, int]], tolerance_us: int) -> None:
    assert len(firings) == FIRINGS
    for n, (late, gap) in enumerate(firings, 1):
        if late < INTERVAL_US:
            assert abs(gap - INTERVAL_US) <= tolerance_us, (n, late, gap)
    # The held-up firings were late, and still their next deadline stayed on the grid.
    assert any(late >= 15_000 and late < INTERVAL_US for late, _ in (firings[2], firings[5]))


def test_signals_between_rounds_as_in_libevent(libevent_program: Path, loop_kind: str) -> None:
    assert _run(libevent_program, "signals") == ["signals 20"]
    assert _residentd_signals(loop_kind) == 20


def test_periodic_timer_cadence_as_in_libevent(libevent_program: Path, loop_kind: str) -> None:
    reference = []
    for line in _run(libevent_program, "cadence"):
        _, _, _, late, _, gap = line.split()
        reference.append((int(late), int(gap)))
    # libevent reports deadlines in wall-clock time through a cached offset: allow 0.1 ms.
    _assert_cadence(reference, tolerance_us=100)
    _assert_cadence(_residentd_cadence(loop_kind), tolerance_us=1)
