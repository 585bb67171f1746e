"""Listeners: IPv4, IPv6 and Unix sockets, stale socket files, bad addresses."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from residentd.codecs.lines import LineCodec
from residentd.errors import ConfigError
from residentd.limits import Limits
from residentd.net.listener import Address, parse_address
from residentd.net.server import Server

from .helpers import Client, Echo, fresh, one_service_app, serving

Run = Callable[[Coroutine[Any, Any, Any]], Any]


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    "listen",
    [
        "127.0.0.1:0",
        pytest.param("[::1]:0", marks=pytest.mark.skipif(not has_ipv6(), reason="no IPv6")),
        "unix",
    ],
)
def test_each_kind_of_listener_serves(run: Run, listen: str, tmp_path: Path) -> None:
    if listen == "unix":
        listen = f"unix:{tmp_path}/echo.sock"

    async def main() -> None:
        async with serving(fresh(Echo), listen=[listen]) as server:
            (bound,) = server.addresses("main")
            if bound.kind == "tcp":
                assert bound.port != 0
                assert str(bound) == listen.replace(":0", f":{bound.port}")
            else:
                assert str(bound) == listen
            client = await Client.connect(bound)
            assert await client.request(b"hello") == b"hello"
            conn = next(iter(server.connections.values()))
            if bound.kind == "tcp":
                assert client.transport is not None
                host, port = client.transport.get_extra_info("sockname")[:2]
                assert conn.peer == (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
            else:
                assert conn.peer == "unix"
        if bound.kind == "unix":
            assert not os.path.exists(bound.path)  # removed on stop

    run(main())


def test_one_service_on_several_addresses(run: Run, tmp_path: Path) -> None:
    async def main() -> None:
        listen = ["127.0.0.1:0", "127.0.0.2:0", f"unix:{tmp_path}/a.sock"]
        async with serving(fresh(Echo), listen=listen) as server:
            bound = server.addresses("main")
            assert [a.kind for a in bound] == ["tcp", "tcp", "unix"]
            assert server.addresses() == bound
            assert server.addresses("nothing") == []
            for where in bound:
                client = await Client.connect(where)
                assert await client.request(str(where).encode()) == str(where).encode()
            assert server.snapshot()["accepted"] == 3

    run(main())


def stale_socket(path: str) -> None:
    """Leave a Unix socket file behind, as a process killed without cleanup does."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen()
    sock.close()


def test_stale_unix_socket_is_taken_over(run: Run, tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    stale_socket(path)
    assert os.path.exists(path)

    async def main() -> None:
        async with serving(fresh(Echo), listen=[f"unix:{path}"]) as server:
            client = await Client.connect(server)
            assert await client.request(b"new owner") == b"new owner"

    run(main())


def test_live_unix_socket_is_not_stolen(run: Run, tmp_path: Path) -> None:
    path = str(tmp_path / "live.sock")

    async def main() -> None:
        async with serving(fresh(Echo), listen=[f"unix:{path}"]) as first:
            second = Server(one_service_app(Echo, LineCodec), Limits())
            with pytest.raises(OSError) as caught:
                await second.start({"main": [f"unix:{path}"]})
            assert caught.value.errno == errno.EADDRINUSE
            assert os.path.exists(path)
            # The first server still owns the path and serves.
            client = await Client.connect(first)
            assert await client.request(b"still mine") == b"still mine"

    run(main())


def test_regular_file_at_the_path_is_left_alone(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("precious")

    async def main() -> None:
        server = Server(one_service_app(Echo, LineCodec), Limits())
        with pytest.raises(OSError) as caught:
            await server.start({"main": [f"unix:{path}"]})
        assert caught.value.errno == errno.EEXIST
        assert "not a socket" in str(caught.value)

    run(main())
    assert path.read_text() == "precious"


def test_a_failed_start_closes_what_it_bound(run: Run) -> None:
    async def main() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            app = one_service_app(Echo, LineCodec)
            server = Server(app, Limits())
            with pytest.raises(OSError) as caught:
                await server.start({"main": ["127.0.0.1:0", f"127.0.0.1:{port}"]})
            assert caught.value.errno == errno.EADDRINUSE
            assert server.addresses() == []
            assert not server.connections

    run(main())


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:7007", Address("tcp", "127.0.0.1", 7007)),
        (":7007", Address("tcp", "0.0.0.0", 7007)),
        ("localhost:0", Address("tcp", "localhost", 0)),
        ("[::1]:7007", Address("tcp", "::1", 7007)),
        ("[::]:65535", Address("tcp", "::", 65535)),
        ("unix:/run/x.sock", Address("unix", path="/run/x.sock")),
        ("unix:relative.sock", Address("unix", path="relative.sock")),
    ],
)
def test_good_addresses_parse(text: str, address: Address) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize(
    "text",
    [
        "",
        "7007",
        "localhost",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "127.0.0.1:http",
        "127.0.0.1: 80",
        "127.0.0.1:٨٠",  # digits, but not ASCII ones
        "::1:7007",  # an IPv6 host needs brackets
        "[::1]",
        "[]:7007",
        "[::1]:",
        "[::1]7007",
        "[::1:7007",
        "unix:",
    ],
)
def test_bad_addresses_raise_config_error(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_address(text)
    message = str(caught.value)
    assert repr(text) in message
    assert "HOST:PORT" in message


def test_server_start_rejects_a_bad_address(run: Run) -> None:
    async def main() -> None:
        server = Server(one_service_app(Echo, LineCodec), Limits())
        with pytest.raises(ConfigError):
            await server.start({"main": ["nowhere"]})
        assert server.addresses() == []

    run(main())
