"""Shared test fixtures: every network test runs on both uvloop and the stdlib asyncio loop."""

from __future__ import annotations

import resource
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from residentd import loop as loops

T = TypeVar("T")

LOOP_KINDS = ["uvloop", "asyncio"] if loops.uvloop_available() else ["asyncio"]


def pytest_configure(config: pytest.Config) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


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
