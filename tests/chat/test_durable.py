"""Chat with ``state_dir``: what a restart, a ``kill -9`` and a compaction keep, with real
processes, signals and files (the helpers are in durable.py)."""

from __future__ import annotations

import http.client
import json
import random
import resource
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from .durable import Client, DurableChat

WINDOW = 8  # requests a writer keeps in flight


class Writer:
    """Posts to ``room`` and ``state.incr``s ``n``, alternately, ``WINDOW`` requests in flight,
    until the connection ends or ``until`` (monotonic) passes; records each acknowledgement."""

    def __init__(self, client: Client, room: str, tag: str) -> None:
        self.client = client
        self.room = room
        self.tag = tag
        self.posts: list[tuple[int, str, float]] = []  # acknowledged: seq, text, when
        self.incrs: list[tuple[int, float]] = []  # acknowledged: value, when
        self.errors: list[dict[str, Any]] = []
        self.sent = 0

    def _send(self, inflight: deque[tuple[int, str | None]]) -> None:
        if self.sent % 2:
            inflight.append((self.client.send("state.incr", key="n"), None))
        else:
            text = f"{self.tag}-{self.sent}"
            inflight.append((self.client.send("post", room=self.room, text=text), text))
        self.sent += 1

    def run(self, until: float = float("inf")) -> None:
        inflight: deque[tuple[int, str | None]] = deque()
        try:
            while True:
                while len(inflight) < WINDOW and time.monotonic() < until:
                    self._send(inflight)
                if not inflight:
                    return
                reply = self.client.receive()
                request_id, text = inflight.popleft()
                assert reply["id"] == request_id, reply
                now = time.monotonic()
                if reply["op"] == "post":
                    self.posts.append((reply["seq"], text or "", now))
                elif reply["op"] == "state.incr":
                    self.incrs.append((reply["value"], now))
                else:
                    self.errors.append(reply)
        except (ConnectionError, OSError):
            return  # killed


HISTORY = 100_000  # the history size these tests run the daemon with


def missing(client: Client, room: str, posts: list[tuple[int, str, float]]) -> list[Any]:
    """The acknowledged posts that the room's history does not hold at their ``seq``, among
    those it must hold: the last ``HISTORY`` of the room (a fast machine posts more than that
    in the seconds a test writes, and the oldest leave the history as they should)."""
    kept = {message["seq"]: message["text"] for message in client.history(room)}
    floor = max(kept, default=0) - HISTORY
    return [(seq, text) for seq, text, _ in posts if seq > floor and kept.get(seq) != text]


def kill_at_random(chat: DurableChat, low: float, high: float) -> threading.Timer:
    """SIGKILL ``chat`` from another thread at a random moment between ``low`` and ``high``
    seconds from now."""
    timer = threading.Timer(random.uniform(low, high), chat.kill)
    timer.start()
    return timer


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_write_with_appendfsync_always(tmp_path: Path) -> None:
    """20 cycles: write, SIGKILL at a random moment, restart. Every acknowledged post is in the
    history at its seq, in order, and the counter is at least the last acknowledged value.
    The journal is compacted now and then, so some kills land during a compaction."""
    options = (
        "--appendfsync", "always",
        "--auto-aof-rewrite-min-size", "20000", "--auto-aof-rewrite-percentage", "50",
        "--history-size", str(HISTORY),
    )  # fmt: skip
    posts: list[tuple[int, str, float]] = []
    counter = 0
    for cycle in range(21):
        chat = DurableChat(str(tmp_path), *options)
        client = chat.client("ann")
        if cycle == 0:
            client.ok("create", room="r")
        else:
            assert missing(client, "r", posts) == [], f"cycle {cycle}: {chat.output()}"
            value = client.ok("state.get", key="n")["value"]
            assert value >= counter, (cycle, value, counter)
            counter = value  # an unacknowledged incr may have made it to disk too
        if cycle == 20:
            chat.stop()
            break
        writer = Writer(client, "r", f"c{cycle}")
        timer = kill_at_random(chat, 0.03, 0.25)
        writer.run()
        timer.join()
        chat.kill()
        client.close()
        assert writer.errors == []
        assert writer.posts, f"cycle {cycle}: nothing acknowledged before the kill"
        posts += writer.posts
        counter = max([counter, *(value for value, _ in writer.incrs)])
    assert len(posts) >= 20


