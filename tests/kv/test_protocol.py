"""The wire, on both loops: inline commands, and bad input answered with Redis's protocol
error and a close while other clients carry on; limits refused in Redis's words."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from residentd.limits import Limits
from support import wait_until

from .helpers import KvThread, Raw, resp


@pytest.fixture
def kv_on(loop_kind: str) -> Iterator[KvThread]:
    """kv on this test's loop (uvloop, then asyncio)."""
    with KvThread(loop=loop_kind) as server:
        yield server


def test_inline_commands(kv_on: KvThread) -> None:
    with Raw(kv_on.port) as client:
        client.send(b"PING\r\nSET greeting \"hello world\"\nGET greeting\r\n\r\nECHO 'x y'\r\n")
        assert client.replies(4) == [
            b"+PONG\r\n",
            b"+OK\r\n",
            b"$11\r\nhello world\r\n",
            b"$3\r\nx y\r\n",
        ]


@pytest.mark.parametrize(
    ("garbage", "error"),
    [
        (b"*1\r\n+PING\r\n", b"expected '$', got '+'"),
        (b"*2\r\n$3\r\nGET\r\n:1\r\n", b"expected '$', got ':'"),
        (b"*x\r\n", b"invalid multibulk length"),
        (b"*1\r\n$-5\r\n", b"invalid bulk length"),
        (b"*1\r\n$600000000\r\n", b"invalid bulk length"),
        (b"*3000000000\r\n", b"invalid multibulk length"),
        (b'SET "a b\r\n', b"unbalanced quotes in request"),
    ],
)
def test_bad_input_gets_the_protocol_error_and_a_close(
    kv_on: KvThread, garbage: bytes, error: bytes
) -> None:
    with Raw(kv_on.port) as bystander, Raw(kv_on.port) as offender:
        offender.send(resp("SET", "before", "1") + garbage + resp("SET", "after", "1"))
        assert offender.read_until_closed() == b"+OK\r\n-ERR Protocol error: " + error + b"\r\n"
        assert bystander.call("GET", "before") == b"$1\r\n1\r\n"
        assert bystander.call("GET", "after") == b"$-1\r\n"


def test_an_inline_request_without_an_end_is_refused_past_64k(kv_on: KvThread) -> None:
    with Raw(kv_on.port) as client:
        client.send(b"x" * 70_000)
        assert client.read_until_closed() == b"-ERR Protocol error: too big inline request\r\n"


def test_truncated_input_leaves_the_server_serving(kv_on: KvThread) -> None:
    for cut in (1, 5, 9, 17):
        with Raw(kv_on.port) as client:
            client.send(resp("SET", "key", "value")[:cut])
    with Raw(kv_on.port) as client:
        assert client.call("DBSIZE") == b":0\r\n"
    wait_until(lambda: kv_on.call(lambda: len(kv_on.server.connections)) == 0, what="closes")


def test_query_buffer_limit_closes_silently_as_redis_does() -> None:
    with KvThread(options={"client_query_buffer_limit": 64 * 1024}) as server:
        with Raw(server.port) as bystander, Raw(server.port) as offender:
            offender.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$200000\r\n" + b"v" * 100_000)
            assert offender.read_until_closed() == b""
            assert bystander.call("PING") == b"+PONG\r\n"
        closed = server.call(lambda: dict(server.server.stats.closed))
        assert closed.get("input-buffer-full") == 1


def test_values_up_to_the_query_buffer_limit_are_fine() -> None:
    with KvThread(limits=Limits(max_input_buffer=4 << 20)) as server, Raw(server.port) as client:
        value = bytes(range(256)) * (3 << 12)  # 3 MiB
        assert client.call("SET", "big", value) == b"+OK\r\n"
        assert client.call("STRLEN", "big") == b":%d\r\n" % len(value)
        assert client.call("GET", "big") == b"$%d\r\n%b\r\n" % (len(value), value)


def test_proto_max_bulk_len_option() -> None:
    with KvThread(options={"proto_max_bulk_len": 10}) as server, Raw(server.port) as client:
        assert client.call("SET", "k", "x" * 10) == b"+OK\r\n"
        assert client.call("APPEND", "k", "y") == (
            b"-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n"
        )
        client.send(resp("SET", "k", "x" * 11))
        assert client.read_until_closed() == b"-ERR Protocol error: invalid bulk length\r\n"


def test_maxclients_refusal_text(loop_kind: str) -> None:
    limits = Limits(max_connections=2, idle_timeout=0)
    with (
        KvThread(loop=loop_kind, limits=limits) as server,
        Raw(server.port) as first,
        Raw(server.port) as second,
    ):
        assert first.call("PING") == second.call("PING") == b"+PONG\r\n"
        with Raw(server.port) as third:
            assert third.read_until_closed() == b"-ERR max number of clients reached\r\n"
        assert first.call("PING") == b"+PONG\r\n"


MANGLED = [
    b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n\n$1\r\nk\r\n",  # "expected '$', got '\n'": one line
    b"*2\r\n$3\r\nGET\r\n\r$1\r\nk\r\n",
    b"*1\r\n$4\x00\r\nPING\r\n",  # a NUL before a line's CR: Redis's strchr never finds it
    b"*1\x00\r\n$4\r\nPING\r\n",
    b"PING\r\n\x00GET k\r\nPING\r\n",  # ... nor an inline line's LF
    b"GET k\x00\r\nPING\r\n",
    b"*1\r\n$4\r\nPI\x00G\r\nGET \x00\r\n",
    b"*1\r\n$4\r\nPING\r\nP\x04NG\r\n*-1\r\nPING\r\n",
    b"*0\r\n*1\r\n$4\r\nPING\r\n*1\r\n$-1\r\n",
    b"ECHO 'a\x00b'\r\n",
    b'SET k "\\x4"\r\nGET k\r\n',
]


def _answered(port: int, request: bytes) -> tuple[bytes, bool]:
    """All a server answers ``request`` (then a PING of its own) until it closes the connection
    or sends nothing more for 0.2 s; and whether it closed."""
    with Raw(port, timeout=0.2) as client:
        client.send(request + resp("PING", "end"))
        received = b""
        try:
            while not received.endswith(b"$3\r\nend\r\n"):
                chunk = client.sock.recv(65536)
                if not chunk:
                    return received, True
                received += chunk
        except TimeoutError:
            pass
        return received, False


@pytest.mark.parametrize("request_bytes", MANGLED)
def test_mangled_requests_are_answered_as_redis_answers_them(
    request_bytes: bytes, redis_port: int
) -> None:
    """Found by feeding both servers requests with bytes flipped, inserted and cut: what kv
    answers, and whether it closes or waits for more, is Redis's."""
    with KvThread() as server:
        assert _answered(server.port, request_bytes) == _answered(redis_port, request_bytes)
