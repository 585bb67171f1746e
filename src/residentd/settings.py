"""Settings: one frozen dataclass per owner, each field declared with :func:`setting`.

The core's settings (``residentd.daemon.config.DaemonSettings``), the limits
(``residentd.limits.Limits``), the durable state's (``residentd.state.settings.StateSettings``)
and each app's own (chat's ``ChatSettings``, kv's ``KvSettings``) are dataclasses whose fields
say, once, everything about a setting:

    @dataclass(frozen=True, slots=True)
    class EchoSettings:
        max_line: int = setting(65_536, "longest line accepted, in bytes", minimum=1)

The field's name makes the command-line flag (``--max-line``), the environment variable
(``RESIDENTD_MAX_LINE``) and the TOML key (``max_line = 4096``, at the top level of the file);
its type and metadata give the validation (type, ``choices``, ``minimum``, a custom ``check``),
whether it is a ``secret`` (shown as ``<redacted>``), whether a reload applies it
(``reload=True``) and the help text, which ``--help`` shows with the default. An app declares
its classes with ``App.declare`` (which may rename fields and change defaults) and reads its
values typed with ``App.current``; the daemon's Schema (daemon/config.py) turns every field of
every owner into a :class:`Setting` and merges the file, the environment and the flags, flags
winning. So adding a setting is adding a field.
"""

from __future__ import annotations

import argparse
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from typing import Any, TypeVar

from residentd.errors import ConfigError

ENV_PREFIX = "RESIDENTD_"
REDACTED = "<redacted>"
#: Settings named so are secrets whatever their declaration says (chat's ``secret``, say).
SECRET_SUFFIXES = ("secret", "token", "password")
#: The value types a setting may have (``X | None`` too: None is "not set").
KINDS = (bool, int, float, str, list)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Spec:
    """What a field's metadata says about its setting (made by :func:`setting`)."""

    help: str
    reload: bool = False
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    #: Returns why a value is not allowed, or None when it is (after the type checks).
    check: Callable[[Any], str | None] | None = None
    secret: bool = False
    #: "file" for a file path, "address" for listen addresses: made absolute when relative.
    path: str = ""
    #: What 0 means, when it means something ("no limit"); said in the help.
    zero: str = ""


