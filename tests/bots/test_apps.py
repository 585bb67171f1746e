"""The built-in scenarios end to end against the real daemons, as subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from residentd.apps import BUILTIN
from support import free_port

from .helpers import Daemon, bots

pytestmark = pytest.mark.same_either_way

needs_chat = pytest.mark.skipif("chat" not in BUILTIN, reason="the chat app is not built yet")
needs_kv = pytest.mark.skipif("kv" not in BUILTIN, reason="the kv app is not built yet")


def start_chat(tmp: Path) -> tuple[Daemon, int, int]:
    """``residentd run chat`` on free TCP and HTTP ports."""
    tcp, http = free_port(), free_port()
    daemon = Daemon(
        tmp, "chat", "--listen", f"127.0.0.1:{tcp}", "--http-listen", f"127.0.0.1:{http}"
    )
    return daemon, tcp, http


@needs_chat
@pytest.mark.parametrize("transport", ["json", "websocket"])
def test_chat_scenario_end_to_end(tmp_path: Path, transport: str) -> None:
    daemon, tcp, http = start_chat(tmp_path)
    port = tcp if transport == "json" else http
    try:
        daemon.wait_port(port)
        done = bots("--scenario", "chat", "--transport", transport, "--target", str(port),
                    "--users", "60", "--spawn-rate", "200", "--think", "uniform:0.05:0.2",
                    "--duration", "4", "--processes", "2", "--server-admin", daemon.admin,
                    "--seed", "7", "--json", str(tmp_path / "chat.json"))  # fmt: skip
    finally:
        daemon.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "chat.json").read_text())
    steps = {step["name"]: step for step in results["steps"]}
    for name in ("connect", "hello", "join", "post", "history", "who"):
        assert steps[name]["ok"] > 0, name
    assert steps["hello"]["count"] == 60
    assert results["summary"]["errors"] == 0
    assert results["summary"]["users_peak"] == 60
    assert results["summary"]["pushes"] > 0  # room messages reached the bots
    server = results["server"]
    assert server["users_at_measure"] == 60
    assert server["memory_per_user_bytes"] is not None
    assert max(sample["connections"] for sample in server["samples"]) >= 60


@needs_chat
def test_chat_idle_users_stay_online(tmp_path: Path) -> None:
    daemon, tcp, _ = start_chat(tmp_path)
    try:
        daemon.wait_port(tcp)
        done = bots("--scenario", "chat-idle", "--target", str(tcp), "--users", "200",
                    "--duration", "3", "--processes", "1", "--server-pid", str(daemon.pid),
                    "--json", str(tmp_path / "idle.json"))  # fmt: skip
    finally:
        daemon.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "idle.json").read_text())
    steps = {step["name"]: step for step in results["steps"]}
    assert steps["hello"]["ok"] == steps["ping"]["ok"] == 200
    assert [row["users"] for row in results["timeline"]][-1] == 200


@needs_kv
def test_kv_scenario_end_to_end(tmp_path: Path) -> None:
    port = free_port()
    daemon = Daemon(tmp_path, "kv", "--listen", f"127.0.0.1:{port}")
    try:
        daemon.wait_port(port)
        done = bots("--scenario", "kv", "--target", str(port), "--users", "8", "--duration",
                    "2", "--processes", "1", "--set", "set_ratio=0.5",
                    "--json", str(tmp_path / "kv.json"))  # fmt: skip
    finally:
        daemon.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "kv.json").read_text())
    steps = {step["name"]: step for step in results["steps"]}
    assert steps["GET"]["ok"] > 50 and steps["SET"]["ok"] > 50
    assert results["load"]["options"]["set_ratio"] == 0.5
