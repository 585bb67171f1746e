"""The deployment recipe of docs/operations.md, as written: the systemd unit and the logrotate
file in docs/deploy/, checked by systemd's own tools and run together against a real daemon."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from support import free_port, wait_until

from .helpers import Notify, talk

DEPLOY = Path(__file__).parents[2] / "docs" / "deploy"
UNIT = DEPLOY / "residentd-chat.service"
LOGROTATE = DEPLOY / "residentd.logrotate"
CHAT_TOML = DEPLOY / "chat.toml"
OPERATIONS = DEPLOY.parent / "operations.md"
RESIDENTD = str(Path(sys.executable).with_name("residentd"))  # the venv's console script
RELOAD_LINE = "systemctl try-reload-or-restart residentd-chat.service"


def unit_value(key: str) -> str:
    (value,) = re.findall(rf"^{key}=(.*)$", UNIT.read_text(), re.MULTILINE)
    return value


def localise(text: str, tmp: Path) -> str:
    """The recipe's text with its install paths moved into ``tmp``."""
    return (
        text.replace("/opt/residentd/bin/residentd", RESIDENTD)
        .replace("/run/residentd-chat", str(tmp / "run"))
        .replace("/var/log/residentd-chat", str(tmp / "log"))
        .replace("/etc/residentd/chat.toml", str(tmp / "chat.toml"))
    )


def test_the_doc_shows_the_tested_files_verbatim() -> None:
    doc = OPERATIONS.read_text()
    for path in (UNIT, LOGROTATE, CHAT_TOML):
        assert path.read_text() in doc, f"docs/operations.md does not show {path.name} as it is"


