"""kv's command handlers called directly, with a plain in-memory client: no socket, no server.

A handler sees the ``Client`` protocol (residentd/apps/kv/client.py), so ``MemoryClient``
below is all it takes to run one; the replies are compared with Redis's bytes, and every
error must come as a raised ``KvError`` carrying Redis's exact text, never as a returned
reply.
"""

from __future__ import annotations

import pytest

from residentd.apps.kv import create_app
from residentd.apps.kv import errors as kv_errors
from residentd.apps.kv.blocking import Serve
from residentd.apps.kv.client import Client
from residentd.apps.kv.commands import DISPATCH
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.state import KvState
from residentd.codecs.resp import array_header
from residentd.errors import ResidentdError


class MemoryClient:
    """A ``Client`` held in memory: what a handler uses, and the deliveries it got."""

    def __init__(self, state: KvState, client_id: int = 7) -> None:
        self.state = state
        self.db = state.db
        self.id = client_id
        self.name: bytes | None = None
        self.resp = 2
        self.channels: dict[bytes, None] | None = None
        self.patterns: dict[bytes, None] | None = None
        self.shard_channels: dict[bytes, None] | None = None
        self.no_evict = False
        self.authenticated = True
        self.reply_mode = 0
        self.queue: list[list[bytes]] | None = None
        self.delivered: list[bytes] = []
        self.watched: dict[tuple[int, bytes], bool] | None = None
        self.dirty = False

    # -- what a test calls ------------------------------------------------------------------

    def call(self, *args: str | bytes) -> bytes:
        """Run one command as the session would (queued inside MULTI); an error is raised."""
        argv = [arg.encode() if isinstance(arg, str) else arg for arg in args]
        handler, _, command = DISPATCH[argv[0].lower()]
        assert command.arity_ok(len(argv)), argv
        if self.queue is not None and command.queued:
            self.queue.append(argv)
            return b"+QUEUED\r\n"
        return handler(self, argv)

    def reply(self, *args: str | bytes) -> bytes:
        """The reply to one command, an error reply included."""
        try:
            return self.call(*args)
        except KvError as exc:
            return exc.reply

    # -- the Client protocol ----------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        return self.queue is not None

    def set_protocol(self, version: int) -> None:
        self.resp = version

    def begin(self) -> None:
        self.queue = []

    def execute(self) -> bytes:
        queued, self.queue = self.queue or [], None
        return array_header(len(queued)) + b"".join(self.reply(*argv) for argv in queued)

    def discard(self) -> None:
        self.queue = None
        self.unwatch()

    def watch(self, key: bytes) -> None:
        self.state.watches.watch(self, self.db, key)

    def unwatch(self) -> None:
        self.state.watches.unwatch_all(self)

    def select(self, index: int) -> None:
        self.db = self.state.keyspace(index)

    def block(self, keys: list[bytes], timeout: float, serve: Serve, timeout_reply: bytes) -> None:
        """No loop here: a blocking command answers as inside MULTI."""

    @property
    def subscribed(self) -> bool:
        return bool(self.channels) or bool(self.patterns)

    @property
    def subscription_count(self) -> int:
        return len(self.channels or ()) + len(self.patterns or ())

    def subscribe(self, channel: bytes) -> None:
        self.channels = self.channels or {}
        self.channels[channel] = None
        self.state.hub.subscribe(self, channel)

    def unsubscribe(self, channel: bytes) -> None:
        if self.channels is not None and self.channels.pop(channel, 0) is None:
            self.state.hub.unsubscribe(self, channel)

    def psubscribe(self, pattern: bytes) -> None:
        self.patterns = self.patterns or {}
        self.patterns[pattern] = None
        self.state.hub.psubscribe(self, pattern)

    def punsubscribe(self, pattern: bytes) -> None:
        if self.patterns is not None and self.patterns.pop(pattern, 0) is None:
            self.state.hub.punsubscribe(self, pattern)

    def authenticate(self) -> None:
        self.authenticated = True

    def reset(self) -> None:
        self.name = None
        self.resp = 2

    def set_reply_mode(self, mode: int) -> None:
        self.reply_mode = mode

    def describe(self) -> str:
        return f"id={self.id}"

    @property
    def shard_subscription_count(self) -> int:
        return len(self.shard_channels or ())

    def ssubscribe(self, channel: bytes) -> None:
        self.shard_channels = self.shard_channels or {}
        self.shard_channels[channel] = None
        self.state.hub.ssubscribe(self, channel)

    def sunsubscribe(self, channel: bytes) -> None:
        if self.shard_channels is not None and self.shard_channels.pop(channel, 0) is None:
            self.state.hub.sunsubscribe(self, channel)

    def deliver(self, payload: bytes) -> None:
        self.delivered.append(payload)