def setting(
    default: Any,
    help: str,
    *,
    reload: bool = False,
    choices: tuple[Any, ...] | None = None,
    minimum: float | None = None,
    check: Callable[[Any], str | None] | None = None,
    secret: bool = False,
    path: str = "",
    zero: str = "",
) -> Any:
    """A dataclass field that is a setting: its default, help text and checks (see ``Spec``)."""
    spec = Spec(help, reload, choices, minimum, check, secret, path, zero)
    metadata = {"setting": spec}
    if isinstance(default, list):
        items = list(default)
        return field(default_factory=lambda: list(items), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting as the config sees it: a field of an owner, under its (maybe app-given)
    name, with its default (maybe the app's)."""

    name: str
    kind: type
    default: Any
    help: str
    reloadable: bool = False
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    #: An app's own setting (in ``app.options``), not one of the core's; an empty string is
    #: a value for these (a core setting refuses it: leave it unset instead).
    app_option: bool = False
    path: str = ""
    secret: bool = False
    check: Callable[[Any], str | None] | None = None
    #: The dataclass it belongs to (None for the listen addresses the services make).
    owner: type | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def key(self) -> str:
        """Its key in the TOML file."""
        return self.name

    def coerce(self, value: Any, source: str) -> Any:
        """Turn a value from ``source`` into this setting's type, or raise ConfigError that
        names the setting, the value, where it came from and what is allowed."""
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

    def help_text(self) -> str:
        """The help ``--help`` shows: the text and the default (``%`` escaped for argparse).
        A help text that says what ``not set:`` means stands for a default of None."""
        default = self.default
        if default is None and "not set:" in self.help:
            return self.help.replace("%", "%%")  # it says what that means
        if default is None:
            shown = "not set"
        elif isinstance(default, bool):
            shown = "on" if default else "off"
        elif isinstance(default, list):
            shown = ", ".join(default) or "none"
        elif isinstance(default, float):
            shown = f"{default:g}"
        elif default == "":
            shown = '""'
        else:
            shown = str(default)
        return f"{self.help} (default: {shown})".replace("%", "%%")


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


def _kind(annotation: Any) -> type:
    """The value type of a field annotated ``annotation`` (``int | None`` is ``int``)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kinds = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(kinds) == 1:
            return _kind(kinds[0])
    origin = typing.get_origin(annotation) or annotation
    if origin in KINDS:
        return typing.cast(type, origin)
    raise ValueError(f"a setting cannot be of type {annotation!r}")


_KINDS: dict[type, dict[str, type]] = {}


def _kinds(cls: type) -> dict[str, type]:
    """The value type of each field of ``cls``, by field name (worked out once per class)."""
    kinds = _KINDS.get(cls)
    if kinds is None:
        hints = typing.get_type_hints(cls)
        kinds = _KINDS[cls] = {item.name: _kind(hints[item.name]) for item in fields(cls)}
    return kinds


def _spec(item: Field[Any]) -> Spec:
    spec = item.metadata.get("setting")
    if not isinstance(spec, Spec):
        raise ValueError(f"field {item.name!r} is not declared with residentd.settings.setting")
    return spec


def _default(item: Field[Any]) -> Any:
    if item.default_factory is not MISSING:
        return item.default_factory()
    return item.default


def check_owner(
    cls: type, names: Mapping[str, str] | None = None, defaults: Mapping[str, Any] | None = None
) -> None:
    """Raise ValueError unless ``cls`` is a settings dataclass and ``names`` and ``defaults``
    name its fields; its defaults, changed so, must make a valid instance."""
    if not (isinstance(cls, type) and is_dataclass(cls)):
        raise ValueError(f"{cls!r} is not a settings dataclass")
    known = {item.name for item in fields(cls)}
    for what, given in (("names", names or {}), ("defaults", defaults or {})):
        unknown = sorted(set(given) - known)
        if unknown:
            raise ValueError(f"{what} not in {cls.__name__}: {', '.join(unknown)}")
    cls(**dict(defaults or {}))  # consistent, or ValueError now


def settings_of(
    cls: type,
    *,
    names: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    skip: tuple[str, ...] = (),
    app_option: bool = False,
) -> list[Setting]:
    """The settings of the dataclass ``cls``: each field, renamed by ``names``, its default
    replaced by ``defaults``; the fields in ``skip`` are left out (another class gives them)."""
    names, defaults = names or {}, defaults or {}
    result = []
    for item in fields(cls):
        if item.name in skip:
            continue
        spec = _spec(item)
        name = names.get(item.name, item.name)
        default = defaults[item.name] if item.name in defaults else _default(item)
        text = f"{spec.help} (0: {spec.zero})" if spec.zero else spec.help
        result.append(
            Setting(
                name=name,
                kind=_kinds(cls)[item.name],
                default=default,
                help=text,
                reloadable=spec.reload,
                choices=spec.choices,
                minimum=spec.minimum,
                app_option=app_option,
                path=spec.path,
                secret=spec.secret or name.endswith(SECRET_SUFFIXES),
                check=spec.check,
                owner=cls,
            )
        )
    return result


def build(cls: type[T], values: Mapping[str, Any], names: Mapping[str, str] | None = None) -> T:
    """An instance of ``cls`` from ``values`` (by setting name, as ``names`` renames them),
    each value coerced to its field's type (kv's ``appendonly = "yes"`` is ``True``)."""
    names = names or {}
    kwargs = {}
    for field_name, kind in _kinds(cls).items():
        name = names.get(field_name, field_name)
        if name in values:
            kwargs[field_name] = _coerce(kind, values[name])
    return cls(**kwargs)


def add_flags(parser: argparse._ActionsContainer, settings: Iterable[Setting]) -> None:
    """A flag for each setting, its help showing the default. The flags' own defaults are None,
    so a flag left out never overrides the file or the environment."""
    for item in settings:
        text = item.help_text()
        if item.kind is bool:
            parser.add_argument(
                item.flag,
                dest=item.name,
                default=None,
                action=argparse.BooleanOptionalAction,
                help=text,
            )
        elif item.kind is list:
            parser.add_argument(
                item.flag, dest=item.name, default=None, action="append", metavar="ADDR", help=text
            )
        else:
            parser.add_argument(
                item.flag, dest=item.name, default=None, metavar=item.name.upper(), help=text
            )


class Values(dict[str, Any]):
    """An app's setting values in force, by name, which count their changes (``version``), so
    that the typed instances built from them are built again only after a change."""

    version = 0

    def __setitem__(self, name: str, value: Any) -> None:
        self.version += 1
        super().__setitem__(name, value)

    def __delitem__(self, name: str) -> None:
        self.version += 1
        super().__delitem__(name)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.version += 1
        super().update(*args, **kwargs)

    def pop(self, *args: Any) -> Any:
        self.version += 1
        return super().pop(*args)

    def setdefault(self, name: str, default: Any = None) -> Any:
        self.version += 1
        return super().setdefault(name, default)

    def clear(self) -> None:
        self.version += 1
        super().clear()
