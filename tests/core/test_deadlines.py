"""Idle and first-message timeouts: the deadline wheel alone, then over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from residentd.limits import Limits
from residentd.net.deadlines import DeadlineWheel

from .helpers import Client, Echo, fresh, serving, wait_until

Run = Callable[[Coroutine[Any, Any, Any]], Any]


class Item:
    """A wheel entry that is due at ``deadline`` unless ``extend`` moved it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        self._deadline_slot = 0
        self.loop = loop
        self.deadline = deadline
        self.closed_at: float | None = None
        self.checks = 0

    def check_deadline(self, now: float) -> float | None:
        self.checks += 1
        if now >= self.deadline:
            self.closed_at = now
            return None
        return self.deadline


def test_wheel_closes_each_item_once_at_or_after_its_deadline(run: Run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        wheel = DeadlineWheel(loop, resolution=0.02)
        now = loop.time()
        items = [Item(loop, now + 0.01 * i) for i in range(1, 21)]
        for item in items:
            wheel.schedule(item, item.deadline)
        moved = items[0]
        moved.deadline = now + 0.3  # saw input: its next check puts it back in a later bucket
        dropped = items[1]
        wheel.discard(dropped)
        assert len(wheel) == 19
        await wait_until(lambda: all(i.closed_at for i in items if i is not dropped))
        for item in items:
            if item is not dropped:
                assert item.closed_at is not None
                assert item.closed_at >= item.deadline
        assert dropped.checks == 0
        assert moved.checks == 2
        assert len(wheel) == 0
        assert wheel._ticker is None  # nothing left: the wheel stops ticking
        wheel.schedule(dropped, loop.time() + 10)
        wheel.close()
        assert len(wheel) == 0
        assert dropped._deadline_slot == 0

    run(main())


def test_idle_timeout_closes_a_quiet_connection_and_spares_an_active_one(run: Run) -> None:
    Echoing = fresh(Echo)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with serving(Echoing, limits=Limits(idle_timeout=0.3)) as server:
            quiet = await Client.connect(server)
            active = await Client.connect(server)
            assert await quiet.request(b"hi") == b"hi"
            last_input = loop.time()
            # The active one talks every 0.1 s for three idle periods and is kept.
            for i in range(10):
                assert await active.request(b"%d" % i) == b"%d" % i
                await asyncio.sleep(0.1)
            assert await quiet.until_closed() == b"ERR idle-timeout limit=0.3s\n"
            assert loop.time() - last_input >= 0.3
            assert not active.closed
            assert Echoing.reasons == ["idle-timeout"]
            # Once it stops talking it goes the same way.
            assert await active.until_closed() == b"ERR idle-timeout limit=0.3s\n"
            assert server.snapshot()["closed"] == {"idle-timeout": 2}

    run(main())


def test_handshake_timeout_needs_a_whole_first_message(run: Run) -> None:
    Echoing = fresh(Echo)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        limits = Limits(handshake_timeout=0.3, idle_timeout=5)
        async with serving(Echoing, limits=limits) as server:
            started = loop.time()
            silent = await Client.connect(server)
            trickle = await Client.connect(server)
            greeted = await Client.connect(server)
            assert await greeted.request(b"hello") == b"hello"
            # Bytes that never make a message do not count as the first message.
            for _ in range(4):
                trickle.write(b"x")
                await asyncio.sleep(0.1)
            told = b"ERR handshake-timeout limit=0.3s\n"
            assert await silent.until_closed() == told
            assert await trickle.until_closed() == told
            assert loop.time() - started >= 0.3
            await asyncio.sleep(0.3)
            assert await greeted.request(b"still here") == b"still here"
            assert Echoing.reasons == ["handshake-timeout"] * 2
            assert server.snapshot()["closed"] == {"handshake-timeout": 2}

    run(main())


def test_zero_timeouts_mean_no_deadline(run: Run) -> None:
    async def main() -> None:
        limits = Limits(handshake_timeout=0, idle_timeout=0)
        async with serving(fresh(Echo), limits=limits) as server:
            client = await Client.connect(server)
            assert await client.request(b"x") == b"x"
            assert len(server._wheel) == 0
            await asyncio.sleep(0.3)
            assert not client.closed

    run(main())
