"""The command table: each command's handler, arity, flags and one-line documentation.

A handler is a plain function ``handler(client, argv) -> bytes`` (``Handler``, client.py):
``argv`` is the request, command name included, and the return value is the complete RESP
reply, already encoded; an error is raised as ``KvError`` (errors.py), never returned.
Handlers are registered with ``@command(...)`` in the modules next to this one, one module per
data type, the way Redis's ``t_string.c``, ``t_hash.c``, ... are split.

Arity follows Redis: a positive number is the exact count of words including the command
name, a negative one the minimum. The session checks it before calling the handler, so a
handler may index ``argv`` freely up to it. Commands with subcommands (``CONFIG GET``,
``CLIENT ID``, ``COMMAND DOCS``) are containers: their handler looks the subcommand up in
``subcommands`` and checks its arity, whose error names ``config|get`` as Redis does.

The flags and documentation answer ``COMMAND INFO`` and ``COMMAND DOCS`` (redis-cli reads
the latter for its hints); ``subscribed_ok`` and ``queued`` say how a command behaves in
subscribed mode and inside MULTI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from residentd.apps.kv import errors
from residentd.apps.kv.client import Client, Handler
from residentd.apps.kv.errors import KvError


@dataclass(slots=True)
class Command:
    name: str  # lower case; "config|get" for a subcommand
    handler: Handler
    arity: int
    flags: tuple[str, ...]
    group: str
    summary: str
    since: str = "1.0.0"
    keys: tuple[int, int, int] = (0, 0, 0)  # first key, last key, step (COMMAND INFO)
    subscribed_ok: bool = False  # allowed while a RESP2 client is subscribed
    queued: bool = True  # queued inside MULTI (False: runs at once, like EXEC)
    subcommands: dict[bytes, Command] = field(default_factory=dict)

    def arity_ok(self, count: int) -> bool:
        arity = self.arity
        return count == arity if arity > 0 else count >= -arity


COMMANDS: dict[str, Command] = {}


def command(
    name: str,
    arity: int,
    flags: str,
    group: str,
    summary: str,
    *,
    since: str = "1.0.0",
    keys: tuple[int, int, int] = (1, 1, 1),
    subscribed_ok: bool = False,
    queued: bool = True,
) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``name``."""

    def register(handler: Handler) -> Handler:
        COMMANDS[name] = Command(
            name,
            handler,
            arity,
            tuple(flags.split()),
            group,
            summary,
            since,
            keys,
            subscribed_ok,
            queued,
        )
        return handler

    return register


def container(
    name: str,
    flags: str,
    group: str,
    summary: str,
    *,
    since: str = "1.0.0",
    bare: Handler | None = None,
) -> None:
    """Register ``name`` as a command made of subcommands (``subcommand`` fills it); ``bare``
    handles the command given without one (``COMMAND``), which is otherwise an arity error."""
    subcommands: dict[bytes, Command] = {}

    def handler(session: Client, argv: list[bytes]) -> bytes:
        if len(argv) == 1 and bare is not None:
            return bare(session, argv)
        sub = subcommands.get(argv[1].lower())
        if sub is None:
            raise KvError(errors.unknown_subcommand(argv[1], name))
        if not sub.arity_ok(len(argv)):
            raise KvError(errors.wrong_arity(sub.name))
        return sub.handler(session, argv)

    COMMANDS[name] = Command(
        name,
        handler,
        -1 if bare is not None else -2,
        tuple(flags.split()),
        group,
        summary,
        since,
        (0, 0, 0),
        subcommands=subcommands,
    )


def subcommand(
    parent: str,
    name: str,
    arity: int,
    flags: str,
    summary: str,
    *,
    since: str = "1.0.0",
) -> Callable[[Handler], Handler]:
    """Register the decorated function as ``PARENT NAME`` (the container must exist)."""

    def register(handler: Handler) -> Handler:
        owner = COMMANDS[parent]
        owner.subcommands[name.encode()] = Command(
            f"{parent}|{name}",
            handler,
            arity,
            tuple(flags.split()),
            owner.group,
            summary,
            since,
            (0, 0, 0),
        )
        return handler

    return register


def help_subcommand(parent: str, lines: list[str]) -> None:
    """Register ``PARENT HELP``, answering ``lines`` as Redis's ``addReplyHelp`` does: an
    array of status replies."""
    reply = b"*%d\r\n" % len(lines) + b"".join(b"+%b\r\n" % line.encode() for line in lines)

    def help_(session: Client, argv: list[bytes]) -> bytes:
        return reply

    subcommand(
        parent, "help", 2, "loading stale", "Returns helpful text about the different subcommands."
    )(help_)


def dispatch_table() -> dict[bytes, tuple[Handler, int, Command]]:
    """Command name (as sent in lower and in upper case) to (handler, arity, command): the
    session finds a command with one dict lookup for either spelling."""
    table: dict[bytes, tuple[Handler, int, Command]] = {}
    for name, cmd in COMMANDS.items():
        entry = (cmd.handler, cmd.arity, cmd)
        table[name.encode()] = entry
        table[name.upper().encode()] = entry
    return table
