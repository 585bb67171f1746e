"""Process control that cannot hit the wrong target: pidfile locks before signals, a private
default admin socket, a TCP admin endpoint a web page cannot drive, and the help and start-up
errors an operator sees. Real processes, real sockets, real signals."""

from __future__ import annotations

import fcntl
import os
import pwd
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from residentd.daemon.admin import default_admin_path, ensure_private_dir, private_dir
from residentd.daemon.pidfile import lock_holder, pid_alive
from residentd.errors import ConfigError
from support import free_port, port_answers, wait_until

from .helpers import Daemon, residentd, talk


def clean_env(**values: str) -> dict[str, str]:
    """This environment without residentd settings or runtime folders, plus ``values``."""
    drop = ("RESIDENTD_", "RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(values)
    return env


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process that must survive whatever the test does with its pid."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


# -- the pidfile's lock decides who gets a signal ------------------------------------------------


@pytest.mark.parametrize("command", ["stop", "reload", "status"])
def test_a_pid_that_does_not_hold_the_lock_is_never_signalled(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], command: str
) -> None:
    pidfile = tmp_path / "echo.pid"
    pidfile.write_text(f"{sleeper.pid}\n")  # a daemon died; its pid went to someone else
    result = residentd(command, "--pidfile", str(pidfile), env=clean_env())
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"pidfile {pidfile} names pid {sleeper.pid}, but that process does not hold its " in (
        result.stderr
    )
    time.sleep(0.2)
    assert sleeper.poll() is None, "the unrelated process was signalled"