def _as_client(client: MemoryClient) -> Client:
    return client  # mypy checks here that MemoryClient is a Client


@pytest.fixture
def state() -> KvState:
    return create_app().state


@pytest.fixture
def c(state: KvState) -> MemoryClient:
    return MemoryClient(state)


def test_strings_and_keys(c: MemoryClient) -> None:
    assert c.call("SET", "k", "v") == b"+OK\r\n"
    assert c.call("GET", "k") == b"$1\r\nv\r\n"
    assert c.call("INCR", "n") == b":1\r\n"
    assert c.call("INCRBY", "n", "41") == b":42\r\n"
    assert c.call("APPEND", "k", "w") == b":2\r\n"
    assert c.call("MGET", "k", "nope", "n") == b"*3\r\n$2\r\nvw\r\n$-1\r\n$2\r\n42\r\n"
    assert c.call("EXISTS", "k", "n", "nope") == b":2\r\n"
    assert c.call("DEL", "k") == b":1\r\n"
    assert c.call("DBSIZE") == b":1\r\n"
    assert c.db.get(b"n") == b"42"


def test_hashes_lists_and_sets(c: MemoryClient) -> None:
    assert c.call("HSET", "h", "f", "1", "g", "2") == b":2\r\n"
    assert c.call("HINCRBY", "h", "f", "9") == b":10\r\n"
    assert c.call("HGET", "h", "f") == b"$2\r\n10\r\n"
    assert c.call("RPUSH", "l", "a", "b") == b":2\r\n"
    assert c.call("LPUSH", "l", "z") == b":3\r\n"
    assert c.call("LRANGE", "l", "0", "-1") == b"*3\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\nb\r\n"
    assert c.call("SADD", "s", "x", "x", "y") == b":2\r\n"
    assert c.call("SCARD", "s") == b":2\r\n"
    assert c.call("TYPE", "h") == b"+hash\r\n"


def test_transaction_through_the_client(c: MemoryClient) -> None:
    assert c.call("MULTI") == b"+OK\r\n"
    assert c.in_transaction
    assert c.call("SET", "a", "1") == b"+QUEUED\r\n"
    assert c.call("INCR", "a") == b"+QUEUED\r\n"
    assert c.call("EXEC") == b"*2\r\n+OK\r\n:2\r\n"
    assert not c.in_transaction
    assert c.call("MULTI") == b"+OK\r\n"
    assert c.call("DISCARD") == b"+OK\r\n"
    assert c.db.get(b"a") == b"2"


def test_publish_reaches_an_in_memory_subscriber(state: KvState) -> None:
    listener, talker = MemoryClient(state, 1), MemoryClient(state, 2)
    assert listener.call("SUBSCRIBE", "news") == b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
    assert listener.call("PSUBSCRIBE", "n*") == (b"*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:2\r\n")
    assert talker.call("PUBLISH", "news", "hi") == b":2\r\n"
    assert listener.delivered == [
        b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n",
        b"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n",
    ]
    assert listener.call("PING") == b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"  # subscribed mode
    listener.call("UNSUBSCRIBE")
    listener.call("PUNSUBSCRIBE")
    assert talker.call("PUBLISH", "news", "again") == b":0\r\n"


def test_connection_commands_see_the_client_not_a_socket(c: MemoryClient) -> None:
    assert c.call("CLIENT", "ID") == b":7\r\n"
    assert c.call("CLIENT", "SETNAME", "worker") == b"+OK\r\n"
    assert c.name == b"worker"
    assert c.call("CLIENT", "GETNAME") == b"$6\r\nworker\r\n"
    hello = c.call("HELLO", "2")
    assert b"$2\r\nid\r\n:7\r\n" in hello


