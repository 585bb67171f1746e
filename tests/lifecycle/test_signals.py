"""Signals sent to a real daemon process: graceful stop, reload, stats, a second stop."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest

from .helpers import Daemon, residentd, talk, wait_until

SLOW_APP = str(Path(__file__).with_name("apps.py")) + ":slow"


def test_sigterm_during_traffic_delivers_in_flight_replies(tmp_path: Path, loop_kind: str) -> None:
    daemon = Daemon(tmp_path, SLOW_APP, "--reply-delay", "0.3", loop=loop_kind).start()
    try:
        clients = []
        for index in range(5):
            sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
            sock.sendall(f"request-{index}\n".encode())
            clients.append(sock)
        time.sleep(0.1)  # the requests are in the handlers, replies not sent yet
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        for index, sock in enumerate(clients):
            data = sock.makefile("rb").read()
            assert data == f"request-{index}\nBYE\n".encode()
            sock.close()
        assert daemon.wait() == 0
        assert time.monotonic() - started < 10
    finally:
        daemon.stop()
    log = daemon.log()
    assert "stopping: graceful" in log
    assert "stopped" in log
    assert not Path(daemon.pidfile).exists()


def test_second_sigterm_exits_at_once(tmp_path: Path, loop_kind: str) -> None:
    daemon = Daemon(tmp_path, SLOW_APP, "--stop-delay", "30", loop=loop_kind).start()
    try:
        daemon.signal(signal.SIGTERM)
        wait_until(lambda: "stopping: graceful" in daemon.log(), what="graceful stop to begin")
        started = time.monotonic()
        daemon.signal(signal.SIGINT)
        assert daemon.wait(timeout=10) == 1
        assert time.monotonic() - started < 5
    finally:
        daemon.stop()
    assert "second stop signal" in daemon.log()


def test_sighup_applies_level_and_reopens_moved_log(tmp_path: Path, loop_kind: str) -> None:
    config = tmp_path / "slow.toml"
    config.write_text('log_level = "INFO"\ngreeting = "hello"\nmax_connections = 100\n')
    daemon = Daemon(tmp_path, SLOW_APP, "--config", str(config), loop=loop_kind).start()
    try:
        assert talk(daemon.port, [b"greeting"]) == [b"hello"]
        rotated = tmp_path / "daemon.log.1"
        daemon.log_file.rename(rotated)
        config.write_text('log_level = "DEBUG"\ngreeting = "bonjour"\nmax_connections = 100\n')
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: "reloaded" in daemon.log(), what="reload logged in the new file")
        log = daemon.log()
        assert "log_level=DEBUG" in log
        assert "greeting=bonjour" in log
        assert talk(daemon.port, [b"greeting"]) == [b"bonjour"]
        wait_until(lambda: "connection closed" in daemon.log(), what="a DEBUG line")
        assert "reloaded" not in rotated.read_text()
        assert daemon.status()["log_level"] == "DEBUG"
    finally:
        daemon.stop()


def test_sighup_with_broken_file_keeps_old_config(tmp_path: Path, loop_kind: str) -> None:
    config = tmp_path / "slow.toml"
    config.write_text('greeting = "hello"\n')
    daemon = Daemon(tmp_path, SLOW_APP, "--config", str(config), loop=loop_kind).start()
    try:
        config.write_text('greeting = "broken\nmax_connections = "lots"\n')
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: "reload failed" in daemon.log(), what="reload failure logged")
        assert "keeping the running config" in daemon.log()
        assert talk(daemon.port, [b"greeting"]) == [b"hello"]
        config.write_text('greeting = "hello"\nmax_connections = -3\n')
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: "expected at least 0" in daemon.log(), what="bad value reported")
        assert daemon.status()["connections_open"] == 0
    finally:
        daemon.stop()


def test_sighup_reports_what_needs_a_restart(tmp_path: Path) -> None:
    config = tmp_path / "echo.toml"
    config.write_text("backlog = 100\n")
    daemon = Daemon(tmp_path, "echo", "--config", str(config)).start()
    try:
        config.write_text("backlog = 200\nidle_timeout = 5.0\n")
        result = residentd("reload", "--pidfile", daemon.pidfile)
        assert result.returncode == 0, result.stderr
        wait_until(lambda: "reloaded" in daemon.log(), what="reload")
        assert "applied idle_timeout=5.0; needs a restart: backlog=200" in daemon.log()
    finally:
        daemon.stop()


def test_sigusr1_logs_a_stats_snapshot(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, "echo", "--log-format", "logfmt").start()
    try:
        before = daemon.status()["connections_total"]
        assert talk(daemon.port, [b"one", b"two", b"three"]) == [b"one", b"two", b"three"]
        wait_until(lambda: daemon.status()["connections_open"] == 0, what="client closed")
        daemon.signal(signal.SIGUSR1)
        wait_until(lambda: "msg=stats" in daemon.log(), what="stats line")
        line = next(line for line in daemon.log().splitlines() if "msg=stats" in line)
        assert "messages_in=3" in line
        assert f"connections_total={before + 1}" in line
    finally:
        daemon.stop()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signals_exit_zero(tmp_path: Path, signum: int) -> None:
    daemon = Daemon(tmp_path, "echo").start()
    try:
        daemon.signal(signum)
        assert daemon.wait() == 0
    finally:
        daemon.stop()


def test_residentd_stop_waits_and_reports(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, "echo").start()
    try:
        result = residentd("stop", "--pidfile", daemon.pidfile)
        assert result.returncode == 0, result.stderr
        assert f"stopped pid {daemon.pid}" in result.stdout
        assert daemon.process is not None and daemon.process.poll() == 0
    finally:
        daemon.stop()
