"""The connection as clients see it, compared with redis-server 7.0: AUTH and requirepass
(HELLO AUTH included), RESET, CLIENT INFO/LIST/KILL/REPLY/NO-EVICT and CONFIG RESETSTAT.

Replies are compared byte for byte, except the CLIENT LIST fields that differ between any two
servers (ids, addresses, descriptors, ages, memory figures): there the fields' names and
order are compared, and the values a client can predict."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import pytest

from .helpers import KvThread, Raw, resp

Command = tuple[str, ...]


@contextmanager
def password(port: int, value: str) -> Iterator[None]:
    """requirepass ``value`` on the server at ``port`` while the block runs."""
    with Raw(port) as admin:
        assert admin.call("CONFIG", "SET", "requirepass", value) == b"+OK\r\n"
        try:
            yield
        finally:
            admin.call("CONFIG", "SET", "requirepass", "")


def _replies(port: int, commands: list[Command], count: int | None = None) -> list[bytes]:
    with Raw(port) as client:
        client.send(b"".join(resp(*command) for command in commands))
        return client.replies(len(commands) if count is None else count)


WITHOUT_PASSWORD: list[Command] = [
    ("AUTH", "x"), ("AUTH", "default", "x"), ("AUTH", "bob", "x"), ("AUTH",),
    ("AUTH", "a", "b", "c"), ("HELLO", "2", "AUTH", "bob", "x"), ("PING",),
]  # fmt: skip

WITH_PASSWORD: list[Command] = [
    ("GET", "x"), ("PING",), ("SET", "a", "b"), ("NOSUCH",), ("GET",), ("CLIENT", "ID"),
    ("HELLO",), ("HELLO", "3"), ("HELLO", "2", "SETNAME", "x"),
    ("HELLO", "3", "AUTH", "default", "bad"), ("AUTH", "bad"), ("AUTH", "default", "bad"),
    ("AUTH", "bob", "pw"), ("MULTI",), ("EXEC",), ("SUBSCRIBE", "c"), ("RESET",),
    ("AUTH", "pw"), ("SET", "a", "1"), ("GET", "a"), ("RESET",), ("GET", "a"),
    ("AUTH", "default", "pw"), ("GET", "a"), ("DEL", "a"), ("QUIT",),
]  # fmt: skip


def test_auth_without_a_password(kv: KvThread, redis_port: int) -> None:
    assert _replies(kv.port, WITHOUT_PASSWORD) == _replies(redis_port, WITHOUT_PASSWORD)


def test_requirepass_refuses_until_auth(kv: KvThread, redis_port: int) -> None:
    got = []
    for port in (kv.port, redis_port):
        with password(port, "pw"):
            got.append(_replies(port, WITH_PASSWORD))
    assert got[0] == got[1]


def test_hello_auth_authenticates(kv: KvThread, redis_port: int) -> None:
    for port in (kv.port, redis_port):
        with password(port, "pw"), Raw(port) as client:
            hello = client.call("HELLO", "3", "AUTH", "default", "pw", "SETNAME", "named")
            assert hello.startswith(b"%7\r\n$6\r\nserver\r\n")
            assert client.call("CLIENT", "GETNAME") == b"$5\r\nnamed\r\n"


def test_a_client_connected_before_requirepass_stays_authenticated(kv: KvThread) -> None:
    with Raw(kv.port) as early, password(kv.port, "pw"), Raw(kv.port) as late:
        assert early.call("PING") == b"+PONG\r\n"
        assert late.call("PING") == b"-NOAUTH Authentication required.\r\n"


RESET: list[Command] = [
    ("DEL", "reset:k"), ("CLIENT", "SETNAME", "n"), ("MULTI",), ("SET", "reset:k", "v"),
    ("RESET",), ("EXEC",), ("GET", "reset:k"), ("CLIENT", "GETNAME"), ("SUBSCRIBE", "c"),
    ("SSUBSCRIBE", "s"), ("PSUBSCRIBE", "p*"), ("RESET",), ("PING",),
    ("PUBSUB", "NUMSUB", "c"), ("HELLO", "3"), ("RESET",), ("GET", "missing"),
    ("CLIENT", "REPLY", "OFF"), ("RESET",), ("PING",), ("SELECT", "3"), ("SET", "reset:db", "3"),
    ("WATCH", "reset:w"), ("RESET",), ("GET", "reset:db"), ("MULTI",), ("SELECT", "3"),
    ("EXEC",), ("DEL", "reset:db"), ("SELECT", "0"),
]  # fmt: skip


def test_reset(kv: KvThread, redis_port: int) -> None:
    def replies(port: int) -> list[bytes]:
        got = _replies(port, RESET, len(RESET) - 1)  # CLIENT REPLY OFF answers nothing
        got[14] = re.sub(rb"\$\d\r\n7\.0\.\d+|:\d+\r\n\$4\r\nmode", b"", got[14])  # version, id
        return got

    assert replies(kv.port) == replies(redis_port)


REPLY_MODES: list[Command] = [
    ("CLIENT", "REPLY", "x"), ("CLIENT", "REPLY", "SKIP"), ("PING", "skipped"),
    ("PING", "after-skip"), ("CLIENT", "REPLY", "OFF"), ("PING", "off"), ("NOSUCH",),
    ("GET",), ("CLIENT", "REPLY", "ON"), ("PING", "on"), ("CLIENT", "NO-EVICT", "on"),
    ("CLIENT", "NO-EVICT", "off"), ("CLIENT", "NO-EVICT", "x"), ("CLIENT", "NO-EVICT"),
    ("PING", "end"),
]  # fmt: skip


def test_client_reply_and_no_evict(kv: KvThread, redis_port: int) -> None:
    def received(port: int) -> list[bytes]:
        with Raw(port) as client:
            client.send(b"".join(resp(*command) for command in REPLY_MODES))
            got: list[bytes] = []
            while not got or got[-1] != b"$3\r\nend\r\n":
                got += client.replies(1)
            return got

    assert received(kv.port) == received(redis_port)


ERRORS: list[Command] = [
    ("CLIENT", "LIST", "TYPE", "bad"), ("CLIENT", "LIST", "ID", "1", "x"),
    ("CLIENT", "LIST", "ID"), ("CLIENT", "LIST", "foo"), ("CLIENT", "LIST", "ID", "99999"),
    ("CLIENT", "LIST", "TYPE", "master"), ("CLIENT", "KILL", "1.2.3.4:5"),
    ("CLIENT", "KILL", "ID", "99999"), ("CLIENT", "KILL", "ID", "x"),
    ("CLIENT", "KILL", "ID", "0"), ("CLIENT", "KILL", "TYPE", "bad"),
    ("CLIENT", "KILL", "FOO", "x"), ("CLIENT", "KILL", "SKIPME", "maybe"),
    ("CLIENT", "KILL", "ADDR"), ("CLIENT", "KILL", "ADDR", "1.2.3.4:5", "TYPE"),
    ("CLIENT", "KILL", "USER", "nobody"), ("CLIENT", "KILL", "TYPE", "replica"),
    ("CLIENT", "KILL", "LADDR", "1.2.3.4:5"), ("CLIENT", "INFO", "x"), ("CLIENT", "FOO"),
    ("CONFIG", "RESETSTAT"), ("CONFIG", "RESETSTAT", "x"),
]  # fmt: skip


def test_client_errors(kv: KvThread, redis_port: int) -> None:
    assert _replies(kv.port, ERRORS) == _replies(redis_port, ERRORS)


# Redis 7.0's CLIENT LIST line, in order.
FIELDS = [
    "id", "addr", "laddr", "fd", "name", "age", "idle", "flags", "db", "sub", "psub", "ssub",
    "multi", "qbuf", "qbuf-free", "argv-mem", "multi-mem", "rbs", "rbp", "obl", "oll", "omem",
    "tot-mem", "events", "cmd", "user", "redir", "resp",
]  # fmt: skip
# The fields whose values a client can predict.
PREDICTABLE = {
    "name",
    "flags",
    "db",
    "sub",
    "psub",
    "ssub",
    "multi",
    "cmd",
    "user",
    "redir",
    "resp",
}


def _fields(line: str) -> dict[str, str]:
    pairs = [field.split("=", 1) for field in line.split(" ")]
    assert [name for name, _ in pairs] == FIELDS, line
    return {name: value for name, value in pairs if name in PREDICTABLE}


def _client_lines(port: int) -> list[list[dict[str, str]]]:
    """CLIENT INFO and LIST (all, by type, by id) while another client is subscribed and a
    third is inside MULTI, in RESP2 and RESP3."""
    with Raw(port) as client, Raw(port) as listener, Raw(port) as queuing:
        listener.call("CLIENT", "SETNAME", "listener")
        listener.send(resp("SUBSCRIBE", "a", "b") + resp("SSUBSCRIBE", "s"))
        listener.replies(3)
        queuing.call("MULTI")
        queuing.call("SET", "k", "v")
        own = client.call("CLIENT", "ID").strip(b":\r\n").decode()
        texts = []
        for command in [
            ("CLIENT", "INFO"),
            ("CLIENT", "LIST"),
            ("CLIENT", "LIST", "TYPE", "pubsub"),
            ("CLIENT", "LIST", "TYPE", "normal"),
            ("CLIENT", "LIST", "ID", own),
        ]:
            reply = client.call(*command)
            texts.append(reply.split(b"\r\n", 1)[1][:-2].decode())
        client.call("HELLO", "3")
        verbatim = client.call("CLIENT", "INFO")
        assert verbatim.startswith(b"=") and b"\r\ntxt:id=" in verbatim
        texts.append(verbatim.split(b"\r\ntxt:", 1)[1][:-2].decode())
        return [[_fields(line) for line in text.splitlines()] for text in texts]


def test_client_info_and_list_lines(kv: KvThread, redis_port: int) -> None:
    assert _client_lines(kv.port) == _client_lines(redis_port)


def test_client_kill(kv: KvThread, redis_port: int) -> None:
    def kills(port: int) -> list[bytes]:
        with Raw(port) as killer, Raw(port) as victim, Raw(port) as listener:
            listener.call("SUBSCRIBE", "c")
            victim_id = victim.call("CLIENT", "ID").strip(b":\r\n")
            got = [killer.call("CLIENT", "KILL", "ID", victim_id)]
            assert victim.read_until_closed() == b""
            got.append(killer.call("CLIENT", "KILL", "TYPE", "pubsub", "USER", "default"))
            assert listener.read_until_closed() == b""
            with Raw(port) as other:
                address = other.call("CLIENT", "INFO").split(b" ")[1].split(b"=")[1]
                got.append(killer.call("CLIENT", "KILL", address))
                assert other.read_until_closed() == b""
            got.append(killer.call("CLIENT", "KILL", "TYPE", "normal"))
            own = killer.call("CLIENT", "INFO").split(b" ")[1].split(b"=")[1]
            killer.send(resp("CLIENT", "KILL", "ADDR", own, "SKIPME", "no") + resp("PING"))
            got.append(killer.read_until_closed())  # its reply, then the close
            return got

    assert kills(kv.port) == kills(redis_port)


def test_config_resetstat_starts_the_counters_again(kv: KvThread) -> None:
    with Raw(kv.port) as client:
        for _ in range(5):
            client.call("GET", "missing")
        assert client.call("CONFIG", "RESETSTAT") == b"+OK\r\n"
        info = client.call("INFO", "stats").decode()
    assert "keyspace_misses:0\r\n" in info
    assert re.search(r"total_commands_processed:[0-2]\r\n", info), info


@pytest.mark.parametrize("value", ["", "secret"])
def test_config_get_requirepass(kv: KvThread, redis_port: int, value: str) -> None:
    got = []
    for port in (kv.port, redis_port):
        with password(port, value) if value else nullcontext(), Raw(port) as client:
            if value:
                client.call("AUTH", value)
            got.append(client.call("CONFIG", "GET", "requirepass"))
    assert got[0] == got[1]


def test_requirepass_and_notifications_from_the_settings() -> None:
    options = {"requirepass": "s3cret", "notify_keyspace_events": "KEA"}
    with KvThread(options=options) as server, Raw(server.port) as client:
        assert client.call("GET", "k") == b"-NOAUTH Authentication required.\r\n"
        assert client.call("AUTH", "s3cret") == b"+OK\r\n"
        assert client.call("CONFIG", "GET", "notify-keyspace-events") == resp(
            "notify-keyspace-events", "AKE"
        )
        with Raw(server.port) as listener:
            listener.call("AUTH", "s3cret")
            listener.call("SUBSCRIBE", "__keyevent@0__:set")
            client.call("SET", "k", "v")
            assert listener.replies(1) == [resp("message", "__keyevent@0__:set", "k")]
