"""The Session API over real sockets: hooks, handler errors, async handlers, close and abort,
counters, watermarks and the graceful stop."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import pytest

from residentd.app import App, Session
from residentd.codecs.lines import LineCodec
from residentd.limits import KiB, Limits
from residentd.net.server import Server
from residentd.settings import setting

from .helpers import Client, Echo, fresh, nothing_more, one_service_app, serving, wait_until

Run = Callable[[Coroutine[Any, Any, Any]], Any]
INTERNAL_ERROR = b"ERR internal-error the server failed to handle a message"


def test_hooks_and_identity(run: Run) -> None:
    seen: list[Any] = []

    class Hello(Session):
        def on_connect(self) -> None:
            seen.append(("connect", self.id, self.peer, self.app.name))
            self.send(b"hello " + self.peer.encode())

        def on_message(self, line: bytes) -> None:
            seen.append(("message", line))
            self.send(line.upper())

        def on_close(self, reason: str) -> None:
            seen.append(("close", reason))

    async def main() -> None:
        async with serving(Hello) as server:
            client = await Client.connect(server)
            assert client.transport is not None
            host, port = client.transport.get_extra_info("sockname")[:2]
            assert await client.readline() == f"hello {host}:{port}".encode()
            assert await client.request(b"abc") == b"ABC"
            client.close()
            await wait_until(lambda: not server.connections)
        assert seen == [
            ("connect", 1, f"{host}:{port}", "test"),
            ("message", b"abc"),
            ("close", "closed-by-peer"),
        ]

    run(main())


def test_half_close_gets_every_answer_before_the_close(run: Run) -> None:
    Echoing = fresh(Echo)

    async def main() -> None:
        async with serving(Echoing) as server:
            client = await Client.connect(server)
            assert client.transport is not None
            client.write(b"a\nb\r\nc\n")
            client.transport.write_eof()
            assert await client.until_closed() == b"a\nb\nc\n"
        assert Echoing.reasons == ["closed-by-peer"]

    run(main())


class Fragile(Session):
    """Echoes, raises on ``boom``; records close reasons."""

    reasons: list[str] = []

    def on_message(self, line: bytes) -> None:
        if line == b"boom":
            raise RuntimeError("handler bug")
        self.send(line)

    def on_close(self, reason: str) -> None:
        self.reasons.append(reason)


class AsyncFragile(Fragile):
    """The same as an ``async def`` handler that awaits before answering."""

    async def on_message(self, line: bytes) -> None:  # type: ignore[override]
        await asyncio.sleep(random.random() * 0.002)
        Fragile.on_message(self, line)


@pytest.mark.parametrize("session", [Fragile, AsyncFragile])
def test_a_raising_handler_closes_only_its_connection(
    run: Run, session: type[Fragile], caplog: pytest.LogCaptureFixture
) -> None:
    Session = fresh(session)

    async def main() -> None:
        async with serving(Session) as server:
            good = await Client.connect(server)
            bad = await Client.connect(server)
            assert await good.request(b"one") == b"one"
            with caplog.at_level(logging.ERROR, "residentd"):
                bad.write(b"before\nboom\nafter\n")
                assert await bad.until_closed() == b"before\n" + INTERNAL_ERROR + b"\n"
            assert await good.request(b"two") == b"two"
            assert Session.reasons == ["internal-error"]
            snapshot = server.snapshot()
            assert snapshot["errors"] == {"internal-error": 1}
            assert snapshot["closed"] == {"internal-error": 1}
            assert snapshot["connections_open"] == 1

    run(main())
    failures = [r for r in caplog.records if r.exc_info and "on_message raised" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
    assert str(failures[0].exc_info[1]) == "handler bug"


def test_raising_on_connect_or_constructor_closes_with_internal_error(run: Run) -> None:
    reasons: list[str] = []

    class BadConnect(Session):
        def on_connect(self) -> None:
            raise ValueError("on_connect bug")

        def on_close(self, reason: str) -> None:
            reasons.append(reason)

    class BadInit(Session):
        def __init__(self, conn: Any) -> None:
            raise ValueError("constructor bug")

    async def main() -> None:
        for session in (BadConnect, BadInit):
            async with serving(session) as server:
                client = await Client.connect(server)
                assert await client.until_closed() == INTERNAL_ERROR + b"\n"
                await wait_until(lambda: not server.connections)
                assert server.snapshot()["closed"] == {"internal-error": 1}
        assert reasons == ["internal-error"]

    run(main())


def test_async_handler_keeps_order_and_does_not_block_others(run: Run) -> None:
    gate = asyncio.Event()

    class Slow(Session):
        async def on_message(self, line: bytes) -> None:
            if line == b"wait":
                await gate.wait()
            else:
                await asyncio.sleep(random.random() * 0.002)
            self.send(line)

    async def main() -> None:
        async with serving(Slow) as server:
            blocked = await Client.connect(server)
            other = await Client.connect(server)
            blocked.write(b"wait\n" + b"".join(b"b%d\n" % i for i in range(50)))
            # The other connection is served, in order, while the first one's handler waits.
            lines = [b"o%d" % i for i in range(300)]
            for start in range(0, 300, 37):
                other.write(b"".join(line + b"\n" for line in lines[start : start + 37]))
            assert [await other.readline() for _ in lines] == lines
            assert blocked.data == b""
            gate.set()
            expected = [b"wait"] + [b"b%d" % i for i in range(50)]
            assert [await blocked.readline() for _ in expected] == expected

    run(main())


def test_async_backlog_pauses_reading_and_keeps_every_message(run: Run) -> None:
    class Slow(Session):
        async def on_message(self, line: bytes) -> None:
            await asyncio.sleep(0)
            self.send(line)

    async def main() -> None:
        async with serving(Slow) as server:
            client = await Client.connect(server)
            lines = [b"%d" % i for i in range(5000)]
            client.write(b"".join(line + b"\n" for line in lines))
            assert [await client.readline() for _ in lines] == lines
            assert server.snapshot()["messages_in"] == 5000

    run(main())


class Closer(Session):
    """``quit`` sends 100 lines then closes; ``abort`` sends 100 lines then aborts; ``later``
    does the same as ``quit`` from a timer, outside message dispatch."""

    reasons: list[str] = []

    def on_message(self, line: bytes) -> None:
        if line == b"later":
            self.call_later(0.01, self.on_message, b"quit")
            return
        for i in range(100):
            self.send(b"line %d" % i)
        if line == b"quit":
            self.close("bye")
        elif line == b"abort":
            self.abort("nope")

    def on_close(self, reason: str) -> None:
        self.reasons.append(reason)


def test_close_flushes_queued_output_and_abort_does_not(run: Run) -> None:
    async def main() -> None:
        flushed = b"".join(b"line %d\n" % i for i in range(100))
        Closing = fresh(Closer)
        async with serving(Closing) as server:
            for command, expected in [(b"quit", flushed), (b"later", flushed), (b"abort", b"")]:
                client = await Client.connect(server)
                client.write(command + b"\n")
                assert await client.until_closed() == expected
            await wait_until(lambda: not server.connections)
            assert server.snapshot()["closed"] == {"bye": 2, "nope": 1}
        assert Closing.reasons == ["bye", "bye", "nope"]

    run(main())


def test_counters_are_exact(run: Run) -> None:
    totals: list[tuple[int, int, int, int]] = []

    class Counting(fresh(Echo)):  # type: ignore[misc]
        def on_close(self, reason: str) -> None:
            conn = self.conn
            totals.append((conn.bytes_in, conn.bytes_out, conn.messages_in, conn.messages_out))

    async def main() -> None:
        lines = [b"message-%d" % i * (i + 1) for i in range(20)]
        sent = sum(len(line) + 1 for line in lines)
        async with serving(Counting) as server:
            clients = [await Client.connect(server) for _ in range(3)]
            for client in clients:
                client.write(b"".join(line + b"\n" for line in lines))
                assert [await client.readline() for _ in lines] == lines
            snapshot = server.snapshot()  # live connections are counted too
            assert (snapshot["bytes_in"], snapshot["bytes_out"]) == (3 * sent, 3 * sent)
            assert (snapshot["messages_in"], snapshot["messages_out"]) == (60, 60)
            for client in clients:
                client.close()
            await wait_until(lambda: not server.connections)
            after = server.snapshot()
            for key in ("bytes_in", "bytes_out", "messages_in", "messages_out"):
                assert after[key] == snapshot[key]
            assert after["accepted"] == after["connections_total"] == 3
            assert after["connections_open"] == 0
            assert after["closed"] == {"closed-by-peer": 3}
        assert totals == [(sent, sent, 20, 20)] * 3

    run(main())


def test_watermarks_pause_and_resume_the_session(run: Run) -> None:
    events: list[str] = []
    chunk = b"x" * (16 * KiB - 1)

    class Producer(Session):
        """Sends until paused, then stops; says ``done`` once resumed; echoes what it reads."""

        def on_connect(self) -> None:
            self.produce()

        def produce(self) -> None:
            if events:
                return
            for _ in range(16):
                self.send(chunk)
            self.call_later(0, self.produce)

        def on_message(self, line: bytes) -> None:
            events.append("read")
            self.send(line)

        def on_pause_writing(self) -> None:
            events.append("pause")

        def on_resume_writing(self) -> None:
            events.append("resume")
            self.send(b"done")

    async def main() -> None:
        limits = Limits(write_high_water=64 * KiB, write_low_water=16 * KiB)
        async with serving(Producer, limits=limits) as server:
            client = await Client.connect(server)
            assert client.transport is not None
            client.transport.pause_reading()
            await wait_until(lambda: events == ["pause"], what="on_pause_writing")
            conn = next(iter(server.connections.values()))
            assert conn.write_buffer_size > 64 * KiB
            # A peer whose output is backed up is not read from meanwhile.
            client.write(b"ping\n")
            await asyncio.sleep(0.1)
            assert events == ["pause"]
            client.transport.resume_reading()
            lines = set()
            while lines != {b"done", b"ping"}:
                line = await client.readline()
                if line != chunk:
                    lines.add(line)
            assert events[:2] == ["pause", "resume"]
            assert events.count("read") == 1

    run(main())


def test_graceful_stop_says_goodbye_and_runs_hooks(run: Run) -> None:
    calls: list[str] = []
    reasons: list[str] = []

    class Polite(Session):
        def on_message(self, line: bytes) -> None:
            self.send(line)

        def on_shutdown(self) -> None:
            self.send(b"bye %d" % self.id)

        def on_close(self, reason: str) -> None:
            reasons.append(reason)

    app = one_service_app(Polite, LineCodec)

    @app.on_start
    async def started() -> None:
        calls.append("start")

    @app.on_stop
    def stopping() -> None:
        calls.append("stop")

    @app.every(0.01)
    def tick() -> None:
        calls.append("tick")

    async def main() -> None:
        server = Server(app, Limits(), asyncio.get_running_loop())
        await server.start({"main": ["127.0.0.1:0"]})
        assert app.server is server
        where = server.addresses("main")[0]
        clients = [await Client.connect(server) for _ in range(3)]
        for client in clients:
            assert await client.request(b"hi") == b"hi"
        await wait_until(lambda: "tick" in calls)
        await server.stop(2.0)
        for number, client in enumerate(clients, 1):
            assert await client.until_closed() == b"bye %d\n" % number
        assert reasons == ["server-shutdown"] * 3
        assert server.snapshot()["closed"] == {"server-shutdown": 3}
        await nothing_more(calls, 0.05)  # periodic jobs end with the server
        with pytest.raises(OSError):
            await Client.connect(where)
        await server.wait_closed()

    run(main())
    assert [call for call in calls if call != "tick"] == ["start", "stop"]


def test_stop_waits_for_busy_async_handlers_then_aborts_at_the_timeout(run: Run) -> None:
    release = asyncio.Event()

    class Busy(Session):
        reasons: list[str] = []

        async def on_message(self, line: bytes) -> None:
            if line == b"forever":
                await asyncio.Event().wait()
            await release.wait()
            self.send(b"done " + line)

        def on_close(self, reason: str) -> None:
            self.reasons.append(reason)

    async def main() -> None:
        async with serving(Busy) as server:
            finishing = await Client.connect(server)
            stuck = await Client.connect(server)
            finishing.write(b"job\n")
            stuck.write(b"forever\n")
            await wait_until(lambda: server.snapshot()["messages_in"] == 2)
            stop = asyncio.ensure_future(server.stop(0.5))
            await asyncio.sleep(0.05)
            release.set()
            assert await finishing.until_closed() == b"done job\n"
            assert await stuck.until_closed() == b""
            await stop
            assert sorted(Busy.reasons) == ["server-shutdown", "shutdown-timeout"]
            # The request the deadline cut off mid-handler is counted as dropped.
            assert server.snapshot()["dropped_connections"] == 1

    run(main())


@dataclass(frozen=True, slots=True)
class DemoSettings:
    size: int = setting(3, "how many", reload=True, minimum=1)


def test_app_declares_services_and_settings() -> None:
    app = App("demo")
    app.declare(DemoSettings)
    assert app.options == {"size": 3}
    assert app.current(DemoSettings) == DemoSettings(3)
    [size] = app.declared_settings()
    assert size.reloadable and size.minimum == 1 and size.kind is int
    service = app.service("main", Fragile, LineCodec, listen=["127.0.0.1:1"])
    assert not service.async_handler
    assert app.service("other", AsyncFragile, LineCodec).async_handler
    with pytest.raises(ValueError, match="already has a service"):
        app.service("main", Fragile, LineCodec)
