"""Acting on a running daemon: ``residentd stop|reload|status|loglevel``.

The daemon is found by its pidfile or by ``--admin ADDRESS``. A pid read from a pidfile is
trusted only while that process holds the pidfile's lock (:func:`daemon_pid`): a daemon that
died leaves a file whose pid the system may have given to any other program, and that program
must never get our signal. The signal goes through a pidfd opened before the check, so the pid
cannot be reused between the check and the kill. The admin socket of a daemon with a pidfile is
where :func:`~residentd.daemon.admin.default_admin_path` puts it. ``stop`` sends SIGQUIT (or
POST /stop) and waits until the process is gone, reporting how long it took; ``status`` prints
the admin endpoint's counters as a table, or as JSON with ``--json``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from typing import Any

from residentd.daemon.admin import default_admin_path
from residentd.daemon.pidfile import lock_holder, pid_alive, read_pid
from residentd.errors import ResidentdError
from residentd.net.listener import parse_address


class ControlError(ResidentdError):
    """The daemon could not be reached or did not do what was asked."""


def admin_request(
    address: str, method: str, path: str, token: str | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    """One HTTP request to the admin endpoint; returns (status, body)."""
    parsed = parse_address(address)
    try:
        if parsed.kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(parsed.path)
        else:
            sock = socket.create_connection((parsed.host, parsed.port), timeout=timeout)
    except OSError as exc:
        raise ControlError(f"cannot reach the admin endpoint at {address}: {exc}") from None
    # A loopback Host: a token-less TCP admin endpoint refuses any other (DNS rebinding).
    host = "localhost" if parsed.kind == "unix" else str(parsed)
    headers = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
    if token:
        headers += f"Authorization: Bearer {token}\r\n"
    with sock:
        sock.sendall((headers + "Content-Length: 0\r\n\r\n").encode())
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise ControlError(f"the admin endpoint at {address} gave no HTTP answer") from None
    return status, body


def admin_json(address: str, method: str, path: str, token: str | None = None) -> Any:
    status, body = admin_request(address, method, path, token)
    if status != 200:
        raise ControlError(f"{method} {path}: {status} {body.decode(errors='replace').strip()}")
    return json.loads(body)


def daemon_pid(pidfile: str) -> int:
    """The pid of the daemon that holds ``pidfile``'s lock, or ControlError saying why none."""
    pid = read_pid(pidfile)
    if pid is None:
        if not os.path.exists(pidfile):
            raise ControlError(f"no pidfile at {pidfile}: is the daemon running?")
        raise ControlError(f"pidfile {pidfile} does not hold a pid")
    try:
        holder = lock_holder(pidfile)
    except OSError as exc:
        raise ControlError(f"cannot tell who holds pidfile {pidfile}: {exc}") from None
    if holder != pid:
        raise ControlError(
            f"pidfile {pidfile} names pid {pid}, but that process does not hold its lock: the "
            "daemon is not running (a stale pidfile; the pid may belong to another program "
            "now), so nothing was signalled"
        )
    return pid


def daemon_admin_address(pidfile: str) -> str:
    """The admin socket of the daemon that holds ``pidfile`` (ControlError if none does).

    It is where :func:`~residentd.daemon.admin.default_admin_path` put it, computed with the
    daemon's own environment (its ``$RUNTIME_DIRECTORY``) when we may read it, else with ours.
    """
    pid = daemon_pid(pidfile)
    candidates = [default_admin_path("", pidfile)]
    environ = _environ_of(pid)
    if environ is not None:
        candidates.insert(0, default_admin_path("", pidfile, environ))
    for address in candidates:
        if os.path.exists(address.removeprefix("unix:")):
            return address
    return candidates[0]


def _environ_of(pid: int) -> dict[str, str] | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            data = file.read()
    except OSError:
        return None
    pairs = (item.partition(b"=") for item in data.split(b"\0") if item)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, _, value in pairs}