def test_a_lock_held_by_another_process_does_not_vouch_for_the_pid(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    pidfile = tmp_path / "echo.pid"
    pidfile.write_text(f"{sleeper.pid}\n")
    fd = os.open(pidfile, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # locked, but by us, not by the sleep
        assert lock_holder(pidfile) is None
        result = residentd("stop", "--pidfile", str(pidfile), env=clean_env())
    finally:
        os.close(fd)
    assert result.returncode == 1
    assert "nothing was signalled" in result.stderr
    assert sleeper.poll() is None


def test_the_daemon_holding_the_lock_is_signalled(tmp_path: Path) -> None:
    with Daemon(tmp_path, "echo") as daemon:
        assert lock_holder(daemon.pidfile) == daemon.pid
        result = residentd("stop", "--pidfile", daemon.pidfile, env=clean_env())
        assert result.returncode == 0, result.stderr
        assert f"stopped pid {daemon.pid}" in result.stdout
    assert lock_holder(daemon.pidfile) is None


def cli_as_nobody(*argv: str) -> tuple[int, str]:
    """``residentd *argv`` in a forked child that has become ``nobody`` (what it needs lazily
    is imported first: the checkout may not be readable by nobody); its status and stderr."""
    import argparse  # noqa: F401
    import encodings.ascii  # noqa: F401
    import gettext  # noqa: F401
    import shutil  # noqa: F401

    from residentd import cli

    nobody = pwd.getpwnam("nobody")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 70
        try:
            os.close(read_fd)
            os.dup2(write_fd, 2)
            sys.stderr = os.fdopen(2, "w", closefd=False)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            status = cli.main(list(argv))
        except BaseException as exc:
            sys.stderr.write(f"Traceback: {exc!r}\n")
        finally:
            sys.stderr.flush()
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        stderr = pipe.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_a_daemon_of_another_user_is_a_message_not_a_traceback() -> None:
    with tempfile.TemporaryDirectory() as folder:  # pytest's tmp_path is private to root
        os.chmod(folder, 0o755)
        signal_as_nobody(Path(folder))


def signal_as_nobody(folder: Path) -> None:
    with Daemon(folder, "echo") as daemon:
        status, stderr = cli_as_nobody("stop", "--pidfile", daemon.pidfile)
        assert status == 1, stderr
        assert "Traceback" not in stderr
        assert f"not allowed to signal pid {daemon.pid}" in stderr
        assert talk(daemon.port, [b"still serving"]) == [b"still serving"]


# -- the default admin socket ---------------------------------------------------------------------


def test_default_admin_path_order(tmp_path: Path) -> None:
    run = tmp_path / "run"
    pidfile = str(tmp_path / "var" / "echo.pid")
    systemd = {"RUNTIME_DIRECTORY": f"{run}:{tmp_path / 'other'}"}
    assert default_admin_path("echo", pidfile, systemd) == f"unix:{run}/echo.pid.sock"
    assert default_admin_path("echo", None, systemd) == f"unix:{run}/residentd-echo.sock"
    assert default_admin_path("echo", pidfile, {}) == f"unix:{pidfile}.sock"
    private = {"XDG_RUNTIME_DIR": str(tmp_path / "xdg")}
    assert default_admin_path("echo", None, private) == (f"unix:{tmp_path}/xdg/residentd-echo.sock")
    # Without any of them: a folder of this user's own, never a fixed name in /tmp.
    fallback = default_admin_path("echo", None, {"TMPDIR": str(tmp_path)})
    folder = os.path.dirname(fallback.removeprefix("unix:"))
    assert folder == private_dir({"TMPDIR": str(tmp_path)})
    assert folder.endswith(f"residentd-{os.getuid()}")
    assert folder != "/tmp"
    long_pidfile = str(tmp_path / ("x" * 120) / "echo.pid")
    short = default_admin_path("echo", long_pidfile, private).removeprefix("unix:")
    assert os.path.dirname(short) == str(tmp_path / "xdg") and len(short.encode()) <= 100


def test_private_dir_is_made_0700_and_others_are_refused(tmp_path: Path) -> None:
    made = tmp_path / "mine"
    ensure_private_dir(str(made))
    assert made.stat().st_mode & 0o777 == 0o700

    open_to_all = tmp_path / "open"
    open_to_all.mkdir()
    open_to_all.chmod(0o777)
    with pytest.raises(ConfigError, match=f"folder {open_to_all} is open to other users"):
        ensure_private_dir(str(open_to_all))

    link = tmp_path / "link"
    link.symlink_to(made)
    with pytest.raises(ConfigError, match=f"folder {link} is a symlink"):
        ensure_private_dir(str(link))

    if os.geteuid() == 0:
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, pwd.getpwnam("nobody").pw_uid, -1)
        with pytest.raises(ConfigError, match=f"folder {theirs} belongs to uid"):
            ensure_private_dir(str(theirs))


def test_admin_socket_goes_to_runtime_directory_and_status_finds_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    (tmp_path / "var").mkdir()
    daemon = Daemon(tmp_path / "var", "echo")
    daemon.start(env=clean_env(RUNTIME_DIRECTORY=str(run)), wait=False)
    socket_path = run / "echo.pid.sock"
    try:
        wait_until(lambda: socket_path.exists() and port_answers(daemon.port), what="listening")
        assert not Path(f"{daemon.pidfile}.sock").exists()
        # An operator's shell has no $RUNTIME_DIRECTORY: the command reads the daemon's.
        result = residentd("status", "--pidfile", daemon.pidfile, "--json", env=clean_env())
        assert result.returncode == 0, result.stderr
        assert f'"pid": {daemon.pid}' in result.stdout
    finally:
        daemon.stop()
    assert not socket_path.exists()


def test_without_pidfile_the_socket_is_in_a_private_folder(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "residentd", "run", "echo", "--listen", f"127.0.0.1:{port}"],
        env=clean_env(XDG_RUNTIME_DIR=str(xdg)),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: (xdg / "residentd-echo.sock").exists(), what="admin socket")
        admin = f"unix:{xdg}/residentd-echo.sock"
        result = residentd("stop", "--admin", admin, env=clean_env())
        assert result.returncode == 0, result.stderr
        assert process.wait(timeout=15) == 0
    finally:
        process.kill()
        process.communicate()


def start_error(*args: str, env: dict[str, str] | None = None) -> str:
    """Run ``residentd run echo ARGS``, which must fail to start with exit 2 and a message."""
    result = residentd(
        "run", "echo", "--listen", f"127.0.0.1:{free_port()}", *args, env=env or clean_env()
    )
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("residentd: ")
    return result.stderr


