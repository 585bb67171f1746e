"""kv: an in-memory key-value store that speaks the Redis protocol (RESP2).

``residentd run kv`` listens on 127.0.0.1:6380. Real Redis clients and tools drive it:
redis-cli, redis-py, redis-benchmark. It holds strings, hashes, lists and sets with expiry,
and offers pub/sub and MULTI/EXEC, with Redis 7's replies and error texts (docs/protocol.md
lists the commands and what differs from Redis).

How it is put together:

- codecs/resp.py parses requests (a C reader on the fast path, hiredis's where it is not
  built, an exact port of Redis's parser for the rest) and passes pre-encoded replies through;
- session.py is one client: dispatch, MULTI, subscriptions, pub/sub output limits; it hands
  each pipeline to _fastpath.c first, which runs the plain case of the hot commands in C;
- commands/ holds the handlers, one module per group, and the command table;
- store.py is the keyspace with lazy and active expiry; pubsub.py, scan.py and patterns.py
  are pub/sub delivery, SCAN cursors and glob patterns; info.py writes INFO;
- persistence/ makes it durable in Redis's own formats (RDB snapshots, an AOF journal in
  Redis 7.0's multi-part layout) on top of residentd.state;
- this module declares the options and the service and runs the periodic job: the active
  expiry cycle, ten times a second like Redis's ``hz 10``.

Redis's limits map onto residentd's: ``maxclients`` is ``max_connections`` (refused with
``-ERR max number of clients reached``), ``client-query-buffer-limit`` is
``max_input_buffer``, the normal clients' output limit is ``max_output_buffer``;
``proto-max-bulk-len`` and the pub/sub output limits are options of this app.
"""

from __future__ import annotations

from residentd.app import App
from residentd.apps.kv.persistence.wiring import attach as attach_persistence
from residentd.apps.kv.session import KvSession
from residentd.apps.kv.state import KvState
from residentd.codecs.resp import DEFAULT_MAX_BULK_LEN, RespCodec
from residentd.net.connection import Connection

MiB = 1024 * 1024
HZ = 10


class KvApp(App):
    """The kv App, holding its ``KvState`` (keyspace, pub/sub hub, ...) as ``state``."""

    def __init__(self) -> None:
        super().__init__("kv", "in-memory key-value store speaking the Redis protocol (RESP2)")
        self.state = KvState(self)


def create_app() -> KvApp:
    """A kv App with its own, empty keyspace."""
    app = KvApp()
    # Redis never times out a client (timeout 0), waits for no first command and has no
    # per-address cap; pools and idle redis-cli sessions rely on that. The buffer caps stay
    # the core's, lower than Redis's (docs/protocol.md).
    app.default_limits(idle_timeout=0, handshake_timeout=0, max_connections_per_ip=0)
    app.option(
        "proto_max_bulk_len",
        DEFAULT_MAX_BULK_LEN,
        "longest bulk string a request may carry, in bytes (Redis's proto-max-bulk-len)",
        reloadable=True,
        minimum=1,
    )
    app.option(
        "pubsub_output_hard_limit",
        32 * MiB,
        "pub/sub client output, in bytes, past which it is dropped at once (0: no limit)",
        reloadable=True,
        minimum=0,
    )
    app.option(
        "pubsub_output_soft_limit",
        8 * MiB,
        "pub/sub client output, in bytes, it may stay above only for "
        "pubsub_output_soft_seconds (0: no limit)",
        reloadable=True,
        minimum=0,
    )
    app.option(
        "pubsub_output_soft_seconds",
        60,
        "seconds a pub/sub client may stay above pubsub_output_soft_limit",
        reloadable=True,
        minimum=0,
    )
    state = app.state
    attach_persistence(app, state)

    def codec() -> RespCodec:
        return RespCodec(max_bulk_len=app.options["proto_max_bulk_len"])

    class AppSession(KvSession):
        """A client of this app: a class, so that the core finds its batch ``on_messages``
        and hands it every command of a read at once."""

        __slots__ = ()

        def __init__(self, conn: Connection) -> None:
            super().__init__(conn, state)

    app.service("kv", AppSession, codec=codec, listen=["127.0.0.1:6380"])

    @app.every(1 / HZ)
    def cron() -> None:
        state.expire_cycle()
        # Redis never times out a pub/sub client for idleness: it listens, it need not talk.
        # (Only an idle timeout set by config makes this matter; kv's default has none.)
        if state.subscribers and app.server is not None and app.server.limits.idle_timeout:
            now = app.server.loop.time()
            for subscriber in state.subscribers:
                subscriber.conn.last_active = now

    return app


app = create_app()
