"""Redis's error replies, word for word, ready to send, and the one way a handler sends them.

Clients match on these texts (redis-py maps ``WRONGTYPE`` and ``EXECABORT`` to exception
classes, people grep logs for them), so each one is copied from Redis 7's source and checked
against a real redis-server by tests/kv/test_conformance.py. Every error text kv answers is
defined here, once: the fixed ones as pre-encoded constants, the ones that name a command or
an argument as small functions. Like Redis's ``addReplyErrorFormat``, the functions turn CR and
LF in what they quote into spaces, so a reply never breaks the protocol.

A handler answers an error by raising ``KvError`` with one of these replies (never by returning
it): the session, MULTI's EXEC and the journal's replay catch it and answer its ``reply``.
Errors are the rare path, so handlers read as straight lines and pay for the exception only
when there is one.
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
WATCH_IN_MULTI = b"-ERR WATCH inside MULTI is not allowed\r\n"
SAME_OBJECT = b"-ERR source and destination objects are the same\r\n"
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
NOAUTH = b"-NOAUTH Authentication required.\r\n"
NOAUTH_EXEC = b"-EXECABORT Transaction discarded because of: NOAUTH Authentication required.\r\n"
NOAUTH_HELLO = (
    b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO "
    b"AUTH <user> <pass> option can be used to authenticate the client and select the RESP "
    b"protocol version at the same time\r\n"
)
AUTH_WITHOUT_PASSWORD = (
    b"-ERR AUTH <password> called without any password configured for the default user. "
    b"Are you sure your configuration is correct?\r\n"
)
NO_SUCH_CLIENT = b"-ERR No such client\r\n"
INVALID_CLIENT_ID = b"-ERR Invalid client ID\r\n"
CLIENT_ID_NOT_POSITIVE = b"-ERR client-id should be greater than 0\r\n"
EXECABORT = b"-EXECABORT Transaction discarded because of previous errors.\r\n"

# Hashes and sets (Redis 7.0's t_hash.c and t_set.c).
NOT_A_FLOAT = b"-ERR value is not a valid float\r\n"
HASH_NOT_A_FLOAT = b"-ERR hash value is not a float\r\n"
NAN_OR_INFINITY = b"-ERR value is NaN or Infinity\r\n"
INCREMENT_NAN_OR_INFINITY = b"-ERR increment would produce NaN or Infinity\r\n"
OUT_OF_RANGE = b"-ERR value is out of range\r\n"
COUNT_OUT_OF_RANGE = (
    b"-ERR value is out of range, value must between -9223372036854775807 and "
    b"9223372036854775807\r\n"
)
NUMKEYS_NOT_POSITIVE = b"-ERR numkeys should be greater than 0\r\n"
NUMKEYS_TOO_MANY = b"-ERR Number of keys can't be greater than number of args\r\n"
LIMIT_NEGATIVE = b"-ERR LIMIT can't be negative\r\n"

# Persistence (Redis 7.0's rdb.c, aof.c and server.c).
BGSAVE_RUNNING = b"-ERR Background save already in progress\r\n"
REWRITE_RUNNING = b"-ERR Background append only file rewriting already in progress\r\n"
BGSAVE_DURING_REWRITE = (
    b"-ERR An AOF log rewriting in progress: can't BGSAVE right now. Use BGSAVE SCHEDULE in "
    b"order to schedule a BGSAVE whenever possible.\r\n"
)
REWRITE_WITHOUT_AOF = b"-ERR Background append only file rewriting error: appendonly is no\r\n"
SAVE_FAILED = b"-ERR\r\n"
MISCONF_RDB = (
    b"-MISCONF Redis is configured to save RDB snapshots, but it's currently unable to "
    b"persist to disk. Commands that may modify the data set are disabled, because this "
    b"instance is configured to report errors during writes if RDB snapshotting fails "
    b"(stop-writes-on-bgsave-error option). Please check the Redis logs for details about "
    b"the RDB error.\r\n"
)
MISCONF_AOF_PREFIX = b"-MISCONF Errors writing to the AOF file: "

# Sorted sets (Redis 7.0's t_zset.c).
XX_AND_NX = b"-ERR XX and NX options at the same time are not compatible\r\n"
GT_LT_NX = b"-ERR GT, LT, and/or NX options at the same time are not compatible\r\n"
INCR_PAIRS = b"-ERR INCR option supports a single increment-element pair\r\n"
NAN_RESULT = b"-ERR resulting score is not a number (NaN)\r\n"
NOT_A_FLOAT = b"-ERR value is not a valid float\r\n"
WEIGHT_NOT_A_FLOAT = b"-ERR weight value is not a float\r\n"
BAD_SCORE_RANGE = b"-ERR min or max is not a float\r\n"
BAD_LEX_RANGE = b"-ERR min or max not valid string range item\r\n"
LIMIT_WITHOUT_BY = (
    b"-ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX\r\n"
)
WITHSCORES_BYLEX = b"-ERR syntax error, WITHSCORES not supported in combination with BYLEX\r\n"
NUMKEYS = b"-ERR numkeys should be greater than 0\r\n"
COUNT_POSITIVE = b"-ERR count should be greater than 0\r\n"
LIMIT_NEGATIVE = b"-ERR LIMIT can't be negative\r\n"
OUT_OF_RANGE_PLAIN = b"-ERR value is out of range\r\n"

# HyperLogLog (Redis 7.0's hyperloglog.c).
NOT_AN_HLL = b"-WRONGTYPE Key is not a valid HyperLogLog string value.\r\n"
INVALID_HLL = b"-INVALIDOBJ Corrupted HLL object detected\r\n"

# DUMP and RESTORE (Redis 7.0's cluster.c).
BAD_PAYLOAD = b"-ERR DUMP payload version or checksum are wrong\r\n"
BAD_DATA_FORMAT = b"-ERR Bad data format\r\n"
BUSYKEY = b"-BUSYKEY Target key name already exists.\r\n"
INVALID_TTL = b"-ERR Invalid TTL value, must be >= 0\r\n"
INVALID_IDLETIME = b"-ERR Invalid IDLETIME value, must be >= 0\r\n"
INVALID_FREQ = b"-ERR Invalid FREQ value, must be >= 0 and <= 255\r\n"

# Geo (Redis 7.0's geo.c).
GEO_UNIT = b"-ERR unsupported unit provided. please use M, KM, FT, MI\r\n"
GEO_NO_MEMBER = b"-ERR could not decode requested zset member\r\n"
GEO_NEED_RADIUS = b"-ERR need numeric radius\r\n"
GEO_NEGATIVE_RADIUS = b"-ERR radius cannot be negative\r\n"
GEO_NEED_WIDTH = b"-ERR need numeric width\r\n"
GEO_NEED_HEIGHT = b"-ERR need numeric height\r\n"
GEO_NEGATIVE_BOX = b"-ERR height or width cannot be negative\r\n"
GEO_COUNT = b"-ERR COUNT must be > 0\r\n"
GEO_ANY = b"-ERR the ANY argument requires COUNT argument\r\n"

# Scripting (Redis 7.0's eval.c and script.c).
NOSCRIPT = b"-NOSCRIPT No matching script. Please use EVAL.\r\n"
NUMKEYS_NEGATIVE = b"-ERR Number of keys can't be negative\r\n"
NUMKEYS_TOO_MANY = b"-ERR Number of keys can't be greater than number of args\r\n"
SCRIPT_FLUSH_OPTION = b"-ERR SCRIPT FLUSH only support SYNC|ASYNC option\r\n"
BUSY = (
    b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"
)
NOTBUSY = b"-NOTBUSY No scripts in execution right now.\r\n"
UNKILLABLE = (
    b"-UNKILLABLE Sorry the script already executed write commands against the dataset. You "
    b"can either wait the script termination or kill the server in a hard way using the "
    b"SHUTDOWN NOSAVE command.\r\n"
)


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


def subcommand_syntax(subcommand: bytes, container: str) -> bytes:
    """Redis's ``addReplySubcommandSyntaxError``: a subcommand given the wrong arguments."""
    return error(
        b"ERR unknown subcommand or wrong number of arguments for '%b'. Try %b HELP."
        % (_quote(subcommand), container.upper().encode())
    )


