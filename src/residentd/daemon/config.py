"""Configuration: one table of settings, filled from defaults, a TOML file, the environment and
flags, in that order (flags win), and validated before anything starts.

Every setting is declared once, with its type, default, help text and whether a reload may
change it live. The same declaration makes the command-line flag (``max_connections`` is
``--max-connections``), the environment variable (``RESIDENTD_MAX_CONNECTIONS``) and the TOML key
(``max_connections = 100``). An app adds its own options the same way (``App.option``), and each
service after the first gets a ``<service>_listen`` setting of its own.

Paths (``pidfile``, ``log_file``, ``admin_token_file`` and ``unix:`` addresses) are made absolute
once, against the directory the daemon started in, which the config keeps: a reload resolves
them against the same directory, so a relative path means the same file for the whole life of
the daemon, even after ``--daemon`` moved it to ``/``.

Secrets (``admin_token``, app options whose names end in ``secret``, ``token`` or
``password``, and those an app declares secret, such as chat's ``api_keys``) are shown as
``<redacted>`` wherever the config is printed or logged (an empty list as itself);
``admin_token_file`` reads the token from a file, so it stays out of ``ps`` and the environment.

A bad key or value raises ``ConfigError`` with a message that names the key, the value, where it
came from and what is allowed; the CLI turns that into exit code 2.
"""

from __future__ import annotations

import argparse
import math
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from residentd.app import App
from residentd.daemon.admin import check_admin_address
from residentd.errors import ConfigError
from residentd.limits import Limits
from residentd.loop import LOOP_KINDS
from residentd.net.listener import parse_address

ENV_PREFIX = "RESIDENTD_"
#: What 0 means for the limits where it has a meaning (for the others it is just small).
ZERO_MEANS = {
    "max_connections": "no limit",
    "max_connections_per_ip": "no limit",
    "max_output_buffer": "no limit",
    "max_bad_messages": "no limit",
    "idle_timeout": "no timeout",
    "handshake_timeout": "no timeout",
}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "logfmt", "json")
REDACTED = "<redacted>"
#: App options named so are secrets too (chat's ``secret``, say).
SECRET_SUFFIXES = ("secret", "token", "password")


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    kind: type
    default: Any
    help: str
    reloadable: bool = False
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    app_option: bool = False
    #: "file" for a file path, "address" for listen addresses (made absolute when ``unix:``).
    path: str = ""
    #: Never printed or logged: shown as ``<redacted>``.
    secret: bool = False
    check: Callable[[Any], str | None] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def coerce(self, value: Any, source: str) -> Any:
        """Turn a value from ``source`` into this setting's type, or raise ConfigError."""
        try:
            result = _coerce(self.kind, value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{self.name} = {value!r} (from {source}) is not allowed: expected "
                f"{_describe(self.kind)}"
            ) from None
        if result == "" and self.kind is str and not self.app_option:
            raise ConfigError(
                f"{self.name} = '' (from {source}) is not allowed: expected a value; leave it "
                "unset for the default"
            )
        if self.choices is not None and result not in self.choices:
            allowed = ", ".join(str(choice) for choice in self.choices)
            raise ConfigError(
                f"{self.name} = {value!r} (from {source}) is not allowed: expected one of {allowed}"
            )
        if self.minimum is not None and result is not None and result < self.minimum:
            raise ConfigError(
                f"{self.name} = {value!r} (from {source}) is not allowed: "
                f"expected at least {self.minimum:g}"
            )
        problem = self.check(result) if self.check is not None and result is not None else None
        if problem is not None:
            raise ConfigError(f"{self.name} = {value!r} (from {source}) is not allowed: {problem}")
        return result


