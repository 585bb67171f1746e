"""Every per-connection limit over real sockets: the offender hears why and is closed, the
others go on being served."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec
import pytest

from residentd.app import Session
from residentd.apps import echo
from residentd.codecs.jsonlines import JsonLinesCodec
from residentd.codecs.length_prefixed import LengthPrefixedCodec
from residentd.codecs.lines import LineCodec
from residentd.limits import KiB, Limits, MiB
from residentd.net.server import Server

from .helpers import Client, Echo, fresh, serving, wait_until

Run = Callable[[Coroutine[Any, Any, Any]], Any]


async def ask_line(client: Client, text: bytes) -> None:
    assert await client.request(text) == text


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


async def read_frame(client: Client, timeout: float = 5.0) -> bytes:
    length = int.from_bytes(await client.read(4, timeout), "big")
    return await client.read(length, timeout)


async def ask_frame(client: Client, body: bytes) -> None:
    client.write(frame(body))
    assert await read_frame(client) == body


# name: (codec, limits, what the offender sends, what it hears before the close, a round trip)
CASES: dict[str, tuple[Callable[[], Any], Limits, bytes, bytes, Any]] = {
    "line-too-long": (
        lambda: LineCodec(max_line=1024),
        Limits(),
        b"x" * 5000 + b"\n",
        b"ERR line-too-long limit=1024\n",
        ask_line,
    ),
    "frame-too-large": (
        lambda: LengthPrefixedCodec(max_length=1024),
        Limits(),
        (1025).to_bytes(4, "big") + b"y" * 1025,
        b"",  # no error form in this protocol: just the close
        ask_frame,
    ),
    "input-buffer-full": (
        lambda: LineCodec(max_line=4 * MiB),
        Limits(max_input_buffer=64 * KiB),
        b"z" * (200 * KiB),  # a line that never ends
        b"ERR input-buffer-full limit=65536\n",
        ask_line,
    ),
    "input-buffer-full-frames": (
        lambda: LengthPrefixedCodec(max_length=4 * MiB),
        Limits(max_input_buffer=64 * KiB),
        (1 * MiB).to_bytes(4, "big") + b"w" * (200 * KiB),
        b"",
        ask_frame,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_over_limit_input_closes_only_the_offender(run: Run, case: str) -> None:
    codec, limits, offence, told, ask = CASES[case]
    reason = case.removesuffix("-frames")
    Echoing = fresh(Echo)

    async def main() -> None:
        async with serving(Echoing, codec, limits) as server:
            good = await Client.connect(server)
            await ask(good, b"before")
            bad = await Client.connect(server)
            bad.write(offence)
            assert await bad.until_closed() == told
            await wait_until(lambda: len(server.connections) == 1)
            for i in range(3):
                await ask(good, b"after %d" % i)
            assert server.snapshot()["closed"] == {reason: 1}
        assert Echoing.reasons == [reason, "server-shutdown"]

    run(main())


class Flood(Session):
    """``flood`` makes it push 1 MiB a millisecond, ignoring backpressure, up to 512 MiB."""

    reasons: list[str] = []
    paused: list[int] = []

    def on_message(self, line: bytes) -> None:
        if line == b"flood":
            self.pushed = 0
            self.call_every(0.001, self.push)
        else:
            self.send(line)

    def push(self) -> None:
        if self.pushed < 512 * MiB:
            for _ in range(16):
                self.send(b"f" * (64 * KiB - 1))
            self.pushed += MiB

    def on_pause_writing(self) -> None:
        self.paused.append(self.id)

    def on_close(self, reason: str) -> None:
        self.reasons.append(reason)


def test_output_buffer_full_aborts_a_slow_reader_only(run: Run) -> None:
    class Flooding(Flood):
        reasons: list[str] = []
        paused: list[int] = []

    limits = Limits(write_high_water=256 * KiB, write_low_water=64 * KiB, max_output_buffer=MiB)

    async def main() -> None:
        async with serving(Flooding, limits=limits) as server:
            good = await Client.connect(server)
            slow = await Client.connect(server)
            assert slow.transport is not None
            slow.transport.pause_reading()  # never reads again
            slow.write(b"flood\n")
            await wait_until(lambda: Flooding.reasons, timeout=20, what="the slow reader's close")
            assert Flooding.reasons == ["output-buffer-full"]
            assert Flooding.paused == [2]
            for i in range(3):
                assert await good.request(b"still %d" % i) == b"still %d" % i
            assert server.snapshot()["closed"] == {"output-buffer-full": 1}
            slow.abort()

    run(main())


def test_max_connections_refuses_with_the_reason(run: Run) -> None:
    async def main() -> None:
        async with serving(fresh(Echo), limits=Limits(max_connections=2)) as server:
            first = await Client.connect(server)
            second = await Client.connect(server)
            await ask_line(first, b"1")
            await ask_line(second, b"2")
            refused = await Client.connect(server)
            assert await refused.until_closed() == b"ERR max-connections connection refused\n"
            await ask_line(first, b"still served")
            assert server.snapshot()["refused"] == {"max-connections": 1}
            assert server.snapshot()["connections_open"] == 2
            # A closed connection frees its place.
            first.close()
            await wait_until(lambda: len(server.connections) == 1)
            third = await Client.connect(server)
            await ask_line(third, b"3")
            # A reload that swaps the limits applies to the next connection at once.
            server.limits = Limits(max_connections=1)
            late = await Client.connect(server)
            assert await late.until_closed() == b"ERR max-connections connection refused\n"
            assert server.snapshot()["refused"] == {"max-connections": 2}
            await ask_line(second, b"2 again")

    run(main())


def test_max_connections_per_ip_counts_each_address(run: Run) -> None:
    async def main() -> None:
        async with serving(fresh(Echo), limits=Limits(max_connections_per_ip=2)) as server:
            local = [await Client.connect(server, source="127.0.0.1") for _ in range(2)]
            for client in local:
                await ask_line(client, b"local")
            refused = await Client.connect(server, source="127.0.0.1")
            told = await refused.until_closed()
            assert told == b"ERR max-connections-per-ip connection refused\n"
            other = await Client.connect(server, source="127.0.0.2")
            await ask_line(other, b"from another address")
            await ask_line(local[0], b"still served")
            assert server.snapshot()["refused"] == {"max-connections-per-ip": 1}
            local[1].close()
            await wait_until(lambda: len(server.connections) == 2)
            again = await Client.connect(server, source="127.0.0.1")
            await ask_line(again, b"room again")

    run(main())


def test_unix_peers_are_not_limited_per_ip(run: Run, tmp_path: Any) -> None:
    async def main() -> None:
        listen = [f"unix:{tmp_path}/s.sock"]
        limits = Limits(max_connections_per_ip=1)
        async with serving(fresh(Echo), limits=limits, listen=listen) as server:
            clients = [await Client.connect(server) for _ in range(3)]
            for client in clients:
                await ask_line(client, b"unix")
            assert server.snapshot()["refused"] == {}

    run(main())


def test_jsonlines_answers_bad_lines_and_goes_on(run: Run) -> None:
    async def main() -> None:
        limits = Limits(max_bad_messages=2)
        async with serving(fresh(Echo), JsonLinesCodec, limits) as server:
            client = await Client.connect(server)
            client.write(b'{"a": 1}\nnot json\n[1]\n{"b": 2}\n')
            replies = [msgspec.json.decode(await client.readline()) for _ in range(4)]
            assert replies[0] == {"a": 1}
            assert replies[1]["type"] == "error"
            assert replies[1]["code"] == "invalid-json"
            assert replies[2]["code"] == "not-an-object"
            assert replies[3] == {"b": 2}
            # The third bad message is one too many.
            client.write(b"{oops\n")
            last = msgspec.json.decode(await client.until_closed())
            assert last["code"] == "too-many-bad-messages"
            snapshot = server.snapshot()
            assert snapshot["errors"] == {
                "invalid-json": 2,
                "not-an-object": 1,
                "too-many-bad-messages": 1,
            }
            assert snapshot["closed"] == {"too-many-bad-messages": 1}

    run(main())


def digest(data: bytes) -> bytes:
    return b"%d %s" % (len(data), hashlib.sha256(data).hexdigest().encode())


class Digest(Session):
    """Answers each frame with its length and SHA-256."""

    def on_message(self, data: bytes) -> None:
        self.send(digest(data))


@pytest.mark.parametrize("session", [Digest, Echo])
def test_ten_mib_frame_arrives_whole(run: Run, session: type[Session]) -> None:
    big = os.urandom(10 * MiB)
    # The input and output caps have to make room for a message this big.
    limits = Limits(max_input_buffer=17 * MiB, max_output_buffer=32 * MiB)

    def answer(body: bytes) -> bytes:
        return digest(body) if session is Digest else body

    async def main() -> None:
        codec = lambda: LengthPrefixedCodec(max_length=16 * MiB)  # noqa: E731
        async with serving(session, codec, limits) as server:
            client = await Client.connect(server)
            other = await Client.connect(server)
            client.write(frame(big) + frame(b"next"))
            other.write(frame(b"meanwhile"))
            assert await read_frame(other) == answer(b"meanwhile")
            assert await read_frame(client, timeout=20) == answer(big)
            assert await read_frame(client) == answer(b"next")

    run(main())


def test_builtin_echo_refuses_a_line_over_64_kib(run: Run) -> None:
    async def main() -> None:
        server = Server(echo.app, Limits(), asyncio.get_running_loop())
        await server.start({"echo": ["127.0.0.1:0"]})
        try:
            (where,) = server.addresses("echo")
            good = await Client.connect(where)
            line = b"e" * (64 * KiB)
            assert await good.request(line) == line
            bad = await Client.connect(where)
            bad.write(line + b"e\n")
            assert await bad.until_closed() == b"ERR line-too-long limit=65536\n"
            assert await good.request(b"next") == b"next"
        finally:
            await server.stop(2.0)

    run(main())