def test_server_facts_come_from_the_state(c: MemoryClient) -> None:
    # No server runs: the limits are the app's defaults, and kv listens nowhere.
    state = c.state
    assert state.app.server is None
    maxclients = state.limits.max_connections
    assert c.call("CONFIG", "GET", "maxclients") == (
        b"*2\r\n$10\r\nmaxclients\r\n$%d\r\n%d\r\n" % (len(str(maxclients)), maxclients)
    )
    assert c.call("CONFIG", "GET", "timeout") == b"*2\r\n$7\r\ntimeout\r\n$1\r\n0\r\n"
    assert c.call("CONFIG", "GET", "port") == b"*2\r\n$4\r\nport\r\n$1\r\n0\r\n"
    assert c.call("CONFIG", "GET", "bind") == b"*2\r\n$4\r\nbind\r\n$0\r\n\r\n"
    assert b"connected_clients:0\r\n" in c.call("INFO", "clients")


@pytest.mark.parametrize(
    ("setup", "argv", "reply"),
    [
        ([("SET", "s", "x")], ("LPUSH", "s", "a"), kv_errors.WRONGTYPE),
        ([("RPUSH", "l", "a")], ("GET", "l"), kv_errors.WRONGTYPE),
        ([("SET", "s", "x")], ("INCR", "s"), kv_errors.NOT_AN_INTEGER),
        ([], ("SET", "k", "v", "NX", "XX"), kv_errors.SYNTAX),
        ([], ("EXPIRE", "k", "10", "NX", "XX"), kv_errors.EXPIRE_OPTIONS),
        ([], ("SCAN", "nope"), kv_errors.INVALID_CURSOR),
        ([], ("RENAME", "none", "b"), kv_errors.NO_SUCH_KEY),
        ([], ("SELECT", "16"), kv_errors.DB_INDEX_OUT_OF_RANGE),
        ([], ("HELLO", "4"), kv_errors.NOPROTO),
        ([], ("CLIENT", "SETNAME", "a b"), kv_errors.CLIENT_NAME),
        ([], ("CLIENT", "NOPE"), b"-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n"),
        (
            [],
            ("CLIENT", "ID", "extra"),
            b"-ERR wrong number of arguments for 'client|id' command\r\n",
        ),
        ([], ("EXEC",), kv_errors.EXEC_WITHOUT_MULTI),
        ([], ("DISCARD",), kv_errors.DISCARD_WITHOUT_MULTI),
        ([("MULTI",)], ("MULTI",), kv_errors.NESTED_MULTI),
        ([], ("FLUSHALL", "LATER"), kv_errors.SYNTAX),
        ([], ("BGSAVE", "LATER"), kv_errors.SYNTAX),
        ([], ("BGREWRITEAOF",), kv_errors.REWRITE_WITHOUT_AOF),
        (
            [],
            ("CONFIG", "SET", "maxclients", "5"),
            b"-ERR CONFIG SET failed (possibly related to argument 'maxclients') - "
            b"can't set immutable config\r\n",
        ),
        (
            [],
            ("CONFIG", "SET", "nosuch", "5"),
            b"-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'\r\n",
        ),
    ],
)
def test_errors_are_raised_with_redis_text(
    c: MemoryClient,
    setup: list[tuple[str, ...]],
    argv: tuple[str, ...],
    reply: bytes,
) -> None:
    for command in setup:
        c.call(*command)
    with pytest.raises(KvError) as raised:
        c.call(*argv)
    assert raised.value.reply == reply
    assert isinstance(raised.value, ResidentdError)


def test_an_error_inside_exec_is_that_command_s_reply(c: MemoryClient) -> None:
    c.call("SET", "s", "x")
    c.call("MULTI")
    c.call("INCR", "s")
    c.call("SET", "t", "y")
    assert c.call("EXEC") == b"*2\r\n" + kv_errors.NOT_AN_INTEGER + b"+OK\r\n"
