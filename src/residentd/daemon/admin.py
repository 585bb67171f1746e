"""The admin endpoint: status, metrics and control of a running daemon over local HTTP.

It is a residentd app of its own, served on the daemon's loop: a Unix socket (mode 0600) by
default, or ``HOST:PORT``. A TCP admin endpoint beyond loopback is refused unless a token is set,
and with a token every request must carry ``Authorization: Bearer <token>``.

    GET  /status            counters, loop lag, RSS, fds, uptime as JSON
    GET  /metrics           the same in Prometheus text format
    GET  /config            the effective configuration as JSON
    POST /reload            reload the config file, as SIGHUP does; answers what was applied
    POST /loglevel?level=L  change the log level at run time
    POST /stop              begin a graceful stop
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from residentd.app import App, Session
from residentd.codecs.http import HttpRequest, HttpRequestCodec, response
from residentd.errors import ConfigError
from residentd.net.listener import parse_address

JSON = "application/json"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


class Controller(Protocol):
    """What the admin endpoint needs from the running daemon."""

    def status(self) -> dict[str, Any]: ...

    def config_dict(self) -> dict[str, Any]: ...

    def reload(self) -> dict[str, Any]: ...

    def set_log_level(self, level: str) -> None: ...

    def request_stop(self) -> None: ...


def check_admin_address(address: str, token: str | None) -> None:
    """Refuse an admin endpoint reachable beyond loopback without a token."""
    parsed = parse_address(address)
    if parsed.kind == "unix" or token:
        return
    try:
        loopback = ipaddress.ip_address(parsed.host).is_loopback
    except ValueError:
        loopback = parsed.host == "localhost"
    if not loopback:
        raise ConfigError(
            f"admin = {address!r} is not allowed: an admin endpoint beyond loopback "
            "needs admin_token"
        )


# A Unix socket path must fit in sun_path (108 bytes on Linux, with the NUL).
MAX_UNIX_PATH = 100


def default_admin_path(app_name: str, pidfile: str | None) -> str:
    """Where the admin socket goes when ``admin`` is not set: beside the pidfile
    (``<pidfile>.sock``), or in the user's runtime directory. A pidfile path too long for a
    Unix socket maps to a short name derived from it, so ``residentd status --pidfile`` finds
    the same socket."""
    runtime = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    if not pidfile:
        return f"unix:{runtime}/residentd-{app_name}-{os.getuid()}.sock"
    path = f"{os.path.abspath(pidfile)}.sock"
    if len(path.encode()) <= MAX_UNIX_PATH:
        return f"unix:{path}"
    digest = hashlib.sha256(path.encode()).hexdigest()[:16]
    return f"unix:{runtime}/residentd-{digest}.sock"


def build_admin_app(controller: Controller, token: Callable[[], str | None]) -> App:
    app = App("admin", "status, metrics and control of a running daemon")

    class AdminSession(Session):
        __slots__ = ()

        def on_message(self, request: HttpRequest) -> None:
            expected = token()
            if expected:
                given = request.headers.get("authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
                    self.send(response(401, b"admin token required\n", close=True))
                    self.close("unauthorized")
                    return
            self.send(route(controller, request))
            if not request.keep_alive:
                self.close("done")

    app.service("admin", AdminSession, codec=HttpRequestCodec)
    return app


def route(controller: Controller, request: HttpRequest) -> bytes:
    method, path = request.method, request.path
    if path == "/status" and method == "GET":
        return response(200, msgspec.json.encode(controller.status()), JSON)
    if path == "/metrics" and method == "GET":
        return response(200, prometheus_text(controller.status()).encode(), PROMETHEUS)
    if path == "/config" and method == "GET":
        return response(200, msgspec.json.encode(controller.config_dict()), JSON)
    if path == "/reload" and method == "POST":
        return response(200, msgspec.json.encode(controller.reload()), JSON)
    if path == "/loglevel" and method == "POST":
        level = request.query.get("level") or request.body.decode().strip()
        try:
            controller.set_log_level(level)
        except ConfigError as exc:
            return response(400, f"{exc}\n".encode())
        return response(200, msgspec.json.encode({"log_level": level.upper()}), JSON)
    if path == "/stop" and method == "POST":
        controller.request_stop()
        return response(200, msgspec.json.encode({"stopping": True}), JSON)
    if path in ("/status", "/metrics", "/config", "/reload", "/loglevel", "/stop"):
        return response(405, b"method not allowed\n")
    return response(404, b"not found\n")


def prometheus_text(status: dict[str, Any]) -> str:
    """Render the status counters as Prometheus text exposition format."""
    app = status.get("app", "")
    lines: list[str] = []

    def metric(name: str, kind: str, value: Any, labels: dict[str, str] | None = None) -> None:
        full = f"residentd_{name}"
        if not any(line.startswith(f"# TYPE {full} ") for line in lines):
            lines.append(f"# TYPE {full} {kind}")
        all_labels = {"app": app, **(labels or {})}
        rendered = ",".join(f'{key}="{_escape(str(val))}"' for key, val in all_labels.items())
        lines.append(f"{full}{{{rendered}}} {value}")

    metric("connections_open", "gauge", status["connections_open"])
    metric("connections_total", "counter", status["connections_total"])
    for reason, count in sorted(status["refused"].items()):
        metric("refused_total", "counter", count, {"reason": reason})
    for reason, count in sorted(status["closed"].items()):
        metric("closed_total", "counter", count, {"reason": reason})
    for kind, count in sorted(status["errors"].items()):
        metric("errors_total", "counter", count, {"kind": kind})
    for name in ("messages_in", "messages_out", "bytes_in", "bytes_out"):
        metric(f"{name}_total", "counter", status[name])
    lag = status.get("loop_lag", {})
    metric("loop_lag_max_seconds", "gauge", lag.get("max_ms", 0.0) / 1000)
    metric("loop_lag_p99_seconds", "gauge", lag.get("p99_ms", 0.0) / 1000)
    metric("rss_bytes", "gauge", status.get("rss_bytes", 0))
    metric("open_fds", "gauge", status.get("open_fds", 0))
    metric("uptime_seconds", "gauge", status.get("uptime", 0))
    state = status.get("persistence")
    if state:
        metric("state_writable", "gauge", int(state["writable"]))
        metric("state_journal_bytes", "gauge", state["journal_size"])
        metric("state_fsync_lag_seconds", "gauge", state["fsync_lag"])
        metric("state_changes_since_snapshot", "gauge", state["changes_since_save"])
        metric("state_last_snapshot_time_seconds", "gauge", state["last_save_time"])
        metric(
            "state_last_snapshot_duration_seconds", "gauge", state["last_snapshot_duration"] or 0
        )
        metric(
            "state_disk_error",
            "gauge",
            int(state["last_disk_error"] is not None and not state["writable"]),
        )
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
