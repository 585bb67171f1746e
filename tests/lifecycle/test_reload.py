"""Reloads on real daemon processes: relative paths, reopening the log after a privilege drop or
when it fails, systemd's READY=1 after every reload, ``residentd reload``, ``/config`` and
redacted secrets."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

import support
from residentd.daemon.control import admin_request
from support import free_port, port_answers, residentd_command, wait_until

from .helpers import Daemon, Notify, residentd, talk


def admin_get(admin: str, path: str, token: str | None = None) -> dict:
    status, body = admin_request(admin, "GET", path, token)
    assert status == 200, body
    return msgspec.json.decode(body)


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[Notify]:
    receiver = Notify(tmp_path / "notify.sock", timeout=5)
    yield receiver
    receiver.close()


def start_in(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``residentd run`` started in ``cwd`` (so relative paths mean something)."""
    return subprocess.Popen(
        residentd_command("run", *args),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def stop(process: subprocess.Popen[str]) -> None:
    support.stop(process)
    process.communicate()


def test_relative_paths_are_fixed_at_start_and_a_reload_keeps_them(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "logs").mkdir()
    config = tmp_path / "echo.toml"
    config.write_text('log_file = "logs/echo.log"\npidfile = "echo.pid"\n')
    process = start_in(
        tmp_path, "echo", "--config", "echo.toml", "--listen", f"127.0.0.1:{port}",
        "--listen", "unix:echo.sock", "--admin", "unix:admin.sock",
    )  # fmt: skip
    admin = f"unix:{tmp_path / 'admin.sock'}"
    try:
        wait_until(lambda: (tmp_path / "admin.sock").exists(), what="admin socket")
        reload = residentd("reload", "--admin", admin)
        assert reload.returncode == 0, reload.stderr
        answer = msgspec.json.decode(reload.stdout)
        assert answer["ok"] is True
        assert answer["applied"] == {}
        assert answer["needs_restart"] == {}
        log = (tmp_path / "logs" / "echo.log").read_text()
        assert "reloaded: applied nothing; needs a restart: nothing" in log
        shown = admin_get(admin, "/config")
        assert shown["pending_restart"] == {}
        assert shown["in_force"]["pidfile"] == str(tmp_path / "echo.pid")
        assert shown["in_force"]["log_file"] == str(tmp_path / "logs" / "echo.log")
        assert shown["in_force"]["admin"] == admin
        listen = [f"127.0.0.1:{port}", f"unix:{tmp_path / 'echo.sock'}"]
        assert shown["in_force"]["listen"] == listen
    finally:
        stop(process)
    assert not (tmp_path / "echo.pid").exists()


def test_daemon_mode_keeps_a_relative_log_file_where_it_was(tmp_path: Path) -> None:
    port = free_port()
    name = f"residentd-test-{os.getpid()}-{port}.log"
    result = subprocess.run(
        [
            sys.executable, "-m", "residentd", "run", "echo", "--daemon",
            "--listen", f"127.0.0.1:{port}", "--pidfile", "bg.pid", "--log-file", name,
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    pidfile = str(tmp_path / "bg.pid")
    try:
        os.kill(int(Path(pidfile).read_text()), signal.SIGHUP)
        wait_until(lambda: "reloaded" in (tmp_path / name).read_text(), what="reload logged")
        assert talk(port, [b"still here"]) == [b"still here"]
        assert "needs a restart: nothing" in (tmp_path / name).read_text()
        assert not Path("/", name).exists()  # after the --daemon chdir, the log moved to /
    finally:
        stopped = residentd("stop", "--pidfile", pidfile)
        Path("/", name).unlink(missing_ok=True)
    assert stopped.returncode == 0, stopped.stderr
    assert not port_answers(port)


def test_failed_reopen_keeps_the_old_log_and_still_ends_with_ready(
    tmp_path: Path, notify: Notify
) -> None:
    admin = f"unix:{tmp_path / 'admin.sock'}"
    env = dict(os.environ, NOTIFY_SOCKET=notify.path)
    daemon = Daemon(tmp_path, "echo", "--admin", admin).start(env=env)
    try:
        notify.wait_for("READY=1")
        rotated = tmp_path / "daemon.log.1"
        daemon.log_file.rename(rotated)
        daemon.log_file.mkdir()  # the path is now a directory: the reopen must fail
        daemon.signal(signal.SIGHUP)
        notify.wait_for("RELOADING=1")
        notify.wait_for("READY=1")
        wait_until(lambda: "cannot reopen log file" in rotated.read_text(), what="reason")
        line = next(x for x in rotated.read_text().splitlines() if "cannot reopen" in x)
        assert f"cannot reopen log file {daemon.log_file}: Is a directory" in line
        assert "still writing to the old file" in line
        assert talk(daemon.port, [b"serving"]) == [b"serving"]
        failed = residentd("reload", "--admin", admin)
        assert failed.returncode == 1
        assert "cannot reopen log file" in failed.stderr
        notify.wait_for("READY=1")
        status = admin_get(admin, "/status")
        assert (status["reloads"], status["reloads_failed"]) == (0, 2)
        daemon.log_file.rmdir()
        fixed = residentd("reload", "--admin", admin)
        assert fixed.returncode == 0, fixed.stderr
        wait_until(lambda: "reloaded" in daemon.log(), what="lines in the new file")
    finally:
        daemon.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="running as another user needs root")
def test_run_as_another_user_reopens_its_log_and_removes_its_pidfile() -> None:
    # As systemd's RuntimeDirectory= and LogsDirectory= with User= would: folders of the
    # run-as user, the daemon started as root.
    nobody = pwd.getpwnam("nobody")
    top = Path(tempfile.mkdtemp(prefix="residentd-"))
    try:
        top.chmod(0o755)
        for name in ("run", "log"):
            (top / name).mkdir()
            os.chown(top / name, nobody.pw_uid, nobody.pw_gid)
        port = free_port()
        pidfile, log_file = top / "run" / "echo.pid", top / "log" / "echo.log"
        notify = Notify(top / "notify.sock", timeout=5)  # where nobody may send, as to systemd's
        os.chmod(notify.path, 0o777)
        admin = f"unix:{top / 'run' / 'admin.sock'}"
        process = subprocess.Popen(
            [
                sys.executable, "-m", "residentd", "run", "echo", "--listen", f"127.0.0.1:{port}",
                "--pidfile", str(pidfile), "--log-file", str(log_file), "--admin", admin,
                "--user", "nobody",
            ],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, NOTIFY_SOCKET=notify.path),
        )  # fmt: skip
        try:
            notify.wait_for("READY=1")
            # A reload with no rotation reopens the file the daemon made as root.
            process.send_signal(signal.SIGHUP)
            notify.wait_for("READY=1")
            wait_until(lambda: "reloaded" in log_file.read_text(), what="reload logged")
            assert "cannot reopen" not in log_file.read_text()
            assert os.stat(log_file).st_uid == nobody.pw_uid
            assert os.stat(pidfile).st_uid == nobody.pw_uid
            # logrotate moved the file: the daemon, now nobody, makes the new one.
            log_file.rename(top / "log" / "echo.log.1")
            reload = residentd("reload", "--admin", admin)
            assert reload.returncode == 0, reload.stderr
            wait_until(lambda: log_file.exists() and "reloaded" in log_file.read_text())
            assert os.stat(log_file).st_uid == nobody.pw_uid
            # The log folder no longer writable by the daemon: the reopen fails, the old log
            # stays in use and says why, and systemd still hears READY=1.
            os.chown(top / "log", 0, 0)
            log_file.rename(top / "log" / "echo.log.2")
            process.send_signal(signal.SIGHUP)
            notify.wait_for("RELOADING=1")
            notify.wait_for("READY=1")
            kept = top / "log" / "echo.log.2"
            wait_until(lambda: "Permission denied" in kept.read_text(), what="reason logged")
            assert talk(port, [b"unprivileged"]) == [b"unprivileged"]
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0
        finally:
            stop(process)
            notify.close()
        assert not pidfile.exists()
        assert "cannot remove pidfile" not in (top / "log" / "echo.log.2").read_text()
    finally:
        shutil.rmtree(top)


def test_residentd_reload_goes_through_admin_and_fails_loudly(tmp_path: Path) -> None:
    config = tmp_path / "echo.toml"
    config.write_text("backlog = 100\n")
    daemon = Daemon(
        tmp_path, "echo", "--config", str(config), "--admin", "unix:" + str(tmp_path / "a.sock")
    )
    with daemon:
        admin = f"unix:{tmp_path / 'a.sock'}"
        config.write_text("backlog = 200\nidle_timeout = 5.0\n")
        good = residentd("reload", "--admin", admin)
        assert good.returncode == 0, good.stderr
        answer = msgspec.json.decode(good.stdout)
        assert answer["ok"] is True
        assert answer["applied"] == {"idle_timeout": 5.0}
        assert answer["needs_restart"] == {"backlog": 200}
        config.write_text("backlog = \n")
        bad = residentd("reload", "--admin", admin)
        assert bad.returncode == 1
        assert "reload failed" in bad.stderr and "is not valid TOML" in bad.stderr
        assert msgspec.json.decode(bad.stdout)["ok"] is False
        assert talk(daemon.port, [b"after"]) == [b"after"]


def test_config_shows_values_in_force_and_those_waiting_for_a_restart(tmp_path: Path) -> None:
    config = tmp_path / "echo.toml"
    config.write_text("backlog = 100\nmax_connections = 50\n")
    admin = f"unix:{tmp_path / 'a.sock'}"
    with Daemon(tmp_path, "echo", "--config", str(config), "--admin", admin):
        config.write_text("backlog = 200\nmax_connections = 60\n")
        assert residentd("reload", "--admin", admin).returncode == 0
        shown = admin_get(admin, "/config")
        assert shown["in_force"]["backlog"] == 100
        assert shown["in_force"]["max_connections"] == 60
        assert shown["pending_restart"] == {"backlog": 200}
        # Put back, nothing waits any more.
        config.write_text("backlog = 100\nmax_connections = 60\n")
        assert residentd("reload", "--admin", admin).returncode == 0
        assert admin_get(admin, "/config")["pending_restart"] == {}


def test_admin_token_is_never_printed_and_can_come_from_a_file(tmp_path: Path) -> None:
    shown = residentd("config", "echo", "--admin-token", "flag-secret-1")
    assert shown.returncode == 0, shown.stderr
    assert "flag-secret-1" not in shown.stdout
    assert 'admin_token = "<redacted>"  # --admin-token' in shown.stdout
    chat = residentd("config", "chat", "--secret", "hmac-secret-0")
    assert chat.returncode == 0, chat.stderr
    assert "hmac-secret-0" not in chat.stdout
    assert 'secret = "<redacted>"  # --secret' in chat.stdout

    token_file = tmp_path / "token"
    token_file.write_text("file-secret-2\n")
    token_file.chmod(0o600)
    config = tmp_path / "echo.toml"
    config.write_text(f'admin_token_file = "{token_file}"\n')
    admin = f"127.0.0.1:{free_port()}"
    daemon = Daemon(tmp_path, "echo", "--config", str(config), "--admin", admin)
    with daemon:
        assert "file-secret-2" not in " ".join(daemon.command)
        wait_until(lambda: port_answers(int(admin.rpartition(":")[2])), what="admin port")
        assert admin_request(admin, "GET", "/status")[0] == 401
        shown_config = admin_get(admin, "/config", token="file-secret-2")
        assert shown_config["in_force"]["admin_token"] == "<redacted>"
        assert shown_config["in_force"]["admin_token_file"] == str(token_file)
        # A new token in the file applies at the reload, and is not logged.
        token_file.write_text("file-secret-3\n")
        reload = residentd("reload", "--admin", admin, "--token", "file-secret-2")
        assert reload.returncode == 0, reload.stderr
        assert msgspec.json.decode(reload.stdout)["applied"] == {"admin_token": "<redacted>"}
        assert admin_request(admin, "GET", "/status", "file-secret-2")[0] == 401
        assert admin_request(admin, "GET", "/status", "file-secret-3")[0] == 200
        # A token in the config file itself is refused beside the file.
        config.write_text(f'admin_token_file = "{token_file}"\nadmin_token = "x"\n')
        both = residentd("reload", "--admin", admin, "--token", "file-secret-3")
        assert both.returncode == 1
        assert "are both set" in both.stderr
        wait_until(lambda: "reloaded" in daemon.log(), what="reload logged")
    log = daemon.log()
    assert "admin_token=<redacted>" in log
    for secret in ("file-secret-2", "file-secret-3"):
        assert secret not in log
        assert secret not in reload.stdout

    token_file.unlink()
    missing = residentd("run", "echo", "--admin-token-file", str(token_file))
    assert missing.returncode == 2
    assert f"admin_token_file {token_file} cannot be read" in missing.stderr


def test_a_new_log_file_that_cannot_be_opened_keeps_the_old_one(tmp_path: Path) -> None:
    config = tmp_path / "echo.toml"
    first = tmp_path / "first.log"
    config.write_text(f'log_file = "{first}"\n')
    admin = f"unix:{tmp_path / 'a.sock'}"
    port = free_port()
    process = start_in(
        tmp_path, "echo", "--config", str(config), "--admin", admin, "--listen", f"127.0.0.1:{port}"
    )
    try:
        wait_until(lambda: (tmp_path / "a.sock").exists(), what="admin socket")
        missing = tmp_path / "no-such-folder" / "second.log"
        config.write_text(f'log_file = "{missing}"\nlog_level = "WARNING"\n')
        failed = residentd("reload", "--admin", admin)
        assert failed.returncode == 1
        assert f"cannot open log file {missing}: No such file or directory" in failed.stderr
        in_force = admin_get(admin, "/config")["in_force"]
        assert in_force["log_file"] == str(first)
        assert in_force["log_level"] == "WARNING"  # what could be applied was
        wait_until(lambda: f"still writing to {first}" in first.read_text(), what="reason")
        assert talk(port, [b"on"]) == [b"on"]
    finally:
        stop(process)


def test_api_keys_are_never_printed(tmp_path: Path) -> None:
    """chat's api_keys are a list of secrets: redacted by ``residentd config``, ``/config`` and
    a reload's answer and log, like ``secret``; no keys is shown as the empty list it is."""
    shown = residentd("config", "chat", "--api-keys", "flag-key-0123456789")
    assert shown.returncode == 0, shown.stderr
    assert "flag-key-0123456789" not in shown.stdout
    assert 'api_keys = "<redacted>"  # --api-keys' in shown.stdout
    assert "api_keys = []  # default" in residentd("config", "chat").stdout

    config = tmp_path / "chat.toml"
    config.write_text('api_keys = ["file-key-0123456789"]\n')
    admin = f"127.0.0.1:{free_port()}"
    http = f"127.0.0.1:{free_port()}"
    daemon = Daemon(tmp_path, "chat", "--config", str(config), "--admin", admin,
                    "--http-listen", http)  # fmt: skip
    with daemon:
        wait_until(lambda: port_answers(int(admin.rpartition(":")[2])), what="admin port")
        assert admin_get(admin, "/config")["in_force"]["api_keys"] == "<redacted>"
        config.write_text('api_keys = ["file-key-0123456789", "new-key-0123456789"]\n')
        reload = residentd("reload", "--admin", admin)
        assert reload.returncode == 0, reload.stderr
        assert msgspec.json.decode(reload.stdout)["applied"] == {"api_keys": "<redacted>"}
        wait_until(lambda: "reloaded" in daemon.log(), what="reload logged")
    for key in ("file-key-0123456789", "new-key-0123456789"):
        assert key not in daemon.log()
        assert key not in reload.stdout


def test_sighup_applies_reloadable_settings_and_reports_the_rest(tmp_path: Path) -> None:
    """A real SIGHUP: what the settings' declarations mark reloadable is applied, what they do
    not is kept and reported as needing a restart (log, ``/config``), and the environment still
    beats the file on a reload, as at start."""
    config = tmp_path / "slow.toml"
    config.write_text('greeting = "hello"\nlog_level = "INFO"\nstop_delay = 0.0\nbacklog = 100\n')
    slow_app = str(Path(__file__).with_name("apps.py")) + ":slow"
    daemon = Daemon(tmp_path, slow_app, "--config", str(config))
    daemon.start(env={**os.environ, "RESIDENTD_GREETING": "salut"})
    admin = f"unix:{daemon.admin_path}"
    try:
        assert talk(daemon.port, [b"greeting"]) == [b"salut"]  # the environment beats the file
        config.write_text(
            'greeting = "bonjour"\nlog_level = "WARNING"\nstop_delay = 0.25\nbacklog = 200\n'
        )
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: "reloaded" in daemon.log(), what="reload logged")
        assert (
            "reloaded: applied log_level=WARNING; needs a restart: backlog=200, stop_delay=0.25"
        ) in daemon.log()  # a warning: logged at level WARNING too
        assert talk(daemon.port, [b"greeting"]) == [b"salut"]
        shown = admin_get(admin, "/config")
        assert shown["pending_restart"] == {"backlog": 200, "stop_delay": 0.25}
        in_force = shown["in_force"]
        assert (in_force["log_level"], in_force["greeting"]) == ("WARNING", "salut")
        assert (in_force["stop_delay"], in_force["backlog"]) == (0.0, 100)
        assert daemon.status()["log_level"] == "WARNING"

        config.write_text('greeting = "x"\nlog_level = "INFO"\nstop_delay = 0.0\nbacklog = 100\n')
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: daemon.log().count("reloaded") == 2, what="second reload")
        assert admin_get(admin, "/config")["pending_restart"] == {}
        assert "reloaded: applied log_level=INFO; needs a restart: nothing" in daemon.log()
    finally:
        daemon.stop()
