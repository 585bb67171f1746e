"""daemonize() with real processes: the starter's exit code says whether the daemon serves."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from residentd.daemon.daemonize import ReadyChannel, daemonize
from residentd.daemon.pidfile import pid_alive, read_pid

HELPER = str(Path(__file__).with_name("daemon_helper.py"))


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """The daemon's working directory; whatever daemon wrote its pid there is killed after."""
    yield tmp_path
    pid = read_pid(tmp_path / "daemon.pid")
    if pid is not None and pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)


def start(
    mode: str, state: Path, *args: str, timeout: str = "20"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, HELPER, mode, str(state), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "READY_TIMEOUT": timeout},
    )


def test_the_starter_exits_0_once_the_daemon_listens(state: Path) -> None:
    result = start("serve", state)
    assert (result.returncode, result.stderr) == (0, "")
    port = int((state / "port").read_text())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        assert conn.recv(3) == b"hi\n"

    info = json.loads((state / "info.json").read_text())
    assert pid_alive(info["pid"])
    assert info["sid"] != info["pid"]  # not a session leader: it can never get a terminal
    assert info["cwd"] == str(state)
    assert info["umask"] == 0o027
    assert info["stdio"] == ["/dev/null", str(state / "stdio.log"), str(state / "stdio.log")]
    assert (state / "stdio.log").read_text() == "hello from the daemon\n"


def test_a_failure_is_reported_by_the_starter(state: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = start("fail", state, str(port))
    assert result.returncode == 1
    pid = read_pid(state / "daemon.pid")
    assert result.stderr == (
        f"daemon failed to start: bind 127.0.0.1:{port}: Address already in use\n"
    )
    info = json.loads((state / "info.json").read_text())
    assert (info["pid"], info["stdio"]) == (pid, ["/dev/null"] * 3)


def test_a_crash_before_ready_is_reported(state: Path) -> None:
    result = start("crash", state)
    assert result.returncode == 1
    pid = read_pid(state / "daemon.pid")
    assert result.stderr == f"daemon (pid {pid}) exited before it was ready\n"


def test_a_silent_daemon_times_out(state: Path) -> None:
    result = start("silent", state, timeout="0.5")
    assert result.returncode == 1
    pid = read_pid(state / "daemon.pid")
    assert pid is not None
    assert result.stderr == (
        f"daemon did not become ready within 0.5s; pid {pid} is still running\n"
    )
    assert pid_alive(pid)


def test_bad_paths_raise_before_forking(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        daemonize(workdir=str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        daemonize(workdir=str(tmp_path), stdio_to=str(tmp_path / "missing" / "out.log"))


def test_a_channel_without_a_descriptor_does_nothing() -> None:
    channel = ReadyChannel()
    assert not channel.pending
    channel.ready()
    channel.failed("ignored")


def test_only_the_first_outcome_is_told() -> None:
    read_fd, write_fd = os.pipe()
    channel = ReadyChannel(write_fd)
    assert channel.pending
    channel.ready()
    assert not channel.pending
    channel.failed("too late")
    assert os.read(read_fd, 100) == b"ready\n"
    assert os.read(read_fd, 100) == b""  # closed after the first
    os.close(read_fd)
