"""Connection commands: PING, ECHO, QUIT, SELECT, AUTH, HELLO, RESET and CLIENT ID, SETNAME,
GETNAME, INFO, LIST, KILL, REPLY, NO-EVICT and UNBLOCK.

SELECT switches the client to another of the ``databases`` databases (16 by default, as in
Redis). PING inside RESP2's subscribed mode answers with the
``["pong", message]`` array Redis uses there.

kv has Redis's ``default`` user only: with ``requirepass`` set (CONFIG SET), a new client is
refused every command but AUTH, HELLO, QUIT and RESET (the ``no_auth`` ones) until AUTH or
HELLO AUTH gives the password (session.py refuses them); without it, the default user takes
any password, as Redis's ``nopass`` user does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv import errors
from residentd.apps.kv.client import REPLY_OFF, REPLY_ON, REPLY_SKIP
from residentd.apps.kv.commands.common import database_arg, int_arg
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
    from residentd.apps.kv.roster import Listed

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
    s.select(database_arg(s, argv[1]).index)
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
            _authenticate(s, argv[i + 1], argv[i + 2])  # at once, as Redis 7.0 does
            i += 3
        elif option == b"SETNAME" and i + 1 < len(argv):
            name = argv[i + 1]
            if not _valid_name(name):
                raise KvError(errors.CLIENT_NAME)
            i += 2
        else:
            raise KvError(errors.hello_syntax(argv[i]))
    if not s.authenticated:
        raise KvError(errors.NOAUTH_HELLO)
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


@command(
    "auth",
    -2,
    "noscript loading stale fast no_auth sentinel allow_busy",
    "connection",
    "Authenticates the connection.",
    keys=(0, 0, 0),
)
def auth(s: Client, argv: list[bytes]) -> bytes:
    """AUTH [username] password, as the default user (Redis's only one in kv)."""
    if len(argv) > 3:
        raise KvError(errors.SYNTAX)
    if len(argv) == 2:
        if s.state.requirepass is None:
            raise KvError(errors.AUTH_WITHOUT_PASSWORD)
        _authenticate(s, b"default", argv[1])
    else:
        _authenticate(s, argv[1], argv[2])
    return OK


def _authenticate(s: Client, user: bytes, password: bytes) -> None:
    required = s.state.requirepass
    if user != b"default" or (required is not None and password != required):
        raise KvError(errors.WRONGPASS)
    s.authenticate()


@command(
    "reset",
    1,
    "noscript loading stale fast no_auth allow_busy",
    "connection",
    "Resets the connection.",
    since="6.2.0",
    keys=(0, 0, 0),
    subscribed_ok=True,
    queued=False,
)
def reset(s: Client, argv: list[bytes]) -> bytes:
    s.reset()
    return b"+RESET\r\n"


def _valid_name(name: bytes) -> bool:
    return all(0x21 <= byte <= 0x7E for byte in name)


container("client", "sentinel", "connection", "A container for client connection commands.")

# Redis 7.0's lines for the subcommands kv has.
_CLIENT_HELP = [
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "HELP",
    "    Prints this help.",
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
    "info",
    2,
    "loading stale",
    "Returns information about the connection.",
    since="6.2.0",
)
def client_info(s: Client, argv: list[bytes]) -> bytes:
    return bulk(s.describe().encode("latin-1") + b"\n")


_TYPES = {b"normal": False, b"pubsub": True, b"master": None, b"replica": None, b"slave": None}


def _of_type(clients: list[Listed], name: bytes) -> list[Listed]:
    """The clients of TYPE ``name``: pubsub or normal (kv has no replication clients)."""
    kind = name.lower()
    if kind not in _TYPES:
        raise KvError(errors.unknown_client_type(name))
    pubsub = _TYPES[kind]
    return [c for c in clients if pubsub is not None and c.subscribed == pubsub]


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


@subcommand(
    "client",
    "list",
    -2,
    "admin noscript loading stale",
    "Lists open connections.",
    since="2.4.0",
)
def client_list(s: Client, argv: list[bytes]) -> bytes:
    clients = list(s.state.clients.values())
    if len(argv) == 4 and argv[2].lower() == b"type":
        clients = _of_type(clients, argv[3])
    elif len(argv) > 3 and argv[2].lower() == b"id":
        wanted: dict[int, None] = {}
        for arg in argv[3:]:
            number = parse_int(arg)
            if number is None or number <= 0:
                raise KvError(errors.INVALID_CLIENT_ID)
            wanted[number] = None
        clients = [s.state.clients[i] for i in wanted if i in s.state.clients]
    elif len(argv) != 2:
        raise KvError(errors.SYNTAX)
    return bulk(b"".join(c.describe().encode("latin-1") + b"\n" for c in clients))


@subcommand(
    "client",
    "kill",
    -3,
    "admin noscript loading stale",
    "Terminates open connections.",
    since="2.4.0",
)
def client_kill(s: Client, argv: list[bytes]) -> bytes:
    """CLIENT KILL addr (the old form: +OK or no such client), or by filters (their count)."""
    clients = list(s.state.clients.values())
    if len(argv) == 3:
        found = [c for c in clients if c.peer.encode() == argv[2]][:1]
        if not found:
            raise KvError(errors.NO_SUCH_CLIENT)
        return _kill(s, found, OK)
    if len(argv) % 2:
        raise KvError(errors.SYNTAX)
    skip_me = True
    for i in range(2, len(argv), 2):
        option, value = argv[i].lower(), argv[i + 1]
        if option == b"id":
            number = parse_int(value)
            if number is None or number <= 0:
                raise KvError(errors.CLIENT_ID_NOT_POSITIVE)
            clients = [c for c in clients if c.id == number]
        elif option == b"type":
            clients = _of_type(clients, value)
        elif option == b"addr":
            clients = [c for c in clients if c.peer.encode() == value]
        elif option == b"laddr":
            clients = [c for c in clients if s.state.socket_of(c.id)[0].encode() == value]
        elif option == b"user":
            if value != b"default":
                raise KvError(errors.no_such_user(value))
        elif option == b"skipme" and value.lower() in (b"yes", b"no"):
            skip_me = value.lower() == b"yes"
        else:
            raise KvError(errors.SYNTAX)
    if skip_me:
        clients = [c for c in clients if c is not s]
    return _kill(s, clients, integer(len(clients)))


def _kill(s: Client, clients: list[Listed], reply: bytes) -> bytes:
    """Close ``clients``; the client itself last, after this reply (QUIT's way)."""
    for client in clients:
        if client is not s:
            client.kill()
    if any(client is s for client in clients):
        raise Quit(reply)
    return reply


@subcommand(
    "client",
    "reply",
    3,
    "loading stale",
    "Instructs the server whether to reply to commands.",
    since="3.2.0",
)
def client_reply(s: Client, argv: list[bytes]) -> bytes:
    mode = {b"on": REPLY_ON, b"off": REPLY_OFF, b"skip": REPLY_SKIP}.get(argv[2].lower())
    if mode is None:
        raise KvError(errors.SYNTAX)
    s.set_reply_mode(mode)
    return OK if mode == REPLY_ON else b""


@subcommand(
    "client",
    "no-evict",
    3,
    "admin noscript loading stale",
    "Sets the client eviction mode of the connection.",
    since="7.0.0",
)
def client_no_evict(s: Client, argv: list[bytes]) -> bytes:
    setting = argv[2].lower()
    if setting not in (b"on", b"off"):
        raise KvError(errors.SYNTAX)
    s.no_evict = setting == b"on"
    return OK


help_subcommand("client", _CLIENT_HELP)
