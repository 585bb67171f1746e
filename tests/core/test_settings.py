"""The settings mechanism (residentd/settings.py): one dataclass field per setting gives the
flag, the environment variable, the TOML key, the checks, the help with its default, secrecy and
whether a reload applies it; file < environment < flag; a bad value is exit 2 naming the key."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from residentd import cli
from residentd.app import App, Session
from residentd.apps import echo
from residentd.apps.chat.daemon import build_app as build_chat
from residentd.apps.chat.settings import ChatSettings
from residentd.apps.echo import EchoSettings
from residentd.apps.kv import create_app as create_kv
from residentd.apps.kv.settings import KvFileSettings, KvSettings
from residentd.codecs.lines import LineCodec
from residentd.daemon.config import DaemonSettings, Schema
from residentd.errors import ConfigError
from residentd.limits import Limits
from residentd.settings import REDACTED, build, setting
from residentd.state.settings import StateSettings

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _odd(value: str) -> str | None:
    return None if len(value) % 2 else "expected an odd number of letters"


@dataclass(frozen=True, slots=True)
class DemoSettings:
    size: int = setting(3, "how many", reload=True, minimum=1)
    mode: str = setting("fast", "how", choices=("fast", "safe"))
    word: str = setting("abc", "a word", check=_odd, reload=True)
    ratio: float = setting(0.5, "a share", reload=True, minimum=0)
    on: bool = setting(False, "a switch")
    names: list[str] = setting(["a"], "some names")  # noqa: RUF009
    api_token: str | None = setting(None, "secret by its name")
    keys: list[str] = setting([], "secret by its declaration", secret=True)  # noqa: RUF009


def demo_app(**defaults: object) -> App:
    app = App("demo")
    app.service("main", Session, codec=LineCodec, listen=["127.0.0.1:0"])
    app.declare(DemoSettings, **defaults)
    return app


def test_a_field_makes_the_flag_the_variable_and_the_key() -> None:
    schema = Schema(demo_app())
    size = schema.settings["size"]
    assert (size.flag, size.env, size.key) == ("--size", "RESIDENTD_SIZE", "size")
    assert (size.kind, size.default, size.reloadable, size.minimum) == (int, 3, True, 1)
    assert schema.settings["api_token"].kind is str
    assert schema.settings["names"].kind is list
    assert not schema.settings["mode"].reloadable
    assert schema.settings["size"].app_option and not schema.settings["backlog"].app_option


def test_file_then_environment_then_flag(tmp_path: Path) -> None:
    schema = Schema(demo_app())
    path = tmp_path / "demo.toml"
    path.write_text('size = 5\nmode = "safe"\nlog_level = "DEBUG"\nnames = ["x", "y"]\n')
    from_file = schema.resolve(str(path), environ={})
    assert from_file["size"] == 5 and from_file["names"] == ["x", "y"]
    assert from_file.sources["size"] == str(path)

    environ = {"RESIDENTD_SIZE": "7", "RESIDENTD_LOG_LEVEL": "ERROR", "RESIDENTD_NAMES": "p,q"}
    from_env = schema.resolve(str(path), environ=environ)
    assert from_env["size"] == 7 and from_env["names"] == ["p", "q"]
    assert from_env.daemon.log_level == "ERROR"
    assert from_env["mode"] == "safe"  # the file's, where nothing later says otherwise
    assert from_env.sources["size"] == "RESIDENTD_SIZE"

    flags = {"size": "9", "log_level": "WARNING"}
    from_flag = schema.resolve(str(path), environ=environ, flags=flags)
    assert from_flag["size"] == 9 and from_flag.sources["size"] == "--size"
    assert from_flag.daemon.log_level == "WARNING"
    assert from_flag["names"] == ["p", "q"]
    assert build(DemoSettings, from_flag.app_options()) == DemoSettings(
        size=9, mode="safe", names=["p", "q"]
    )


def test_the_same_flags_through_argparse_and_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    schema = Schema(demo_app())
    parser = argparse.ArgumentParser()
    schema.add_flags(parser)
    args = vars(parser.parse_args(["--size", "4", "--on", "--names", "n1", "--names", "n2"]))
    config = schema.resolve(environ={}, flags=args)
    assert (config["size"], config["on"], config["names"]) == (4, True, ["n1", "n2"])
    assert config["mode"] == "fast"  # a flag left out never overrides

    assert cli.main(["config", "echo", "--max-line", "0"]) == 2
    assert "max_line = '0' (from --max-line) is not allowed: expected at least 1" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ({"size": "many"}, "size = 'many' (from --size) is not allowed: expected a whole number"),
        ({"size": "0"}, "size = '0' (from --size) is not allowed: expected at least 1"),
        ({"mode": "slow"}, "mode = 'slow' (from --mode) is not allowed: expected one of fast"),
        ({"word": "ab"}, "word = 'ab' (from --word) is not allowed: expected an odd number"),
        ({"ratio": "nan"}, "ratio = 'nan' (from --ratio) is not allowed: expected a finite number"),
        ({"on": "maybe"}, "on = 'maybe' (from --on) is not allowed: expected true or false"),
        ({"log_level": "LOUD"}, "log_level = 'LOUD' (from --log-level) is not allowed"),
        ({"pidfile": ""}, "pidfile = '' (from --pidfile) is not allowed: expected a value"),
    ],
)
def test_a_bad_value_names_the_key_the_source_and_why(given: dict[str, str], why: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Schema(demo_app()).resolve(environ={}, flags=given)
    assert why in str(refused.value)


def test_bad_keys_in_the_file_are_refused(tmp_path: Path) -> None:
    schema = Schema(demo_app())
    path = tmp_path / "demo.toml"
    path.write_text("sise = 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'sise' in .*allowed keys: .*size"):
        schema.resolve(str(path), environ={})
    path.write_text('size = "3"\n')  # TOML has types: a string is not a number here either
    assert schema.resolve(str(path), environ={})["size"] == 3
    path.write_text("size = 2.5\n")
    with pytest.raises(ConfigError, match="expected a whole number"):
        schema.resolve(str(path), environ={})


def test_secrets_are_redacted_where_the_config_is_shown() -> None:
    config = Schema(demo_app()).resolve(
        environ={}, flags={"api_token": "hush", "keys": ["k1"], "admin_token": "t"}
    )
    shown = config.as_dict()
    assert shown["api_token"] == shown["keys"] == shown["admin_token"] == REDACTED
    assert "hush" not in config.to_toml() and "k1" not in config.to_toml()
    assert config["api_token"] == "hush"
    empty = Schema(demo_app()).resolve(environ={})
    assert empty.as_dict()["keys"] == []


def test_changes_split_into_reloadable_and_needing_a_restart() -> None:
    schema = Schema(demo_app())
    old = schema.resolve(environ={})
    new = schema.resolve(environ={}, flags={"size": "4", "mode": "safe", "backlog": "9"})
    live, restart = old.changes(new)
    assert live == {"size": 4}
    assert restart == {"mode": "safe", "backlog": 9}
    in_force = old.with_live(new)
    assert (in_force["size"], in_force["mode"], in_force.limits().backlog) == (4, "fast", 1024)


def test_help_shows_every_setting_with_its_default() -> None:
    app = demo_app(size=6)
    parser = argparse.ArgumentParser()
    schema = Schema(app)
    schema.add_flags(parser)
    text = " ".join(parser.format_help().split())
    for item in schema.settings.values():
        assert item.flag in text
        if item.default is None and "not set:" in item.help:
            continue
        assert item.help_text().replace("%%", "%") in text, item.name
    assert "how many (default: 6)" in text  # the app's default, not the class's
    assert "(default: not set)" in text
    assert "Open connections at once" in text and "(0: no limit) (default: 10000)" in text


def test_residentd_run_help_lists_the_core_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for cls in (DaemonSettings, Limits):
        for item in fields(cls):
            assert "--" + item.name.replace("_", "-") in text
    assert "--shutdown-timeout SHUTDOWN_TIMEOUT seconds a graceful stop" in text
    assert "(default: 10)" in text


def test_an_app_renames_fields_changes_defaults_and_skips_what_it_declares_itself() -> None:
    app = App("renamed")
    app.service("main", Session, codec=LineCodec, listen=["127.0.0.1:0"])
    app.declare(KvFileSettings)  # has its own appendonly (a yes/no word)
    app.declare(StateSettings, names={"dir": "state_dir"}, skip=("appendonly",), save="60 1")
    schema = Schema(app)
    assert schema.settings["state_dir"].env == "RESIDENTD_STATE_DIR"
    assert "dir" not in schema.settings
    assert schema.settings["appendonly"].choices == ("yes", "no")
    assert schema.settings["save"].default == "60 1"
    config = schema.resolve(environ={"RESIDENTD_STATE_DIR": "/srv/x"}, flags={"appendonly": "yes"})
    app.options.update(config.app_options())
    state = app.current(StateSettings)
    assert (state.dir, state.appendonly, state.save_points) == ("/srv/x", True, [(60, 1)])
    assert app.current(StateSettings) is state  # built once while nothing changed
    app.options["appendonly"] = "no"  # as kv's CONFIG SET does
    assert app.current(StateSettings).appendonly is False
    app.options.update(save="")
    assert app.current(StateSettings).save_points == []
    with pytest.raises(ConfigError, match=r"save = '1' .* expected pairs"):
        schema.resolve(environ={}, flags={"save": "1"})


def test_declarations_that_cannot_work_are_refused_at_once() -> None:
    app = demo_app()
    with pytest.raises(ValueError, match="names not in EchoSettings: sise"):
        app.declare(EchoSettings, names={"sise": "x"})
    with pytest.raises(ValueError, match="already declares DemoSettings"):
        app.declare(DemoSettings)

    @dataclass(frozen=True, slots=True)
    class Again:
        size: int = setting(1, "again")

    with pytest.raises(ValueError, match="already has settings named size"):
        app.declare(Again)

    @dataclass(frozen=True, slots=True)
    class Plain:
        size: int = 1

    with pytest.raises(ValueError, match=r"not declared with residentd\.settings\.setting"):
        App("plain").declare(Plain)
    with pytest.raises(LookupError, match="does not declare KvSettings"):
        app.current(KvSettings)

    @dataclass(frozen=True, slots=True)
    class Clash:
        backlog: int = setting(1, "a core name")

    clashing = App("clash")
    clashing.declare(Clash)
    with pytest.raises(ValueError, match="'backlog' clashes with a core setting"):
        Schema(clashing)


def test_a_new_field_is_a_new_setting_everywhere(tmp_path: Path) -> None:
    """What a new setting takes (as ``workers`` did for the core): one field."""

    @dataclass(frozen=True, slots=True)
    class Grown(DemoSettings):
        shards: int = setting(1, "shards of the keyspace", minimum=1)

    app = App("grown")
    app.service("main", Session, codec=LineCodec, listen=["127.0.0.1:0"])
    app.declare(Grown)
    schema = Schema(app)
    path = tmp_path / "grown.toml"
    path.write_text("shards = 2\n")
    assert schema.resolve(str(path), environ={})["shards"] == 2
    assert schema.resolve(str(path), environ={"RESIDENTD_SHARDS": "3"})["shards"] == 3
    config = schema.resolve(str(path), environ={}, flags={"shards": "4"})
    app.options.update(config.app_options())
    assert app.current(Grown).shards == 4
    with pytest.raises(ConfigError, match=r"shards = '0' .* expected at least 1"):
        schema.resolve(environ={}, flags={"shards": "0"})
    parser = argparse.ArgumentParser()
    schema.add_flags(parser)
    assert "shards of the keyspace (default: 1)" in parser.format_help()


@pytest.mark.parametrize(
    "cls", [DaemonSettings, Limits, StateSettings, ChatSettings, KvSettings, KvFileSettings]
)
def test_every_owner_declares_every_field_as_a_setting(cls: type) -> None:
    instance = build(cls, {})
    for item in fields(cls):
        assert item.metadata["setting"].help, item.name
        assert getattr(instance, item.name) == getattr(cls(), item.name)


def test_the_built_in_apps_schemas_cover_their_classes() -> None:
    for app, owners in (
        (build_chat(), [ChatSettings, StateSettings]),
        (create_kv(), [KvSettings, KvFileSettings, StateSettings]),
    ):
        schema = Schema(app)
        owned = {item.owner for item in schema.settings.values()}
        assert set(owners) | {DaemonSettings, Limits} <= owned
    kv = Schema(create_kv()).settings
    assert kv["idle_timeout"].default == 0 and kv["handshake_timeout"].default == 0
    assert kv["appendonly"].owner is KvFileSettings  # Redis's word, not the state's flag


def test_the_operations_table_lists_every_core_setting_as_reloadable_or_not() -> None:
    text = (DOCS / "operations.md").read_text()
    rows = {}
    for line in text.splitlines():
        match = re.match(r"\| (`[^|]+) \| [^|]+ \| (live|restart) \|", line)
        if match:
            for name in re.findall(r"`(\w+)`", match.group(1)):
                rows[name] = match.group(2)
    for cls in (DaemonSettings, Limits):
        for item in fields(cls):
            expected = "live" if item.metadata["setting"].reload else "restart"
            assert rows.get(item.name) == expected, item.name


def test_the_toml_examples_in_the_docs_are_valid(tmp_path: Path) -> None:
    """Each TOML block of docs/operations.md, and docs/deploy/chat.toml, is a config file that
    the app it is written for accepts."""
    text = (DOCS / "operations.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, re.DOTALL)
    files = [(DOCS / "deploy" / "chat.toml").read_text(), *blocks]
    assert len(files) >= 3
    apps = {"echo": Schema(echo.app), "chat": Schema(build_chat())}
    for index, content in enumerate(files):
        path = tmp_path / f"{index}.toml"
        path.write_text(content)
        app = "echo" if "max_line" in content else "chat"
        apps[app].resolve(str(path), environ={})
