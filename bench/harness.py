"""Shared plumbing for the benchmarks: the servers under test, CPU pinning, ports and limits.

Each server runs as its own subprocess pinned to one CPU (``SERVER_CPU``), started by
``ServerProcess``, which waits until the port accepts connections and reads the server's RSS
and CPU time through psutil. The load generator stays in the bench process, pinned to another
CPU (``CLIENT_CPU``), so client and server never compete for a core.

The three servers are:

* ``residentd``: the built-in echo app, through ``python -m residentd run echo`` when that CLI
  is there, else through the small launcher ``peers/residentd_echo.py``;
* ``raw-uvloop``: ``peers/raw_uvloop_echo.py``, a bare uvloop Protocol that echoes whole lines;
* ``asyncio-streams``: ``peers/streams_echo.py``, a readline/write/drain loop on uvloop.

Only loopback addresses are used. Connections are spread over source addresses 127.0.0.2,
127.0.0.3, ... so that one address's ephemeral ports never run out.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import psutil

PYTHON = sys.executable
PEERS_DIR = Path(__file__).resolve().parent / "peers"
HOST = "127.0.0.1"
SERVER_CPU = 0
CLIENT_CPU = 1

SERVERS = ("residentd", "raw-uvloop", "asyncio-streams")


def residentd_cli_works() -> bool:
    """True when ``python -m residentd run echo --help`` exits cleanly."""
    try:
        done = subprocess.run(
            [PYTHON, "-m", "residentd", "run", "echo", "--help"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def resolve_residentd_via(via: str) -> str:
    """``cli`` or ``launcher``: how to start residentd's echo (``auto`` prefers the CLI)."""
    if via == "auto":
        return "cli" if residentd_cli_works() else "launcher"
    return via


def server_command(name: str, port: int, residentd_via: str = "cli") -> list[str]:
    """The argv that starts server ``name`` listening on ``HOST:port``."""
    listen = f"{HOST}:{port}"
    if name == "residentd" and residentd_via == "cli":
        return [
            PYTHON,
            "-m",
            "residentd",
            "run",
            "echo",
            "--listen",
            listen,
            "--max-connections-per-ip",
            "0",
            "--max-connections",
            "0",
            "--log-level",
            "WARNING",
            "--admin",  # no admin socket: it would sit at a shared default path otherwise
            "off",
        ]
    scripts = {
        "residentd": "residentd_echo.py",
        "raw-uvloop": "raw_uvloop_echo.py",
        "asyncio-streams": "streams_echo.py",
    }
    return [PYTHON, str(PEERS_DIR / scripts[name]), "--listen", listen]


def pin_to_cpu(cpu: int) -> None:
    """Pin the calling process (and the threads it starts later) to one CPU."""
    os.sched_setaffinity(0, {cpu})


def raise_nofile_limit() -> int:
    """Raise the soft open-file limit to the hard one; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    """A TCP port on ``HOST`` that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def source_address(index: int, per_address: int) -> str:
    """The loopback source address for connection ``index``: 127.0.0.2, 127.0.0.3, ..."""
    number = 2 + index // per_address
    return f"127.0.{number // 256}.{number % 256}"


class ServerProcess:
    """One server under test: a pinned subprocess, its readiness, RSS and CPU time."""

    def __init__(self, name: str, argv: list[str], cpu: int = SERVER_CPU) -> None:
        self.name = name
        self.argv = argv
        self.cpu = cpu
        self.port = int(argv[argv.index("--listen") + 1].rpartition(":")[2])
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by __exit__)
        self._process: subprocess.Popen[bytes] | None = None
        self._ps: psutil.Process | None = None

    def start(self, timeout: float = 30.0) -> None:
        cpu = self.cpu
        self._process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            preexec_fn=lambda: pin_to_cpu(cpu),
        )
        self._ps = psutil.Process(self._process.pid)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.stderr_text()}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 1):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not listen on port {self.port} in {timeout}s")

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._process

    def rss(self) -> int:
        """Resident set size of the server, in bytes."""
        assert self._ps is not None
        rss: int = self._ps.memory_info().rss
        return rss

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server has used so far, all threads."""
        assert self._ps is not None
        times = self._ps.cpu_times()
        return float(times.user + times.system)

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def stop(self, timeout: float = 10.0) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
        self._stderr.close()


def wait_workers_ready(
    process: subprocess.Popen[bytes], pidfile: str, workers: int, timeout: float = 60.0
) -> None:
    """Until the daemon started as ``process`` with ``--pidfile pidfile --workers workers``
    answers on its admin socket with every worker ready (one process: as soon as it answers)."""
    from residentd.daemon.control import ControlError, admin_json

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the daemon with {workers} workers exited")
        try:
            status = admin_json(f"unix:{pidfile}.sock", "GET", "/status")
        except (ControlError, OSError, ValueError):
            time.sleep(0.1)
            continue
        rows = status.get("workers")
        if rows is None or sum(row["state"] == "ready" for row in rows) == workers:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the daemon with {workers} workers did not get ready")


def tree_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` and its live descendants (a master and its
    workers)."""
    main = psutil.Process(pid)
    total = 0.0
    for process in [main, *main.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def busy_cpu_seconds() -> float:
    """CPU time spent by the whole machine, all CPUs, on anything but idling (steal included)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))
