"""The admin endpoint: status, metrics and control of a running daemon over local HTTP.

It is a residentd app of its own, served on the daemon's loop: a Unix socket (mode 0600) by
default, or ``HOST:PORT``. A TCP admin endpoint beyond loopback is refused unless a token is set,
and with a token every request must carry ``Authorization: Bearer <token>``.

    GET  /status            counters, loop lag, RSS, fds, uptime as JSON
    GET  /metrics           the same in Prometheus text format (see metrics.py)
    GET  /config            the configuration in force, and what waits for a restart, as JSON
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
from residentd.daemon.metrics import prometheus_text
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
        result = controller.reload()
        return response(200 if result["ok"] else 500, msgspec.json.encode(result), JSON)
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
