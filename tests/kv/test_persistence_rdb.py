"""kv's RDB files: the CRC64 checksum, the writer and reader round trip, files redis-server
loads (key by key, types, values and times to live), and Redis's own dumps (listpack,
intset, quicklist, LZF) that kv loads."""

from __future__ import annotations

import io
import math
import os
import random
import time
from collections import deque
from pathlib import Path

import pytest

from residentd.apps.kv.persistence import crc64 as crc64_module
from residentd.apps.kv.persistence import encodings, rdb
from residentd.apps.kv.persistence.crc64 import crc64, crc64_python
from residentd.apps.kv.store import TYPE_NAMES
from residentd.apps.kv.zset import SortedSet

from .persistence_peers import dataset, redis_on


def test_crc64_is_redis_jones_crc() -> None:
    # crc64.c's test vector: crc64(0, "123456789") == 0xe9c6d914c4b8d9ca
    assert crc64(0, b"123456789") == 0xE9C6D914C4B8D9CA
    assert crc64_python(0, b"123456789") == 0xE9C6D914C4B8D9CA
    data = random.Random(7).randbytes(5000)
    assert crc64(crc64(0, data[:1234]), data[1234:]) == crc64_python(0, data)
    assert crc64_module.crc64(0, b"") == 0


def sample_keyspace() -> tuple[dict[bytes, object], dict[bytes, int]]:
    now = int(time.time() * 1000)
    data: dict[bytes, object] = {
        b"string": b"hello",
        b"number": b"-12345",
        b"empty-string": b"",
        b"big": os.urandom(70000),
        b"list": deque([b"a", b"", b"17", b"x" * 300]),
        b"long-list": deque(b"%d" % i for i in range(1000)),
        b"set": {b"a", b"b", b"42"},
        b"hash": {b"field": b"value", b"n": b"7", b"e": b""},
        b"wide-hash": {b"f%d" % i: b"v" * i for i in range(300)},
        b"ttl": b"soon",
        "ключ".encode(): b"\x00\xff\r\n",
        b"zset": SortedSet([(1.0, b"a"), (-2.5, b""), (math.inf, b"top"), (-math.inf, b"low")]),
        b"wide-zset": SortedSet([(i / 3, b"m%d" % i) for i in range(300)] + [(-0.0, b"zero")]),
    }
    return data, {b"ttl": now + 60_000, b"set": now + 120_000, b"zset": now + 90_000}


def _plain(value: object) -> object:
    """A value as redis-py reads it back."""
    if isinstance(value, deque):
        return list(value)
    if isinstance(value, SortedSet):
        return [(member, score) for score, member in value]
    return value


def test_round_trip() -> None:
    data, expires = sample_keyspace()
    out = io.BytesIO()
    rdb.dump(out, data, expires)
    blob = out.getvalue()
    assert blob.startswith(b"REDIS0010")
    assert rdb.load(blob) == (data, expires)


def test_keys_past_their_time_are_dropped_on_load() -> None:
    out = io.BytesIO()
    now = int(time.time() * 1000)
    rdb.dump(out, {b"gone": b"1", b"kept": b"2"}, {b"gone": now - 1, b"kept": now + 10_000})
    assert rdb.load(out.getvalue()) == ({b"kept": b"2"}, {b"kept": now + 10_000})


def test_a_flipped_byte_fails_the_checksum() -> None:
    out = io.BytesIO()
    rdb.dump(out, {b"key": b"value" * 10}, {})
    blob = bytearray(out.getvalue())
    blob[-20] ^= 0x01
    with pytest.raises(rdb.RdbError, match="checksum") as caught:
        rdb.load(bytes(blob))
    assert caught.value.offset == len(blob) - 8


@pytest.mark.parametrize("cut", [0, 5, 9, 40, -9, -1])
def test_a_truncated_file_is_refused(cut: int) -> None:
    out = io.BytesIO()
    rdb.dump(out, {b"key": b"value"}, {})
    with pytest.raises(rdb.RdbError):
        rdb.load(out.getvalue()[:cut])


def test_redis_server_loads_kvs_dump(tmp_path: Path) -> None:
    data, expires = sample_keyspace()
    with open(tmp_path / "dump.rdb", "wb") as out:
        rdb.dump(out, data, expires)
    with redis_on(str(tmp_path), "--dbfilename", "dump.rdb") as client:
        found = dataset(client)
    assert set(found) == set(data)
    for key, value in data.items():
        kind, loaded, ttl = found[key]
        assert loaded == _plain(value), key
        assert kind == TYPE_NAMES[type(value)]
        if key in expires:
            assert abs(ttl * 1000 - (expires[key] - time.time() * 1000)) < 2000
        else:
            assert ttl == -1


def test_kv_loads_redis_servers_dump(tmp_path: Path) -> None:
    members = [b"%d" % i for i in range(200)] + [b"x" * 10_000, b"-70000", b"5000000000"]
    with redis_on(str(tmp_path), "--dbfilename", "dump.rdb") as client:
        client.rpush("list", *members)  # quicklist 2: listpack nodes and a plain node
        client.rpush("short", "a", "1", "-5")
        client.sadd("intset", 1, 2, -3, 100_000, 2**40)
        client.sadd("strings", "a", "b")
        client.hset("listpack", mapping={"a": "1", "b": "x" * 30, "c": "-3000"})
        client.hset("table", mapping={str(i): "v" * i for i in range(600)})
        client.set("compressed", "ab" * 500)  # LZF
        client.set("integer", 12345678)  # an int-encoded string
        client.set("ttl", "v", px=100_000)
        client.set("expired", "v", px=300)
        client.zadd("small-zset", {"a": 1, "b": -2.5, "c": 1e300, "d": float("inf"), "e": 7})
        client.zadd("big-zset", {f"m{i}": i / 7 for i in range(200)} | {"x": float("-inf")})
        expected = dataset(client)
        client.save()
    time.sleep(0.4)
    data, expires = rdb.load((tmp_path / "dump.rdb").read_bytes())
    del expected[b"expired"]
    assert set(data) == set(expected)
    for key, (_, value, _) in expected.items():
        assert _plain(data[key]) == value, key
    assert set(expires) == {b"ttl"}


def test_listpack_integer_encodings() -> None:
    # A listpack by hand: 7-bit uint, 13-bit int, 16/24/32/64-bit ints, 6- and 12-bit strings.
    entries = [
        (b"\x05", b"5"),
        (bytes([0xC0 | 0x1F, 0xFF]), b"-1"),
        (b"\xf1" + (-300).to_bytes(2, "little", signed=True), b"-300"),
        (b"\xf2" + (70000).to_bytes(3, "little", signed=True), b"70000"),
        (b"\xf3" + (-(2**30)).to_bytes(4, "little", signed=True), b"%d" % -(2**30)),
        (b"\xf4" + (2**60).to_bytes(8, "little", signed=True), b"%d" % 2**60),
        (b"\x83abc", b"abc"),
        (bytes([0xE0 | 1, 0x2C]) + b"y" * 300, b"y" * 300),
    ]
    body = b""
    for encoded, _ in entries:
        size = len(encoded)
        back = bytes([size]) if size < 128 else bytes([size >> 7, 128 | (size & 127)])
        body += encoded + back
    blob = (6 + len(body) + 1).to_bytes(4, "little") + len(entries).to_bytes(2, "little")
    blob += body + b"\xff"
    assert encodings.listpack(blob) == [value for _, value in entries]
    with pytest.raises(ValueError):
        encodings.listpack(blob[:-1] + b"\x00")
