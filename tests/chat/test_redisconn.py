"""The broker link's Redis connection against a real redis-server and against hostile peers:
addresses as redis-py reads them, pipelined commands in order, error replies, messages in
batches, and a peer that is silent, talks garbage or goes away. And the link's event stream:
events handed to the hub at once while the node has no command in flight, held until the last
command in flight has its reply otherwise (then handed over in one batch, in Redis's order),
and released by a link that breaks rather than kept."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from residentd.apps.chat.broker import BrokerLink
from residentd.apps.chat.errors import ChatError
from residentd.apps.chat.redisconn import (
    RedisAddress,
    ReplyError,
    connect,
    pack,
)
from residentd.apps.chat.scripts import CHANNEL

from .broker import RedisServer, need_redis

pytestmark = pytest.mark.same_either_way


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


def test_addresses_are_read_as_redis_py_reads_them() -> None:
    assert RedisAddress.parse("redis://127.0.0.1:6380/2") == RedisAddress("127.0.0.1", 6380, db=2)
    assert RedisAddress.parse("redis://h") == RedisAddress("h", 6379)
    assert RedisAddress.parse("redis://:s%40cret@h:1/0") == RedisAddress("h", 1, password="s@cret")
    assert RedisAddress.parse("redis://u:p@h/3").username == "u"
    assert RedisAddress.parse("rediss://h:1").tls
    unix = RedisAddress.parse("unix:///run/redis.sock?db=4")
    assert (unix.path, unix.db, unix.host) == ("/run/redis.sock", 4, None)
    for bad in ("http://h", "unix://", "redis://h/notanumber"):
        with pytest.raises(ValueError):
            RedisAddress.parse(bad)


def test_commands_are_packed_as_bulk_strings() -> None:
    assert pack(("SET", b"k\r\n", 5, 0.5)) == (
        b"*4\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$1\r\n5\r\n$3\r\n0.5\r\n"
    )
    with pytest.raises(TypeError):
        pack(("SET", None))

    class Name(str):
        pass

    class Key(bytes):
        pass

    # Subclasses are packed as what they are; ints of any size and sign as their digits.
    assert pack((Name("é"), Key(b"k"), -(2**70), 2**63)) == pack(
        ("é".encode(), b"k", b"-1180591620717411303424", b"9223372036854775808")
    )
    with pytest.raises(TypeError):
        pack((bytearray(b"x"),))


def ignore(exc: BaseException) -> None:
    pass


def test_pipelined_commands_keep_their_order(redis_server: RedisServer, run: Any) -> None:
    async def main() -> None:
        lost: list[BaseException] = []
        link = await connect(RedisAddress.parse(redis_server.url), 5.0, lost.append)
        futures = [link.command("INCR", "counter:order") for _ in range(500)]
        futures.append(link.command("LPUSH", "counter:order", "x"))  # WRONGTYPE
        futures.append(link.command("HGETALL", "missing"))
        futures.append(link.command("GET", "missing"))
        results = await asyncio.gather(*futures, return_exceptions=True)
        first = results[0]
        assert results[:500] == list(range(first, first + 500))
        assert isinstance(results[500], ReplyError) and str(results[500]).startswith("WRONGTYPE")
        assert results[501:] == [[], None]
        link.close()
        assert len(lost) == 1  # a close tells the owner once

    run(main())


def test_messages_come_in_batches(redis_server: RedisServer, run: Any) -> None:
    async def main() -> None:
        batches: list[list[bytes]] = []
        address = RedisAddress.parse(redis_server.url)
        subscriber = await connect(address, 5.0, ignore)
        await subscriber.subscribe("test:batches", batches.append)
        publisher = await connect(address, 5.0, ignore)
        sent = [f"m{i}".encode() for i in range(300)]
        await asyncio.gather(*(publisher.command("PUBLISH", "test:batches", m) for m in sent))
        for _ in range(200):
            if sum(map(len, batches)) == len(sent):
                break
            await asyncio.sleep(0.01)
        assert [m for batch in batches for m in batch] == sent
        assert len(batches) < len(sent)  # several messages per read, handed over at once
        subscriber.close()
        publisher.close()

    run(main())


def test_a_password_and_a_database_are_used(tmp_path: Path, run: Any) -> None:
    need_redis()
    server = RedisServer(tmp_path).start("--requirepass", "s3cret")
    try:

        async def main() -> None:
            wrong = RedisAddress.parse(f"redis://:nope@127.0.0.1:{server.port}/0")
            with pytest.raises(ReplyError, match=r"WRONGPASS|invalid password"):
                await connect(wrong, 5.0, ignore)
            url = f"redis://:s3cret@127.0.0.1:{server.port}/5"
            link = await connect(RedisAddress.parse(url), 5.0, ignore)
            await link.command("SET", "where", "db5")
            assert await link.command("CLIENT", "INFO") != b""
            link.close()
            check = await connect(RedisAddress.parse(url.replace("/5", "/0")), 5.0, ignore)
            assert await check.command("GET", "where") is None
            await check.command("SELECT", 5)
            assert await check.command("GET", "where") == b"db5"
            check.close()

        run(main())
    finally:
        server.stop()


class Peer:
    """A TCP server that accepts one connection and does ``behaviour`` with it."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.server: asyncio.Server | None = None

    async def start(self) -> RedisAddress:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return RedisAddress("127.0.0.1", self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        if self.behaviour == "garbage":
            writer.write(b"?not resp at all\r\n")
        elif self.behaviour == "close":
            writer.close()
            return
        elif self.behaviour == "unasked":
            writer.write(b"+OK\r\n+OK\r\n")
        await asyncio.sleep(2)
        writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.mark.parametrize("behaviour", ["silent", "garbage", "close", "unasked"])
def test_a_bad_peer_fails_waiting_commands_and_reports_once(behaviour: str, run: Any) -> None:
    async def main() -> None:
        peer = Peer(behaviour)
        address = await peer.start()
        lost: list[BaseException] = []
        link = await connect(address, 0.3, lost.append)  # 0.3 s for a reply
        started = asyncio.get_running_loop().time()
        first = link.command("PING")
        if behaviour == "unasked":  # answered, then a reply nobody asked for breaks it
            assert await first == b"OK"
            await asyncio.sleep(0.1)
        else:
            with pytest.raises(ConnectionError):
                await first
        assert asyncio.get_running_loop().time() - started < 1.5
        assert len(lost) == 1
        with pytest.raises(ConnectionError):  # a lost connection takes no more commands
            link.command("PING")
        link.close()
        assert len(lost) == 1
        peer.close()

    run(main())


def test_an_address_nobody_listens_on_is_refused(run: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused

    async def main() -> None:
        with pytest.raises(OSError):
            await connect(RedisAddress("127.0.0.1", port), 1.0, ignore)

    run(main())


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