def hello_syntax(option: bytes) -> bytes:
    return error(b"ERR Syntax error in HELLO option '%b'" % _quote(option))


def invalid_expire(name: str) -> bytes:
    return error(f"ERR invalid expire time in '{name}' command")


def unsupported_option(option: bytes) -> bytes:
    return error(b"ERR Unsupported option %b" % _quote(option))


def no_input_keys(name: str) -> bytes:
    return error(f"ERR at least 1 input key is needed for '{name}' command")


def out_of_range(low: int, high: int) -> bytes:
    return error(f"ERR value is out of range, value must between {low} and {high}")


def misconf_aof(reason: str) -> bytes:
    return error(MISCONF_AOF_PREFIX[1:] + reason.encode())


def config_set_failed(name: str, reason: str) -> bytes:
    return error(f"ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")


def config_set_unknown(name: bytes) -> bytes:
    return error(b"ERR Unknown option or number of arguments for CONFIG SET - '%b'" % name)


def unknown_client_type(name: bytes) -> bytes:
    return error(b"ERR Unknown client type '%b'" % _quote(name))


def no_such_user(name: bytes) -> bytes:
    return error(b"ERR No such user '%b'" % _quote(name))


def not_in_subscribed_context(name: str) -> bytes:
    return error(
        f"ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
        "RESET are allowed in this context"
    )


def invalid_position(longitude: float, latitude: float) -> bytes:
    return error(b"ERR invalid longitude,latitude pair %f,%f" % (longitude, latitude))


def geo_store_with(searchstore: bool) -> bytes:
    what = "GEOSEARCHSTORE" if searchstore else "STORE option in GEORADIUS"
    return error(f"ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options")


def geo_exactly_one(options: bytes, name: bytes) -> bytes:
    return error(b"ERR exactly one of %b can be specified for %b" % (options, _quote(name)))


class KvError(ResidentdError):
    """Raised by a handler (or a helper it calls) to answer with ``reply``, one of the encoded
    errors above, instead of a result; whoever ran the handler sends it."""

    def __init__(self, reply: bytes) -> None:
        super().__init__(reply)
        self.reply = reply


class Quit(ResidentdError):
    """Raised by QUIT's handler: the session answers +OK to it, sends what the pipeline has
    answered so far, and closes; the commands after QUIT are not run, as in Redis. CLIENT KILL
    of the client itself raises it with its own reply."""

    def __init__(self, reply: bytes = b"+OK\r\n") -> None:
        super().__init__("quit")
        self.reply = reply
