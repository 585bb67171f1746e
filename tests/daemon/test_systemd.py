"""The notify protocol against a real datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from residentd.daemon.systemd import SystemdNotifier


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket and its address, as NOTIFY_SOCKET would give it."""
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        yield sock, path


def test_messages_arrive_exactly(systemd: tuple[socket.socket, str]) -> None:
    sock, path = systemd
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    sent = [
        notifier.ready(),
        notifier.status("serving 3 clients"),
        notifier.watchdog(),
        notifier.stopping(),
        notifier.ready(status="reloaded"),
        notifier.send(STATUS="two\nlines", ERRNO=0),
        notifier.send_raw("X=1\nY=2"),
    ]
    assert sent == [True] * 7
    received = [sock.recv(4096) for _ in sent]
    assert received == [
        b"READY=1",
        b"STATUS=serving 3 clients",
        b"WATCHDOG=1",
        b"STOPPING=1",
        b"READY=1\nSTATUS=reloaded",
        b"STATUS=two lines\nERRNO=0",
        b"X=1\nY=2",
    ]
    assert notifier.errors == 0
    notifier.close()


def test_reloading_carries_the_monotonic_clock(systemd: tuple[socket.socket, str]) -> None:
    sock, path = systemd
    notifier = SystemdNotifier(path)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = sock.recv(4096).split(b"\n")
    assert first == b"RELOADING=1"
    name, _, usec = second.partition(b"=")
    assert name == b"MONOTONIC_USEC"
    assert before <= int(usec) <= after
    notifier.close()


def test_from_the_process_environment(
    systemd: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = systemd
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    notifier = SystemdNotifier.from_env()
    assert notifier.ready()
    assert sock.recv(4096) == b"READY=1"
    notifier.close()


def test_abstract_namespace() -> None:
    name = f"residentd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready()
        assert sock.recv(4096) == b"READY=1"
        notifier.close()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = SystemdNotifier.from_env({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.reloading()
    assert not notifier.watchdog()
    assert notifier.watchdog_interval() is None
    assert notifier.errors == 0


def test_errors_are_counted_not_raised(tmp_path: Path) -> None:
    notifier = SystemdNotifier(str(tmp_path / "nobody-listens"))
    assert not notifier.ready()
    assert not notifier.status("x")
    assert notifier.errors == 2
    notifier.close()


@pytest.mark.timeout(20)
def test_a_full_socket_never_blocks(systemd: tuple[socket.socket, str]) -> None:
    _, path = systemd  # never read: its queue fills up
    notifier = SystemdNotifier(path)
    sent = [notifier.watchdog() for _ in range(5000)]
    assert sent[0]
    assert not sent[-1]
    assert notifier.errors == sent.count(False)
    notifier.close()


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "3000000"}, 1.5),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "{pid}"}, 10.0),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
    ids=["plain", "our-pid", "other-pid", "zero", "negative", "garbage", "unset"],
)
def test_watchdog_interval(env: dict[str, str], interval: float | None) -> None:
    environ = {key: value.format(pid=os.getpid()) for key, value in env.items()}
    environ["NOTIFY_SOCKET"] = "/run/systemd/notify"
    assert SystemdNotifier.from_env(environ).watchdog_interval() == interval
