"""RESP3, byte for byte as redis-server 7.0 writes it: the same commands after ``HELLO 3`` to
kv and to a real redis-server, and the replies compared exactly (nulls, maps, sets, pushes,
replies inside EXEC, errors), in one pipeline and one command at a time."""

from __future__ import annotations

import re

from .helpers import Raw, resp

Command = tuple[str, ...]

PIPELINE: list[Command] = [
    ("SET", "s", "1"), ("GET", "s"), ("GET", "missing"), ("MGET", "s", "missing", "s"),
    ("INCR", "n"), ("LPUSH", "l", "a", "b"), ("LPOP", "missing"), ("RPOP", "missing", "2"),
    ("LRANGE", "l", "0", "-1"), ("LPOP", "l", "5"), ("HSET", "h", "f", "v", "g", "w"),
    ("HGETALL", "h"), ("HGETALL", "missing"), ("HMGET", "h", "f", "nope"), ("HGET", "h", "x"),
    ("SADD", "set", "only"), ("SMEMBERS", "set"), ("SMEMBERS", "missing"),
    ("CONFIG", "GET", "appendonly"), ("CONFIG", "GET", "no-such-parameter"),
    ("TTL", "s"), ("TYPE", "h"), ("EXISTS", "s", "missing"), ("ECHO", "x"), ("PING",),
    ("PING", "hi"), ("GETSET", "missing", "v"), ("LPUSH", "h", "x"), ("NOSUCHCOMMAND",),
    ("GET",), ("SCAN", "0", "MATCH", "nomatch*"), ("KEYS", "nomatch*"), ("DEL", "s"),
    ("SET", "a", "ohmytext"), ("SET", "b", "mynewtext"), ("LCS", "a", "b", "IDX"),
    ("LCS", "a", "b"), ("GETDEL", "missing"), ("MULTI",), ("HGETALL", "h"), ("GET", "missing"),
    ("SMEMBERS", "set"), ("INCR", "h"), ("EXEC",),
    ("ZADD", "z", "3", "c", "1", "a", "2", "b", "1.5", "x"), ("ZSCORE", "z", "x"),
    ("ZSCORE", "z", "nope"), ("ZMSCORE", "z", "a", "nope"), ("ZRANGE", "z", "0", "-1"),
    ("ZRANGE", "z", "0", "-1", "withscores"),
    ("ZREVRANGEBYSCORE", "z", "+inf", "-inf", "WITHSCORES"),
    ("ZRANGEBYSCORE", "z", "(1", "inf", "WITHSCORES", "LIMIT", "0", "2"),
    ("ZADD", "z", "INCR", "2", "q"), ("ZADD", "z", "XX", "INCR", "2", "nope"),
    ("ZADD", "z", "CH", "5", "incr"), ("ZINCRBY", "z", "0.25", "q"), ("ZPOPMIN", "z"),
    ("ZPOPMAX", "z", "2"), ("ZPOPMIN", "missing"), ("ZMPOP", "1", "z", "MIN", "COUNT", "2"),
    ("ZMPOP", "1", "missing", "MAX"), ("ZUNION", "1", "z", "WITHSCORES"), ("ZINTER", "1", "z"),
    ("ZDIFF", "1", "z", "WITHSCORES"), ("ZRANDMEMBER", "missing", "2", "WITHSCORES"),
    ("ZCARD", "z"), ("ZRANK", "z", "nope"), ("ZSCAN", "z", "0"), ("ZADD", "z", "1", "a"),
    ("SORT", "z", "BY", "nosort"), ("OBJECT", "ENCODING", "z"), ("MULTI",), ("GET",), ("EXEC",),
    ("DISCARD",), ("SADD", "t", "only"), ("SINTER", "set", "t"), ("SUNION", "t"),
    ("SDIFF", "t", "missing"), ("SPOP", "t", "1"), ("SPOP", "missing", "2"), ("SPOP", "missing"),
    ("HSET", "one", "f", "v"), ("HRANDFIELD", "one", "-2", "WITHVALUES"),
    ("HRANDFIELD", "one", "-1"), ("HRANDFIELD", "one"),
    ("HRANDFIELD", "missing", "2", "WITHVALUES"), ("HINCRBYFLOAT", "h", "n", "1.5"),
]  # fmt: skip


def _both(kv_port: int, redis_port: int, commands: list[Command], count: int) -> list[bytes]:
    """The replies of kv and of redis-server to ``commands`` after FLUSHALL and HELLO 3,
    checked equal; kv's."""
    got = []
    for port in (kv_port, redis_port):
        with Raw(port) as client:
            client.call("FLUSHALL")
            client.call("HELLO", "3")
            client.send(b"".join(resp(*command) for command in commands))
            got.append(client.replies(count))
    ours, theirs = got
    for command, mine, redis_reply in zip(commands, ours, theirs, strict=True):
        assert mine == redis_reply, command
    return ours


