"""redis-py against kv: every string, key, hash, list and set command, with its options and
its errors as redis-py raises them."""

from __future__ import annotations

import pytest
import redis
from redis.exceptions import ResponseError


def test_strings(r: redis.Redis) -> None:
    assert r.get("k") is None
    assert r.set("k", "v") is True
    assert r.get("k") == b"v"
    assert r.set("k", "w", nx=True) is None
    assert r.set("k", "w", xx=True) is True
    assert r.set("nope", "w", xx=True) is None
    assert r.set("k", "x", get=True) == b"w"
    assert r.getset("k", "y") == b"x"
    assert r.getset("new", "1") is None
    assert r.mset({"a": "1", "b": "2"}) is True
    assert r.mget("a", "b", "c") == [b"1", b"2", None]
    assert r.setnx("a", "9") is False
    assert r.setnx("c", "3") is True
    assert r.append("c", "45") == 3
    assert r.append("fresh", "ab") == 2
    assert r.strlen("c") == 3
    assert r.strlen("none") == 0
    binary = bytes(range(256)) * 10
    r.set(b"\x00key\r\n", binary)
    assert r.get(b"\x00key\r\n") == binary


def test_counters(r: redis.Redis) -> None:
    assert r.incr("n") == 1
    assert r.incrby("n", 10) == 11
    assert r.decr("n") == 10
    assert r.decrby("n", 15) == -5
    assert r.get("n") == b"-5"
    for text in ("abc", "01", "00", "+1", " 1", "1 ", "\u0661", "9" * 20):
        r.set("s", text)
        with pytest.raises(ResponseError, match="value is not an integer or out of range"):
            r.incr("s")
    r.set("big", "123456789012345678")  # 18 digits, and 19 below
    assert r.incr("big") == 123456789012345679
    r.set("big", "1234567890123456789")
    assert r.incr("big") == 1234567890123456790
    r.set("max", 2**63 - 1)
    with pytest.raises(ResponseError, match="increment or decrement would overflow"):
        r.incr("max")
    r.rpush("l", "x")
    with pytest.raises(redis.exceptions.ResponseError, match=r"^WRONGTYPE"):
        r.incr("l")


def test_set_expiry_options(r: redis.Redis) -> None:
    r.set("ex", "v", ex=100)
    assert 99 <= r.ttl("ex") <= 100
    r.set("px", "v", px=100_000)
    assert 99_000 < r.pttl("px") <= 100_000
    r.set("px", "w", keepttl=True)
    assert r.pttl("px") > 99_000
    r.set("px", "z")
    assert r.ttl("px") == -1
    r.set("at", "v", exat=2_000_000_000)
    assert r.ttl("at") > 0
    r.set("pat", "v", pxat=1)
    assert r.get("pat") is None
    with pytest.raises(ResponseError, match="invalid expire time in 'set' command"):
        r.set("k", "v", ex=0)


def test_keys(r: redis.Redis) -> None:
    r.mset({"a": "1", "b": "2", "c": "3"})
    assert r.delete("a", "zz") == 1
    assert r.exists("a", "b", "b") == 2
    assert r.type("b") == b"string"
    assert r.type("zz") == b"none"
    assert r.rename("b", "d") is True
    with pytest.raises(ResponseError, match="no such key"):
        r.rename("b", "e")
    r.hset("h", "f", "v")
    r.rpush("l", "x")
    r.sadd("s", "m")
    assert [r.type(key) for key in ("h", "l", "s")] == [b"hash", b"list", b"set"]
    assert sorted(r.keys()) == [b"c", b"d", b"h", b"l", b"s"]
    assert sorted(r.keys("[cd]")) == [b"c", b"d"]
    assert r.keys("nothing*") == []


def test_expire_ttl_persist(r: redis.Redis) -> None:
    r.set("k", "v")
    assert r.ttl("k") == -1
    assert r.ttl("missing") == -2
    assert r.pttl("missing") == -2
    assert r.expire("k", 100) is True
    assert 99 <= r.ttl("k") <= 100
    assert r.expire("k", 50, gt=True) is False
    assert r.expire("k", 50, lt=True) is True
    assert r.expire("k", 10, nx=True) is False
    assert r.pexpire("k", 20_000, xx=True) is True
    assert 19_000 < r.pttl("k") <= 20_000
    assert r.persist("k") is True
    assert r.persist("k") is False
    assert r.expire("missing", 10) is False
    assert r.expire("k", -1) is True
    assert r.exists("k") == 0


