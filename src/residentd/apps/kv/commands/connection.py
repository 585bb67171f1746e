"""Connection commands: PING, ECHO, QUIT, SELECT and CLIENT ID/SETNAME/GETNAME/UNBLOCK.

kv has one database, so SELECT accepts 0 only and answers any other index as a Redis
configured with ``databases 1`` would. PING inside RESP2's subscribed mode answers with the
``["pong", message]`` array Redis uses there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv import errors
from residentd.apps.kv.commands.common import int_arg
from residentd.apps.kv.commands.registry import command, container, help_subcommand, subcommand
from residentd.apps.kv.errors import KvError, Quit
from residentd.apps.kv.info import REDIS_VERSION
from residentd.codecs.resp import (
    EMPTY_ARRAY,
    NIL,
    OK,
    PONG,
    array,
    bulk,
    integer,
    parse_int,
)

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client

_SUBSCRIBED_PONG = b"*2\r\n$4\r\npong\r\n"


@command(
    "ping",
    -1,
    "fast sentinel",
    "connection",
    "Returns the server's liveliness response.",
    keys=(0, 0, 0),
    subscribed_ok=True,
)
def ping(s: Client, argv: list[bytes]) -> bytes:
    if len(argv) > 2:
        raise KvError(errors.wrong_arity("ping"))
    if s.subscribed and s.resp == 2:  # RESP3 tells pushes from replies: a plain PONG
        return _SUBSCRIBED_PONG + bulk(argv[1] if len(argv) == 2 else b"")
    return bulk(argv[1]) if len(argv) == 2 else PONG


@command("echo", 2, "fast", "connection", "Returns the given string.", keys=(0, 0, 0))
def echo(s: Client, argv: list[bytes]) -> bytes:
    return bulk(argv[1])


@command(
    "quit",
    -1,
    "allow_busy noscript loading stale fast no_auth",
    "connection",
    "Closes the connection.",
    keys=(0, 0, 0),
    subscribed_ok=True,
    queued=False,
)
def quit_(s: Client, argv: list[bytes]) -> bytes:
    raise Quit


@command(
    "select",
    2,
    "loading stale fast",
    "connection",
    "Changes the selected database.",
    keys=(0, 0, 0),
)
def select(s: Client, argv: list[bytes]) -> bytes:
    index = int_arg(argv[1])
    if not -(2**31) <= index < 2**31:
        raise KvError(errors.NOT_AN_INT32)
    if index != 0:
        raise KvError(errors.DB_INDEX_OUT_OF_RANGE)
    return OK


@command(
    "hello",
    -1,
    "noscript loading stale fast no_auth sentinel allow_busy",
    "connection",
    "Handshakes with the Redis server.",
    since="6.0.0",
    keys=(0, 0, 0),
)
def hello(s: Client, argv: list[bytes]) -> bytes:
    """HELLO [protover [AUTH username password] [SETNAME name]], checked in Redis's order:
    the version, then each option in turn (credentials as they come). Version 3 switches the
    client to RESP3, this reply included (a map then: resp3.py)."""
    version = 2
    if len(argv) >= 2:
        parsed = parse_int(argv[1])
        if parsed is None:
            raise KvError(errors.PROTOCOL_VERSION)
        if parsed not in (2, 3):
            raise KvError(errors.NOPROTO)
        version = parsed
    name = s.name
    i = 2
    while i < len(argv):
        option = argv[i].upper()
        if option == b"AUTH" and i + 2 < len(argv):
            if argv[i + 1] != b"default":
                raise KvError(errors.WRONGPASS)
            i += 3
        elif option == b"SETNAME" and i + 1 < len(argv):
            name = argv[i + 1]
            if not _valid_name(name):
                raise KvError(errors.CLIENT_NAME)
            i += 2
        else:
            raise KvError(errors.hello_syntax(argv[i]))
    s.name = name or None
    s.set_protocol(version)
    fields = [
        bulk(b"server"),
        bulk(b"redis"),
        bulk(b"version"),
        bulk(REDIS_VERSION.encode()),
        bulk(b"proto"),
        integer(version),
        bulk(b"id"),
        integer(s.id),
        bulk(b"mode"),
        bulk(b"standalone"),
        bulk(b"role"),
        bulk(b"master"),
        bulk(b"modules"),
        EMPTY_ARRAY,
    ]
    # In the protocol just chosen: a map in RESP3 (resp3.SHAPES says it is converted).
    return b"%%%d\r\n" % (len(fields) // 2) + b"".join(fields) if version == 3 else array(fields)


def _valid_name(name: bytes) -> bool:
    return all(0x21 <= byte <= 0x7E for byte in name)


container("client", "sentinel", "connection", "A container for client connection commands.")

_CLIENT_HELP = [
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "HELP",
    "    Print this help.",
]


@subcommand("client", "id", 2, "loading stale", "Returns the unique client ID of the connection.")
def client_id(s: Client, argv: list[bytes]) -> bytes:
    return integer(s.id)


@subcommand("client", "getname", 2, "loading stale", "Returns the name of the connection.")
def client_getname(s: Client, argv: list[bytes]) -> bytes:
    return NIL if s.name is None else bulk(s.name)


@subcommand("client", "setname", 3, "loading stale", "Sets the connection name.")
def client_setname(s: Client, argv: list[bytes]) -> bytes:
    name = argv[2]
    if not _valid_name(name):
        raise KvError(errors.CLIENT_NAME)
    s.name = name or None
    return OK


UNBLOCKED = b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"


@subcommand(
    "client",
    "unblock",
    -3,
    "loading stale",
    "Unblocks a client blocked by a blocking command from a different connection.",
    since="5.0.0",
)
def client_unblock(s: Client, argv: list[bytes]) -> bytes:
    """Answer a client blocked on keys as its timeout would (TIMEOUT, the default) or with an
    -UNBLOCKED error (ERROR); 1 if it was blocked."""
    if len(argv) > 4:
        raise KvError(
            b"-ERR unknown subcommand or wrong number of arguments for '%b'. Try CLIENT HELP.\r\n"
            % argv[1][:128]
        )
    reply = None
    if len(argv) == 4:
        reason = argv[3].lower()
        if reason == b"error":
            reply = UNBLOCKED
        elif reason != b"timeout":
            raise KvError(b"-ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR\r\n")
    return integer(s.state.blocking.unblock(int_arg(argv[2]), reply))


help_subcommand("client", _CLIENT_HELP)
