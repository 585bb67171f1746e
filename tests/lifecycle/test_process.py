"""The daemon as a process: its pidfile, --daemon, status counts, the admin endpoint, systemd
notify and privileges, on real ``residentd`` processes; then the process utilities they stand on
(``residentd.daemon.process``: the open-files limit, dropping privileges, RSS and descriptor
counts), in this process and in forked children."""

from __future__ import annotations

import grp
import json
import os
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import psutil
import pytest

from residentd.daemon.control import admin_request
from residentd.daemon.process import (
    PrivilegeError,
    drop_privileges,
    open_fds,
    raise_nofile_limit,
    rss_bytes,
)
from support import free_port, port_answers, wait_until

from .helpers import Daemon, Notify, residentd, talk

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


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
    notify = Notify(tmp_path / "notify.sock")
    env = dict(os.environ, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="200000")
    daemon = Daemon(tmp_path, "echo", loop=loop_kind)
    daemon.start(env=env)
    try:
        notify.wait_for("READY=1")
        notify.wait_for("WATCHDOG=1")
        daemon.signal(signal.SIGHUP)
        notify.wait_for("RELOADING=1")
        notify.wait_for("READY=1")
        daemon.signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        assert daemon.wait() == 0
    finally:
        daemon.stop()
        notify.close()
    messages = notify.messages
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


@root_only
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


# -- the process utilities, in this process and in forked children ------------------------------


def test_the_soft_nofile_limit_is_raised_to_the_hard_one() -> None:
    # In a fresh process whose soft limit starts low (the test runner already raised its own).
    script = """
import json, resource
from residentd.daemon.process import raise_nofile_limit

limit = resource.RLIMIT_NOFILE
soft, hard = resource.getrlimit(limit)
resource.setrlimit(limit, (min(64, hard), hard))
returned = raise_nofile_limit()
print(json.dumps([min(64, hard), hard, returned, resource.getrlimit(limit)]))
"""
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    before, hard, returned, now = json.loads(output)
    assert before < hard
    assert returned == now == [hard, hard]


def test_raising_again_changes_nothing() -> None:
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert raise_nofile_limit() == limits == resource.getrlimit(resource.RLIMIT_NOFILE)


def test_nothing_asked_nothing_done() -> None:
    ids = (os.getuid(), os.getgid(), os.getgroups())
    drop_privileges(None, None)
    assert (os.getuid(), os.getgid(), os.getgroups()) == ids


def test_unknown_user_and_group_are_named() -> None:
    with pytest.raises(PrivilegeError, match="unknown user 'no-such-user-rd': not in the password"):
        drop_privileges("no-such-user-rd")
    with pytest.raises(PrivilegeError, match="unknown group 'no-such-group-rd': not in the group"):
        drop_privileges("nobody", "no-such-group-rd")


def test_a_bare_uid_needs_a_group() -> None:
    uid = next(uid for uid in range(54321, 60000) if not _has_passwd_entry(uid))
    with pytest.raises(PrivilegeError, match=f"user {uid} has no entry .* give a group too"):
        drop_privileges(uid)


def _has_passwd_entry(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def in_child(body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``body`` in a forked child (privileges once dropped stay dropped) and return the
    JSON-able dict it returns, or {"error": ...} for what it raised."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            try:
                result = body()
            except Exception as exc:
                result = {"error": f"{type(exc).__name__}: {exc}"}
            os.write(write_fd, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:
        data = reader.read()
    os.waitpid(pid, 0)
    return dict(json.loads(data))


def ids_after(user: str | None, group: str | None) -> dict[str, Any]:
    drop_privileges(user, group)
    try:
        os.setuid(0)
        regained = True
    except PermissionError:
        regained = False
    return {
        "uid": [os.getuid(), os.geteuid()],
        "gid": [os.getgid(), os.getegid()],
        "groups": sorted(os.getgroups()),
        "regained": regained,
    }


@pytest.fixture
def nobody() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' here")


@root_only
def test_drop_to_nobody(nobody: pwd.struct_passwd) -> None:
    assert in_child(lambda: ids_after("nobody", None)) == {
        "uid": [nobody.pw_uid] * 2,
        "gid": [nobody.pw_gid] * 2,
        "groups": sorted(set(os.getgrouplist("nobody", nobody.pw_gid))),
        "regained": False,
    }


@root_only
def test_drop_to_a_group_by_number(nobody: pwd.struct_passwd) -> None:
    group = grp.getgrgid(nobody.pw_gid)
    assert in_child(lambda: ids_after(None, str(group.gr_gid))) == {
        "uid": [0, 0],
        "gid": [group.gr_gid] * 2,
        "groups": [group.gr_gid],
        "regained": True,  # the user did not change: still root
    }


@root_only
def test_once_dropped_there_is_no_way_back(nobody: pwd.struct_passwd) -> None:
    def again() -> dict[str, Any]:
        drop_privileges("nobody")
        drop_privileges("nobody")  # already there: nothing to do, allowed
        drop_privileges("root")
        return {}

    assert in_child(again) == {
        "error": "PrivilegeError: cannot switch to user 'root': only root can, and this "
        f"process runs as uid {nobody.pw_uid}"
    }


def test_rss_grows_with_memory_in_use() -> None:
    before = rss_bytes()
    block = b"x" * (64 << 20)
    grown = rss_bytes()
    assert before > 0
    assert grown - before >= 48 << 20
    del block


def count_open_fds() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    count = 0
    for fd in range(soft):
        try:
            os.fstat(fd)
        except OSError:
            continue
        count += 1
    return count


def test_open_fds_counts_descriptors() -> None:
    assert open_fds() == count_open_fds()
    before = open_fds()
    fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(10)]
    assert open_fds() == before + 10
    for fd in fds:
        os.close(fd)
    assert open_fds() == before
