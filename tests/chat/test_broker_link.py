"""The broker link's event stream against a real redis-server: events are handed to the hub at
once while the node has no command in flight, held until the last command in flight has its
reply otherwise (then handed over in one batch, in Redis's order), and released by a link
that breaks rather than kept."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from residentd.apps.chat.broker import BrokerLink
from residentd.apps.chat.errors import ChatError
from residentd.apps.chat.redisconn import RedisAddress, connect
from residentd.apps.chat.scripts import CHANNEL

from .broker import RedisServer

pytestmark = pytest.mark.same_either_way


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


def ignore(exc: BaseException) -> None:
    pass


async def until(condition: Any, what: str) -> None:
    for _ in range(300):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def no_up() -> None:
    pass


def test_events_wait_for_the_reply_of_the_last_command_in_flight(
    redis_server: RedisServer, run: Any
) -> None:
    async def main() -> None:
        batches: list[list[bytes]] = []
        link = BrokerLink(redis_server.url, batches.append, no_up)
        await link.open(wait=False)
        other = await connect(RedisAddress.parse(redis_server.url), 5.0, ignore)
        try:
            await other.command("PUBLISH", CHANNEL, "alone")
            await until(lambda: batches == [[b"alone"]], "an event handed over at once")

            # A command in flight (BLPOP waits for a push): the events that come meanwhile,
            # from separate publishes, are held.
            blocked = asyncio.ensure_future(link.command("BLPOP", "test:held", 10))
            await asyncio.sleep(0.05)  # it has reached Redis
            for number in range(3):
                await other.command("PUBLISH", CHANNEL, f"e{number}")
                await asyncio.sleep(0.02)
            assert batches == [[b"alone"]]
            await other.command("RPUSH", "test:held", "x")  # BLPOP answers: all handed over
            assert await blocked == [b"test:held", b"x"]
            await until(lambda: len(batches) == 2, "the held events handed over")
            assert batches[1] == [b"e0", b"e1", b"e2"]

            # A link that breaks while events are held hands them over all the same.
            blocked = asyncio.ensure_future(link.command("BLPOP", "test:held", 10))
            await asyncio.sleep(0.05)
            await other.command("PUBLISH", CHANNEL, "before-the-break")
            await asyncio.sleep(0.05)
            assert len(batches) == 2
            await other.command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            with pytest.raises(ChatError):
                await blocked
            await until(lambda: len(batches) == 3, "the held event released by the break")
            assert batches[2] == [b"before-the-break"]
        finally:
            other.close()
            await link.close()

    run(main())
