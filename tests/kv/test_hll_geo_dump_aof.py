"""The HyperLogLog, geo and RESTORE commands are journaled so that kv restarted on its AOF, and
a real redis-server loading the same folder, both find what kv held: HLL strings byte for
byte, geo sets with their scores, restored keys with their times to live. A RESTORE with a
relative time to live is logged with the absolute one and ABSTTL; one whose time has passed
as the DEL of the key it replaced; a PFCOUNT that cached its count in the value is logged (so
the bytes are the same after a restart); a PFADD that changed nothing and a GEORADIUS without
STORE, or that stored nothing, are not logged."""

from __future__ import annotations

import struct
import time
from pathlib import Path

from residentd.apps.kv.persistence.crc64 import crc64

from .persistence_peers import dataset, redis_on, same_dataset
from .test_persistence_aof import ALWAYS, client, incr_file, kv_on, matches


def _payload(body: bytes) -> bytes:
    data = body + struct.pack("<H", 10)
    return data + struct.pack("<Q", crc64(0, data))


def test_restart_and_redis_load_the_same_data(tmp_path: Path) -> None:
    payload = _payload(b"\x00\x03abc")
    with kv_on(tmp_path, *ALWAYS) as daemon:
        r = client(daemon)
        r.pfadd("hll", *[f"e{i}" for i in range(2000)])  # promoted to dense
        r.pfadd("hll", "e1")  # nothing changed: not logged
        r.pfadd("small", "a", "b", "c")
        r.pfmerge("merged", "hll", "small")
        assert r.pfcount("small") == 3  # the count cached in the value: logged, as Redis does
        assert r.pfcount("small") == 3  # already cached: not logged
        r.georadius("geo", 15, 37, 1, unit="km", store="nothing")  # stored nothing: not logged
        r.geoadd("geo", (13.361389, 38.115556, "Palermo"), (15.087269, 37.502669, "Catania"))
        r.georadius("geo", 15, 37, 200, unit="km")  # a query: not logged
        r.georadius("geo", 15, 37, 200, unit="km", store="near")
        r.geosearchstore(
            "dist", "geo", longitude=15, latitude=37, radius=200, unit="km", storedist=True
        )
        r.restore("rel", 500_000, payload)
        r.restore("abs", 1_000_000 + int(r.time()[0]) * 1000, payload, absttl=True)
        r.restore("plain", 0, payload)
        r.set("gone", "v")
        r.restore("gone", 1, payload, replace=True, absttl=True)  # past: the key goes
        live, read_at = dataset(r), time.monotonic()
        r.close()
    assert {b"hll", b"small", b"merged", b"geo", b"near", b"dist", b"rel", b"abs"} <= set(live)
    assert b"gone" not in live
    logged = incr_file(tmp_path).read_bytes()
    assert logged.count(b"PFADD") == 2 and logged.count(b"GEORADIUS") == 1
    assert logged.count(b"PFCOUNT") == 1 and b"nothing" not in logged
    assert b"$3\r\nrel\r\n$13\r\n" in logged and logged.count(b"ABSTTL") == 2
    assert b"*2\r\n$3\r\nDEL\r\n$4\r\ngone\r\n" in logged
    with kv_on(tmp_path, *ALWAYS) as again:
        restarted = client(again)
        matches(restarted, live, read_at)
        with redis_on(str(tmp_path), "--appendonly", "yes") as peer:
            same_dataset(peer, restarted)
        assert 490_000 < restarted.pttl("rel") <= 500_000
        restarted.close()
