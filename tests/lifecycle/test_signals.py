"""Signals sent to a real daemon process from this one, at awkward moments too: graceful stops
(TERM, INT, QUIT), reload, log reopen, the upgrade signal, a second stop."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from support import free_port, wait_until

from .helpers import Daemon, residentd, talk

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


def test_sigusr1_reopens_the_log_and_nothing_else(tmp_path: Path, loop_kind: str) -> None:
    config = tmp_path / "slow.toml"
    config.write_text('greeting = "hello"\n')
    daemon = Daemon(tmp_path, SLOW_APP, "--config", str(config), loop=loop_kind).start()
    try:
        rotated = tmp_path / "daemon.log.1"
        daemon.log_file.rename(rotated)  # what logrotate does before it signals
        config.write_text('greeting = "changed"\n')  # not read: USR1 is not a reload
        daemon.signal(signal.SIGUSR1)
        wait_until(lambda: "log file reopened" in daemon.log(), what="the new log file")
        assert talk(daemon.port, [b"greeting"]) == [b"hello"]
        assert "reloaded" not in daemon.log() + rotated.read_text()
        assert "msg=stats" not in daemon.log() and "stats" not in rotated.read_text()
        assert "listening on" in rotated.read_text()
    finally:
        daemon.stop()
    assert "stopped" in daemon.log()


def test_sigquit_is_a_graceful_stop(tmp_path: Path, loop_kind: str) -> None:
    daemon = Daemon(tmp_path, SLOW_APP, "--reply-delay", "0.3", loop=loop_kind).start()
    try:
        client = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
        client.sendall(b"in flight\n")
        time.sleep(0.1)  # the request is in its handler
        daemon.signal(signal.SIGQUIT)
        assert client.makefile("rb").read() == b"in flight\nBYE\n"
        client.close()
        assert daemon.wait() == 0
    finally:
        daemon.stop()
    assert "SIGQUIT: graceful stop" in daemon.log()
    assert "stopped" in daemon.log()
    assert not Path(daemon.pidfile).exists()
    assert not Path(daemon.admin_path).exists()


@pytest.mark.parametrize(
    "signum", [signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP]
)
def test_a_signal_right_after_start_waits_for_its_handler(
    tmp_path: Path, loop_kind: str, signum: int
) -> None:
    daemon = Daemon(tmp_path, "echo", loop=loop_kind).start(wait=False)
    try:
        # The earliest moment anyone can know the pid: the pidfile appears, well before the
        # loop, the listeners and the handlers exist.
        pidfile = Path(daemon.pidfile)
        deadline = time.monotonic() + 20
        while not pidfile.exists():
            assert time.monotonic() < deadline, "no pidfile"
            time.sleep(0.001)
        daemon.signal(signum)
        if signum in (signal.SIGQUIT, signal.SIGTERM):
            assert daemon.wait() == 0
            assert not Path(daemon.pidfile).exists()
            assert not Path(daemon.admin_path).exists()
            return
        if signum == signal.SIGUSR2:
            # A live upgrade: refused while the start runs, done once it has finished; which
            # of the two depends on when the handler ran, and either way the echo serves on.
            outcome = wait_until(
                lambda: re.search(r"not upgrading|upgraded: pid (\d+)", daemon.log()),
                what="the upgrade's outcome",
            )
            if outcome.group(1) is not None:
                assert daemon.wait() == 0  # the old generation is done
                new_pid = int(outcome.group(1))
                assert talk(daemon.port, [b"alive"]) == [b"alive"]
                os.kill(new_pid, signal.SIGTERM)
                wait_until(lambda: not Path(daemon.pidfile).exists(), what="the new one's exit")
                return
        wait_until(lambda: daemon.status()["pid"] == daemon.pid, what="serving")
        assert talk(daemon.port, [b"alive"]) == [b"alive"]
    finally:
        daemon.stop()
    assert daemon.process is not None and daemon.process.returncode == 0


def test_signals_during_a_stop_do_not_cut_it_short(tmp_path: Path, loop_kind: str) -> None:
    # A name to resolve: asyncio resolves it on a thread of its default executor, a thread
    # that must not take a signal once the handlers are gone either.
    second = f"localhost:{free_port()}"
    daemon = Daemon(
        tmp_path, SLOW_APP, "--stop-delay", "0.5", "--listen", second, loop=loop_kind
    ).start()
    try:
        daemon.signal(signal.SIGTERM)
        wait_until(lambda: "stopping: graceful" in daemon.log(), what="the stop to begin")
        assert daemon.process is not None
        others = [signal.SIGUSR2, signal.SIGUSR1, signal.SIGHUP, signal.SIGQUIT]
        sent = 0
        # Until the very end: through the stop hooks, the loop's close and the pidfile removal.
        while daemon.process.poll() is None:
            daemon.signal(others[sent % len(others)])
            sent += 1
            time.sleep(0.005)
        assert daemon.wait() == 0
        assert sent > 20
    finally:
        daemon.stop()
    log = daemon.log()
    assert "SIGHUP while stopping: not reloading" in log
    assert "reloaded" not in log
    assert "second stop signal" not in log
    assert "stopped" in log
    assert not Path(daemon.pidfile).exists()
    assert not Path(daemon.admin_path).exists()


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


def test_residentd_stop_run_again_does_not_cut_the_stop_short(tmp_path: Path) -> None:
    """A script that runs ``residentd stop`` again (its first wait timed out) must not turn the
    graceful stop into a fast exit: the second one is ignored, the stop ends with status 0."""
    daemon = Daemon(tmp_path, "echo").start()
    client = socket.create_connection(("127.0.0.1", daemon.port))
    done = threading.Event()

    def keep_sending() -> None:  # a client that never closes holds the lingering close ~3 s
        with contextlib.suppress(OSError):
            while not done.wait(0.05):
                client.sendall(b"ping\n")

    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        wait_until(lambda: daemon.status()["messages_in"] > 0, what="the client's first line")
        first = residentd("stop", "--pidfile", daemon.pidfile, "--timeout", "0.3")
        assert first.returncode == 1 and "still running" in first.stderr, first.stderr
        second = residentd("stop", "--pidfile", daemon.pidfile, "--timeout", "20")
        assert second.returncode == 0, second.stderr
        assert daemon.process is not None and daemon.process.wait(5) == 0
        assert "second stop signal" not in daemon.log()
    finally:
        done.set()
        sender.join()
        client.close()
        daemon.stop()
