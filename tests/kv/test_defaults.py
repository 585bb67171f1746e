"""kv's own defaults: Redis's timeouts and caps where the core's would surprise a Redis user,
and replies written at the end of the loop iteration."""

from __future__ import annotations

from residentd.apps.kv import create_app
from residentd.apps.kv.session import KvSession
from residentd.daemon.config import Schema


def test_no_idle_or_first_command_timeout_and_no_per_address_cap_by_default() -> None:
    config = Schema(create_app()).resolve(environ={})
    assert config["idle_timeout"] == 0
    assert config["handshake_timeout"] == 0
    assert config["max_connections_per_ip"] == 0
    assert config["max_connections"] == 10_000  # Redis's maxclients


def test_flags_still_turn_them_on() -> None:
    config = Schema(create_app()).resolve(environ={}, flags={"idle_timeout": "60"})
    assert config.limits().idle_timeout == 60


def test_replies_are_deferred_to_the_end_of_the_iteration() -> None:
    assert KvSession.defer_writes