@pytest.mark.slow
def test_everysec_loses_at_most_the_last_two_seconds(tmp_path: Path) -> None:
    """The default fsync policy: after SIGKILL, acknowledged writes older than ~2 s are all
    there (a process kill loses nothing the kernel has; a machine crash would lose at most
    the writes since the last fsync)."""
    chat = DurableChat(str(tmp_path), "--history-size", str(HISTORY))
    client = chat.client("ann")
    client.ok("create", room="r")
    writer = Writer(client, "r", "e")
    timer = kill_at_random(chat, 2.5, 3.0)
    writer.run()
    timer.join()
    killed = time.monotonic()
    chat.kill()
    chat = DurableChat(str(tmp_path), "--history-size", str(HISTORY))
    try:
        client = chat.client("ann")
        old_posts = [post for post in writer.posts if post[2] < killed - 2]
        assert old_posts, "nothing was acknowledged more than 2 s before the kill"
        assert missing(client, "r", old_posts) == []
        old_incrs = [value for value, at in writer.incrs if at < killed - 2]
        assert client.ok("state.get", key="n")["value"] >= max(old_incrs)
    finally:
        chat.stop()


def world(client: Client, rooms: list[str]) -> dict[str, Any]:
    """What a user sees of the server: rooms, their members, topics and history, its state
    (not who is online, which a restart changes)."""
    listed = [{k: v for k, v in r.items() if k != "online"} for r in client.ok("rooms")["rooms"]]
    seen: dict[str, Any] = {"rooms": listed}
    for room in rooms:
        who = client.ok("who", room=room)
        seen[room] = {
            "members": sorted(user["user"] for user in who["users"]),
            "history": client.history(room),
        }
    seen["state"] = client.ok("state.get")["value"]
    return seen


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_rooms_users_and_state_survive_a_restart(tmp_path: Path, stop: str) -> None:
    chat = DurableChat(str(tmp_path))
    ann, bob, cid = chat.client("ann"), chat.client("bob"), chat.client("cid")
    ann.ok("create", room="secret", private=True, topic="plans")
    ann.ok("invite", room="secret", user="bob")  # bob is invited, not a member
    ann.ok("invite", room="secret", user="cid")
    cid.ok("join", room="secret")  # cid used its invitation
    ann.ok("create", room="pub", topic="first")
    ann.ok("topic", room="pub", topic="second")
    bob.ok("join", room="pub")
    for text in ("one", "two", "three"):
        ann.ok("post", room="secret", text=text)
        bob.ok("post", room="pub", text=text)
    ann.ok("state.set", key="prefs", value={"theme": "dark", "sizes": [1, 2]})
    ann.ok("state.incr", key="visits", by=5)
    ann.ok("state.set", key="gone", value=1)
    ann.ok("state.del", key="gone")
    bob.close()
    time.sleep(0.2)  # bob's connection is closed on the server: bob is offline
    bob_seen = ann.ok("seen", user="bob")["last_seen"]
    assert bob_seen
    before = world(ann, ["secret", "pub", "lobby"])
    ann.close()
    cid.close()
    time.sleep(0.2)
    if stop == "SIGTERM":
        assert chat.stop() == 0
    else:
        chat.kill()

    chat = DurableChat(str(tmp_path))
    try:
        ann = chat.client("ann")
        after = world(ann, ["secret", "pub", "lobby"])
        assert after == before
        assert ann.ok("seen", user="bob")["last_seen"] == bob_seen
        assert ann.ok("seen", user="cid")["last_seen"] > 0
        # bob's invitation survived: he sees the private room and may join it, once.
        bob = chat.client("bob")
        assert "secret" in [room["room"] for room in bob.ok("rooms")["rooms"]]
        bob.ok("join", room="secret")
        assert sorted(u["user"] for u in bob.ok("who", room="secret")["users"]) == [
            "ann",
            "bob",
            "cid",
        ]
    finally:
        chat.stop()


