"""Configuration: the settings of the core, the limits and the app, filled from defaults, a TOML
file, the environment and flags, in that order (flags win), and validated before anything starts.

Each owner declares its settings once, as a frozen dataclass whose fields say everything (see
residentd.settings): the core's are :class:`DaemonSettings` here, the limits are
``residentd.limits.Limits``, an app's are the classes it declares (``App.declare``), and each
service gets a ``listen`` setting (``<service>_listen`` after the first). The same declaration
makes the command-line flag (``max_connections`` is ``--max-connections``), the environment
variable (``RESIDENTD_MAX_CONNECTIONS``) and the TOML key (``max_connections = 100``).

Paths (``pidfile``, ``log_file``, ``admin_token_file`` and ``unix:`` addresses) are made absolute
once, against the directory the daemon started in, which the config keeps: a reload resolves
them against the same directory, so a relative path means the same file for the whole life of
the daemon, even after ``--daemon`` moved it to ``/``.

Secrets (``admin_token``, app settings whose names end in ``secret``, ``token`` or
``password``, and those declared secret, such as chat's ``api_keys``) are shown as
``<redacted>`` wherever the config is printed or logged (an empty list as itself);
``admin_token_file`` reads the token from a file, so it stays out of ``ps`` and the environment.

A bad key or value raises ``ConfigError`` with a message that names the key, the value, where it
came from and what is allowed; the CLI turns that into exit code 2.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from residentd.app import App
from residentd.daemon.admin import check_admin_address
from residentd.daemon.logs import FORMATS, LEVELS
from residentd.errors import ConfigError
from residentd.limits import Limits
from residentd.loop import LOOP_KINDS
from residentd.net.listener import parse_address
from residentd.settings import REDACTED, Setting, add_flags, build, setting, settings_of


def _check_workers(value: str) -> str | None:
    """Why ``value`` is not a number of workers (a whole number at least 1, or ``auto``)."""
    if value == "auto" or (value.isascii() and value.isdigit() and int(value) >= 1):
        return None
    return "expected a whole number at least 1, or auto (one per core)"


def worker_count(value: str) -> int:
    """The number of workers a ``workers`` value asks for (``auto``: one per core)."""
    return (os.cpu_count() or 1) if value == "auto" else int(value)


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    """The core's settings, which every app has (beside ``Limits`` and the listen addresses)."""

    loop: str = setting(
        "auto", "event loop: auto (uvloop if installed), uvloop, asyncio", choices=LOOP_KINDS
    )
    shutdown_timeout: float = setting(
        10.0,
        "seconds a graceful stop waits for connections to close (0: abort them at once)",
        reload=True,
        minimum=0,
    )
    upgrade_timeout: float = setting(
        30.0,
        "seconds a live upgrade's new generation has to take over before it is killed",
        reload=True,
        minimum=0.1,
    )
    workers: str = setting(
        "1",
        "worker processes (1: no master, the daemon serves itself; auto: one per core); with"
        " more, a master binds the listeners and supervises them",
        check=_check_workers,
    )
    worker_heartbeat_timeout: float = setting(
        10.0,
        "seconds a worker may leave the master's heartbeat unanswered before it is killed"
        " and replaced",
        reload=True,
        minimum=0.5,
    )
    log_level: str = setting("INFO", "log level", reload=True, choices=LEVELS)
    log_format: str = setting("text", "log format", reload=True, choices=FORMATS)
    log_file: str | None = setting(
        None, "log to this file instead of stderr", reload=True, path="file"
    )
    pidfile: str | None = setting(None, "write the pid here, locked while running", path="file")
    daemon: bool = setting(False, "detach and run in the background")
    user: str | None = setting(None, "drop privileges to this user after binding")
    group: str | None = setting(None, "drop privileges to this group after binding")
    admin: str | None = setting(
        None,
        "admin endpoint: unix:/PATH, HOST:PORT or off (not set: a socket in"
        " $RUNTIME_DIRECTORY, beside the pidfile, or a private folder)",
        path="address",
    )
    admin_token: str | None = setting(
        None,
        "token the admin endpoint requires; needed to listen beyond loopback",
        reload=True,
        secret=True,
    )
    admin_token_file: str | None = setting(
        None,
        "read admin_token from this file (keeps it out of ps and the environment)",
        reload=True,
        path="file",
    )