def test_scan_walks_every_key_once(r: redis.Redis) -> None:
    keys = {f"key:{i}".encode() for i in range(1000)}
    r.mset({key: "v" for key in keys})
    r.rpush("list:1", "x")
    seen: list[bytes] = []
    cursor = 0
    while True:
        cursor, batch = r.scan(cursor, count=37)
        seen += batch
        if cursor == 0:
            break
    assert sorted(seen) == sorted(keys | {b"list:1"})
    assert set(r.scan_iter(match="key:99*")) == {b"key:99", *(b"key:99%d" % i for i in range(10))}
    assert list(r.scan_iter(_type="list")) == [b"list:1"]


def test_scan_sees_keys_present_throughout_despite_changes(r: redis.Redis) -> None:
    r.mset({f"stay:{i}": "v" for i in range(500)})
    r.mset({f"go:{i}": "v" for i in range(500)})
    seen: set[bytes] = set()
    cursor, batch = r.scan(0, count=100)
    seen.update(batch)
    r.delete(*[f"go:{i}" for i in range(500)])
    r.mset({f"new:{i}": "v" for i in range(500)})
    while cursor:
        cursor, batch = r.scan(cursor, count=100)
        seen.update(batch)
    assert {f"stay:{i}".encode() for i in range(500)} <= seen
    assert not any(key.startswith(b"go:") for key in seen - set(r.keys("go:*")))


def test_hashes(r: redis.Redis) -> None:
    assert r.hset("h", mapping={"a": "1", "b": "2"}) == 2
    assert r.hset("h", "a", "3") == 0
    assert r.hget("h", "a") == b"3"
    assert r.hget("h", "zz") is None
    assert r.hmget("h", ["a", "zz", "b"]) == [b"3", None, b"2"]
    assert r.hgetall("h") == {b"a": b"3", b"b": b"2"}
    assert r.hgetall("none") == {}
    assert r.hlen("h") == 2
    assert r.hincrby("h", "n", 5) == 5
    assert r.hincrby("h", "n", -2) == 3
    r.hset("h", "t", "text")
    with pytest.raises(ResponseError, match="hash value is not an integer"):
        r.hincrby("h", "t", 1)
    assert r.hdel("h", "a", "b", "n", "t", "zz") == 4
    assert r.exists("h") == 0
    r.set("s", "v")
    with pytest.raises(ResponseError, match=r"^WRONGTYPE"):
        r.hget("s", "f")


def test_lists(r: redis.Redis) -> None:
    assert r.lpush("l", "a", "b") == 2
    assert r.rpush("l", "c", "d") == 4
    assert r.lrange("l", 0, -1) == [b"b", b"a", b"c", b"d"]
    assert r.llen("l") == 4
    assert r.lpop("l") == b"b"
    assert r.rpop("l") == b"d"
    assert r.lpop("l", 5) == [b"a", b"c"]
    assert r.exists("l") == 0
    assert r.lpop("l") is None
    assert r.rpop("l", 2) is None
    r.rpush("big", *range(1000))
    assert r.lrange("big", 990, 2000) == [str(i).encode() for i in range(990, 1000)]
    assert r.lrange("big", -3, -1) == [b"997", b"998", b"999"]
    assert r.lrange("big", 500, 502) == [b"500", b"501", b"502"]
    assert r.lrange("big", 5, 2) == []
    with pytest.raises(ResponseError, match="must be positive"):
        r.lpop("big", -1)


def test_sets(r: redis.Redis) -> None:
    assert r.sadd("s", "a", "b", "a") == 2
    assert r.sadd("s", "c") == 1
    assert r.smembers("s") == {b"a", b"b", b"c"}
    assert r.sismember("s", "a")
    assert not r.sismember("s", "z")
    assert r.scard("s") == 3
    assert r.srem("s", "a", "z") == 1
    assert r.srem("s", "b", "c") == 2
    assert r.exists("s") == 0
    assert r.smembers("none") == set()
    assert r.scard("none") == 0


def test_errors_word_for_word(r: redis.Redis) -> None:
    with pytest.raises(ResponseError) as caught:
        r.execute_command("GET")
    assert str(caught.value) == "wrong number of arguments for 'get' command"
    with pytest.raises(ResponseError) as caught:
        r.execute_command("FOO", "a", "b")
    assert str(caught.value) == "unknown command 'FOO', with args beginning with: 'a' 'b' "
    r.rpush("l", "x")
    with pytest.raises(ResponseError) as caught:
        r.get("l")
    assert str(caught.value) == "WRONGTYPE Operation against a key holding the wrong kind of value"
    with pytest.raises(ResponseError) as caught:
        r.incrby("n", "x")  # type: ignore[arg-type]
    assert str(caught.value) == "value is not an integer or out of range"
