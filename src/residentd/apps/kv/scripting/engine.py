"""The script cache and the running of a script (Redis 7.0's ``eval.c`` and ``script.c``).

A script is compiled once and cached by the SHA1 of its body (EVAL caches what it runs, SCRIPT
LOAD only caches); SCRIPT FLUSH drops the cache and the Lua runtime with it. A script runs
atomically: the loop does nothing else until it returns. ``redis.call`` runs a command
through kv's command table as the calling client (same keyspace, same client state), after
Redis's checks: a known command, its arity, not a "noscript" command, no write from EVAL_RO.

Journaling: a script is logged by its effects, as Redis 7.0 replicates scripts: each write
command it ran is journaled as that command would be (journaling.py), and when there are
several they are wrapped in MULTI/EXEC, so a journal torn inside loads none of them. EVAL
itself is never journaled, nor is SCRIPT LOAD or FLUSH. Inside EXEC the transaction's own
MULTI/EXEC wraps them (``KvState.atomic``).

Long scripts (Redis's busy-reply-threshold, ``lua-time-limit``): the Lua hook calls ``tick``
every 100,000 instructions. Past the threshold the engine does, from inside the script, what
Redis's ``processEventsWhileBlocked`` does: it reads what the other clients sent, without
waiting, and hands it to their connections as if the loop had, while ``KvState.script_busy``
makes their sessions answer -BUSY to every command but those flagged ``allow_busy`` (SCRIPT
KILL among them); their replies, and any output they had waiting from before the script,
are written at once (so under ``appendfsync always`` a reply to a write made in the same
loop iteration before the script may leave before that write's fsync). SCRIPT KILL marks the
script, and the next tick raises "Script killed by user with SCRIPT KILL..." in it (again at
every tick, so a ``pcall`` cannot swallow it); a script that already wrote cannot be killed
(UNKILLABLE), as in Redis. Clients that connect meanwhile are accepted from inside the script
too (``Host.accept_now``), so a new redis-cli can send SCRIPT KILL, and go to the loop when it ends.
Unlike Redis, a script inside a long C function (a ``string.rep`` of gigabytes) is not
interrupted until it returns.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from residentd.apps.kv import errors
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.eviction import OOM
from residentd.apps.kv.journaling import run_journaled
from residentd.apps.kv.resp3 import shape_of, to_resp3
from residentd.apps.kv.scripting import bitop, cjson
from residentd.apps.kv.scripting.convert import to_lua, to_reply
from residentd.apps.kv.scripting.sandbox import Sandbox, ScriptError

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client, Handler
    from residentd.apps.kv.commands.registry import Command
    from residentd.apps.kv.state import KvState

log = logging.getLogger("residentd.kv.scripts")

Dispatch = Mapping[bytes, "tuple[Handler, int, Command]"]

KILLED = b"ERR Script killed by user with SCRIPT KILL..."
LOG_LEVELS = {0: logging.DEBUG, 1: logging.INFO, 2: logging.INFO, 3: logging.WARNING}


@dataclass(slots=True)
class Run:
    """The script running now."""

    client: Client
    sha: bytes
    readonly: bool
    started: float
    wrote: bool = False
    killed: bool = False
    logged: int = 0  # write commands journaled
    out_of_memory: bool = False  # over maxmemory at the start: denyoom calls refused
    resp: int = 2  # redis.setresp: the protocol of the replies redis.call converts


def sha1hex(body: bytes) -> bytes:
    return hashlib.sha1(body).hexdigest().encode()


class Scripts:
    def __init__(self, state: KvState, dispatch: Dispatch) -> None:
        self.state = state
        self.dispatch = dispatch
        self.cache: dict[bytes, Any] = {}  # SHA1 (lower-case hex) -> compiled function
        self.running: Run | None = None
        self._sandbox: Sandbox | None = None

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            self._sandbox = Sandbox(
                lambda *args: self._command(True, args),
                lambda *args: self._command(False, args),
                self._tick,
                {
                    "sha1hex": _sha1hex,
                    "log": _log,
                    "setresp": self._setresp,
                    "set_repl": _set_repl,
                    "replicate_commands": lambda: True,
                },
                lambda sandbox: {"cjson": cjson.library(sandbox), "bit": bitop.FUNCTIONS},
            )
        return self._sandbox

    # -- the cache ---------------------------------------------------------------------------

    def load(self, body: bytes) -> bytes:
        """Compile and cache ``body``; its SHA1."""
        sha = sha1hex(body)
        if sha not in self.cache:
            try:
                self.cache[sha] = self.sandbox.compile(body)
            except ScriptError as exc:
                raise KvError(
                    b"-ERR Error compiling script (new function): %b\r\n" % _line(exc.text)
                ) from None
        return sha

    def flush(self) -> None:
        self.cache.clear()
        self._sandbox = None

    # -- running -----------------------------------------------------------------------------

    def run(
        self, client: Client, sha: bytes, keys: list[bytes], argv: list[bytes], readonly: bool
    ) -> bytes:
        """Run the cached script ``sha``; the reply to EVAL."""
        function = self.cache[sha]
        state = self.state
        journal = state.journal
        mark = len(journal) if journal is not None else 0
        outer = state.atomic  # inside EXEC, whose MULTI/EXEC wraps the effects
        state.atomic = True
        run = self.running = Run(client, sha, readonly, time.monotonic())
        run.out_of_memory = state.eviction is not None and state.out_of_memory
        try:
            ok, value = self.sandbox.run(function, keys, argv)
        finally:
            self.running = None
            state.atomic = outer
            if state.script_busy:
                state.script_busy = False
                log.warning("slow script %s ended after %.3f s", sha.decode(), _since(run))
                server = state.app.server
                if server is not None:  # the clients that came meanwhile go to the loop
                    server.release_accepted()
        if journal is not None and not outer and run.logged > 1:
            state.wrap_block(mark)
        return to_reply(value, client.resp, run.resp) if ok else _error_reply(value, sha)

    def kill(self) -> bytes:
        """SCRIPT KILL."""
        run = self.running
        if run is None:
            raise KvError(errors.NOTBUSY)
        if run.wrote:
            raise KvError(errors.UNKILLABLE)
        run.killed = True
        return b"+OK\r\n"

    def _command(self, raise_errors: bool, args: tuple[Any, ...]) -> Any:
        """redis.call (``raise_errors``) and redis.pcall."""
        try:
            reply = self._execute(args)
        except ScriptError as exc:
            if raise_errors:
                raise
            if exc.before_call:
                return self.sandbox.table_of({b"err": exc.text})
            reply = b"-" + exc.text + b"\r\n"
        if reply[:1] == b"-":
            text = reply[1:-2]
            if raise_errors:
                raise ScriptError(text)
            # Redis 7.0 marks the table of an error the command's call made (its stats are
            # counted once), and a script can see the mark.
            return self.sandbox.table_of({b"err": text, b"ignore_error_stats_update": True})
        return to_lua(reply, self.sandbox.table)

    def _execute(self, args: tuple[Any, ...]) -> bytes:
        """Run the command ``args`` as the script's client; its reply, in RESP3 after
        ``redis.setresp(3)``."""
        run = self.running
        assert run is not None, "redis.call outside a script"
        if not args:
            raise ScriptError(
                b"ERR Please specify at least one argument for this redis lib call", True
            )
        argv = [_argument(arg) for arg in args]
        entry = self.dispatch.get(argv[0]) or self.dispatch.get(argv[0].lower())
        if entry is None:
            raise ScriptError(b"ERR Unknown Redis command called from script")
        handler, _, command = entry
        if command.subcommands and len(argv) > 1:  # Redis looks the subcommand up as well
            sub = command.subcommands.get(argv[1].lower())
            if sub is None:
                raise ScriptError(b"ERR Unknown Redis command called from script")
            if not sub.arity_ok(len(argv)):
                raise ScriptError(b"ERR Wrong number of args calling Redis command from script")
        if not command.arity_ok(len(argv)):
            raise ScriptError(b"ERR Wrong number of args calling Redis command from script")
        flags = _flags(command, argv)
        if "noscript" in flags:
            raise ScriptError(b"ERR This Redis command is not allowed from script")
        client = run.client
        journal = self.state.journal
        write = "write" in flags
        if write and run.readonly:
            raise ScriptError(b"ERR Write commands are not allowed from read-only scripts.")
        if run.out_of_memory and not run.wrote and "denyoom" in flags:  # scriptVerifyOOM
            raise ScriptError(OOM[1:-2])
        state = self.state
        if write and (journal is not None or state.watches.keys or state.notifier is not None):
            run.wrote = True
            size = len(journal) if journal is not None else 0
            reply = run_journaled(client, handler, argv, journal, command.keys)
            run.logged += journal is not None and len(journal) > size
        else:
            run.wrote = run.wrote or write
            try:
                reply = handler(client, argv)
            except KvError as exc:
                reply = exc.reply
        if state.eviction is not None and state.eviction.tracks:  # LRU/LFU stamps
            state.eviction.touch_keys(client.db, command.name, command.keys, argv)
        blocking = self.state.blocking
        if write and blocking.keys:  # the clients it may serve are served after the script
            blocking.touched(client.db, argv)
        if run.resp == 3:
            reply = to_resp3(reply, shape_of(command.name, argv))
        return reply

    def _setresp(self, *args: Any) -> None:
        """redis.setresp(2 | 3): the protocol of the replies redis.call gives the script."""
        if len(args) != 1:
            raise ScriptError(b"ERR redis.setresp() requires one argument.")
        if args[0] not in (2, 3):
            raise ScriptError(b"ERR RESP version must be 2 or 3.")
        if self.running is not None:
            self.running.resp = int(args[0])

    # -- long scripts --------------------------------------------------------------------------

    def _tick(self) -> None:
        """The Lua count hook."""
        run = self.running
        if run is None:
            return
        if not run.killed:
            threshold = self.state.options["busy_reply_threshold"]
            if not threshold or time.monotonic() - run.started < threshold / 1000:
                return
            if not self.state.script_busy:
                self.state.script_busy = True
                log.warning(
                    "slow script %s still running after %d ms: other clients are answered "
                    "-BUSY; SCRIPT KILL stops it",
                    run.sha.decode(),
                    threshold,
                )
            self._serve_others(run)
        if run.killed:
            raise ScriptError(KILLED)

    def _serve_others(self, run: Run) -> None:
        """Read what the other clients sent and let their sessions answer it (-BUSY, or SCRIPT
        KILL's reply), and write their output at once: theirs from before the script too, as
        Redis's ``processEventsWhileBlocked`` writes every pending reply."""
        server = self.state.app.server
        if server is None:
            return
        caller = getattr(run.client, "conn", None)
        server.accept_now()  # as Redis accepts meanwhile: a new client may send SCRIPT KILL
        for conn in list(server.connections.values()):
            if conn is not caller and not conn.closing:
                conn.serve_now()


def _argument(value: Any) -> bytes:
    try:
        return _text(value, b"ERR Lua redis lib command arguments must be strings or integers")
    except ScriptError as exc:
        raise ScriptError(exc.text, before_call=True) from None


def _flags(command: Command, argv: list[bytes]) -> tuple[str, ...]:
    """The flags of the command, or of its subcommand for a container."""
    if command.subcommands and len(argv) > 1:
        sub = command.subcommands.get(argv[1].lower())
        if sub is not None:
            return sub.flags
    return command.flags


def _line(text: bytes) -> bytes:
    return text.replace(b"\r", b" ").replace(b"\n", b" ")


def _error_reply(error: Any, sha: bytes) -> bytes:
    """The reply to a script that raised: Redis 7.0's "-<error> script: <sha>, on
    <source>:<line>."."""
    text = error[b"err"] if not isinstance(error, bytes | None) else None
    if not isinstance(text, bytes):
        return b"-ERR Error running script (call to %b): execution failure\r\n" % sha
    source, line = error[b"source"], error[b"line"]
    where = b""
    if isinstance(source, bytes) and isinstance(line, int | float):
        where = b" script: %b, on %b:%d." % (sha, source, line)
    return b"-" + _line(text) + where + b"\r\n"


def _since(run: Run) -> float:
    return time.monotonic() - run.started


def _text(value: Any, refusal: bytes = b"ERR wrong number of arguments") -> bytes:
    """A string argument, or a number as Lua writes it (``%.14g``)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return b"%.14g" % value
    raise ScriptError(refusal)


def _sha1hex(*args: Any) -> bytes:
    if len(args) != 1:
        raise ScriptError(b"ERR wrong number of arguments")
    return sha1hex(_text(args[0]))


def _log(*args: Any) -> None:
    if len(args) < 2:
        raise ScriptError(b"ERR redis.log() requires two arguments or more.")
    level = args[0]
    if not isinstance(level, int | float) or isinstance(level, bool):
        raise ScriptError(b"ERR First argument must be a number (log level).")
    if level not in LOG_LEVELS:
        raise ScriptError(b"ERR Invalid debug level.")
    message = b" ".join(_text(arg) for arg in args[1:])
    log.log(LOG_LEVELS[int(level)], "script: %s", message.decode("utf-8", "replace"))


def _set_repl(*args: Any) -> None:
    if len(args) != 1:
        raise ScriptError(b"ERR redis.set_repl() requires one argument.")
    if args[0] not in (0, 1, 2, 3):
        raise ScriptError(
            b"ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE."
        )
