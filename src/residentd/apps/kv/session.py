"""One Redis client: command dispatch, and the state a connection carries (name, MULTI queue,
subscriptions, pub/sub output limits). ``KvSession`` is the ``Client`` (client.py) the
handlers see for a connection; it reaches the daemon's ``KvState`` as ``self.app.state``.

The core hands ``on_messages`` every command one read completed: a pipeline. For each
command the session does what Redis's ``processCommand`` does, in the same order: find it
(one dict lookup for the usual all-lower or all-upper spelling, a second after ``lower()``
otherwise), check its arity, refuse what RESP2's subscribed mode does not allow, queue it
inside MULTI, else run it. Replies are bytes already in RESP form; those of a pipeline are
joined and sent as one piece, so a pipeline of sixteen GETs costs one send and one
``transport.write``, not sixteen; the piece is counted as sixteen replies in the server's
``messages_out`` (one per command; a published message delivered counts one). QUIT stops the
pipeline where it stands, as in Redis.

A plain client's pipeline goes first to the C fast path (``_fastpath.c``, when built), which
runs the plain case of the hot commands (GET, SET, INCR, the pushes, MGET, MSET, ...) and
stops at the first command it leaves to Python; the loop below runs that one and hands the
rest back. A client that is subscribed or inside MULTI has ``special`` set, skips the fast
path and goes through ``_special``, so the common path pays one attribute test for those
modes. While any client WATCHes a key, every pipeline takes the Python path and each write
touches the watched keys it changed (watch.py): the C fast path does not signal changes.
Each client has its selected database, ``db`` (SELECT), which the fast path is handed per call.
With the C speedups the connection first offers each chunk to ``serve_chunk``
(``_fastpath.serve``): when the chunk holds nothing but complete, plainly written commands and
this method would go straight to the fast path, it reads and runs them in one C call, the
codec's ``feed`` and this method's Python frame saved (``serve_rest`` runs in Python what the
fast path left); otherwise it leaves the chunk to the codec and this method.
While ``maxmemory`` is set, the commands take the Python path through ``_limited``, which
evicts keys or refuses the command -OOM first (eviction.py), which the fast path cannot; but
a pipeline still goes to the fast path first while the memory is well under the limit and
the policy records no access (``Eviction.room_for``).

While kv persists, ``state.journal`` is the framework journal's buffer: the fast path appends
the writes it runs, ``_write`` runs the others (refusing them with -MISCONF while the disk
refuses data) and appends what Redis would log for them, and a pipeline that appended tells
the state so (``commit``); the iteration's commit point writes them before its replies are
sent.

While a Lua script runs past busy-reply-threshold, the script's engine reads the other clients
from inside it (``Transport.serve_now``) and ``state.script_busy`` makes their pipelines
answer -BUSY, but for the commands flagged ``allow_busy`` (SCRIPT KILL): one attribute test
per pipeline otherwise.

Pub/sub output: a subscriber that does not read sees its output grow with every message. Once
the transport has paused writing (output above the core's ``write_high_water``), each
delivery schedules a check, once per loop iteration, of the output against Redis's
``client-output-buffer-limit pubsub`` (kv options ``pubsub_output_hard_limit``,
``pubsub_output_soft_limit`` and ``pubsub_output_soft_seconds``): over the hard limit, or over
the soft one for longer than the soft seconds, the client is dropped with reason
``output-buffer-full``, as Redis drops it, without a reply. A subscriber is exempt from the
idle timeout while it listens (its connection's ``idle_exempt``), as Redis exempts pub/sub
clients: it need not talk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from residentd.app import Session
from residentd.apps.kv import errors
from residentd.apps.kv.blocking import Blocked, Serve
from residentd.apps.kv.client import REPLY_OFF, REPLY_ON, REPLY_SKIP, Handler
from residentd.apps.kv.commands import DISPATCH, WRITES
from residentd.apps.kv.commands.registry import Command
from residentd.apps.kv.errors import KvError, Quit
from residentd.apps.kv.eviction import OOM
from residentd.apps.kv.journaling import run_journaled
from residentd.apps.kv.persistence.aof import NULL_ARRAY
from residentd.apps.kv.resp3 import Shape, push, shape_of, to_resp3
from residentd.apps.kv.state import KvApp
from residentd.codecs.resp import QUEUED, array_header
from residentd.speedups import choose

# A blocked client's commands held behind the blocked one past which its reading pauses.
HELD_COMMANDS = 1024

# Without it (no compiler at install), every command runs in Python.
execute_fast: Callable[..., Any] | None = choose("residentd.apps.kv._fastpath", "execute", None)

RESP3_NULL = b"_\r\n"  # EXEC of a transaction a touched WATCH failed, in RESP3
_OOM_EXEMPT = frozenset(("exec", "discard", "quit", "reset"))  # inside MULTI, under -OOM
_DELETES = frozenset((b"del", b"unlink"))

if TYPE_CHECKING:
    from residentd.apps.kv.state import KvState
    from residentd.apps.kv.store import Keyspace


def denies_oom(command: Command, argv: list[bytes]) -> bool:
    """Whether the command (its subcommand for a container) is flagged ``denyoom``: refused
    while over maxmemory and nothing can be evicted."""
    if command.subcommands and len(argv) > 1:
        command = command.subcommands.get(argv[1].lower(), command)
    return "denyoom" in command.flags


def _subcommand_refusal(command: Command, argv: list[bytes]) -> bytes | None:
    """A container's refusal before it runs, as Redis's ``commandCheckExistence`` and
    ``commandCheckArity`` give it: an unknown subcommand, or a subcommand's wrong arity (inside
    MULTI these doom the transaction rather than being queued); None if it may run."""
    if len(argv) < 2:
        return None  # COMMAND alone (a bare container is otherwise an arity error)
    sub = command.subcommands.get(argv[1].lower())
    if sub is None:
        return errors.unknown_subcommand(argv[1], command.name)
    return None if sub.arity_ok(len(argv)) else errors.wrong_arity(sub.name)


class KvSession(Session[KvApp]):
    __slots__ = (
        "_charged",
        "_output_check_pending",
        "_output_paused",
        "_reply_shape",
        "_send",
        "_soft_since",
        "authenticated",
        "channels",
        "db",
        "dirty",
        "last_argv",
        "multi",
        "multi_failed",
        "name",
        "no_evict",
        "patterns",
        "pending",
        "reply_mode",
        "resp",
        "shard_channels",
        "special",
        "state",
        "watched",
    )

    # Replies go out at the end of the loop iteration, after every ready client's commands ran,
    # as Redis writes them (beforeSleep): fewer writes than one after each read (the A/B figures
    # are in docs/benchmarks.md, "kv").
    defer_writes = True

    # A plain client's whole chunk, read and run in C before the codec sees it: the codec's
    # feed and on_messages in one call (_fast_serve.h), None without the C speedups.
    serve_chunk = choose("residentd.apps.kv._fastpath", "serve", None)

    state: KvState
    db: Keyspace
    name: bytes | None
    channels: dict[bytes, None] | None
    patterns: dict[bytes, None] | None
    shard_channels: dict[bytes, None] | None
    multi: list[tuple[Handler, list[bytes]]] | None
    watched: dict[tuple[int, bytes], bool] | None

    def on_connect(self) -> None:
        self._setup()

    def _setup(self) -> None:
        """A new client's fields (``import_state`` starts from them too: no on_connect then)."""
        state = self.state = self.app.state
        self.db = state.db
        self.name = None
        self.channels = None
        self.patterns = None
        self.shard_channels = None
        self.multi = None
        self.multi_failed = False
        self.watched = None  # WATCHed (database, key) -> expired when watched (watch.py)
        self.dirty = False  # a watched key was touched: EXEC fails
        self.resp = 2  # HELLO 3 makes it 3: replies in RESP3 (resp3.py)
        self.authenticated = state.requirepass is None
        self.reply_mode = REPLY_ON
        self.no_evict = False
        self.last_argv: list[bytes] = []  # the last command of the last pipeline (CLIENT LIST)
        self.special = not self.authenticated
        state.clients[self.id] = self
        self._reply_shape: Shape | None = None  # a RESP3 command's (resp3.shape_of)
        # While blocked (BLPOP, ...): the commands that came behind the blocked one.
        self.pending: list[list[bytes]] | None = None
        # The reply path's one call, bound once: each pipeline's replies go out through it,
        # with their count for the connection's messages_out.
        self._send = self.conn.send_bytes
        self._output_paused = False
        self._output_check_pending = False
        self._soft_since: float | None = None
        # The connection's bytes_in already charged to the maxmemory estimate (on_messages).
        self._charged = 0

    # -- dispatch ------------------------------------------------------------------------------

    def on_messages(self, commands: list[list[bytes]]) -> None:
        """Run every command one read completed (a pipeline) and send all the replies in one
        piece."""
        if self.pending is not None:  # blocked: these wait behind the blocked command
            self._hold(commands)
            return
        state = self.state
        state.commands += len(commands)
        self.last_argv = commands[-1]
        count = len(commands)
        if state.script_busy:
            self._send(b"".join(map(self._while_busy, commands)), count)
            return
        replies: list[bytes] = []
        index = 0
        fast = execute_fast
        journal = state.journal
        blocking = state.blocking
        waited = blocking.names or None  # the fast path leaves writes to these to Python
        watching = state.watches.keys  # while anyone watches, writes run in Python to touch
        mark = 0
        if journal is not None:
            mark = len(journal)  # what other pipelines of this iteration journaled
            if not state.health.writable:
                fast = None  # the disk refuses data: every write goes to Python to be refused
        # Writes go through _write while they are journaled, watched or notified (the fast
        # path cannot tell what it changed, so it stands aside while notifications are on).
        hooked = journal is not None or bool(watching)
        if state.notifier is not None:
            hooked = True
            fast = None
        # maxmemory: each command may evict or be refused first, and may stamp its keys'
        # access: they run here, but for a pipeline the fast path may run while the memory
        # is well under the limit and the policy stamps nothing (eviction.py's room_for).
        eviction = state.eviction
        limited = eviction is not None
        if eviction is not None:
            conn = self.conn
            read, self._charged = conn.bytes_in - self._charged, conn.bytes_in
            if not eviction.room_for(read, count):
                fast = None
        if fast is not None and not self.special and not watching:
            # The C fast path runs what it can and stops at the first command it leaves to
            # Python; usually that is none, and its replies are one piece already.
            index = fast(commands, 0, self.db, replies, journal, waited)
            if journal is not None and len(journal) != mark:
                state.journal_select(self.db, mark)
            if index == count:
                if journal is not None and len(journal) != mark:
                    state.commit(self.conn, mark)
                self._send(replies[0], count)
                return
        self._run(commands, index, replies, fast, journal, waited, hooked, limited, mark)

    def serve_rest(
        self, commands: list[list[bytes]], index: int, replies: list[bytes], mark: int
    ) -> None:
        """The rest of a pipeline ``serve_chunk`` (the C fast path) began, from the command it
        left to Python at ``index``, as ``on_messages`` would run it after its own call."""
        state = self.state
        journal = state.journal
        hooked = journal is not None or bool(state.watches.keys)
        waited = state.blocking.names or None
        self._run(commands, index, replies, execute_fast, journal, waited, hooked, False, mark)

    def _run(
        self,
        commands: list[list[bytes]],
        index: int,
        replies: list[bytes],
        fast: Callable[..., int] | None,
        journal: bytearray | None,
        waited: dict[bytes, int] | None,
        hooked: bool,
        limited: bool,
        mark: int,
    ) -> None:
        """Run the pipeline's commands from ``index`` on, in Python but for the stretches the
        fast path takes, and send every reply in one piece."""
        state = self.state
        count = len(commands)
        blocking = state.blocking
        watching = state.watches.keys
        append = replies.append
        table = DISPATCH
        try:
            while index < count:
                argv = commands[index]
                index += 1
                entry = table.get(argv[0]) or table.get(argv[0].lower())
                if entry is None:
                    append(self._reject(errors.unknown_command(argv)))
                    continue
                handler, arity, command = entry
                size = len(argv)
                if size != arity and (arity > 0 or size < -arity):
                    append(self._reject(errors.wrong_arity(command.name)))
                elif command.subcommands and (refused := _subcommand_refusal(command, argv)):
                    append(self._reject(refused))
                elif limited:
                    append(self._limited(handler, command, argv))
                elif self.special:
                    append(self._special(handler, command, argv))
                elif hooked and handler in WRITES:
                    append(self._write(handler, argv, journal))
                else:
                    try:
                        append(handler(self, argv))
                    except KvError as exc:
                        append(exc.reply)
                    if fast is not None and index < count and not self.special and not watching:
                        if blocking.keys:
                            self._after_write(handler, argv)
                        index = self._fast(fast, commands, index, replies, journal, waited)
                        continue
                if blocking.keys:
                    self._after_write(handler, argv)
        except Quit as stop:
            append(stop.reply)
            if journal is not None and len(journal) != mark:
                state.commit(self.conn, mark)
            self._send(b"".join(replies), index)  # the commands up to QUIT's own
            self.close("quit")
            return
        except Blocked:
            self.pending = []
            self._hold(commands[index:])
            state.commands -= count - index  # counted again when they run
            count = index - 1  # the blocked command's reply comes with ``wake``
            if not replies:
                return
        if journal is not None and len(journal) != mark:
            state.commit(self.conn, mark)
        self._send(replies[0] if len(replies) == 1 else b"".join(replies), count)

    def _fast(
        self,
        fast: Callable[..., int],
        commands: list[list[bytes]],
        index: int,
        replies: list[bytes],
        journal: bytearray | None,
        waited: dict[bytes, int] | None,
    ) -> int:
        """The C fast path from ``index`` on, after a command Python ran; what it journals
        follows a SELECT if the journal was in another database."""
        if journal is None:
            return fast(commands, index, self.db, replies, None, waited)
        before = len(journal)
        index = fast(commands, index, self.db, replies, journal, waited)
        if len(journal) != before:
            self.state.journal_select(self.db, before)
        return index

    def _after_write(self, handler: Handler, argv: list[bytes]) -> None:
        """While clients wait on keys: mark those a write touched ready, and serve them."""
        blocking = self.state.blocking
        if handler in WRITES:
            blocking.touched(self.db, argv)
        if blocking.ready:
            blocking.serve_ready()

    def _write(self, handler: Handler, argv: list[bytes], journal: bytearray | None) -> bytes:
        """Run a write command while persisting, while some client watches keys or while
        keyspace events are on (journaling.py)."""
        entry = DISPATCH.get(argv[0]) or DISPATCH[argv[0].lower()]
        return run_journaled(self, handler, argv, journal, entry[2].keys)

    def _limited(self, handler: Handler, command: Command, argv: list[bytes]) -> bytes:
        """A command while maxmemory is set, as Redis's ``processCommand`` has it: keys are
        evicted first if the limit is passed; if none can be, a denyoom command (an EXEC
        that queued one, any command but EXEC, DISCARD, QUIT and RESET inside MULTI) is
        refused -OOM. The keys it named are stamped after it ran (LRU, LFU)."""
        state = self.state
        eviction = state.eviction
        if eviction is None or not self.authenticated:  # no limit now; or refused -NOAUTH
            return self._run_any(handler, command, argv)
        denied = denies_oom(command, argv)
        if self.multi is not None:
            if command.name == "exec":
                denied = any(denies_oom(DISPATCH[a[0].lower()][2], a) for _, a in self.multi)
            elif command.name not in _OOM_EXEMPT:
                denied = True
        state.out_of_memory = not eviction.perform()
        if denied and state.out_of_memory:
            return self._reject(OOM)
        if denied:
            eviction.charge(argv)
        elif handler in WRITES:
            eviction.freed()
        queued = self.multi if command.name == "exec" else None
        reply = self._run_any(handler, command, argv)
        if eviction.tracks and self.multi is None:  # not queued: it ran
            if queued is None:
                eviction.touch_keys(self.db, command.name, command.keys, argv)
            for _, words in queued or ():
                ran = DISPATCH[words[0].lower()][2]
                eviction.touch_keys(self.db, ran.name, ran.keys, words)
        return reply

    def _run_any(self, handler: Handler, command: Command, argv: list[bytes]) -> bytes:
        """A command by the path the pipeline loop would take for it."""
        if self.special:
            return self._special(handler, command, argv)
        state = self.state
        journal = state.journal
        hooked = journal is not None or state.watches.keys or state.notifier is not None
        if hooked and handler in WRITES:
            return self._write(handler, argv, journal)
        return self.run(handler, argv)

    def _special(self, handler: Handler, command: Command, argv: list[bytes]) -> bytes:
        """A command of a client in one of the modes: unauthenticated, subscribed, in MULTI,
        speaking RESP3, or with its replies off (CLIENT REPLY)."""
        reply = self._special_reply(handler, command, argv)
        return self._quiet(reply) if self.reply_mode else reply

    def _special_reply(self, handler: Handler, command: Command, argv: list[bytes]) -> bytes:
        if not self.authenticated and "no_auth" not in command.flags:
            return self._doom(errors.NOAUTH_EXEC if command.name == "exec" else errors.NOAUTH)
        # RESP3 tells pushes from replies, so a RESP3 subscriber may send any command.
        if self.subscribed and self.resp == 2 and not command.subscribed_ok:
            return self._doom(errors.not_in_subscribed_context(command.name))
        if self.multi is not None and command.queued:
            self.multi.append((handler, argv))
            return QUEUED
        if self.resp == 3:  # the reply's shape, for wake too if the command blocks
            self._reply_shape = shape_of(command.name, argv)
        state = self.state
        journal = state.journal
        hooked = journal is not None or state.watches.keys or state.notifier is not None
        if hooked and handler in WRITES:
            reply = self._write(handler, argv, journal)
        else:
            reply = self.run(handler, argv)
        if self.resp == 3:
            return to_resp3(reply, self._reply_shape)
        return reply

    def _while_busy(self, argv: list[bytes]) -> bytes:
        """A command that came while a script runs past busy-reply-threshold (the script's
        engine reads it: scripting/engine.py): -BUSY (dooming a MULTI, as any refusal does)
        unless it may run then, as SCRIPT KILL."""
        entry = DISPATCH.get(argv[0]) or DISPATCH.get(argv[0].lower())
        if entry is not None:
            handler, _, command = entry
            if command.subcommands and len(argv) > 1:
                command = command.subcommands.get(argv[1].lower(), command)
            if "allow_busy" in command.flags and command.arity_ok(len(argv)):
                reply = self.run(handler, argv)
                return to_resp3(reply, None) if self.resp == 3 else reply
        return self._reject(errors.BUSY)

    def _reject(self, reply: bytes) -> bytes:
        """An error before the command ran (unknown, wrong arity)."""
        reply = self._doom(reply)
        return self._quiet(reply) if self.reply_mode else reply

    def _doom(self, reply: bytes) -> bytes:
        """An error before the command ran; inside MULTI it also dooms the transaction."""
        if self.multi is not None:
            self.multi_failed = True
        return reply

    def _quiet(self, reply: bytes) -> bytes:
        """A reply as CLIENT REPLY OFF or SKIP lets it out: not at all, or (SKIP) not the
        one after CLIENT REPLY SKIP's own (which is empty)."""
        if self.reply_mode == REPLY_SKIP and reply:
            self.set_reply_mode(REPLY_ON)
            return b""
        return b"" if self.reply_mode == REPLY_OFF else reply

    def run(self, handler: Handler, argv: list[bytes]) -> bytes:
        try:
            return handler(self, argv)
        except KvError as exc:
            return exc.reply

    def _update_mode(self) -> None:
        self.special = (
            self.multi is not None
            or self.subscribed
            or self.resp == 3
            or not self.authenticated
            or self.reply_mode != REPLY_ON
        )

    def set_protocol(self, version: int) -> None:
        """HELLO's protocol: 2 or 3 (RESP3 clients take the Python path, which converts)."""
        self.resp = version
        self._update_mode()

    # -- the connection --------------------------------------------------------------------------

    def authenticate(self) -> None:
        self.authenticated = True
        self._update_mode()

    def set_reply_mode(self, mode: int) -> None:
        self.reply_mode = mode
        self._update_mode()

    def reset(self) -> None:
        """RESET, as Redis's ``clearClientConnectionState``."""
        self.multi = None
        self.multi_failed = False
        self.unwatch()
        self.select(0)
        self._drop_subscriptions()
        self.resp = 2
        self.name = None
        self.no_evict = False
        self.reply_mode = REPLY_ON
        self.authenticated = self.state.requirepass is None
        self._subscriptions_changed()

    def kill(self) -> None:
        self.close("killed")

    def describe(self) -> str:
        """The CLIENT LIST line of Redis 7.0, its fields in Redis's order. kv has no query
        buffer or reply list of its own to show: those read as empty, and omem is what the
        transport holds for the client."""
        conn = self.conn
        now = self.state.loop.time()
        laddr, fd = self.state.socket_of(self.id)
        flags = "P" if self.subscribed else ""
        flags += "x" if self.multi is not None else ""
        flags += "e" if self.no_evict else ""
        multi_mem = sum(len(arg) for _, argv in self.multi or () for arg in argv)
        output = conn.write_buffer_size
        name = (self.name or b"").decode("latin-1")
        return (
            f"id={self.id} addr={self.peer} laddr={laddr} fd={fd} name={name} "
            f"age={int(now - conn.connected_at)} idle={int(now - conn.last_active)} "
            f"flags={flags or 'N'} db={self.db.index} sub={len(self.channels or ())} "
            f"psub={len(self.patterns or ())} ssub={len(self.shard_channels or ())} "
            f"multi={-1 if self.multi is None else len(self.multi)} qbuf=0 qbuf-free=0 "
            f"argv-mem={sum(len(arg) for arg in self.last_argv)} multi-mem={multi_mem} "
            f"rbs=1024 rbp=0 obl=0 oll=0 omem={output} tot-mem={1024 + output + multi_mem} "
            f"events=r{'w' if output else ''} cmd={self._last_command()} user=default "
            f"redir=-1 resp={self.resp}"
        )

    def _last_command(self) -> str:
        """The name of the last command, ``container|subcommand`` for a subcommand."""
        argv = self.last_argv
        entry = DISPATCH.get(argv[0]) or DISPATCH.get(argv[0].lower()) if argv else None
        if entry is None:
            return "NULL"
        command = entry[2]
        if command.subcommands and len(argv) > 1:
            sub = command.subcommands.get(argv[1].lower())
            if sub is not None:
                return sub.name
        return command.name

    # -- transactions ----------------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        return self.multi is not None

    def begin(self) -> None:
        self.multi = []
        self.multi_failed = False
        self._update_mode()

    def execute(self) -> bytes:
        """Run the queued commands and return EXEC's reply (EXECABORT if one was refused)."""
        queued, failed = self.multi or [], self.multi_failed
        state = self.state
        watches = state.watches
        touched = self.dirty or (self.watched is not None and watches.expired(self, state.dbs))
        self.discard()  # and unwatch
        if failed:
            raise KvError(errors.EXECABORT)
        if touched:
            return NULL_ARRAY if self.resp == 2 else RESP3_NULL
        journal = state.journal
        blocking = state.blocking
        hooked = journal is not None or bool(watches.keys) or state.notifier is not None
        # A blocking command answers at once, as Redis's in EXEC, and a script does not wrap
        # its journaled effects in a MULTI/EXEC of its own: the block's is around them.
        state.atomic = True
        try:
            if not hooked:
                replies = [self.run(handler, argv) for handler, argv in queued]
            elif journal is None:
                replies = [
                    self._write(handler, argv, None)
                    if handler in WRITES
                    else self.run(handler, argv)
                    for handler, argv in queued
                ]
            else:
                # The block's changes go to the journal between MULTI and EXEC, as Redis
                # writes them, so a journal torn inside the block loads none of them.
                mark = len(journal) if journal is not None else 0
                replies = [
                    self._write(handler, argv, journal)
                    if handler in WRITES
                    else self.run(handler, argv)
                    for handler, argv in queued
                ]
                if journal is not None and len(journal) > mark:
                    state.wrap_block(mark)
        finally:
            state.atomic = False
        if blocking.keys:  # the waiters are served after EXEC, in the session's loop
            for handler, argv in queued:
                if handler in WRITES:
                    blocking.touched(self.db, argv)
        if self.resp == 3:  # each reply by its own command's shape (EXEC's is CONVERTED)
            replies = [
                to_resp3(reply, shape_of(argv[0].lower().decode("latin-1"), argv))
                for reply, (_, argv) in zip(replies, queued, strict=True)
            ]
        return array_header(len(replies)) + b"".join(replies)

    def discard(self) -> None:
        self.multi = None
        self.multi_failed = False
        self.unwatch()
        self._update_mode()

    # -- WATCH -----------------------------------------------------------------------------------

    def watch(self, key: bytes) -> None:
        self.state.watches.watch(self, self.db, key)

    def unwatch(self) -> None:
        if self.watched is not None:
            self.state.watches.unwatch_all(self)
        self.dirty = False

    def select(self, index: int) -> None:
        """SELECT: the database this client's commands use from now on."""
        self.db = self.state.keyspace(index)

    # -- blocking commands -----------------------------------------------------------------------

    def block(self, keys: list[bytes], timeout: float, serve: Serve, timeout_reply: bytes) -> None:
        """Wait on ``keys`` (raises ``Blocked``); run by EXEC or by a script it returns, and
        the command answers ``timeout_reply`` at once, as Redis does."""
        if self.state.atomic:
            return
        state = self.state
        state.blocking.block(self, self.db.index, keys, timeout, serve, timeout_reply, state.loop)
        self.conn.idle_exempt = True  # as Redis spares blocked clients its idle timeout
        raise Blocked

    def wake(self, reply: bytes, changed: bool = False) -> None:
        """The blocked command's answer: send it, then run the commands that waited. A
        served pop was journaled: with ``appendfsync always`` its reply waits for the fsync."""
        if changed and self.state.journal is not None:
            self.state.commit(self.conn)
        self._send(reply if self.resp == 2 else to_resp3(reply, self._reply_shape))
        self.conn.idle_exempt = self.subscribed
        self.state.loop.call_soon(self._resume)

    def _resume(self) -> None:
        pending, self.pending = self.pending, None
        self.conn.resume_reading()  # if _hold paused it
        if pending and not self.conn.closing:
            self.on_messages(pending)

    def _hold(self, commands: list[list[bytes]]) -> None:
        """Keep a blocked client's later commands; past ``HELD_COMMANDS`` stop reading more."""
        pending = self.pending
        assert pending is not None
        pending += commands
        if len(pending) >= HELD_COMMANDS:
            self.conn.pause_reading()

    # -- pub/sub ---------------------------------------------------------------------------------

    @property
    def subscribed(self) -> bool:
        return bool(self.channels) or bool(self.patterns) or bool(self.shard_channels)

    @property
    def subscription_count(self) -> int:
        return len(self.channels or ()) + len(self.patterns or ())

    @property
    def shard_subscription_count(self) -> int:
        return len(self.shard_channels or ())

    def subscribe(self, channel: bytes) -> None:
        self.channels = self._join(self.channels, channel, self.state.hub.subscribe)
        self._subscriptions_changed()

    def unsubscribe(self, channel: bytes) -> None:
        self._leave(self.channels, channel, self.state.hub.unsubscribe)
        self._subscriptions_changed()

    def psubscribe(self, pattern: bytes) -> None:
        self.patterns = self._join(self.patterns, pattern, self.state.hub.psubscribe)
        self._subscriptions_changed()

    def punsubscribe(self, pattern: bytes) -> None:
        self._leave(self.patterns, pattern, self.state.hub.punsubscribe)
        self._subscriptions_changed()

    def ssubscribe(self, channel: bytes) -> None:
        self.shard_channels = self._join(self.shard_channels, channel, self.state.hub.ssubscribe)
        self._subscriptions_changed()

    def sunsubscribe(self, channel: bytes) -> None:
        self._leave(self.shard_channels, channel, self.state.hub.sunsubscribe)
        self._subscriptions_changed()

    def _join(
        self,
        names: dict[bytes, None] | None,
        name: bytes,
        register: Callable[[KvSession, bytes], None],
    ) -> dict[bytes, None]:
        """``names`` with ``name`` added (and registered with the hub if it was not there)."""
        names = {} if names is None else names
        if name not in names:
            names[name] = None
            register(self, name)
        return names

    def _leave(
        self,
        names: dict[bytes, None] | None,
        name: bytes,
        unregister: Callable[[KvSession, bytes], None],
    ) -> None:
        if names and name in names:
            del names[name]
            unregister(self, name)

    def _drop_subscriptions(self) -> None:
        """Leave every channel, pattern and shard channel, without confirmations."""
        hub = self.state.hub
        for channel in self.channels or ():
            hub.unsubscribe(self, channel)
        for pattern in self.patterns or ():
            hub.punsubscribe(self, pattern)
        for channel in self.shard_channels or ():
            hub.sunsubscribe(self, channel)
        self.channels = self.patterns = self.shard_channels = None

    def _subscriptions_changed(self) -> None:
        subscribed = self.subscribed
        if subscribed:
            self.state.subscribers[self] = None
        else:
            self.state.subscribers.pop(self, None)
        self.conn.idle_exempt = subscribed
        self._update_mode()

    def deliver(self, payload: bytes) -> None:
        """Queue a published message for this subscriber, minding its output limits."""
        self._send(payload if self.resp == 2 else push(payload))
        if self._output_paused and not self._output_check_pending:
            self._output_check_pending = True
            self.state.loop.call_soon(self._check_output)

    def _check_output(self) -> None:
        self._output_check_pending = False
        conn = self.conn
        if conn.closing:
            return
        options = self.state.options
        size = conn.write_buffer_size
        hard = options["pubsub_output_hard_limit"]
        soft = options["pubsub_output_soft_limit"]
        if hard and size > hard:
            self.abort("output-buffer-full")
            return
        if not soft or size <= soft:
            self._soft_since = None
            return
        now = self.state.loop.time()
        if self._soft_since is None:
            self._soft_since = now
        elif now - self._soft_since > options["pubsub_output_soft_seconds"]:
            self.abort("output-buffer-full")

    def on_pause_writing(self) -> None:
        self._output_paused = True

    def on_resume_writing(self) -> None:
        self._output_paused = False
        self._soft_since = None

    # -- live upgrade ----------------------------------------------------------------------------

    def export_state(self) -> dict[str, object] | None:
        """What a client carries across a live upgrade: its name, its protocol, its MULTI
        queue (each command's arguments; the handler is looked up again by name) and its
        subscriptions, its selected database and its WATCHed keys (with whether one was
        touched). A client blocked on keys is not handed over (None): the old generation keeps
        it until it goes."""
        if self.pending is not None:
            return None
        return {
            "db": self.db.index,
            "watched": [[index, key, expired] for (index, key), expired in self.watched.items()]
            if self.watched
            else [],
            "dirty": self.dirty,
            "name": self.name,
            "resp": self.resp,
            "multi": None if self.multi is None else [argv for _, argv in self.multi],
            "multi_failed": self.multi_failed,
            "channels": list(self.channels or ()),
            "patterns": list(self.patterns or ()),
            "shard_channels": list(self.shard_channels or ()),
        }

    def import_state(self, state: dict[str, object]) -> None:
        self._setup()
        db = state.get("db", 0)
        if isinstance(db, int) and 0 <= db < self.state.databases:
            self.select(db)
        watches = self.state.watches
        for index, key, expired in state.get("watched", ()):  # type: ignore[attr-defined]
            if self.watched is None:
                self.watched = {}
            self.watched[(index, key)] = bool(expired)
            watches.keys.setdefault((index, key), {})[self] = None
        self.dirty = bool(state.get("dirty"))
        name = state["name"]
        self.name = name if isinstance(name, bytes) else None
        self.set_protocol(3 if state.get("resp") == 3 else 2)
        multi = state["multi"]
        if isinstance(multi, list):
            self.begin()
            queue = self.multi
            assert queue is not None
            for argv in multi:
                entry = DISPATCH.get(argv[0]) or DISPATCH.get(argv[0].lower())
                if entry is None:  # a command this generation no longer has
                    self.multi_failed = True
                    continue
                queue.append((entry[0], argv))
            self.multi_failed = self.multi_failed or bool(state["multi_failed"])
        for channel in state["channels"]:  # type: ignore[attr-defined]
            self.subscribe(channel)
        for pattern in state["patterns"]:  # type: ignore[attr-defined]
            self.psubscribe(pattern)
        for channel in state.get("shard_channels", ()):  # type: ignore[attr-defined]
            self.ssubscribe(channel)

    # -- lifecycle -------------------------------------------------------------------------------

    def on_close(self, reason: str) -> None:
        self._drop_subscriptions()
        self.state.subscribers.pop(self, None)
        self.state.clients.pop(self.id, None)
        self.multi = None
        self.unwatch()
        if self.pending is not None:
            self.state.blocking.forget(self.id)
            self.pending = None