def test_a_pipeline_in_resp3_is_answered_as_redis_answers_it(
    kv_process: object, redis_port: int
) -> None:
    port = kv_process.port  # type: ignore[attr-defined]
    replies = _both(port, redis_port, PIPELINE, len(PIPELINE))
    assert replies[2] == b"_\r\n" and replies[11].startswith(b"%2\r\n")  # not vacuous
    one_by_one = []
    with Raw(port) as client:
        client.call("FLUSHALL")
        client.call("HELLO", "3")
        one_by_one = [client.call(*command) for command in PIPELINE]
    assert one_by_one == replies


def test_pubsub_in_resp3_is_pushes_and_other_commands_still_work(
    kv_process: object, redis_port: int
) -> None:
    port = kv_process.port  # type: ignore[attr-defined]
    transcripts = []
    for server in (port, redis_port):
        with Raw(server) as listener, Raw(server) as publisher:
            listener.call("HELLO", "3")
            seen = [listener.call("UNSUBSCRIBE")]  # none yet: a push with a null channel
            listener.send(resp("SUBSCRIBE", "c1", "c2"))
            seen += listener.replies(2)
            seen.append(listener.call("PSUBSCRIBE", "c*"))
            seen.append(listener.call("PING"))  # a plain PONG in RESP3, even subscribed
            seen.append(listener.call("GET", "missing"))
            assert publisher.call("PUBLISH", "c1", "hello") == b":2\r\n"
            seen += listener.replies(2)  # the message, then the pattern's
            listener.send(resp("UNSUBSCRIBE"))
            # Redis's order is its dict's: the two by channel name, the counts 2 then 1.
            first, second = listener.replies(2)
            assert first.endswith(b":2\r\n") and second.endswith(b":1\r\n")
            seen += sorted(reply[:-4] for reply in (first, second))
            seen.append(listener.call("PUNSUBSCRIBE", "c*"))
            transcripts.append(seen)
    ours, theirs = transcripts
    assert ours == theirs
    assert ours[4] == b"+PONG\r\n" and ours[6].startswith(b">3\r\n$7\r\nmessage\r\n")


def test_info_and_command_take_resp3_types(kv_process: object) -> None:
    port = kv_process.port  # type: ignore[attr-defined]
    with Raw(port) as client:
        client.call("HELLO", "3")
        info = client.call("INFO", "server")
        assert re.match(rb"=\d+\r\ntxt:# Server\r\n", info), info[:40]
        entry = client.call("COMMAND", "INFO", "get")
        # name, arity, flags (a set), first, last, step, categories (a set), ...
        assert re.match(rb"\*1\r\n\*10\r\n\$3\r\nget\r\n:2\r\n~\d+\r\n", entry), entry[:60]
        docs = client.call("COMMAND", "DOCS", "config")
        assert docs.startswith(b"%1\r\n$6\r\nconfig\r\n%") and b"$11\r\nsubcommands\r\n%" in docs


def test_the_converter_by_shape() -> None:
    from residentd.apps.kv.resp3 import DOUBLES, MAP, PAIRS, SET, VERBATIM, to_resp3

    flat = b"*4\r\n$1\r\na\r\n$3\r\n1.5\r\n$1\r\nb\r\n$3\r\ninf\r\n"
    assert to_resp3(flat, PAIRS) == (b"*2\r\n*2\r\n$1\r\na\r\n,1.5\r\n*2\r\n$1\r\nb\r\n,inf\r\n")
    assert to_resp3(flat, MAP) == b"%2\r\n" + flat[4:]
    assert to_resp3(b"*2\r\n$3\r\n2.5\r\n$-1\r\n", DOUBLES) == b"*2\r\n,2.5\r\n_\r\n"
    assert to_resp3(b"*0\r\n", SET) == b"~0\r\n"
    assert to_resp3(b"$2\r\nab\r\n", VERBATIM) == b"=6\r\ntxt:ab\r\n"
    # A nil only where RESP2 has one, not inside a value that holds the same bytes.
    tricky = b"$5\r\n$-1\r\n\r\n"
    assert to_resp3(tricky, None) == tricky
    assert to_resp3(b"*-1\r\n", None) == b"_\r\n"
    assert to_resp3(b"-ERR x\r\n:1\r\n", None) == b"-ERR x\r\n:1\r\n"
