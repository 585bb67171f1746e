"""Helpers for the libevent tests: waiting on the running loop for something to (not) happen,
bounded rounds of a base's own loop, and signals sent by another process."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable, Sized

from residentd.libevent import EVLOOP_ONCE, EventBase, Timer
from support import eventually

# Every wait ends as soon as its condition holds; this only bounds how long a failure takes.
PATIENCE = 5.0


async def until(condition: Callable[[], object], patience: float = PATIENCE) -> None:
    """Let the loop run until ``condition()`` is true; fail after ``patience`` seconds."""
    await eventually(condition, patience, interval=0.001)


async def until_len(items: Sized, n: int) -> None:
    """Let the loop run until ``len(items) == n``."""
    await until(lambda: len(items) == n)


async def settle(seconds: float = 0.02) -> None:
    """Let the loop poll and run callbacks for a while (to check that something does not
    happen)."""
    for _ in range(3):
        await asyncio.sleep(0)
    await asyncio.sleep(seconds)


def one_round(base: EventBase) -> bool:
    """``base.loop(EVLOOP_ONCE)`` with a guard timer that ends the round if what it waits for
    never comes; True if something else than the guard ended it."""
    guard = Timer(base, lambda *_: None)
    guard.add(PATIENCE)
    base.loop(EVLOOP_ONCE)
    woken = bool(guard.pending())
    guard.delete()
    return woken


def kill_from_another_process(signum: int) -> None:
    """Send ``signum`` to this process from a kill(1) process. It has been sent by the time that
    process exits, and the kernel delivers it before this process's wait for the exit returns."""
    subprocess.run(["kill", f"-{signum}", str(os.getpid())], check=True)
