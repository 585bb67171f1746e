"""Fixtures for the libevent tests: pairs of connected descriptors."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest


@pytest.fixture(params=["socketpair", "pipe"])
def channel(request: pytest.FixtureRequest) -> Iterator[tuple[int, int]]:
    """A non-blocking ``(read_fd, write_fd)``: a socketpair's two ends, or a pipe."""
    if request.param == "socketpair":
        a, b = socket.socketpair()
        read_fd, write_fd = a.detach(), b.detach()
    else:
        read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    yield read_fd, write_fd
    os.close(read_fd)
    os.close(write_fd)


@pytest.fixture
def socketpair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()
