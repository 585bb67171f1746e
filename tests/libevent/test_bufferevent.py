"""BufferEvent: callbacks, watermarks, big messages, timeouts, EOF and errors, connecting."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from residentd.libevent import (
    BEV_EVENT_CONNECTED,
    BEV_EVENT_EOF,
    BEV_EVENT_ERROR,
    BEV_EVENT_READING,
    BEV_EVENT_TIMEOUT,
    BEV_EVENT_WRITING,
    BEV_OPT_CLOSE_ON_FREE,
    EV_READ,
    EV_WRITE,
    EVBUFFER_EOL_LF,
    Buffer,
    BufferEvent,
    EventBase,
)

from .helpers import settle, until, until_len

Run = Callable[[Coroutine[Any, Any, None]], None]
Pair = tuple[socket.socket, socket.socket]


def record_events(seen: list[int]) -> Callable[[BufferEvent, int, Any], None]:
    return lambda bev, events, arg: seen.append(events)


def watched(base: EventBase, sock: socket.socket | None = None) -> tuple[BufferEvent, list[int]]:
    """A buffer event with only an event callback, and the list of what it was told."""
    bev = BufferEvent(base, sock)
    events: list[int] = []
    bev.setcb(None, None, record_events(events))
    return bev, events


def test_echo_with_read_write_and_event_callbacks(run: Run, socketpair: Pair) -> None:
    server_sock, client = socketpair

    async def main() -> None:
        base = EventBase()
        server = BufferEvent(base, server_sock)
        sent = [0]
        events: list[int] = []

        def on_read(bev: BufferEvent, arg: Any) -> None:
            assert arg == "ctx"
            while (line := bev.input.readln(EVBUFFER_EOL_LF)) is not None:
                bev.write(line.upper() + b"\n")

        def on_write(bev: BufferEvent, arg: Any) -> None:
            assert len(bev.output) == 0
            sent[0] += 1

        server.setcb(on_read, on_write, record_events(events), "ctx")
        assert server.enabled == EV_WRITE  # As in libevent, reading starts when enabled.
        server.enable(EV_READ)
        client.sendall(b"hello\nwor")
        await until(lambda: sent[0] == 1)
        client.sendall(b"ld\n")
        await until(lambda: sent[0] == 2)
        assert client.recv(100) == b"HELLO\nWORLD\n"
        client.close()
        await until(lambda: events)
        assert events == [BEV_EVENT_READING | BEV_EVENT_EOF]
        assert not server.enabled & EV_READ
        server.free()
        base.free()

    run(main())


def test_five_mib_across_a_1_kib_read_size(run: Run, socketpair: Pair) -> None:
    a, b = socketpair

    async def main() -> None:
        base = EventBase()
        sender = BufferEvent(base, a)
        receiver = BufferEvent(base, b, read_size=1024)
        payload = os.urandom(5 * 1024 * 1024).replace(b"\n", b"!") + b"\n"
        reads = [0]
        message: list[bytes] = []

        def on_read(bev: BufferEvent, arg: Any) -> None:
            reads[0] += 1
            line = bev.input.readln(EVBUFFER_EOL_LF)
            if line is not None:
                message.append(line)

        receiver.setcb(on_read, None, None)
        receiver.enable(EV_READ)
        sender.write(payload)
        await until(lambda: message, patience=30)
        assert message[0] == payload[:-1]
        assert reads[0] >= len(payload) // 1024
        assert len(receiver.input) == 0
        sender.free()
        receiver.free()
        base.free()

    run(main())


def test_read_watermarks_pause_and_resume_reading(run: Run, socketpair: Pair) -> None:
    a, b = socketpair

    async def main() -> None:
        base = EventBase()
        bev = BufferEvent(base, b, read_size=1024)
        calls: list[int] = []
        bev.setcb(lambda bev, arg: calls.append(len(bev.input)), None, None)
        bev.setwatermark(EV_READ, 100, 4096)
        bev.enable(EV_READ)
        a.sendall(b"x" * 60)
        await settle()
        assert calls == []  # Below the low watermark: no read callback yet.
        a.sendall(b"x" * 60)
        await until(lambda: calls)
        assert calls == [120]
        a.setblocking(False)
        sent = 120 + a.send(b"y" * 65536)
        await until(lambda: len(bev.input) == 4096)
        await settle()
        assert len(bev.input) == 4096  # Reading stopped at the high watermark.
        received = bytearray()
        while len(received) < sent:
            received += bev.read(3000)  # Below the mark again: reading resumes.
            await until_len(bev.input, min(4096, sent - len(received)))
        assert received == b"x" * 120 + b"y" * (sent - 120)
        bev.free()
        base.free()

    run(main())


def test_write_callback_at_the_write_low_watermark(run: Run, socketpair: Pair) -> None:
    a, b = socketpair

    async def main() -> None:
        base = EventBase()
        bev = BufferEvent(base, a)
        drained: list[int] = []
        bev.setcb(None, lambda bev, arg: drained.append(len(bev.output)), None)
        bev.setwatermark(EV_WRITE, 64 * 1024, 0)
        bev.write(b"z" * (4 * 1024 * 1024))  # Far more than the socket buffers hold.
        await settle()
        assert drained == []
        b.setblocking(False)
        while not drained:
            try:
                b.recv(1 << 20)
            except BlockingIOError:
                await asyncio.sleep(0.001)
        assert drained[0] <= 64 * 1024
        bev.free()
        base.free()

    run(main())


def test_read_timeout(run: Run, socketpair: Pair) -> None:
    _, b = socketpair

    async def main() -> None:
        base = EventBase()
        bev, events = watched(base, b)
        bev.set_timeouts(0.05, None)
        bev.enable(EV_READ)
        await until(lambda: events)
        assert events == [BEV_EVENT_READING | BEV_EVENT_TIMEOUT]
        assert bev.enabled == EV_WRITE  # A timeout disables its direction.
        bev.free()
        base.free()

    run(main())


def test_write_timeout_when_the_peer_reads_nothing(run: Run, socketpair: Pair) -> None:
    a, _ = socketpair

    async def main() -> None:
        base = EventBase()
        bev, events = watched(base, a)
        bev.set_timeouts(None, 0.1)
        bev.write(b"w" * (4 * 1024 * 1024))
        await until(lambda: events)
        assert events == [BEV_EVENT_WRITING | BEV_EVENT_TIMEOUT]
        assert len(bev.output) > 0
        bev.free()
        base.free()

    run(main())


def test_write_error_when_the_peer_is_gone(run: Run, socketpair: Pair) -> None:
    a, b = socketpair

    async def main() -> None:
        base = EventBase()
        bev, events = watched(base, a)
        b.close()
        bev.write(b"into the void")
        await until(lambda: events)
        assert events == [BEV_EVENT_WRITING | BEV_EVENT_ERROR]
        assert bev.error is not None
        assert bev.error.errno == errno.EPIPE
        bev.free()
        base.free()

    run(main())


def test_disable_and_enable_reading(run: Run, socketpair: Pair) -> None:
    a, b = socketpair

    async def main() -> None:
        base = EventBase()
        bev = BufferEvent(base, b)
        bev.setcb(lambda bev, arg: None, None, None)
        bev.enable(EV_READ)
        a.sendall(b"one")
        await until(lambda: len(bev.input) == 3)
        bev.disable(EV_READ)
        a.sendall(b"two")
        await settle()
        assert bev.read() == b"one"
        bev.enable(EV_READ)
        await until(lambda: len(bev.input) == 3)
        assert bev.read() == b"two"
        with pytest.raises(ValueError):
            bev.enable(0x100)
        bev.free()
        base.free()

    run(main())


def test_buffer_event_on_a_pipe(run: Run) -> None:
    read_fd, write_fd = os.pipe()

    async def main() -> None:
        base = EventBase()
        reader = BufferEvent(base, read_fd, BEV_OPT_CLOSE_ON_FREE)
        writer = BufferEvent(base, write_fd, BEV_OPT_CLOSE_ON_FREE)
        events: list[int] = []
        got = Buffer()
        reader.setcb(lambda bev, arg: bev.read_buffer(got), None, record_events(events))
        reader.enable(EV_READ)
        writer.setcb(None, lambda bev, arg: bev.free(), None)  # Closes the pipe once sent.
        writer.write_buffer(Buffer(b"through a pipe"))
        await until(lambda: events)
        assert bytes(got) == b"through a pipe"
        assert events == [BEV_EVENT_READING | BEV_EVENT_EOF]
        reader.free()
        base.free()

    run(main())
    for fd in (read_fd, write_fd):
        with pytest.raises(OSError):
            os.fstat(fd)


def test_free_closes_only_what_it_owns(run: Run, socketpair: Pair) -> None:
    a, b = socketpair

    async def main() -> None:
        base = EventBase()
        BufferEvent(base, a).free()
        assert a.fileno() >= 0
        BufferEvent(base, b, BEV_OPT_CLOSE_ON_FREE).free()
        assert b.fileno() == -1
        base.free()

    run(main())


# Outgoing connections.


def test_connect_to_an_asyncio_server(run: Run) -> None:
    async def main() -> None:
        async def upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write((await reader.readline()).upper())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(upper, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        base = EventBase()
        bev, events = watched(base)
        bev.enable(EV_READ | EV_WRITE)
        bev.write(b"mixed loops\n")  # Queued until connected.
        bev.socket_connect(("127.0.0.1", port))
        await until(lambda: BEV_EVENT_READING | BEV_EVENT_EOF in events)
        assert events == [BEV_EVENT_CONNECTED, BEV_EVENT_READING | BEV_EVENT_EOF]
        assert bev.read() == b"MIXED LOOPS\n"
        fd = bev.fd
        bev.free()
        with pytest.raises(OSError):
            os.fstat(fd)  # The socket it made is closed with it.
        server.close()
        await server.wait_closed()
        base.free()

    run(main())


def test_connect_refused(run: Run) -> None:
    async def main() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]  # Bound, not listening: connecting is refused.
            base = EventBase()
            bev, events = watched(base)
            bev.enable(EV_READ)
            bev.socket_connect(("127.0.0.1", port))
            await until(lambda: events)
            await settle()
            assert events == [BEV_EVENT_ERROR]
            assert bev.error is not None
            assert bev.error.errno == errno.ECONNREFUSED
            bev.free()
            base.free()

    run(main())
