"""``residentd chat token`` and ``residentd run chat`` as real processes: tokens made by the CLI
let users in to a daemon that takes no guests, and a stop says goodbye to every peer."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from residentd.apps.chat.tokens import check_token
from support import child_env, run_residentd

from .daemon import ChatDaemon


def residentd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``residentd ARGS`` with none of the test run's ``RESIDENTD_*`` settings, plus ``env``."""
    return run_residentd(*args, env=child_env(**(env or {})))


def test_token_command(tmp_path: Path) -> None:
    made = residentd("chat", "token", "ann", "--secret", "s1")
    assert made.returncode == 0, made.stderr
    assert check_token("s1", "ann", made.stdout.strip()) is None
    config = tmp_path / "chat.toml"
    config.write_text('secret = "from-file"\nguests = false\n')
    from_file = residentd("chat", "token", "bob", "--config", str(config), "--ttl", "60")
    assert check_token("from-file", "bob", from_file.stdout.strip()) is None
    from_env = residentd("chat", "token", "cid", env={"RESIDENTD_SECRET": "from-env"})
    assert check_token("from-env", "cid", from_env.stdout.strip()) is None
    missing = residentd("chat", "token", "ann")
    assert missing.returncode == 2 and "no secret" in missing.stderr
    bad_name = residentd("chat", "token", "not a name", "--secret", "s")
    assert bad_name.returncode == 2 and "not a user name" in bad_name.stderr
    assert residentd("echo", "token", "x").returncode == 2  # echo has no commands


def lines(sock: socket.socket, count: int) -> list[dict[str, object]]:
    data = b""
    while data.count(b"\n") < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return [json.loads(line) for line in data.splitlines()]


def test_daemon_takes_cli_tokens_and_says_goodbye() -> None:
    with ChatDaemon("--secret", "s2", "--no-guests") as daemon:
        token = residentd("chat", "token", "ann", "--secret", "s2").stdout.strip()
        with socket.create_connection(("127.0.0.1", daemon.tcp_port), timeout=10) as sock:
            sock.sendall(b'{"op":"hello","v":1,"user":"ann","id":1}\n')
            assert lines(sock, 1)[0]["code"] == "bad-token"
            hello = {"op": "hello", "v": 1, "user": "ann", "token": token, "id": 2}
            sock.sendall(json.dumps(hello).encode() + b"\n")
            assert lines(sock, 1)[0]["op"] == "hello"
            assert daemon.stop() == 0
            assert lines(sock, 1) == [{"op": "bye", "reason": "server-shutdown"}]
            assert sock.recv(1) == b""


def test_daemon_without_a_way_in_refuses_to_start() -> None:
    started = residentd("run", "chat", "--no-guests", "--listen", "127.0.0.1:0",
                        "--http-listen", "127.0.0.1:0", "--admin", "off")  # fmt: skip
    assert started.returncode != 0
    assert "guests = false needs a secret" in started.stderr


def test_rooms_that_are_no_room_names_stop_the_start(tmp_path: Path) -> None:
    listen = ("--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--admin", "off")
    config = tmp_path / "chat.toml"
    config.write_text('rooms = ["lobby", "dev team"]\n')
    from_file = residentd("run", "chat", "--config", str(config), *listen)
    assert from_file.returncode == 2, from_file.stderr
    assert "rooms = ['lobby', 'dev team']" in from_file.stderr
    assert "'dev team': room names are 1-32 ASCII letters, digits, _ . -" in from_file.stderr
    from_flag = residentd("run", "chat", "--rooms", "lobby", "--rooms", "lobby\n", *listen)
    assert from_flag.returncode == 2 and "'lobby\\n'" in from_flag.stderr


def hello(port: int, user: str, token: str | None = None) -> dict[str, object]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        request = {"op": "hello", "v": 1, "user": user, "id": 1}
        if token is not None:
            request["token"] = token
        sock.sendall(json.dumps(request).encode() + b"\n")
        return lines(sock, 1)[0]


def test_a_guest_never_gets_a_token_users_name_across_a_restart() -> None:
    token = residentd("chat", "token", "ann", "--secret", "s3").stdout.strip()
    with ChatDaemon("--secret", "s3") as daemon:
        assert hello(daemon.tcp_port, "ann", token)["user"] == "ann"
    # State is not durable yet: the restarted daemon has never seen ann. Her name is still
    # hers, since guests live in their own namespace.
    with ChatDaemon("--secret", "s3") as daemon:
        guest = hello(daemon.tcp_port, "ann")
        assert guest["user"] == "~ann" and guest["guest"] is True
        owner = hello(daemon.tcp_port, "ann", token)
        assert owner["user"] == "ann" and owner["guest"] is False
