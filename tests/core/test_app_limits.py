"""An app's own limit defaults: between the core's defaults and the config, file and flags."""

from __future__ import annotations

import asyncio

import pytest

from residentd import Limits, LineCodec, Server
from residentd.app import App, Session
from residentd.daemon.config import Schema


def app_with_limits(**limits: float) -> App:
    app = App("quiet", "never times out")
    app.service("main", Session, codec=LineCodec, listen=["127.0.0.1:0"])
    app.declare(Limits, **limits)
    return app


def test_app_default_replaces_the_core_default_and_config_still_wins() -> None:
    app = app_with_limits(idle_timeout=0, max_input_buffer=64 * 1024 * 1024)
    config = Schema(app).resolve(environ={})
    assert config["idle_timeout"] == 0
    assert config["max_input_buffer"] == 64 * 1024 * 1024
    assert config["handshake_timeout"] == Limits().handshake_timeout
    assert config.limits().idle_timeout == 0

    overridden = Schema(app).resolve(
        environ={"RESIDENTD_MAX_INPUT_BUFFER": "1024"}, flags={"idle_timeout": "2.5"}
    )
    assert overridden["idle_timeout"] == 2.5  # still a float setting, though the default is 0
    assert overridden["max_input_buffer"] == 1024


def test_unknown_or_inconsistent_app_limits_are_refused_at_once() -> None:
    app = App("x")
    with pytest.raises(ValueError, match="defaults not in Limits: idle"):
        app.declare(Limits, idle=0)
    with pytest.raises(ValueError, match="write_low_water"):
        app.declare(Limits, write_low_water=10**9)
    app.declare(Limits, write_high_water=1024, write_low_water=512)
    with pytest.raises(ValueError, match="write_low_water"):  # with the app's earlier ones
        app.declare(Limits, write_low_water=2048)
    assert app.limit_defaults == {"write_high_water": 1024, "write_low_water": 512}
    app = App("y")
    assert app.limit_defaults == {}


def test_a_server_without_explicit_limits_uses_the_app_defaults() -> None:
    async def main() -> Limits:
        server = Server(app_with_limits(handshake_timeout=0), loop=asyncio.get_running_loop())
        return server.limits

    assert asyncio.run(main()).handshake_timeout == 0
