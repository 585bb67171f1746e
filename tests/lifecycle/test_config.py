"""Configuration: defaults < TOML file < RESIDENTD_* env < flags, and clear errors (exit 2)."""

from __future__ import annotations

import os
from pathlib import Path

from .helpers import residentd


def env(**values: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RESIDENTD_")}
    base.update(values)
    return base


def config_values(*args: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    result = residentd("config", "echo", *args, env=environ or env())
    assert result.returncode == 0, result.stderr
    values = {}
    for line in result.stdout.splitlines():
        if " = " in line:
            key, _, rest = line.partition(" = ")
            value, _, source = rest.rpartition("  # ")
            values[key] = f"{value} from {source}"
    return values


def test_precedence_defaults_file_env_flags(tmp_path: Path) -> None:
    config = tmp_path / "echo.toml"
    config.write_text('max_connections = 50\nidle_timeout = 7.5\nlog_level = "DEBUG"\n')
    values = config_values(
        "--config",
        str(config),
        "--max-connections",
        "70",
        environ=env(RESIDENTD_MAX_CONNECTIONS="60", RESIDENTD_IDLE_TIMEOUT="8"),
    )
    assert values["max_connections"] == "70 from --max-connections"
    assert values["idle_timeout"] == "8.0 from RESIDENTD_IDLE_TIMEOUT"
    assert values["log_level"] == f'"DEBUG" from {config}'
    assert values["backlog"] == "1024 from default"
    assert values["max_line"] == "65536 from default"
    assert values["listen"] == '["127.0.0.1:7007"] from default'


def test_unknown_key_names_it_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("max_conections = 5\n")
    result = residentd("run", "echo", "--config", str(config), env=env())
    assert result.returncode == 2
    assert "unknown key 'max_conections'" in result.stderr
    assert "max_connections" in result.stderr  # the allowed keys are listed


def test_bad_value_names_key_value_and_what_is_allowed(tmp_path: Path) -> None:
    result = residentd("run", "echo", "--max-connections", "many", env=env())
    assert result.returncode == 2
    assert "max_connections = 'many' (from --max-connections)" in result.stderr
    assert "expected a whole number" in result.stderr

    result = residentd("run", "echo", env=env(RESIDENTD_LOG_LEVEL="LOUD"))
    assert result.returncode == 2
    assert "log_level = 'LOUD' (from RESIDENTD_LOG_LEVEL)" in result.stderr
    assert "DEBUG, INFO, WARNING, ERROR" in result.stderr

    result = residentd("run", "echo", "--idle-timeout", "-1", env=env())
    assert result.returncode == 2
    assert "expected at least 0" in result.stderr


def test_inconsistent_limits_and_bad_addresses_exit_2(tmp_path: Path) -> None:
    result = residentd(
        "run", "echo", "--write-high-water", "10", "--write-low-water", "20", env=env()
    )
    assert result.returncode == 2
    assert "write_low_water" in result.stderr

    result = residentd("run", "echo", "--listen", "nowhere", env=env())
    assert result.returncode == 2
    assert "'nowhere' is not valid" in result.stderr


def test_broken_toml_and_unknown_app_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("max_connections = \n")
    result = residentd("run", "echo", "--config", str(config), env=env())
    assert result.returncode == 2
    assert "is not valid TOML" in result.stderr

    result = residentd("run", "no_such_app_here", env=env())
    assert result.returncode == 2
    assert "cannot load app 'no_such_app_here'" in result.stderr
    assert "echo" in result.stderr


def test_a_zero_that_means_nothing_is_refused() -> None:
    """max_input_buffer = 0 would close every connection whose input arrives in two pieces."""
    result = residentd("run", "echo", "--max-input-buffer", "0", env=env())
    assert result.returncode == 2
    assert "max_input_buffer = '0' (from --max-input-buffer)" in result.stderr
    assert "expected at least 1" in result.stderr


def test_help_says_what_zero_means_and_where_the_admin_socket_goes() -> None:
    result = residentd("run", "echo", "--help", env=env())
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "(0: abort them at once)" in text  # shutdown_timeout
    assert "unix:/PATH, HOST:PORT or off" in text
    assert "$RUNTIME_DIRECTORY, beside the pidfile, or a private folder" in text
    control = " ".join(residentd("--help").stdout.split())
    assert "SIGHUP" not in control  # reload goes through the admin endpoint


def test_nothing_to_listen_on_is_refused() -> None:
    """An empty RESIDENTD_LISTEN (a variable set to nothing by mistake) must not start a
    daemon that serves nobody."""
    result = residentd("run", "echo", env=env(RESIDENTD_LISTEN=""), timeout=10)
    assert result.returncode == 2
    assert "no address to listen on: listen (from RESIDENTD_LISTEN) empty" in result.stderr