def test_an_open_private_folder_is_refused_by_name(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    xdg.chmod(0o777)
    message = start_error(env=clean_env(XDG_RUNTIME_DIR=str(xdg)))
    assert f"admin socket folder {xdg} is open to other users" in message


def test_a_symlinked_admin_socket_is_refused_by_name(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("not yours\n")
    link = tmp_path / "echo.pid.sock"
    link.symlink_to(target)
    message = start_error("--pidfile", str(tmp_path / "echo.pid"))
    assert f"admin socket {link} is a symlink" in message
    assert target.read_text() == "not yours\n"
    assert not (tmp_path / "echo.pid").exists()


def test_a_bad_admin_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "admin.sock"
    message = start_error("--admin", f"unix:{missing}")
    assert f"admin socket {missing} cannot be made" in message
    assert "--admin" in message

    occupied = tmp_path / "file.sock"
    occupied.write_text("data\n")
    message = start_error("--admin", f"unix:{occupied}")
    assert f"admin socket {occupied} exists and is not a socket" in message
    assert occupied.read_text() == "data\n"


# -- a TCP admin endpoint without a token and web pages -------------------------------------------


def http(port: int, request: str) -> tuple[int, str]:
    """Send one raw HTTP request to 127.0.0.1:port, as a browser or curl would; (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def post_stop(port: int, *headers: str) -> tuple[int, str]:
    extra = "".join(f"{header}\r\n" for header in headers)
    return http(
        port, f"POST /stop HTTP/1.1\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )


def test_a_web_page_cannot_drive_a_tokenless_tcp_admin(tmp_path: Path) -> None:
    port = free_port()
    daemon = Daemon(tmp_path, "echo", "--admin", f"127.0.0.1:{port}")
    with daemon:
        # A form or fetch() from any page: the browser adds Origin to every POST.
        status, body = post_stop(port, f"Host: 127.0.0.1:{port}", "Origin: https://evil.example")
        assert status == 403 and "Origin" in body
        status, _ = post_stop(port, f"Host: localhost:{port}", "Origin: null")
        assert status == 403
        # DNS rebinding: the page's own name resolves to 127.0.0.1; the Host is the page's.
        status, body = post_stop(port, "Host: evil.example:80")
        assert status == 403 and "evil.example" in body
        status, _ = http(port, "GET /config HTTP/1.1\r\nHost: evil.example\r\n\r\n")
        assert status == 403
        assert daemon.process is not None and daemon.process.poll() is None
        assert port_answers(daemon.port)
        # Tools send no Origin and a loopback Host: they still work.
        status, _ = http(
            port, f"GET /status HTTP/1.1\r\nHost: [::1]:{port}\r\nConnection: close\r\n\r\n"
        )
        assert status == 200
        status, body = post_stop(port, f"Host: 127.0.0.1:{port}")
        assert status == 200 and "stopping" in body
        assert daemon.wait() == 0


def test_with_a_token_the_token_decides(tmp_path: Path) -> None:
    port = free_port()
    with Daemon(tmp_path, "echo", "--admin", f"127.0.0.1:{port}", "--admin-token", "t0k") as daemon:
        status, _ = post_stop(port, "Host: evil.example", "Origin: https://evil.example")
        assert status == 401
        result = residentd(
            "stop", "--admin", f"127.0.0.1:{port}", "--token", "t0k", env=clean_env()
        )
        assert result.returncode == 0, result.stderr
        assert daemon.wait() == 0


# -- --daemon: a warning and no inherited descriptors ---------------------------------------------


def test_daemon_mode_warns_without_a_log_file_and_closes_inherited_fds(tmp_path: Path) -> None:
    port = free_port()
    pidfile = tmp_path / "bg.pid"
    read_end, write_end = os.pipe()
    try:
        result = subprocess.run(
            [
                sys.executable, "-m", "residentd", "run", "echo", "--daemon",
                "--listen", f"127.0.0.1:{port}", "--pidfile", str(pidfile),
            ],
            pass_fds=(write_end,),
            capture_output=True,
            text=True,
            timeout=30,
            env=clean_env(),
        )  # fmt: skip
        os.close(write_end)
        assert result.returncode == 0, result.stderr
        assert "--daemon without --log-file: the daemon's logs go nowhere" in result.stderr
        pid = int(pidfile.read_text())
        assert pid_alive(pid) and port_answers(port)
        # The starter has exited; only the daemon could still hold the pipe's write end.
        readable, _, _ = select.select([read_end], [], [], 10)
        assert readable, "the daemon kept the inherited descriptor open"
        assert os.read(read_end, 1) == b""
    finally:
        os.close(read_end)
        stopped = residentd("stop", "--pidfile", str(pidfile), env=clean_env())
    assert stopped.returncode == 0, stopped.stderr


# -- help and start-up errors ---------------------------------------------------------------------


def test_help_lists_every_command() -> None:
    result = residentd("--help", env=clean_env())
    assert result.returncode == 0
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("    ")}
    assert {"run", "config", "bots", "chat", "status", "reload", "stop", "loglevel"} <= listed


@pytest.mark.parametrize("command", ["run", "config"])
def test_run_help_without_an_app_goes_to_stdout(command: str) -> None:
    result = residentd(command, "--help", env=clean_env())
    assert result.returncode == 0
    assert f"usage: residentd {command} APP" in result.stdout
    assert "echo" in result.stdout
    assert residentd(command, env=clean_env()).returncode == 2


def test_flag_help_shows_defaults_and_what_0_means_only_where_it_means_something() -> None:
    result = residentd("run", "echo", "--help", env=clean_env())
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "(0: no timeout) (default: 300)" in text  # idle_timeout
    assert "(0: no limit) (default: 10000)" in text  # max_connections
    assert "Listen backlog of each listening socket. (default: 1024)" in text
    assert "(on_resume_writing``). (default: 65536)" in text.replace("(``", "(")
    assert "(default: 127.0.0.1:7007)" in text
    assert "(default: 65536)" in text  # an app option: echo's max_line
    assert text.count("0: no") == 6


def test_an_unusable_log_file_is_a_message(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "echo.log"
    message = start_error("--log-file", str(missing))
    assert f"log_file = '{missing}' (from --log-file) cannot be opened" in message
    message = start_error("--log-file", str(tmp_path))
    assert f"log_file = '{tmp_path}'" in message and "Is a directory" in message


def test_a_pidfile_in_a_missing_folder_is_a_message(tmp_path: Path) -> None:
    pidfile = tmp_path / "gone" / "echo.pid"
    message = start_error("--pidfile", str(pidfile))
    assert f"pidfile = '{pidfile}' (from --pidfile) cannot be made" in message
    assert f"folder {tmp_path / 'gone'} does not exist" in message


def test_an_empty_log_file_variable_is_a_message() -> None:
    message = start_error(env=clean_env(RESIDENTD_LOG_FILE=""))
    assert "log_file = '' (from RESIDENTD_LOG_FILE) is not allowed" in message


@pytest.mark.parametrize(
    ("setting", "value"),
    [("idle_timeout", "nan"), ("shutdown_timeout", "inf"), ("handshake_timeout", "-inf")],
)
def test_timeouts_must_be_finite(setting: str, value: str) -> None:
    flag = "--" + setting.replace("_", "-")
    message = start_error(f"{flag}={value}")
    assert f"{setting} = '{value}' (from {flag}) is not allowed: expected a finite number" in (
        message
    )
    message = start_error(env=clean_env(**{f"RESIDENTD_{setting.upper()}": value}))
    assert f"(from RESIDENTD_{setting.upper()})" in message


def test_a_unix_path_too_long_for_a_socket_is_named(tmp_path: Path) -> None:
    path = str(tmp_path / ("d" * 120) / "echo.sock")
    result = residentd("run", "echo", "--listen", f"unix:{path}", "--admin", "off", env=clean_env())
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert path in result.stderr
    assert "longer than a Unix socket path may be" in result.stderr