def core_settings(app: App) -> list[Setting]:
    """The settings every app has: the core's, the limits (with the app's defaults) and the
    listen addresses of the app's services."""
    settings = settings_of(DaemonSettings) + settings_of(Limits, defaults=app.limit_defaults)
    for index, service in enumerate(app.services):
        settings.append(
            Setting(
                "listen" if index == 0 else f"{service.name}_listen",
                list,
                list(service.listen),
                f"{service.name} listen address(es): HOST:PORT, [V6]:PORT or unix:/PATH",
                path="address",
            )
        )
    return settings


class Schema:
    """All the settings of one app, by name."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.settings: dict[str, Setting] = {}
        for item in core_settings(app) + app.declared_settings():
            if item.name in self.settings:
                raise ValueError(f"app setting {item.name!r} clashes with a core setting")
            self.settings[item.name] = item

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("settings (also in --config and RESIDENTD_* env)")
        add_flags(group, self.settings.values())

    def resolve(
        self,
        config_file: str | None = None,
        environ: Mapping[str, str] | None = None,
        flags: Mapping[str, Any] | None = None,
        base_dir: str | None = None,
    ) -> Config:
        """Merge defaults < file < environment < flags and validate the result.

        Relative paths are made absolute against ``base_dir`` (default: the current directory);
        a reload passes the running config's ``base_dir``.
        """
        values = {name: item.default for name, item in self.settings.items()}
        sources = dict.fromkeys(values, "default")
        if config_file is not None:
            for key, value in load_toml(config_file).items():
                item = self._by_key(key, config_file)
                values[item.name] = item.coerce(value, config_file)
                sources[item.name] = config_file
        environ = os.environ if environ is None else environ
        for name, item in self.settings.items():
            if item.env in environ:
                values[name] = item.coerce(environ[item.env], item.env)
                sources[name] = item.env
        for name, value in (flags or {}).items():
            if value is not None and name in self.settings:
                values[name] = self.settings[name].coerce(value, self.settings[name].flag)
                sources[name] = self.settings[name].flag
        base_dir = base_dir or os.getcwd()
        for name, item in self.settings.items():
            values[name] = _absolute(item.path, values[name], base_dir)
        config = Config(self, values, sources, config_file, base_dir)
        config.read_token_file()
        config.validate()
        return config

    def _by_key(self, key: str, source: str) -> Setting:
        for item in self.settings.values():
            if item.key == key:
                return item
        allowed = ", ".join(sorted(item.key for item in self.settings.values()))
        raise ConfigError(f"unknown key {key!r} in {source}; allowed keys: {allowed}")


def _absolute(kind: str, value: Any, base_dir: str) -> Any:
    """``value`` with a relative path made absolute against ``base_dir`` (see Setting.path)."""
    if kind == "file" and isinstance(value, str) and value:
        return os.path.normpath(os.path.join(base_dir, value))
    if kind == "address" and isinstance(value, str) and value.startswith("unix:") and value[5:]:
        return "unix:" + os.path.normpath(os.path.join(base_dir, value[5:]))
    if kind == "address" and isinstance(value, list):
        return [_absolute(kind, item, base_dir) for item in value]
    return value


def load_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            raise ConfigError(
                f"{path}: [{key}] tables are not used; write settings as top-level keys"
            )
        flat[key] = value
    return flat


class Config:
    """Validated values of every setting, with where each came from."""

    def __init__(
        self,
        schema: Schema,
        values: dict[str, Any],
        sources: dict[str, str],
        config_file: str | None,
        base_dir: str | None = None,
    ) -> None:
        self.schema = schema
        self.values = values
        self.sources = sources
        self.config_file = config_file
        #: The directory relative paths were resolved against (where the daemon started).
        self.base_dir = base_dir or os.getcwd()

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def read_token_file(self) -> None:
        """Set ``admin_token`` from ``admin_token_file`` (its first line), if that is set."""
        path = self.values.get("admin_token_file")
        if not path:
            return
        if self.values["admin_token"] is not None:
            raise ConfigError(
                f"admin_token (from {self.sources['admin_token']}) and admin_token_file "
                f"(from {self.sources['admin_token_file']}) are both set: keep one"
            )
        try:
            with open(path, encoding="utf-8") as file:
                token = file.readline().strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError(f"admin_token_file {path} cannot be read: {reason}") from None
        if not token:
            raise ConfigError(f"admin_token_file {path} is empty")
        self.values["admin_token"] = token
        self.sources["admin_token"] = f"admin_token_file {path}"

    def validate(self) -> None:
        """Checks across settings: consistent limits, parseable addresses."""
        self.limits()
        listen = self.listen()
        if not any(listen.values()):
            keys = ["listen"] + [f"{name}_listen" for name in list(listen)[1:]]
            where = ", ".join(f"{key} (from {self.sources[key]})" for key in keys)
            raise ConfigError(f"no address to listen on: {where} empty; give at least one")
        for addresses in listen.values():
            for address in addresses:
                parse_address(address)
        if self.values["admin"] not in (None, "off"):
            check_admin_address(self.values["admin"], self.values["admin_token"])
        workers = worker_count(self.values["workers"])
        app = self.schema.app
        refusal = app.workers_refused(workers, self.app_options()) if workers > 1 else None
        if refusal:
            raise ConfigError(
                f"workers = {self.values['workers']!r} (from {self.sources['workers']}) is not "
                f"allowed for {app.name}: {refusal}"
            )

    @property
    def daemon(self) -> DaemonSettings:
        """The core's settings in force."""
        return build(DaemonSettings, self.values)

    def limits(self) -> Limits:
        try:
            return build(Limits, self.values)
        except ValueError as exc:
            raise ConfigError(f"limits are not consistent: {exc}") from None

    def app_options(self) -> dict[str, Any]:
        return {
            name: self.values[name]
            for name, item in self.schema.settings.items()
            if item.app_option
        }

    def listen(self) -> dict[str, list[str]]:
        result = {}
        for index, service in enumerate(self.schema.app.services):
            result[service.name] = self.values["listen" if index == 0 else f"{service.name}_listen"]
        return result

    def changes(self, new: Config) -> tuple[dict[str, Any], dict[str, Any]]:
        """What differs in ``new``: (reloadable changes, changes that need a restart)."""
        live: dict[str, Any] = {}
        restart: dict[str, Any] = {}
        for name, item in self.schema.settings.items():
            if self.values[name] != new.values[name]:
                (live if item.reloadable else restart)[name] = new.values[name]
        return live, restart

    def with_live(self, new: Config) -> Config:
        """The config in force after a reload to ``new``: its reloadable values, and this
        one's for the settings that need a restart."""
        values, sources = dict(new.values), dict(new.sources)
        for name, item in self.schema.settings.items():
            if not item.reloadable:
                values[name], sources[name] = self.values[name], self.sources[name]
        return Config(self.schema, values, sources, new.config_file, self.base_dir)

    def shown(self, name: str, value: Any) -> Any:
        """``value`` as it may be printed or logged: a set secret is ``<redacted>`` (a list of
        secrets too, unless it is empty)."""
        item = self.schema.settings.get(name)
        if item is not None and item.secret and value is not None and value != []:
            return REDACTED
        return value

    def as_dict(self) -> dict[str, Any]:
        """The values, secrets redacted."""
        return {name: self.shown(name, value) for name, value in self.values.items()}

    def redacted(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Some values (such as a reload's changes) with secrets redacted."""
        return {name: self.shown(name, value) for name, value in values.items()}

    def to_toml(self) -> str:
        """The effective configuration as TOML, with each value's source as a comment."""
        lines = []
        for name, value in self.values.items():
            source = self.sources[name]
            if value is None:
                lines.append(f"# {name} is not set")
                continue
            lines.append(f"{name} = {_toml_value(self.shown(name, value))}  # {source}")
        return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return repr(value)
