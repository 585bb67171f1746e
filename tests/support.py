"""Support code every test area shares: free loopback ports, waiting for a port, a file or a
condition, and programs (``residentd`` above all) run as real child processes.

A child's output goes to a log file the test reads back; it is stopped by its pid, SIGTERM
first and SIGKILL when it does not exit in time, or killed at once (``kill9``) to play a crash.
The helpers of each area (``chat/daemon.py``, ``kv/helpers.py``, ``lifecycle/helpers.py`` ...)
build their app-specific daemons and clients on these.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

HOST = "127.0.0.1"
#: How long a child process gets to start listening, and to exit after SIGTERM.
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


# -- ports ---------------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_answers(port: int, host: str = HOST, timeout: float = 0.2) -> bool:
    """Whether a TCP connection to ``host:port`` is accepted (it is closed at once)."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


# -- waiting -------------------------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], Any], timeout: float = 10.0, what: str = "", interval: float = 0.02
) -> Any:
    """Poll ``predicate`` (blocking) until it returns something true, and return that; fail the
    test after ``timeout`` seconds, naming ``what`` it waited for."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or predicate}")
        time.sleep(interval)


async def eventually(
    predicate: Callable[[], Any], timeout: float = 5.0, what: str = "", interval: float = 0.005
) -> None:
    """``wait_until`` on the running event loop: the loop keeps running between polls."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or predicate}")
        await asyncio.sleep(interval)


def wait_for_port(
    port: int,
    process: subprocess.Popen[Any] | None = None,
    timeout: float = START_TIMEOUT,
    log: Callable[[], str] | None = None,
) -> None:
    """Wait until ``port`` on loopback accepts connections; fail at once if ``process`` (the one
    meant to listen there) exits first, with its log when ``log`` gives it."""

    def listening() -> bool:
        if process is not None and process.poll() is not None:
            told = f":\n{log()}" if log is not None else ""
            raise AssertionError(f"{_name(process)} exited with {process.returncode}{told}")
        return port_answers(port)

    wait_until(listening, timeout, f"a listener on port {port}")


def wait_for_file(path: str | os.PathLike[str], timeout: float = 10.0) -> None:
    """Wait until ``path`` exists."""
    wait_until(lambda: os.path.exists(path), timeout, f"{os.fspath(path)} to exist")


# -- child processes -----------------------------------------------------------------------------


def residentd_command(*args: str) -> list[str]:
    """The command line of ``residentd ARGS`` run by this Python."""
    return [sys.executable, "-m", "residentd", *args]


def run_residentd(
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 30.0,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``residentd ARGS`` run to its end, its output captured as text."""
    return subprocess.run(
        residentd_command(*args),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


def child_env(**extra: str) -> dict[str, str]:
    """This environment without the ``RESIDENTD_*`` settings a test run may have set (the child
    takes its settings from its command line), but with ``RESIDENTD_PURE_PYTHON`` kept, so the
    child runs the C speedups or their Python versions as the test run does; plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESIDENTD_")}
    if "RESIDENTD_PURE_PYTHON" in os.environ:
        env["RESIDENTD_PURE_PYTHON"] = os.environ["RESIDENTD_PURE_PYTHON"]
    env.update(extra)
    return env


def spawn(
    command: Sequence[str],
    log: str | os.PathLike[str] | IO[Any] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """``command`` as a child process, its stdout and stderr appended to ``log`` (a path or an
    open file; nowhere when None)."""
    if isinstance(log, str | os.PathLike):
        with open(log, "ab") as file:  # the child holds a descriptor of its own
            return spawn(command, file, env, cwd, preexec_fn)
    return subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL if log is None else log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
        preexec_fn=preexec_fn,
    )


def stop(process: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> int:
    """Stop ``process`` by its pid: SIGTERM, then SIGKILL if it has not exited after
    ``timeout`` seconds. Returns its exit status (negative: the signal that ended it)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def kill9(process: subprocess.Popen[Any], timeout: float = 10.0) -> int:
    """SIGKILL ``process`` (a crash, as far as it can tell) and wait for its exit."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    return process.wait(timeout)


def read_log(path: str | os.PathLike[str]) -> str:
    """The text of a log file, undecodable bytes replaced; empty when it does not exist."""
    try:
        return Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _name(process: subprocess.Popen[Any]) -> str:
    args = process.args
    words = [str(arg) for arg in args] if isinstance(args, list | tuple) else [str(args)]
    if words[1:3] == ["-m", "residentd"]:
        words = ["residentd", *words[3:5]]
    return " ".join(words[:3])


# -- resources -----------------------------------------------------------------------------------


def open_fds() -> int:
    """How many descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))