def _coerce(kind: type, value: Any) -> Any:
    if value is None:
        return None
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(value)
    if kind is int:
        if isinstance(value, bool | float):
            raise ValueError(value)
        return int(value)
    if kind is float:
        if isinstance(value, bool):
            raise ValueError(value)
        number = float(value)
        if not math.isfinite(number):  # nan passes every comparison, inf never comes
            raise ValueError(value)
        return number
    if kind is list:
        if isinstance(value, str):
            return [part for part in value.split(",") if part]
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return list(value)
        raise ValueError(value)
    if kind is str:
        if not isinstance(value, str):
            raise ValueError(value)
        return value
    raise TypeError(kind)


def _describe(kind: type) -> str:
    return {
        bool: "true or false",
        int: "a whole number",
        float: "a finite number",
        list: "a list of strings",
        str: "a string",
    }[kind]


def core_settings(limit_defaults: Mapping[str, Any] | None = None) -> list[Setting]:
    """The settings every app has; ``limit_defaults`` are an app's own limit defaults."""
    settings = [
        Setting(
            "loop",
            str,
            "auto",
            "event loop: auto (uvloop if installed), uvloop, asyncio",
            choices=LOOP_KINDS,
        ),
        Setting(
            "shutdown_timeout",
            float,
            10.0,
            "seconds a graceful stop waits for connections to close (0: abort them at once)",
            True,
            minimum=0,
        ),
        Setting(
            "upgrade_timeout",
            float,
            30.0,
            "seconds a live upgrade's new generation has to take over before it is killed",
            True,
            minimum=0.1,
        ),
        Setting("log_level", str, "INFO", "log level", True, LOG_LEVELS),
        Setting("log_format", str, "text", "log format", True, LOG_FORMATS),
        Setting("log_file", str, None, "log to this file instead of stderr", True, path="file"),
        Setting("pidfile", str, None, "write the pid here, locked while running", path="file"),
        Setting("daemon", bool, False, "detach and run in the background"),
        Setting("user", str, None, "drop privileges to this user after binding"),
        Setting("group", str, None, "drop privileges to this group after binding"),
        Setting(
            "admin",
            str,
            None,
            "admin endpoint: unix:/PATH, HOST:PORT or off (default: a socket in"
            " $RUNTIME_DIRECTORY, beside the pidfile, or a private folder)",
            path="address",
        ),
        Setting(
            "admin_token",
            str,
            None,
            "token the admin endpoint requires; needed to listen beyond loopback",
            True,
            secret=True,
        ),
        Setting(
            "admin_token_file",
            str,
            None,
            "read admin_token from this file (keeps it out of ps and the environment)",
            True,
            path="file",
        ),
    ]
    core, defaults = Limits(), Limits(**(limit_defaults or {}))
    for field in fields(Limits):
        kind = int if isinstance(getattr(core, field.name), int) else float
        settings.append(
            Setting(
                field.name,
                kind,
                getattr(defaults, field.name),
                field.metadata["help"]
                + (f" (0: {ZERO_MEANS[field.name]})" if field.name in ZERO_MEANS else ""),
                reloadable=field.name != "backlog",
                minimum=1 if field.name == "max_input_buffer" else 0,
            )
        )
    return settings


def app_settings(app: App) -> list[Setting]:
    """The listen addresses of the app's services and the app's own options."""
    settings = []
    for index, service in enumerate(app.services):
        name = "listen" if index == 0 else f"{service.name}_listen"
        settings.append(
            Setting(
                name,
                list,
                list(service.listen),
                f"{service.name} listen address(es): HOST:PORT, [V6]:PORT or unix:/PATH",
                path="address",
            )
        )
    for option in app.declared_options.values():
        kind = type(option.default) if option.default is not None else str
        settings.append(
            Setting(
                option.name,
                kind,
                option.default,
                option.help,
                option.reloadable,
                option.choices,
                option.minimum,
                app_option=True,
                secret=option.secret or option.name.endswith(SECRET_SUFFIXES),
                check=option.check,
            )
        )
    return settings