def test_the_recipe_puts_files_where_systemd_makes_folders() -> None:
    runtime, logs = unit_value("RuntimeDirectory"), unit_value("LogsDirectory")
    start = unit_value("ExecStart")
    assert f"--pidfile /run/{runtime}/" in start
    assert f"--admin unix:/run/{runtime}/" in start
    assert f"--log-file /var/log/{logs}/" in start
    assert "--daemon" not in start  # Type=notify wants the process in the foreground
    assert unit_value("ExecReload").endswith(f"reload --admin unix:/run/{runtime}/admin.sock")
    rotate = LOGROTATE.read_text()
    assert rotate.startswith("#") and f"/var/log/{logs}/*.log {{" in rotate
    script = rotate.split("postrotate")[1].split("endscript")[0].strip()
    assert script == RELOAD_LINE  # no "|| true", no output thrown away


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/residentd/bin/residentd", RESIDENTD))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""  # a bad value is only a warning: none allowed


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
def test_the_unit_is_hardened(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "--offline" in result.stderr:
        pytest.skip("this systemd-analyze cannot rate a unit file offline")
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 4.0
    version = subprocess.run(
        ["systemd-analyze", "--version"], capture_output=True, text=True, timeout=60
    ).stdout.split()[1]
    doc = OPERATIONS.read_text()
    if f"(systemd {version})" in doc:  # other versions weigh the settings differently
        assert f"exposure level {found.group(1)}" in doc  # the doc's figure is current


def install_unit(tmp_path: Path) -> tuple[int, dict[str, str], Notify, list[str]]:
    """The recipe's folders and config under ``tmp_path``, a notify socket, free ports: the
    chat port, the environment and the unit's ``ExecStart`` command to run."""
    for folder in ("run", "log"):  # RuntimeDirectory= and LogsDirectory= make these
        (tmp_path / folder).mkdir(mode=0o750)
    (tmp_path / "chat.toml").write_text(CHAT_TOML.read_text())
    port, http_port = free_port(), free_port()
    env = dict(
        os.environ,
        NOTIFY_SOCKET=str(tmp_path / "notify"),
        RESIDENTD_LISTEN=f"127.0.0.1:{port}",
        RESIDENTD_HTTP_LISTEN=f"127.0.0.1:{http_port}",
    )
    notify = Notify(tmp_path / "notify")
    return port, env, notify, shlex.split(localise(unit_value("ExecStart"), tmp_path))


@pytest.mark.skipif(shutil.which("logrotate") is None, reason="logrotate not installed")
def test_unit_and_logrotate_recipe_together(tmp_path: Path) -> None:
    port, env, notify, start = install_unit(tmp_path)
    config = tmp_path / "chat.toml"
    reload = shlex.split(localise(unit_value("ExecReload"), tmp_path))
    rotate_conf = tmp_path / "logrotate.conf"
    rotate_conf.write_text(
        localise(LOGROTATE.read_text(), tmp_path).replace(RELOAD_LINE, shlex.join(reload))
    )
    logrotate = ["logrotate", "-f", "-s", str(tmp_path / "state"), str(rotate_conf)]
    log = tmp_path / "log" / "chat.log"
    daemon = subprocess.Popen(start, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        notify.wait_for("READY=1")
        assert b'"op":"hello"' in talk(port, [b'{"op":"hello","v":1,"user":"ops1"}'])[0]
        reloaded = subprocess.run(reload, capture_output=True, text=True, timeout=30)
        assert reloaded.returncode == 0, reloaded.stderr
        notify.wait_for("READY=1")
        assert (tmp_path / "run" / "chat.pid").exists()

        rotated = subprocess.run(logrotate, capture_output=True, text=True, timeout=60)
        assert rotated.returncode == 0, rotated.stderr
        assert (tmp_path / "log" / "chat.log.1").exists()
        wait_until(lambda: log.exists() and "reloaded" in log.read_text(), what="new log file")
        before = (tmp_path / "log" / "chat.log.1").read_text()
        assert subprocess.run(reload, capture_output=True, timeout=30).returncode == 0
        wait_until(lambda: log.read_text().count("reloaded") == 2, what="lines in the new file")
        assert (tmp_path / "log" / "chat.log.1").read_text() == before  # nothing more there

        # A reload that fails makes the rotation fail: logrotate reports it, and says why.
        config.write_text("max_connections = -3\n")
        failed = subprocess.run(logrotate, capture_output=True, text=True, timeout=60)
        assert failed.returncode != 0
        assert "max_connections = -3 (from" in failed.stderr
        assert b'"op":"hello"' in talk(port, [b'{"op":"hello","v":1,"user":"ops2"}'])[0]
    finally:
        daemon.terminate()
        daemon.wait(timeout=15)
        notify.close()
    assert daemon.returncode == 0
    assert not (tmp_path / "run" / "chat.pid").exists()


def test_an_upgrade_under_the_unit_moves_mainpid_to_the_new_generation(tmp_path: Path) -> None:
    # NotifyAccess=all: the new generation is not the unit's main process when it says
    # MAINPID=, and systemd ignores a notification from another process without it.
    assert unit_value("NotifyAccess") == "all"
    port, env, notify, start = install_unit(tmp_path)
    admin = f"unix:{tmp_path / 'run' / 'admin.sock'}"
    daemon = subprocess.Popen(start, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        notify.wait_for("READY=1")
        user = socket.create_connection(("127.0.0.1", port), timeout=10)
        user.sendall(b'{"op":"hello","v":1,"user":"ops","id":1}\n')
        assert b'"op":"hello"' in user.recv(4096)
        upgrade = [RESIDENTD, "upgrade", "--admin", admin]
        result = subprocess.run(upgrade, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        notify.wait_for("RELOADING=1")
        new_pid = int(result.stdout.split()[-1])
        assert new_pid != daemon.pid
        notify.wait_for(f"MAINPID={new_pid}\nREADY=1")
        assert daemon.wait(timeout=15) == 0  # the old generation is done
        user.sendall(b'{"op":"ping","id":2}\n')
        assert b'"op":"pong"' in user.recv(4096)
        user.close()
        os.kill(new_pid, signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        wait_until(lambda: not (tmp_path / "run" / "chat.pid").exists(), what="the stop")
    finally:
        if daemon.poll() is None:
            daemon.kill()
        daemon.wait()
        notify.sock.close()
