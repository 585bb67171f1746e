"""kv: an in-memory key-value store that speaks the Redis protocol (RESP2).

``residentd run kv`` listens on 127.0.0.1:6380. Real Redis clients and tools drive it:
redis-cli, redis-py, redis-benchmark. It holds strings, hashes, lists and sets with expiry,
and offers pub/sub and MULTI/EXEC, with Redis 7's replies and error texts (docs/protocol.md
lists the commands and what differs from Redis).

How it is put together:

- codecs/resp.py parses requests (a C reader on the fast path, hiredis's where it is not
  built, an exact port of Redis's parser for the rest) and passes pre-encoded replies through;
- session.py is one client: dispatch, MULTI and WATCH (watch.py), its selected database,
  subscriptions, pub/sub output limits; it hands
  each pipeline to _fastpath.c first, which runs the plain case of the hot commands in C;
- commands/ holds the handlers, one module per group, and the command table; a handler sees
  the ``Client`` protocol of client.py, never a connection, and raises ``KvError`` (errors.py)
  to answer an error;
- state.py is what the daemon shares (``KvApp.state``), and the one place that reads the
  server's facts (limits, addresses, counters) for the handlers and INFO;
- store.py is one database's keyspace with lazy and active expiry; pubsub.py, scan.py and
  patterns.py are pub/sub delivery, SCAN/HSCAN/SSCAN cursors and glob patterns; sampling.py
  the random picks of SPOP, SRANDMEMBER and HRANDFIELD; longdouble.py HINCRBYFLOAT's ``long
  double`` arithmetic; info.py writes INFO;
- scripting/ runs Lua scripts (EVAL, EVALSHA, SCRIPT) in an embedded Lua 5.1 (lupa);
- persistence/ makes it durable in Redis's own formats (RDB snapshots, an AOF journal in
  Redis 7.0's multi-part layout) on top of residentd.state;
- settings.py holds kv's settings; this module declares them and the service and runs the
  periodic job: the active expiry cycle, ten times a second like Redis's ``hz 10``.

Redis's limits map onto residentd's: Redis's maxclients is the core's max_connections
(refused with ``-ERR max number of clients reached``), the normal clients' output limit is
max_output_buffer (0, none, as in Redis); proto-max-bulk-len, client-query-buffer-limit and
the pub/sub output limits are settings of this app (settings.py). The core's max_input_buffer
bounds what a client holds beyond the bulk string being read, so a legal large value passes.
"""

from __future__ import annotations

from residentd.apps.kv.client import Client
from residentd.apps.kv.commands import DISPATCH
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.persistence.wiring import attach as attach_persistence
from residentd.apps.kv.scripting.engine import Scripts
from residentd.apps.kv.session import KvSession
from residentd.apps.kv.settings import KvSettings
from residentd.apps.kv.state import KvApp, KvState
from residentd.codecs.resp import RespCodec
from residentd.limits import Limits

HZ = 10

__all__ = ["Client", "KvApp", "KvError", "KvSession", "KvState", "app", "create_app"]


def create_app() -> KvApp:
    """A kv App with its own, empty keyspace."""
    app = KvApp()
    # Redis never times out a client (timeout 0), waits for no first command and has no
    # per-address cap; pools and idle redis-cli sessions rely on that. Nor does it cap a normal
    # client's output (client-output-buffer-limit normal 0 0 0): a GET of a 20 MB value that
    # SET took must be answered. The input cap stays the core's; it bounds only what is held
    # beyond the bulk being read (docs/protocol.md).
    app.declare(
        Limits,
        idle_timeout=0,
        handshake_timeout=0,
        max_connections_per_ip=0,
        max_output_buffer=0,
    )
    app.declare(KvSettings)
    state = app.state
    attach_persistence(app, state)
    state.scripts = Scripts(state, DISPATCH)

    def codec() -> RespCodec:
        settings = app.current(KvSettings)
        return RespCodec(settings.proto_max_bulk_len, settings.client_query_buffer_limit)

    # A class with its own ``on_messages``: the core hands it every command of a read at once.
    app.service("kv", KvSession, codec=codec, listen=["127.0.0.1:6380"])

    @app.every(1 / HZ)
    def cron() -> None:
        state.expire_cycle()
        state.eviction_cycle()

    @app.on_start
    def notifications() -> None:
        state.configure_notifications()
        state.configure_eviction()

    @app.on_reload
    def reload(changed: object) -> None:
        state.configure_notifications()
        state.configure_eviction()

    return app


app = create_app()
