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
    POST /upgrade           live upgrade (daemon/upgrade.py); answers once it worked or failed
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import stat
from collections.abc import Callable, Mapping
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

    def upgrade_then(self, done: Callable[[dict[str, Any]], None]) -> None: ...

    def reload_then(self, done: Callable[[dict[str, Any]], None]) -> None: ...

    def metrics_then(self, done: Callable[[str], None]) -> None: ...


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


def default_admin_path(
    app_name: str, pidfile: str | None, environ: Mapping[str, str] | None = None
) -> str:
    """Where the admin socket goes when ``admin`` is not set, as ``unix:PATH``.

    Never a fixed name in a folder every user may write to (where anyone could take the name
    first and keep a root daemon from starting). In order: ``$RUNTIME_DIRECTORY`` (systemd's
    ``RuntimeDirectory=``; the first one, when it lists several), beside the pidfile
    (``<pidfile>.sock``), or the user's private directory (:func:`private_dir`). With a pidfile
    the socket is named after it, so ``residentd status --pidfile`` finds it. A path too long
    for a Unix socket maps to a short name derived from it, in the private directory.
    """
    env = os.environ if environ is None else environ
    name = f"{os.path.basename(pidfile)}.sock" if pidfile else f"residentd-{app_name}.sock"
    runtime = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        path = os.path.join(os.path.abspath(runtime), name)
    elif pidfile:
        path = f"{os.path.abspath(pidfile)}.sock"
    else:
        path = os.path.join(private_dir(env), name)
    if len(path.encode()) > MAX_UNIX_PATH:
        digest = hashlib.sha256(path.encode()).hexdigest()[:16]
        path = os.path.join(private_dir(env), f"residentd-{digest}.sock")
    return f"unix:{path}"


def private_dir(environ: Mapping[str, str] | None = None) -> str:
    """This user's private folder for sockets: ``$XDG_RUNTIME_DIR``, else ``/run/residentd-0``
    for root, else ``residentd-<uid>`` in ``$TMPDIR`` (or ``/tmp``). See
    :func:`ensure_private_dir`."""
    env = os.environ if environ is None else environ
    if env.get("XDG_RUNTIME_DIR"):
        return os.path.abspath(env["XDG_RUNTIME_DIR"])
    uid = os.getuid()
    base = "/run" if uid == 0 and os.path.isdir("/run") else env.get("TMPDIR") or "/tmp"
    return os.path.join(os.path.abspath(base), f"residentd-{uid}")


