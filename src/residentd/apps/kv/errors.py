"""Redis's error replies, word for word, ready to send.

Clients match on these texts (redis-py maps ``WRONGTYPE`` and ``EXECABORT`` to exception
classes, people grep logs for them), so each one is copied from Redis 7's source and checked
against a real redis-server by tests/kv/test_conformance.py. The fixed ones are pre-encoded
constants; the ones that name a command or an argument are small functions. Like Redis's
``addReplyErrorFormat``, the functions turn CR and LF in what they quote into spaces, so a
reply never breaks the protocol.
"""

from __future__ import annotations

from residentd.codecs.resp import error
from residentd.errors import ResidentdError

WRONGTYPE = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
NOT_AN_INTEGER = b"-ERR value is not an integer or out of range\r\n"
SYNTAX = b"-ERR syntax error\r\n"
OVERFLOW = b"-ERR increment or decrement would overflow\r\n"
DECREMENT_OVERFLOW = b"-ERR decrement would overflow\r\n"
HASH_NOT_AN_INTEGER = b"-ERR hash value is not an integer\r\n"
NO_SUCH_KEY = b"-ERR no such key\r\n"
INVALID_CURSOR = b"-ERR invalid cursor\r\n"
DB_INDEX_OUT_OF_RANGE = b"-ERR DB index is out of range\r\n"
MUST_BE_POSITIVE = b"-ERR value is out of range, must be positive\r\n"
NOT_AN_INT32 = b"-ERR value is out of range, value must between -2147483648 and 2147483647\r\n"
STRING_TOO_LONG = b"-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n"
EXPIRE_OPTIONS = b"-ERR NX and XX, GT or LT options at the same time are not compatible\r\n"
EXPIRE_GT_LT = b"-ERR GT and LT options at the same time are not compatible\r\n"
CLIENT_NAME = b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
EXEC_WITHOUT_MULTI = b"-ERR EXEC without MULTI\r\n"
DISCARD_WITHOUT_MULTI = b"-ERR DISCARD without MULTI\r\n"
NESTED_MULTI = b"-ERR MULTI calls can not be nested\r\n"
NOPROTO = b"-NOPROTO unsupported protocol version\r\n"
PROTOCOL_VERSION = b"-ERR Protocol version is not an integer or out of range\r\n"
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
EXECABORT = b"-EXECABORT Transaction discarded because of previous errors.\r\n"


def _quote(data: bytes, limit: int = 128) -> bytes:
    """An argument as C's ``%.128s`` prints it: at most ``limit`` bytes, up to a NUL."""
    return data[:limit].split(b"\0", 1)[0]


def wrong_arity(name: str) -> bytes:
    return error(f"ERR wrong number of arguments for '{name}' command")


def unknown_command(argv: list[bytes]) -> bytes:
    args = b""
    for arg in argv[1:]:
        if len(args) >= 128:
            break
        args += b"'%b' " % _quote(arg, 128 - len(args))
    return error(
        b"ERR unknown command '%b', with args beginning with: %b" % (_quote(argv[0]), args)
    )


def unknown_subcommand(subcommand: bytes, container: str) -> bytes:
    return error(
        b"ERR unknown subcommand '%b'. Try %b HELP."
        % (_quote(subcommand), container.upper().encode())
    )


def hello_syntax(option: bytes) -> bytes:
    return error(b"ERR Syntax error in HELLO option '%b'" % _quote(option))


def invalid_expire(name: str) -> bytes:
    return error(f"ERR invalid expire time in '{name}' command")


def unsupported_option(option: bytes) -> bytes:
    return error(b"ERR Unsupported option %b" % _quote(option))


def not_in_subscribed_context(name: str) -> bytes:
    return error(
        f"ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
        "RESET are allowed in this context"
    )


class ReplyError(ResidentdError):
    """Raised by a handler (or a helper it calls) to answer with ``reply``, an encoded error,
    instead of a result; the session sends it. Errors are the rare path, so handlers read as
    straight lines and pay for the exception only when there is one."""

    def __init__(self, reply: bytes) -> None:
        super().__init__(reply)
        self.reply = reply


class Quit(ResidentdError):
    """Raised by QUIT's handler: the session answers +OK to it, sends what the pipeline has
    answered so far, and closes; the commands after QUIT are not run, as in Redis."""
