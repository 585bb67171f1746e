"""Helpers for the libevent tests: waiting on the running loop for something to (not) happen."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sized

# Every wait ends as soon as its condition holds; this only bounds how long a failure takes.
PATIENCE = 5.0


async def until(condition: Callable[[], object], patience: float = PATIENCE) -> None:
    """Let the loop run until ``condition()`` is true; fail after ``patience`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {patience}s")
        await asyncio.sleep(0.001)


async def until_len(items: Sized, n: int) -> None:
    """Let the loop run until ``len(items) == n``."""
    await until(lambda: len(items) == n)


async def settle(seconds: float = 0.02) -> None:
    """Let the loop poll and run callbacks for a while (to check that something does not
    happen)."""
    for _ in range(3):
        await asyncio.sleep(0)
    await asyncio.sleep(seconds)