def _help_text(setting: Setting) -> str:
    """A flag's help: the setting's own text and its default (argparse's defaults are None, so
    a flag left out never overrides the file or the environment)."""
    default = setting.default
    if default is None:
        shown = ""
    elif isinstance(default, bool):
        shown = "on" if default else "off"
    elif isinstance(default, list):
        shown = ", ".join(default) or "none"
    elif isinstance(default, float):
        shown = f"{default:g}"
    else:
        shown = str(default)
    text = f"{setting.help} (default: {shown})" if shown else setting.help
    return text.replace("%", "%%")


class Schema:
    """All the settings of one app, by name."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.settings: dict[str, Setting] = {}
        for setting in core_settings(app.limit_defaults) + app_settings(app):
            if setting.name in self.settings:
                raise ValueError(f"app option {setting.name!r} clashes with a core setting")
            self.settings[setting.name] = setting

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("settings (also in --config and RESIDENTD_* env)")
        for setting in self.settings.values():
            text = _help_text(setting)
            if setting.kind is bool:
                group.add_argument(
                    setting.flag,
                    dest=setting.name,
                    default=None,
                    action=argparse.BooleanOptionalAction,
                    help=text,
                )
            elif setting.kind is list:
                group.add_argument(
                    setting.flag,
                    dest=setting.name,
                    default=None,
                    action="append",
                    metavar="ADDR",
                    help=text,
                )
            else:
                group.add_argument(
                    setting.flag,
                    dest=setting.name,
                    default=None,
                    metavar=setting.name.upper(),
                    help=text,
                )

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
        values = {name: setting.default for name, setting in self.settings.items()}
        sources = dict.fromkeys(values, "default")
        if config_file is not None:
            for key, value in load_toml(config_file).items():
                setting = self._setting(key, f"{config_file}")
                values[key] = setting.coerce(value, config_file)
                sources[key] = config_file
        environ = os.environ if environ is None else environ
        for name, setting in self.settings.items():
            if setting.env in environ:
                values[name] = setting.coerce(environ[setting.env], setting.env)
                sources[name] = setting.env
        for name, value in (flags or {}).items():
            if value is not None and name in self.settings:
                values[name] = self.settings[name].coerce(value, self.settings[name].flag)
                sources[name] = self.settings[name].flag
        base_dir = base_dir or os.getcwd()
        for name, setting in self.settings.items():
            values[name] = _absolute(setting.path, values[name], base_dir)
        config = Config(self, values, sources, config_file, base_dir)
        config.read_token_file()
        config.validate()
        return config

    def _setting(self, key: str, source: str) -> Setting:
        if key not in self.settings:
            allowed = ", ".join(sorted(self.settings))
            raise ConfigError(f"unknown key {key!r} in {source}; allowed keys: {allowed}")
        return self.settings[key]


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

    def limits(self) -> Limits:
        kwargs = {field.name: self.values[field.name] for field in fields(Limits)}
        try:
            return Limits(**kwargs)
        except ValueError as exc:
            raise ConfigError(f"limits are not consistent: {exc}") from None

    def app_options(self) -> dict[str, Any]:
        return {
            name: self.values[name]
            for name, setting in self.schema.settings.items()
            if setting.app_option
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
        for name, setting in self.schema.settings.items():
            if self.values[name] != new.values[name]:
                (live if setting.reloadable else restart)[name] = new.values[name]
        return live, restart

    def with_live(self, new: Config) -> Config:
        """The config in force after a reload to ``new``: its reloadable values, and this
        one's for the settings that need a restart."""
        values, sources = dict(new.values), dict(new.sources)
        for name, setting in self.schema.settings.items():
            if not setting.reloadable:
                values[name], sources[name] = self.values[name], self.sources[name]
        return Config(self.schema, values, sources, new.config_file, self.base_dir)

    def shown(self, name: str, value: Any) -> Any:
        """``value`` as it may be printed or logged: a set secret is ``<redacted>`` (a list of
        secrets too, unless it is empty)."""
        setting = self.schema.settings.get(name)
        if setting is not None and setting.secret and value is not None and value != []:
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