def test_a_guest_is_never_written(tmp_path: Path) -> None:
    """A guest's sign-in, rooms, invitations and state are not in the files; after a kill -9
    the server does not know it, its private room is gone, and a new guest of the same name
    starts from nothing. What it posted to a room is the room's history, and stays."""
    chat = DurableChat(str(tmp_path))
    ann = chat.client("ann")
    gus = chat.client("gus", guest=True)
    gus.ok("join", room="lobby")
    gus.ok("create", room="hideout", private=True)
    gus.ok("invite", room="hideout", user="ann")  # ann is invited by a guest, does not join
    gus.ok("create", room="square")
    gus.ok("state.set", key="diary", value="guest-secret-xyz")
    gus.ok("state.incr", key="count", by=7)
    gus.ok("post", room="lobby", text="hello from a guest")
    ann.ok("join", room="lobby")
    ann.ok("post", room="lobby", text="hello from ann")
    time.sleep(1.2)  # past an everysec fsync, though a kill loses nothing written anyway
    files = chat.state_files()
    assert files, "no state files"
    for data in files.values():
        assert b"guest-secret-xyz" not in data
        assert b'"count"' not in data
    chat.kill()

    chat = DurableChat(str(tmp_path))
    try:
        ann = chat.client("ann")
        assert ann.request("seen", user="~gus")["code"] == "no-such-user"
        assert [u["user"] for u in ann.ok("who", room="lobby")["users"]] == ["ann"]
        assert ann.request("join", room="hideout")["code"] == "no-such-room"
        assert "hideout" not in [room["room"] for room in ann.ok("rooms")["rooms"]]
        assert ann.ok("join", room="square")["room"]["members"] == 1  # ann alone
        texts = [(m["user"], m["text"]) for m in ann.history("lobby")]
        assert texts == [("~gus", "hello from a guest"), ("ann", "hello from ann")]
        gus = chat.client("gus", guest=True)
        assert gus.ok("state.get")["value"] == {}
    finally:
        chat.stop()


def live_view(client: Client, rooms: list[str]) -> dict[str, Any]:
    return {room: client.history(room) for room in rooms} | {
        "state": client.ok("state.get")["value"]
    }


@pytest.mark.slow
def test_compaction_while_clients_post_keeps_serving_and_equals_the_live_state(
    tmp_path: Path,
) -> None:
    """Five clients post and count for ~3 s while the journal is compacted (in a forked child)
    every second: every request gets its reply, and what a kill -9 and a restart load (the
    new base plus the journal written meanwhile) equals what the live server showed."""
    options = (
        "--auto-aof-rewrite-min-size", "4096", "--auto-aof-rewrite-percentage", "10",
        "--history-size", str(HISTORY),
    )  # fmt: skip
    chat = DurableChat(str(tmp_path), *options)
    names = [f"user{i}" for i in range(5)]
    clients = [chat.client(name) for name in names]
    for index, client in enumerate(clients):
        client.ok("create", room=f"room{index}")
        client.ok("join", room="lobby")
    writers = [Writer(client, f"room{i}", f"w{i}") for i, client in enumerate(clients)]
    until = time.monotonic() + 3.0
    threads = [threading.Thread(target=writer.run, args=(until,)) for writer in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for writer in writers:
        assert writer.errors == []
        assert len(writer.posts) + len(writer.incrs) == writer.sent  # every reply came
    log = chat.output()
    assert log.count("journal compacted") >= 2, log
    manifest = (tmp_path / "state" / "journal" / "chat.manifest").read_text()
    assert "base.snap seq 1 " not in manifest, manifest  # the first base was replaced
    rooms = [f"room{i}" for i in range(5)]
    live = [live_view(client, rooms) for client in clients]
    chat.kill()

    chat = DurableChat(str(tmp_path), *options)
    try:
        loaded = [live_view(chat.client(name), rooms) for name in names]
        assert loaded == live
        for writer, view in zip(writers, loaded, strict=True):
            assert [m["text"] for m in view[writer.room]] == [text for _, text, _ in writer.posts]
            assert view["state"] == {"n": writer.incrs[-1][0]}
    finally:
        chat.stop()


def test_a_full_disk_refuses_changes_serves_reads_and_recovers(tmp_path: Path) -> None:
    """The journal cannot grow (RLIMIT_FSIZE on the daemon: write() fails with EFBIG): posts
    and state changes get ``storage-error`` with the reason, reads are served, and once the
    limit is lifted from outside, changes are accepted again and nothing acknowledged is lost.
    """
    chat = DurableChat(str(tmp_path), "--history-size", "1000", fsize=48 * 1024)
    try:
        ann = chat.client("ann")
        ann.ok("create", room="r")
        acked = []
        refused = None
        for index in range(200):
            reply = ann.request("post", room="r", text=f"{index}:" + "x" * 1000)
            if reply["op"] == "error":
                refused = reply
                break
            acked.append(reply["seq"])
        assert refused is not None, "the journal never filled up"
        assert refused["code"] == "storage-error", refused
        assert "File too large" in refused["detail"]
        assert refused["retry_after"] > 0
        assert ann.request("state.incr", key="n")["code"] == "storage-error"
        assert ann.request("create", room="r2")["code"] == "storage-error"
        # Reads are served meanwhile.
        assert [m["seq"] for m in ann.history("r")][: len(acked)] == acked
        assert ann.ok("state.get")["value"] == {}
        assert ann.ok("who", room="r")["users"][0]["user"] == "ann"

        unlimited = resource.RLIM_INFINITY
        resource.prlimit(chat.proc.pid, resource.RLIMIT_FSIZE, (unlimited, unlimited))
        deadline = time.monotonic() + 10
        while (reply := ann.request("post", room="r", text="after"))["op"] == "error":
            assert reply["code"] == "storage-error"
            assert time.monotonic() < deadline, "writes did not resume"
            time.sleep(0.1)
        assert ann.ok("state.incr", key="n")["value"] == 1
        chat.kill()

        chat = DurableChat(str(tmp_path), "--history-size", "1000")
        ann = chat.client("ann")
        texts = [m["text"] for m in ann.history("r")]
        assert [int(text.split(":")[0]) for text in texts[: len(acked)]] == list(range(len(acked)))
        assert texts[-1] == "after"
        assert ann.ok("state.get", key="n")["value"] == 1
    finally:
        chat.stop()


def test_a_torn_tail_loads_and_a_flipped_byte_stops_the_start_until_repaired(
    tmp_path: Path,
) -> None:
    """A journal cut mid-record loads up to the last whole record; a byte flipped inside it
    stops the start with exit 2 naming the file and offset, and ``residentd repair FILE
    --app chat`` cuts it there so that the start succeeds with the records before."""
    chat = DurableChat(str(tmp_path), "--appendfsync", "always")
    ann = chat.client("ann")
    ann.ok("create", room="r")
    for index in range(10):
        ann.ok("post", room="r", text=f"m{index}")
    assert chat.stop() == 0
    journal = tmp_path / "state" / "journal" / "chat.1.incr.log"
    data = journal.read_bytes()
    middle = data.index(b"m5")

    journal.write_bytes(data[:-3])  # torn: the last record (ann going offline) is cut short
    chat = DurableChat(str(tmp_path))
    ann = chat.client("ann")
    assert [m["text"] for m in ann.history("r")] == [f"m{i}" for i in range(10)]
    assert "dropped the last" in chat.output()
    assert chat.stop() == 0

    data = journal.read_bytes()
    journal.write_bytes(data[:middle] + b"X" + data[middle + 1 :])
    failed = subprocess.run(
        [sys.executable, "-m", "residentd", "run", "chat", "--admin", "off", "--listen",
         "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert failed.returncode == 2, failed.stderr
    assert "chat.1.incr.log: corrupt at byte" in failed.stderr
    repaired = subprocess.run(
        [sys.executable, "-m", "residentd", "repair", str(journal), "--app", "chat", "--yes"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    chat = DurableChat(str(tmp_path))
    try:
        texts = [m["text"] for m in chat.client("ann").history("r")]
        assert texts == [f"m{i}" for i in range(5)]  # the records before the flipped one
    finally:
        chat.stop()


def test_with_always_a_post_the_disk_refused_is_not_acknowledged_until_it_is_written(
    tmp_path: Path,
) -> None:
    """``appendfsync always`` and a journal that cannot grow: the reply to the post whose record
    the disk refused is held (the poster hears nothing), other users are served, and once the
    limit is lifted the held reply comes, and that post survives a kill -9."""
    chat = DurableChat(str(tmp_path), "--appendfsync", "always", fsize=48 * 1024)
    try:
        ann, bob = chat.client("ann"), chat.client("bob")
        ann.ok("create", room="r")
        bob.ok("join", room="r")
        held = None
        for index in range(200):
            text = f"{index}:" + "x" * 1000
            request_id = ann.send("post", room="r", text=text)
            if ann.quiet(1.0):
                held = (request_id, text)
                break
            reply = ann.receive()
            assert reply["op"] == "post", reply
        assert held is not None, "the journal never filled up"
        # Another user is served meanwhile; writes are refused with the reason.
        assert bob.request("state.incr", key="n")["code"] == "storage-error"
        assert bob.ok("seen", user="ann")["online"] is True

        unlimited = resource.RLIM_INFINITY
        resource.prlimit(chat.proc.pid, resource.RLIMIT_FSIZE, (unlimited, unlimited))
        reply = ann.receive()
        assert reply["id"] == held[0] and reply["op"] == "post", reply
        seq = reply["seq"]
        chat.kill()

        chat = DurableChat(str(tmp_path))
        history = chat.client("ann").history("r")
        assert [m["text"] for m in history if m["seq"] == seq] == [held[1]]
    finally:
        chat.stop()


API_KEY = "durable-tests-api-key"


def api(
    chat: DurableChat, method: str, path: str, body: Any = None, timeout: float = 10
) -> tuple[int, Any]:
    """One request to the backend API: its status and decoded JSON answer."""
    connection = http.client.HTTPConnection("127.0.0.1", chat.http_port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {API_KEY}"}
        connection.request(method, "/api/v1" + path, data, headers)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def test_the_backend_apis_changes_are_kept_and_refused_while_the_disk_is_full(
    tmp_path: Path,
) -> None:
    """A post, a state write for a user the chat did not know and an incr, made through the
    HTTP API with ``appendfsync always``, survive kill -9; while the journal cannot grow they
    are ``503 storage-error`` and reads still answer."""
    options = ("--api-keys", API_KEY, "--appendfsync", "always")
    chat = DurableChat(str(tmp_path), *options, fsize=64 * 1024)
    try:
        ann = chat.client("ann")
        ann.ok("create", room="news")
        status, posted = api(chat, "POST", "/rooms/news/messages", {"user": "bot", "text": "hi"})
        assert status == 200, posted
        assert api(chat, "PUT", "/users/zed/state/theme", {"value": "dark"})[0] == 200
        status, number = api(chat, "POST", "/users/zed/state/n/incr", {"by": 5})
        assert (status, number["value"]) == (200, 5), number
        # The post whose record the disk refuses is not answered (with always, not before its
        # record is written); the changes after it are refused at once.
        big = {"user": "bot", "text": "x" * 1000}
        with pytest.raises(TimeoutError):
            for _ in range(200):
                assert api(chat, "POST", "/rooms/news/messages", big, timeout=2)[0] == 200
        status, refused = api(chat, "POST", "/rooms/news/messages", big)
        assert (status, refused["error"]) == (503, "storage-error"), refused
        assert api(chat, "PUT", "/users/zed/state/k", {"value": 1})[0] == 503
        assert api(chat, "GET", "/users/zed/state")[0] == 200  # reads still answer
        chat.kill()

        chat = DurableChat(str(tmp_path), *options)
        history = chat.client("ann").history("news")
        assert history[0]["seq"] == posted["seq"] and history[0]["user"] == "bot", history
        status, document = api(chat, "GET", "/users/zed/state")
        assert (status, document["state"]) == (200, {"theme": "dark", "n": 5}), document
        status, zed = api(chat, "GET", "/users/zed")
        assert (status, zed["last_seen"], zed["guest"]) == (200, None, False), zed
    finally:
        chat.stop()