def send_signal(pidfile: str, signum: int) -> int:
    """Send ``signum`` to the daemon that holds ``pidfile``; returns its pid."""
    named = read_pid(pidfile)
    pidfd = _pidfd_open(named) if named is not None else None
    try:
        pid = daemon_pid(pidfile)  # checked after the pidfd is open: the pid cannot be reused
        if pidfd is not None and pid == named:
            signal.pidfd_send_signal(pidfd, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        raise ControlError(f"pid {pid} from {pidfile} has exited") from None
    except PermissionError:
        raise ControlError(
            f"not allowed to signal pid {pid} from {pidfile} (another user's process): run "
            "this as that user or root, or use its admin endpoint"
        ) from None
    finally:
        if pidfd is not None:
            os.close(pidfd)
    return pid


def _pidfd_open(pid: int) -> int | None:
    """A pidfd for ``pid`` where the system has them; None elsewhere or if it is gone."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None or not hasattr(signal, "pidfd_send_signal"):
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


def wait_gone(pid: int, timeout: float) -> float:
    """Wait for ``pid`` to exit; returns the seconds it took."""
    start = time.monotonic()
    while pid_alive(pid):
        if time.monotonic() - start > timeout:
            raise ControlError(f"pid {pid} is still running after {timeout:g}s")
        time.sleep(0.02)
    return time.monotonic() - start


def stop(pidfile: str, timeout: float) -> str:
    """SIGQUIT, the graceful stop that a repeat does not cut short (a second SIGTERM is the
    fast stop), so running ``residentd stop`` again while a stop lingers is harmless."""
    pid = send_signal(pidfile, signal.SIGQUIT)
    took = wait_gone(pid, timeout)
    return f"stopped pid {pid} in {took:.2f}s"


def _state_rows(state: dict[str, Any]) -> list[tuple[str, str]]:
    """The durable-state rows of ``status``: journal, last snapshot, disk errors."""
    saved = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(state["last_save_time"]))
    duration = state["last_snapshot_duration"]
    journal = "off"
    if state["appendonly"]:
        journal = f"{state['journal_size']} bytes, fsync {state['appendfsync']}, "
        journal += f"fsync lag {state['fsync_lag']}s"
    return [
        ("journal", journal),
        (
            "last snapshot",
            f"{saved} UTC ({state['last_bgsave_status']}"
            + (f", {duration}s)" if duration is not None else ")"),
        ),
        ("changes since", str(state["changes_since_save"])),
        (
            "disk",
            "writable" if state["writable"] else f"REFUSING WRITES: {state['last_disk_error']}",
        ),
    ]


def format_status(status: dict[str, Any]) -> str:
    """A plain two-column table of the status counters."""
    rows: list[tuple[str, str]] = [
        ("app", f"{status['app']} (pid {status.get('pid', '?')}, loop {status['loop']})"),
        ("listening", ", ".join(status.get("listening", []))),
        ("uptime", f"{status['uptime']:.1f}s"),
        ("connections open", str(status["connections_open"])),
        ("connections total", str(status["connections_total"])),
        ("messages in/out", f"{status['messages_in']} / {status['messages_out']}"),
        ("bytes in/out", f"{status['bytes_in']} / {status['bytes_out']}"),
    ]
    for label, key in (("refused", "refused"), ("closed", "closed"), ("errors", "errors")):
        counts = status[key]
        rows.append((label, ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "-"))
    lag = status.get("loop_lag", {})
    rows.append(("loop lag", f"max {lag.get('max_ms', 0)} ms, p99 {lag.get('p99_ms', 0)} ms"))
    rows.append(("rss", f"{status.get('rss_bytes', 0) / 1048576:.1f} MiB"))
    rows.append(("open fds", str(status.get("open_fds", "?"))))
    rows.append(("log level", str(status.get("log_level", "?"))))
    state = status.get("persistence")
    if state:
        rows.extend(_state_rows(state))
    width = max(len(label) for label, _ in rows)
    text = "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)
    if "workers" in status:
        text += "\n" + _worker_rows(status)
    return text


def _worker_rows(status: dict[str, Any]) -> str:
    """A master's workers, one line each (the counters above are their totals)."""
    workers = status["workers"]
    ready = sum(row["state"] == "ready" for row in workers)
    lines = [
        f"workers: {ready} of {status.get('workers_configured', len(workers))} ready, "
        f"{status.get('worker_restarts', 0)} restarts (the counters above are their totals)",
    ]
    table = [("slot", "pid", "state", "uptime", "conns", "total", "msgs in", "rss", "lag p99")]
    for row in workers:
        table.append(
            (
                str(row["slot"]),
                str(row["pid"]),
                row["state"],
                f"{row['uptime']:.1f}s",
                str(row["connections_open"]),
                str(row["connections_total"]),
                str(row["messages_in"]),
                f"{row['rss_bytes'] / 1048576:.1f} MiB",
                f"{row['loop_lag'].get('p99_ms', 0)} ms",
            )
        )
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    for line in table:
        lines.append(
            "  "
            + "  ".join(
                cell.ljust(width) for cell, width in zip(line, widths, strict=True)
            ).rstrip()
        )
    return "\n".join(lines)
