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
modes.

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
from residentd.apps.kv.client import Handler
from residentd.apps.kv.commands import DISPATCH, WRITES
from residentd.apps.kv.commands.registry import Command
from residentd.apps.kv.errors import KvError, Quit
from residentd.apps.kv.journaling import run_journaled
from residentd.apps.kv.persistence.aof import EXEC, MULTI
from residentd.apps.kv.resp3 import Shape, push, shape_of, to_resp3
from residentd.apps.kv.state import KvApp
from residentd.codecs.resp import OK, QUEUED, array_header
from residentd.speedups import choose

# A blocked client's commands held behind the blocked one past which its reading pauses.
HELD_COMMANDS = 1024

# Without it (no compiler at install), every command runs in Python.
execute_fast: Callable[..., Any] | None = choose("residentd.apps.kv._fastpath", "execute", None)

if TYPE_CHECKING:
    from residentd.apps.kv.state import KvState
    from residentd.apps.kv.store import Keyspace


class KvSession(Session[KvApp]):
    __slots__ = (
        "_output_check_pending",
        "_output_paused",
        "_reply_shape",
        "_send",
        "_soft_since",
        "channels",
        "db",
        "multi",
        "multi_failed",
        "name",
        "patterns",
        "pending",
        "resp",
        "special",
        "state",
    )

    # Replies go out at the end of the loop iteration, after every ready client's commands ran,
    # as Redis writes them (beforeSleep): fewer writes than one after each read (the A/B figures
    # are in docs/benchmarks.md, "kv").
    defer_writes = True

    state: KvState
    db: Keyspace
    name: bytes | None
    channels: dict[bytes, None] | None
    patterns: dict[bytes, None] | None
    multi: list[tuple[Handler, list[bytes]]] | None

    def on_connect(self) -> None:
        self._setup()

    def _setup(self) -> None:
        """A new client's fields (``import_state`` starts from them too: no on_connect then)."""
        state = self.state = self.app.state
        self.db = state.db
        self.name = None
        self.channels = None
        self.patterns = None
        self.multi = None
        self.multi_failed = False
        self.resp = 2  # HELLO 3 makes it 3: replies in RESP3 (resp3.py)
        self._reply_shape: Shape | None = None  # a RESP3 command's (resp3.shape_of)
        self.special = False
        # While blocked (BLPOP, ...): the commands that came behind the blocked one.
        self.pending: list[list[bytes]] | None = None
        # The reply path's one call, bound once: each pipeline's replies go out through it,
        # with their count for the connection's messages_out.
        self._send = self.conn.send_bytes
        self._output_paused = False
        self._output_check_pending = False
        self._soft_since: float | None = None

    # -- dispatch ------------------------------------------------------------------------------

    def on_messages(self, commands: list[list[bytes]]) -> None:
        """Run every command one read completed (a pipeline) and send all the replies in one
        piece."""
        if self.pending is not None:  # blocked: these wait behind the blocked command
            self._hold(commands)
            return
        state = self.state
        state.commands += len(commands)
        count = len(commands)
        if state.script_busy:
            self._send(b"".join(map(self._while_busy, commands)), count)
            return
        replies: list[bytes] = []
        index = 0
        fast = execute_fast
        journal = state.journal
        blocking = state.blocking
        waited = blocking.keys or None  # the fast path leaves pushes to these to Python
        mark = 0
        if journal is not None:
            mark = len(journal)  # what other pipelines of this iteration journaled
            if not state.health.writable:
                fast = None  # the disk refuses data: every write goes to Python to be refused
        if fast is not None and not self.special:
            # The C fast path runs what it can and stops at the first command it leaves to
            # Python; usually that is none, and its replies are one piece already.
            index = fast(commands, 0, self.db, replies, journal, waited)
            if index == count:
                if journal is not None and len(journal) != mark:
                    state.commit(self.conn)
                self._send(replies[0], count)
                return
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
                elif self.special:
                    append(self._special(handler, command, argv))
                elif journal is not None and handler in WRITES:
                    append(self._write(handler, argv, journal))
                else:
                    try:
                        append(handler(self, argv))
                    except KvError as exc:
                        append(exc.reply)
                    if fast is not None and index < count and not self.special:
                        if blocking.keys:
                            self._after_write(handler, argv)
                        index = fast(commands, index, self.db, replies, journal, waited)
                        continue
                if blocking.keys:
                    self._after_write(handler, argv)
        except Quit:
            append(OK)
            if journal is not None and len(journal) != mark:
                state.commit(self.conn)
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
            state.commit(self.conn)
        self._send(replies[0] if len(replies) == 1 else b"".join(replies), count)

    def _after_write(self, handler: Handler, argv: list[bytes]) -> None:
        """While clients wait on keys: mark those a write touched ready, and serve them."""
        blocking = self.state.blocking
        if handler in WRITES:
            blocking.touched(argv)
        if blocking.ready:
            blocking.serve_ready()

    def _write(self, handler: Handler, argv: list[bytes], journal: bytearray) -> bytes:
        """Run a write command while persisting (journaling.py)."""
        return run_journaled(self, handler, argv, journal)

    def _special(self, handler: Handler, command: Command, argv: list[bytes]) -> bytes:
        # RESP3 tells pushes from replies, so a RESP3 subscriber may send any command.
        if self.subscribed and self.resp == 2 and not command.subscribed_ok:
            return self._reject(errors.not_in_subscribed_context(command.name))
        if self.multi is not None and command.queued:
            self.multi.append((handler, argv))
            return QUEUED
        if self.resp == 3:  # the reply's shape, for wake too if the command blocks
            self._reply_shape = shape_of(command.name, argv)
        journal = self.state.journal
        if journal is not None and handler in WRITES:
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
        """An error before the command ran; inside MULTI it also dooms the transaction."""
        if self.multi is not None:
            self.multi_failed = True
        return reply

    def run(self, handler: Handler, argv: list[bytes]) -> bytes:
        try:
            return handler(self, argv)
        except KvError as exc:
            return exc.reply

    def _update_mode(self) -> None:
        self.special = self.multi is not None or self.subscribed or self.resp == 3

    def set_protocol(self, version: int) -> None:
        """HELLO's protocol: 2 or 3 (RESP3 clients take the Python path, which converts)."""
        self.resp = version
        self._update_mode()

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
        self.discard()
        if failed:
            raise KvError(errors.EXECABORT)
        state = self.state
        journal = state.journal
        blocking = state.blocking
        # A blocking command answers at once, as Redis's in EXEC, and a script does not wrap
        # its journaled effects in a MULTI/EXEC of its own: the block's is around them.
        state.atomic = True
        try:
            if journal is None:
                replies = [self.run(handler, argv) for handler, argv in queued]
            else:
                # The block's changes go to the journal between MULTI and EXEC, as Redis
                # writes them, so a journal torn inside the block loads none of them.
                mark = len(journal)
                replies = [
                    self._write(handler, argv, journal)
                    if handler in WRITES
                    else self.run(handler, argv)
                    for handler, argv in queued
                ]
                if len(journal) > mark:
                    journal[mark:mark] = MULTI
                    journal += EXEC
        finally:
            state.atomic = False
        if blocking.keys:  # the waiters are served after EXEC, in the session's loop
            for handler, argv in queued:
                if handler in WRITES:
                    blocking.touched(argv)
        if self.resp == 3:  # each reply by its own command's shape (EXEC's is CONVERTED)
            replies = [
                to_resp3(reply, shape_of(argv[0].lower().decode("latin-1"), argv))
                for reply, (_, argv) in zip(replies, queued, strict=True)
            ]
        return array_header(len(replies)) + b"".join(replies)

    def discard(self) -> None:
        self.multi = None
        self.multi_failed = False
        self._update_mode()

    # -- blocking commands -----------------------------------------------------------------------

    def block(self, keys: list[bytes], timeout: float, serve: Serve, timeout_reply: bytes) -> None:
        """Wait on ``keys`` (raises ``Blocked``); run by EXEC or by a script it returns, and
        the command answers ``timeout_reply`` at once, as Redis does."""
        if self.state.atomic:
            return
        state = self.state
        state.blocking.block(self, keys, timeout, serve, timeout_reply, state.loop)
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
        return bool(self.channels) or bool(self.patterns)

    @property
    def subscription_count(self) -> int:
        return len(self.channels or ()) + len(self.patterns or ())

    def subscribe(self, channel: bytes) -> None:
        if self.channels is None:
            self.channels = {}
        if channel not in self.channels:
            self.channels[channel] = None
            self.state.hub.subscribe(self, channel)
        self._subscriptions_changed()

    def unsubscribe(self, channel: bytes) -> None:
        if self.channels and channel in self.channels:
            del self.channels[channel]
            self.state.hub.unsubscribe(self, channel)
        self._subscriptions_changed()

    def psubscribe(self, pattern: bytes) -> None:
        if self.patterns is None:
            self.patterns = {}
        if pattern not in self.patterns:
            self.patterns[pattern] = None
            self.state.hub.psubscribe(self, pattern)
        self._subscriptions_changed()

    def punsubscribe(self, pattern: bytes) -> None:
        if self.patterns and pattern in self.patterns:
            del self.patterns[pattern]
            self.state.hub.punsubscribe(self, pattern)
        self._subscriptions_changed()

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
        subscriptions. kv has one database, so there is no selected one to carry. A client
        blocked on keys is not handed over (None): the old generation keeps it until it goes."""
        if self.pending is not None:
            return None
        return {
            "name": self.name,
            "resp": self.resp,
            "multi": None if self.multi is None else [argv for _, argv in self.multi],
            "multi_failed": self.multi_failed,
            "channels": list(self.channels or ()),
            "patterns": list(self.patterns or ()),
        }

    def import_state(self, state: dict[str, object]) -> None:
        self._setup()
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

    # -- lifecycle -------------------------------------------------------------------------------

    def on_close(self, reason: str) -> None:
        hub = self.state.hub
        for channel in self.channels or ():
            hub.unsubscribe(self, channel)
        for pattern in self.patterns or ():
            hub.punsubscribe(self, pattern)
        self.channels = self.patterns = None
        self.state.subscribers.pop(self, None)
        self.multi = None
        if self.pending is not None:
            self.state.blocking.forget(self.id)
            self.pending = None
