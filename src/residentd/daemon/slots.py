"""The master's listening sockets: one set per worker slot, held for the master's whole life.

With ``workers = N`` the master binds every listen address of the app N times, once per slot,
each socket with ``SO_REUSEPORT``: the kernel hashes each new connection to one of the N
sockets, and the worker of that slot accepts it. The master never accepts; it keeps every
slot's sockets open, so while a slot's worker is dead or being replaced, the connections hashed
to that slot wait in its backlog for the next worker instead of being reset (a socket closed
by its last holder would reset them). Where the system has no ``SO_REUSEPORT``, every slot
shares one socket (all workers accept from one queue). A ``unix:`` address is one socket that
every slot shares, bound once (its file is removed when the master stops).
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from residentd.net.listener import (
    Address,
    parse_address,
    remove_stale_unix_socket,
    socket_address,
)

__all__ = ["Slots", "bind_slots", "reuse_port_available"]


def reuse_port_available() -> bool:
    """Whether this system spreads connections over sockets bound with ``SO_REUSEPORT``."""
    if not hasattr(socket, "SO_REUSEPORT"):
        return False
    with socket.socket() as probe:
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        except OSError:
            return False
    return True


@dataclass
class Slots:
    """Each slot's listening sockets, by service name (a shared socket is the same object)."""

    sockets: list[dict[str, list[socket.socket]]]
    reuse_port: bool
    unix_paths: list[str] = field(default_factory=list)

    def fds(self, slot: int) -> list[int]:
        return [sock.fileno() for socks in self.sockets[slot].values() for sock in socks]

    def addresses(self) -> list[Address]:
        """The bound addresses (slot 0's: every slot's are the same)."""
        slot = self.sockets[0] if self.sockets else {}
        return [socket_address(sock) for socks in slot.values() for sock in socks]

    def close(self) -> None:
        seen: set[int] = set()
        for slot in self.sockets:
            for socks in slot.values():
                for sock in socks:
                    if id(sock) not in seen:
                        seen.add(id(sock))
                        sock.close()
        for path in self.unix_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self.unix_paths.clear()


def bind_slots(listen: dict[str, list[str]], count: int, backlog: int) -> Slots:
    """Bind every service's addresses for ``count`` slots; on an error, close what was bound
    and raise it (OSError, or ConfigError for a bad address)."""
    reuse = reuse_port_available()
    slots = Slots([{} for _ in range(count)], reuse)
    try:
        for name, texts in listen.items():
            for text in texts:
                bound = _bind_address(parse_address(text), count, backlog, reuse, slots)
                for index, socks in enumerate(bound):
                    slots.sockets[index].setdefault(name, []).extend(socks)
    except BaseException:
        slots.close()
        raise
    return slots


def _bind_address(
    address: Address, count: int, backlog: int, reuse: bool, slots: Slots
) -> list[list[socket.socket]]:
    """The sockets of one address, for each slot."""
    if address.kind == "unix":
        remove_stale_unix_socket(address.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(address.path)
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        slots.unix_paths.append(address.path)
        return [[sock] for _ in range(count)]
    infos = socket.getaddrinfo(
        address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    per_slot: list[list[socket.socket]] = [[] for _ in range(count)]
    seen: set[tuple[int, Any]] = set()
    for family, kind, proto, _, sockaddr in infos:
        if (family, sockaddr) in seen:
            continue
        seen.add((family, sockaddr))
        if reuse and address.port:
            _probe(family, kind, proto, sockaddr)
        first = _listening(family, kind, proto, sockaddr, backlog, reuse)
        per_slot[0].append(first)
        bound = first.getsockname()  # port 0 asked: every slot takes the port the first got
        for index in range(1, count):
            per_slot[index].append(
                _listening(family, kind, proto, bound, backlog, reuse) if reuse else first
            )
    return per_slot


def _probe(family: int, kind: int, proto: int, sockaddr: Any) -> None:
    """Raise EADDRINUSE when another process listens on ``sockaddr``, even one whose sockets
    have ``SO_REUSEPORT`` too (ours would join its group and share its connections)."""
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)


def _listening(
    family: int, kind: int, proto: int, sockaddr: Any, backlog: int, reuse: bool
) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock
