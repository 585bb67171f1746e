"""kv under kill -9: with ``appendfsync always`` every acknowledged write survives, with
``everysec`` at most the last ~2 seconds are lost, and a BGSAVE and an AOF rewrite made
while 50 clients write neither stop the replies nor lose or tear anything."""

from __future__ import annotations

import random
import selectors
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from residentd.apps.kv.persistence import rdb
from support import wait_until

from .helpers import KvProcess

CYCLES = 20


def start(folder: Path, fsync: str) -> KvProcess:
    daemon = KvProcess("--dir", str(folder), "--appendonly", "yes", "--appendfsync", fsync)
    return daemon.start()


class Acknowledged:
    """What the server acknowledged: SETs, INCRs and LPUSHes, and the one write in flight."""

    def __init__(self) -> None:
        self.strings: dict[str, str] = {}
        self.counter = 0
        self.pushed: list[str] = []
        self.in_flight: tuple[str, str] | None = None

    def write_until_killed(self, port: int, cycle: int) -> None:
        # No retries: redis-py would otherwise send the write again on a new connection.
        r = redis.Redis(port=port, socket_timeout=10, protocol=2, retry=Retry(NoBackoff(), 0))
        n = 0
        try:
            while True:
                n += 1
                kind = n % 3
                value = f"{cycle}:{n}"
                if kind == 0:
                    self.in_flight = ("set", value)
                    r.set(f"s:{value}", value)
                    self.strings[f"s:{value}"] = value
                elif kind == 1:
                    self.in_flight = ("incr", value)
                    self.counter = r.incr("counter")
                else:
                    self.in_flight = ("lpush", value)
                    r.lpush("list", value)
                    self.pushed.append(value)
                self.in_flight = None
        except (redis.ConnectionError, redis.TimeoutError):
            return
        finally:
            r.close()

    def check(self, r: redis.Redis) -> None:
        flight = self.in_flight
        counter = int(r.get("counter") or 0)
        assert counter in (
            self.counter,
            self.counter + (flight is not None and flight[0] == "incr"),
        )
        self.counter = counter
        if self.strings:
            values = r.mget(list(self.strings))
            assert values == [v.encode() for v in self.strings.values()]
        listed = [item.decode() for item in reversed(r.lrange("list", 0, -1))]
        if flight is not None and flight[0] == "lpush" and listed[-1:] == [flight[1]]:
            listed.pop()  # the one write in flight may have been journaled before the kill
        assert listed == self.pushed
        if flight is not None and flight[0] == "lpush" and len(listed) < r.llen("list"):
            self.pushed.append(flight[1])
        if flight is not None and flight[0] == "set":
            stored = r.get(f"s:{flight[1]}")
            if stored is not None:
                self.strings[f"s:{flight[1]}"] = flight[1]
        self.in_flight = None


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_write_with_always(tmp_path: Path) -> None:
    rng = random.Random()
    acknowledged = Acknowledged()
    for cycle in range(CYCLES):
        daemon = start(tmp_path, "always")
        r = redis.Redis(port=daemon.port, socket_timeout=10, protocol=2)
        acknowledged.check(r)
        r.close()
        writer = threading.Thread(target=acknowledged.write_until_killed, args=(daemon.port, cycle))
        writer.start()
        time.sleep(rng.uniform(0.05, 0.4))
        daemon.kill9()
        writer.join(10)
    daemon = start(tmp_path, "always")
    try:
        r = redis.Redis(port=daemon.port, socket_timeout=10, protocol=2)
        acknowledged.check(r)
        assert acknowledged.counter > CYCLES and len(acknowledged.pushed) > CYCLES
        r.close()
    finally:
        daemon.stop()


def test_everysec_loses_at_most_the_last_two_seconds(tmp_path: Path) -> None:
    daemon = start(tmp_path, "everysec")
    r = redis.Redis(port=daemon.port, socket_timeout=10, protocol=2)
    acknowledged_at: list[float] = []
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        r.incr("counter")
        acknowledged_at.append(time.monotonic())
    r.close()
    killed_at = time.monotonic()
    daemon.kill9()
    daemon = start(tmp_path, "everysec")
    try:
        r = redis.Redis(port=daemon.port, socket_timeout=10, protocol=2)
        survived = int(r.get("counter") or 0)
        old_enough = sum(1 for at in acknowledged_at if at < killed_at - 2.2)
        assert old_enough > 0
        assert survived >= old_enough
        r.close()
    finally:
        daemon.stop()


def load_strings(r: redis.Redis) -> dict[bytes, bytes]:
    keys = list(r.scan_iter(count=5000))
    found: dict[bytes, bytes] = {}
    for i in range(0, len(keys), 5000):
        chunk = keys[i : i + 5000]
        found.update(zip(chunk, r.mget(chunk), strict=True))
    return found


@pytest.mark.slow
def test_bgsave_and_rewrite_while_50_clients_write(tmp_path: Path) -> None:
    daemon = start(tmp_path, "everysec")
    port = daemon.port
    r = redis.Redis(port=port, socket_timeout=30, protocol=2)
    pipe = r.pipeline(transaction=False)
    for block in range(50):
        pipe.mset({f"pre:{block}:{i}": "x" * 20 for i in range(1000)})
    pipe.execute()
    stop = threading.Event()
    progress = [0] * 50
    during: list[int] = [0] * 50  # replies received while a child was running
    busy = threading.Event()
    errors: list[BaseException] = []

    def client(index: int) -> None:
        c = redis.Redis(port=port, socket_timeout=30, protocol=2)
        try:
            while not stop.is_set():
                assert c.set(f"c{index}:{progress[index]}", "v") is True
                progress[index] += 1
                if busy.is_set():
                    during[index] += 1
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: min(progress) > 5, 20.0, "every client writing")
        before_bgsave = list(progress)
        busy.set()
        assert r.bgsave() is True
        wait_until(lambda: r.info("persistence")["rdb_bgsave_in_progress"] == 0, 30.0)
        assert r.info("persistence")["rdb_last_bgsave_status"] == "ok"
        r.bgrewriteaof()
        wait_until(lambda: r.info("persistence")["aof_rewrite_in_progress"] == 0, 30.0)
        busy.clear()
        assert r.info("persistence")["aof_last_bgrewrite_status"] == "ok"
        time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not errors, errors[:3]
    assert sum(during) > 50  # replies kept flowing while the children wrote
    live = load_strings(r)
    r.close()
    # The dump is the keyspace at one instant: each client's keys are a prefix of its
    # sequence, at least as long as what was acknowledged when BGSAVE was asked for.
    data, _ = rdb.load((tmp_path / "dump.rdb").read_bytes())
    for index in range(50):
        count = sum(1 for key in data if key.startswith(b"c%d:" % index))
        assert count >= before_bgsave[index]
        assert all(b"c%d:%d" % (index, n) in data for n in range(count))
    assert sum(1 for key in data if key.startswith(b"pre:")) == 50_000
    # The AOF (the rewrite's base plus what came after it) is the live dataset.
    daemon.stop()
    daemon = start(tmp_path, "everysec")
    try:
        again = redis.Redis(port=daemon.port, socket_timeout=30, protocol=2)
        assert load_strings(again) == live
        again.close()
    finally:
        daemon.stop()


FSYNC_DELAY = 0.6  # what the test hook adds to every journal fsync, in seconds


@pytest.mark.slow
def test_no_reply_outruns_the_fsync_of_a_write_it_follows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``always`` the fsync runs while the loop serves the next requests, so every reply
    made after a write (the writer's +OK, and another connection's GET that sees the value)
    must wait for the fsync that covers the write; a write made during an fsync waits for the
    next one. Every fsync is made slow on purpose (the journal's test hook): no such reply may
    come back sooner than that after the write was sent. Nothing here has an upper bound.
    Then a graceful stop during a write's fsync: the reply is sent before the goodbye."""
    monkeypatch.setenv("RESIDENTD_TEST_FSYNC_DELAY", str(FSYNC_DELAY))
    daemon = start(tmp_path, "always")
    steps = [  # (seconds after the start, name, request)
        (0.0, "w1", b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n"),
        (0.15, "r1", b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
        (0.3, "w2", b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv2\r\n"),
        (0.45, "r2", b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
    ]
    sockets = {name: socket.create_connection(("127.0.0.1", daemon.port)) for _, name, _ in steps}
    try:
        sent: dict[str, float] = {}
        replies: dict[str, tuple[float, bytes]] = {}
        with selectors.DefaultSelector() as selector:
            for name, sock in sockets.items():
                selector.register(sock, selectors.EVENT_READ, name)
            started = time.monotonic()
            todo = list(steps)
            while len(replies) < len(steps) and time.monotonic() < started + 20:
                while todo and time.monotonic() >= started + todo[0][0]:
                    _, name, request = todo.pop(0)
                    sent[name] = time.monotonic()
                    sockets[name].sendall(request)
                wait = started + todo[0][0] - time.monotonic() if todo else 1.0
                for key, _ in selector.select(max(wait, 0.0)):
                    data = key.fileobj.recv(100)  # type: ignore[union-attr]
                    replies.setdefault(key.data, (time.monotonic(), b""))
                    at, got = replies[key.data]
                    replies[key.data] = (at, got + data)
        assert set(replies) == {"w1", "r1", "w2", "r2"}, replies
        assert replies["w1"][1] == replies["w2"][1] == b"+OK\r\n"
        slack = 0.02  # clocks: sent is taken just before sendall
        assert replies["w1"][0] - sent["w1"] >= FSYNC_DELAY - slack
        assert replies["w2"][0] - sent["w2"] >= FSYNC_DELAY - slack
        seen = {b"$2\r\nv1\r\n": "w1", b"$2\r\nv2\r\n": "w2"}
        for reader in ("r1", "r2"):
            at, reply = replies[reader]
            assert reply in (b"$-1\r\n", *seen), reply
            if reply in seen:  # it reveals a write: not before that write's fsync
                assert at - sent[seen[reply]] >= FSYNC_DELAY - slack, (reader, reply)
        # The second write went to disk after its own, later fsync.
        assert replies["w2"][0] > replies["w1"][0]

        # A graceful stop while a write's fsync runs: its reply still goes out before the
        # connection closes, and the write is there after a restart.
        writer = sockets["w1"]
        writer.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv3\r\n")
        time.sleep(0.1)
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGTERM)
        writer.settimeout(20)
        said = b""
        while chunk := writer.recv(100):
            said += chunk
        assert said == b"+OK\r\n"
        daemon.stop()
        daemon = start(tmp_path, "always")
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as reader:
            reader.sendall(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
            assert reader.recv(100) == b"$2\r\nv3\r\n"
    finally:
        for sock in sockets.values():
            sock.close()
        daemon.stop()