def ensure_private_dir(path: str, create: bool = True) -> None:
    """Check that ``path`` is a real folder (not a symlink) owned by this user and closed to
    others (no group or other permission bits), creating it with mode 0700 if it is missing
    and ``create``; ConfigError naming the path otherwise."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        if not create:
            return
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass  # made by someone else just now: checked below like any other
        except OSError as exc:
            raise ConfigError(f"cannot create admin socket folder {path}: {exc.strerror}") from None
        info = os.lstat(path)
    what = f"admin socket folder {path}"
    if stat.S_ISLNK(info.st_mode):
        raise ConfigError(f"{what} is a symlink: refusing to follow it")
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{what} is not a folder")
    if info.st_uid != os.getuid():
        raise ConfigError(
            f"{what} belongs to uid {info.st_uid}, not to this user (uid {os.getuid()}): "
            "refusing it"
        )
    if info.st_mode & 0o077:
        raise ConfigError(
            f"{what} is open to other users (mode {stat.S_IMODE(info.st_mode):04o}): "
            "it must be 0700"
        )


def prepare_admin_socket(address: str, environ: Mapping[str, str] | None = None) -> None:
    """Before binding a ``unix:`` admin address: make the private folder if the socket goes
    there, and refuse a path that is a symlink, something other than a socket, or in a
    missing folder, naming the path. Nothing for a TCP address."""
    if not address.startswith("unix:"):
        return
    path = parse_address(address).path
    folder = os.path.dirname(os.path.abspath(path))
    if folder == private_dir(environ):
        ensure_private_dir(folder)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        if not os.path.isdir(folder):
            raise ConfigError(
                f"admin socket {path} cannot be made: folder {folder} does not exist"
            ) from None
        return
    except OSError as exc:
        raise ConfigError(f"admin socket {path} cannot be examined: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise ConfigError(f"admin socket {path} is a symlink: refusing to follow it")
    if not stat.S_ISSOCK(info.st_mode):
        raise ConfigError(f"admin socket {path} exists and is not a socket: refusing to replace it")


def build_admin_app(
    controller: Controller, token: Callable[[], str | None], *, browser_guard: bool = False
) -> App:
    """The admin endpoint as an app. ``browser_guard`` (for a TCP address) refuses, while no
    token is set, what a web page could send to it (see :func:`browser_refusal`)."""
    app = App("admin", "status, metrics and control of a running daemon")

    class AdminSession(Session[App]):
        __slots__ = ()

        def on_message(self, request: HttpRequest) -> None:
            expected = token()
            if expected:
                given = request.headers.get("authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
                    self.send_bytes(response(401, b"admin token required\n", close=True))
                    self.close("unauthorized")
                    return
            elif browser_guard and (refusal := browser_refusal(request)):
                self.send_bytes(_forbidden(refusal))
                self.close("forbidden")
                return
            if request.path == "/upgrade" and request.method == "POST":
                controller.upgrade_then(lambda result: self._answer(request, upgraded(result)))
                return
            # These two may take a while with workers (a rolling restart; a scrape of each).
            if request.path == "/reload" and request.method == "POST":
                controller.reload_then(lambda result: self._answer(request, reloaded(result)))
                return
            if request.path == "/metrics" and request.method == "GET":
                controller.metrics_then(
                    lambda text: self._answer(request, response(200, text.encode(), PROMETHEUS))
                )
                return
            self._answer(request, route(controller, request))

        def _answer(self, request: HttpRequest, answer: bytes) -> None:
            self.send_bytes(answer)
            if not request.keep_alive:
                self.close("done")

    app.service("admin", AdminSession, codec=HttpRequestCodec)
    return app


def browser_refusal(request: HttpRequest) -> str | None:
    """Why a request to a token-less TCP admin endpoint looks sent by a web page, or None.

    A page in a browser on this machine can reach a loopback port: with a form or ``fetch`` it
    can POST (the browser then sends ``Origin``, on every request that is not a GET or HEAD),
    and through DNS rebinding it can even read answers (the ``Host`` is then the page's name,
    not a loopback one). ``residentd`` and tools like curl send neither.
    """
    host = request.headers.get("host")
    if host is not None and not _loopback_host(host):
        return f"Host {host!r} is not a loopback name"
    if request.method not in ("GET", "HEAD") and "origin" in request.headers:
        return "requests from web pages (with an Origin header) may not change anything"
    return None


def _loopback_host(host: str) -> bool:
    """Whether a Host header names this machine: ``localhost`` or a loopback IP, any port."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else ""
    elif name.count(":") == 1:
        name, _, port = name.partition(":")
        if not port.isdigit():
            return False
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _forbidden(reason: str) -> bytes:
    return response(403, f"forbidden: {reason}\n".encode(), close=True)


def upgraded(result: dict[str, Any]) -> bytes:
    return response(200 if result["ok"] else 500, msgspec.json.encode(result), JSON)


reloaded = upgraded


def route(controller: Controller, request: HttpRequest) -> bytes:
    method, path = request.method, request.path
    if path == "/status" and method == "GET":
        return response(200, msgspec.json.encode(controller.status()), JSON)
    if path == "/config" and method == "GET":
        return response(200, msgspec.json.encode(controller.config_dict()), JSON)
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
    if path in ("/status", "/metrics", "/config", "/reload", "/loglevel", "/stop", "/upgrade"):
        return response(405, b"method not allowed\n")
    return response(404, b"not found\n")
