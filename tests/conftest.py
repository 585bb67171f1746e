"""Shared test fixtures: every network test runs on both uvloop and the stdlib asyncio loop.

The suite runs twice, with the C speedups and with ``RESIDENTD_PURE_PYTHON=1``. A module marked
``same_either_way`` tests a part that has no C version and runs the same code either way (the
load generators, the page in a browser, the supervisor of workers, chat's broker): it runs
once, in the run with the speedups, and is skipped, saying so, in the other.
"""

from __future__ import annotations

import resource
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from residentd import loop as loops
from residentd import speedups

T = TypeVar("T")

LOOP_KINDS = ["uvloop", "asyncio"] if loops.uvloop_available() else ["asyncio"]


def pytest_configure(config: pytest.Config) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not speedups.DISABLED:
        return
    once = pytest.mark.skip(reason="same code with or without the speedups: run with them")
    for item in items:
        if item.get_closest_marker("same_either_way") is not None:
            item.add_marker(once)


@pytest.fixture(params=LOOP_KINDS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    """The loop a test runs on; tests using it run once per loop."""
    return str(request.param)


@pytest.fixture
def run(loop_kind: str) -> Callable[[Coroutine[Any, Any, T]], T]:
    """``run(coro)`` runs a coroutine to completion on a fresh loop of this test's kind."""

    def runner(coro: Coroutine[Any, Any, T]) -> T:
        return loops.run(coro, loop_kind)

    return runner
