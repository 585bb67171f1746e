"""Pidfile, --daemon, status counts, the admin endpoint and systemd notify, on real processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import msgspec
import psutil
import pytest

from residentd.daemon.control import admin_request

from .helpers import Daemon, free_port, port_answers, residentd, talk, wait_until


def test_live_pidfile_refuses_a_second_start(tmp_path: Path) -> None:
    with Daemon(tmp_path, "echo") as first:
        second = residentd(
            "run", "echo", "--listen", f"127.0.0.1:{free_port()}", "--pidfile", first.pidfile
        )
        assert second.returncode == 1
        assert f"locked by running process {first.pid}" in second.stderr
        assert talk(first.port, [b"still here"]) == [b"still here"]


def test_stale_pidfile_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    daemon = Daemon(tmp_path, "echo")
    Path(daemon.pidfile).write_text(dead.stdout)
    with daemon:
        assert Path(daemon.pidfile).read_text().strip() == str(daemon.pid)
    assert not Path(daemon.pidfile).exists()


def test_daemon_mode_returns_once_listening_and_stops(tmp_path: Path) -> None:
    port = free_port()
    pidfile = tmp_path / "bg.pid"
    log = tmp_path / "bg.log"
    result = residentd(
        "run", "echo", "--daemon", "--listen", f"127.0.0.1:{port}",
        "--pidfile", str(pidfile), "--log-file", str(log),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    try:
        assert port_answers(port)  # no waiting: the parent returned only once it listened
        pid = int(pidfile.read_text())
        assert pid != os.getpid()
        assert talk(port, [b"detached"]) == [b"detached"]
    finally:
        stopped = residentd("stop", "--pidfile", str(pidfile))
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped pid" in stopped.stdout
    assert not port_answers(port)
    assert "listening on" in log.read_text()


def test_daemon_mode_reports_bind_failure(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = residentd(
            "run", "echo", "--daemon", "--listen", f"127.0.0.1:{port}",
            "--pidfile", str(tmp_path / "fail.pid"), "--log-file", str(tmp_path / "fail.log"),
        )  # fmt: skip
    assert result.returncode != 0
    assert "address already in use" in result.stderr.lower()
    assert not (tmp_path / "fail.pid").exists()


@pytest.mark.parametrize("how", ["SIGUSR1", "reload"])
def test_daemon_stdio_follows_the_reopened_log(tmp_path: Path, how: str) -> None:
    """Under --daemon stdout and stderr are the log file; after logrotate moved it and the
    daemon reopened it they must be the new file too, or the rotated file (and its disk space)
    is held for the daemon's life and anything written to stderr lands in it."""
    port = free_port()
    pidfile, log = tmp_path / "bg.pid", tmp_path / "bg.log"
    result = residentd(
        "run", "echo", "--daemon", "--listen", f"127.0.0.1:{port}",
        "--pidfile", str(pidfile), "--log-file", str(log),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    pid = int(pidfile.read_text())
    try:
        log.rename(tmp_path / "bg.log.1")
        if how == "SIGUSR1":
            os.kill(pid, signal.SIGUSR1)
            wait_until(lambda: log.exists() and "reopened" in log.read_text(), what="reopen")
        else:
            assert residentd("reload", "--pidfile", str(pidfile)).returncode == 0
        for fd in (1, 2):
            assert os.readlink(f"/proc/{pid}/fd/{fd}") == str(log)
    finally:
        assert residentd("stop", "--pidfile", str(pidfile)).returncode == 0


def test_foreground_bind_failure_exits_nonzero(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = residentd("run", "echo", "--listen", f"127.0.0.1:{port}", "--admin", "off")
    assert result.returncode == 1
    assert "cannot start echo" in result.stderr


def test_status_json_counts_a_known_workload_exactly(tmp_path: Path, loop_kind: str) -> None:
    with Daemon(tmp_path, "echo", "--max-connections-per-ip", "3", loop=loop_kind) as daemon:
        base = daemon.status()
        for client in range(2):
            lines = [f"c{client}-{n}".encode() for n in range(10)]
            assert talk(daemon.port, lines) == lines
        held = [socket.create_connection(("127.0.0.1", daemon.port)) for _ in range(3)]
        wait_until(lambda: daemon.status()["connections_open"] == 3, what="3 open")
        refused = socket.create_connection(("127.0.0.1", daemon.port))
        assert refused.makefile("rb").read() == b"ERR max-connections-per-ip connection refused\n"
        refused.close()
        for sock in held:
            sock.close()
        wait_until(lambda: daemon.status()["connections_open"] == 0, what="all closed")
        status = daemon.status()
        assert status["messages_in"] - base["messages_in"] == 20
        assert status["messages_out"] - base["messages_out"] == 20
        assert status["bytes_in"] - base["bytes_in"] == 2 * sum(len(f"c0-{n}\n") for n in range(10))
        assert status["connections_total"] - base["connections_total"] == 5
        assert status["refused"] == {"max-connections-per-ip": 1}
        assert status["closed"]["closed-by-peer"] - base["closed"].get("closed-by-peer", 0) == 5
        assert status["loop"] == loop_kind
        assert status["rss_bytes"] > 0 and status["open_fds"] > 0
        assert set(status["loop_lag"]) == {"max_ms", "p99_ms", "last_ms"}
        table = residentd("status", "--pidfile", daemon.pidfile)
        assert "connections total" in table.stdout and "max-connections-per-ip=1" in table.stdout


def test_loglevel_command_changes_level_at_run_time(tmp_path: Path) -> None:
    with Daemon(tmp_path, "echo") as daemon:
        result = residentd("loglevel", "debug", "--pidfile", daemon.pidfile)
        assert result.returncode == 0, result.stderr
        assert daemon.status()["log_level"] == "DEBUG"
        talk(daemon.port, [b"x"])
        wait_until(lambda: "connection opened" in daemon.log(), what="a DEBUG line")


def test_admin_tcp_metrics_and_token(tmp_path: Path) -> None:
    admin = f"127.0.0.1:{free_port()}"
    with Daemon(tmp_path, "echo", "--admin", admin, "--admin-token", "s3cret") as daemon:
        talk(daemon.port, [b"a", b"b"])
        status, body = admin_request(admin, "GET", "/metrics")
        assert status == 401
        status, body = admin_request(admin, "GET", "/metrics", token="s3cret")
        assert status == 200
        text = body.decode()
        assert "# TYPE residentd_messages_in_total counter" in text
        assert 'residentd_messages_in_total{app="echo"} 2' in text
        assert 'residentd_loop_lag_p99_seconds{app="echo"}' in text
        status, body = admin_request(admin, "GET", "/nope", token="s3cret")
        assert status == 404


def test_admin_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    result = residentd("run", "echo", "--admin", f"0.0.0.0:{free_port()}")
    assert result.returncode == 2
    assert "needs admin_token" in result.stderr


def test_admin_unix_socket_is_private(tmp_path: Path) -> None:
    with Daemon(tmp_path, "echo") as daemon:
        mode = os.stat(daemon.admin_path).st_mode & 0o777
        assert mode == 0o600


def test_systemd_notify_messages(tmp_path: Path, loop_kind: str) -> None:
    notify_path = str(tmp_path / "notify.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(notify_path)
    receiver.settimeout(10)
    env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="200000")
    daemon = Daemon(tmp_path, "echo", loop=loop_kind)
    daemon.start(env=env)
    messages: list[str] = []

    def receive_until(text: str) -> None:
        while not any(text in message for message in messages):
            messages.append(receiver.recv(4096).decode())

    try:
        receive_until("READY=1")
        receive_until("WATCHDOG=1")
        daemon.signal(signal.SIGHUP)
        receive_until("RELOADING=1")
        count = len(messages)
        receive_until("READY=1") if "READY=1" not in "".join(messages[count:]) else None
        daemon.signal(signal.SIGTERM)
        receive_until("STOPPING=1")
        assert daemon.wait() == 0
    finally:
        daemon.stop()
        receiver.close()
    joined = "\n".join(messages)
    assert "STATUS=listening on 127.0.0.1:" in joined
    assert "MONOTONIC_USEC=" in joined
    reload_at = next(i for i, m in enumerate(messages) if "RELOADING=1" in m)
    assert any("READY=1" in m for m in messages[reload_at + 1 :])
    # The watchdog is kept alive from the loop at half the interval (every 0.1 s here).
    assert sum("WATCHDOG=1" in m for m in messages) >= 1


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_log_line_lost_at_sigterm(tmp_path: Path, log_format: str) -> None:
    with Daemon(tmp_path, "echo", "--log-level", "DEBUG", "--log-format", log_format) as daemon:
        for _ in range(200):
            socket.create_connection(("127.0.0.1", daemon.port)).close()
        wait_until(lambda: daemon.status()["connections_open"] == 0, what="closed")
        total = daemon.status()["connections_total"]
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0
    lines = daemon.log().splitlines()
    opened = [line for line in lines if "connection opened" in line]
    closed = [line for line in lines if "connection closed" in line]
    assert len(opened) == len(closed) >= total
    assert "stopped" in lines[-1]
    if log_format == "json":
        for line in lines:
            msgspec.json.decode(line)


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_user_and_group_dropped_after_binding(tmp_path: Path) -> None:
    shared = Path(tempfile.mkdtemp(prefix="residentd-"))
    shared.chmod(0o777)  # the unprivileged daemon removes its pidfile at exit
    with Daemon(shared, "echo", "--user", "nobody", "--group", "nogroup") as daemon:
        process = psutil.Process(daemon.pid)
        # Privileges drop right after the listeners are bound, just after they answer.
        wait_until(lambda: process.uids().real != 0, what="privileges dropped")
        assert process.uids().effective == process.uids().real
        assert process.username() == "nobody"
        assert talk(daemon.port, [b"unprivileged"]) == [b"unprivileged"]
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0
    assert not Path(daemon.pidfile).exists()
    shutil.rmtree(shared)
