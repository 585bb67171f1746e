"""Listening addresses: parse ``HOST:PORT``, ``[V6]:PORT`` and ``unix:/path``, and bind them.

TCP listeners are bound with SO_REUSEADDR (a restart does not wait for TIME_WAIT). A Unix socket
path left behind by a dead process is detected by trying to connect to it: refused means stale,
so the file is removed and the path bound again; a live listener there refuses the bind with a
clear error, and a path that exists but is not a socket is never removed.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass

from residentd.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Address:
    kind: str  # "tcp" or "unix"
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


# sun_path holds 108 bytes on Linux, the terminating NUL included.
MAX_UNIX_PATH = 107


def parse_address(text: str) -> Address:
    """Parse a ``--listen`` value; raise ConfigError naming the value and the allowed forms."""
    allowed = "HOST:PORT, [IPV6]:PORT or unix:/PATH"
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise ConfigError(f"listen address {text!r} has no path; expected {allowed}")
        size = len(os.fsencode(path))
        if size > MAX_UNIX_PATH:
            raise ConfigError(
                f"listen address {text!r}: the path {path} is {size} bytes, longer than a Unix "
                f"socket path may be ({MAX_UNIX_PATH})"
            )
        return Address("unix", path=path)
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        host_ok = bool(host)
    else:
        host, sep, port = text.rpartition(":")
        host_ok = ":" not in host  # an IPv6 host needs its brackets
    if not (sep and host_ok and port.isascii() and port.isdigit() and int(port) <= 65535):
        raise ConfigError(f"listen address {text!r} is not valid; expected {allowed}")
    return Address("tcp", host=host or "0.0.0.0", port=int(port))


def remove_stale_unix_socket(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket; not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # nobody listens: a leftover of a dead process
        return
    except FileNotFoundError:
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"{path} is in use by a running server")


async def bind(
    loop: asyncio.AbstractEventLoop,
    address: Address,
    protocol_factory: Callable[[], asyncio.Protocol],
    backlog: int,
) -> asyncio.Server:
    if address.kind == "unix":
        remove_stale_unix_socket(address.path)
        return await loop.create_unix_server(protocol_factory, address.path, backlog=backlog)
    return await loop.create_server(
        protocol_factory, address.host, address.port, backlog=backlog, reuse_address=True
    )


def bound_addresses(server: asyncio.Server) -> list[Address]:
    """The addresses a listening server actually holds (ports resolved when 0 was asked)."""
    return [socket_address(sock) for sock in server.sockets]


def socket_address(sock: socket.socket) -> Address:
    """The address a bound socket holds."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return Address("unix", path=name)
    return Address("tcp", host=name[0], port=name[1])
