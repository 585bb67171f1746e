"""Chat resume: a client dropped by the network or a restart signs in again with the last seq it
saw per room and gets exactly what it missed, or ``recovered: false`` when the history cannot
say. Against a real ``residentd run chat`` process, over real sockets."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from residentd.apps.chat import protocol as p
from residentd.apps.chat.hub import RESUME_MAX, Hub, post_message, resume
from residentd.apps.chat.settings import ChatSettings
from residentd.apps.chat.tokens import make_token

from .daemon import ChatDaemon
from .durable import SECRET, Client, DurableChat

WINDOW = 8  # posts a racing poster keeps in flight


@pytest.fixture(scope="module")
def daemon() -> Iterator[ChatDaemon]:
    options = ("--secret", SECRET, "--rate-limit", "0", "--history-size", "1000")
    with ChatDaemon(*options, "--rooms", "lobby", "--rooms", "dev") as running:
        yield running


def connect(port: int, user: str, **hello: Any) -> tuple[Client, dict[str, Any]]:
    client = Client(port)
    reply = client.request("hello", v=1, user=user, token=make_token(SECRET, user), **hello)
    return client, reply


def signed_in(port: int, user: str) -> Client:
    client, reply = connect(port, user)
    assert reply["op"] == "hello", reply
    return client


def point(client: Client, room: str) -> dict[str, Any]:
    """Where ``client`` stands in ``room`` now: the newest seq and the epoch."""
    joined = client.ok("join", room=room)
    return {"seq": joined["last"], "epoch": joined["room"]["epoch"]}


def post(client: Client, room: str, count: int, tag: str) -> list[int]:
    return [client.ok("post", room=room, text=f"{tag}-{n}")["seq"] for n in range(count)]


def by_room(reply: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assert reply["op"] == "hello", reply
    return {entry["room"]: entry for entry in reply["resumed"]}


def test_a_client_back_gets_exactly_the_50_messages_it_missed(daemon: ChatDaemon) -> None:
    alice = signed_in(daemon.tcp_port, "alice")
    bob = signed_in(daemon.tcp_port, "bob")
    seen = point(alice, "lobby")
    point(bob, "lobby")
    post(bob, "lobby", 3, "before")
    seen["seq"] += 3
    alice.close()
    seqs = post(bob, "lobby", 50, "missed")

    alice, reply = connect(daemon.tcp_port, "alice", resume={"lobby": seen})
    lobby = by_room(reply)["lobby"]
    assert lobby["recovered"] is True
    assert lobby["epoch"] == seen["epoch"] and lobby["last"] == seqs[-1]
    assert (
        [m["seq"] for m in lobby["messages"]] == seqs == list(range(seen["seq"] + 1, seqs[-1] + 1))
    )
    assert [m["text"] for m in lobby["messages"]] == [f"missed-{n}" for n in range(50)]
    assert all(m["op"] == "message" and m["user"] == "bob" for m in lobby["messages"])
    # What comes next is live, once.
    assert alice.pushes == []
    live = bob.ok("post", room="lobby", text="live")["seq"]
    assert alice.request("ping")["op"] == "pong"
    assert [m["seq"] for m in alice.pushes if m["op"] == "message"] == [live]
    for client in (alice, bob):
        client.close()


def test_nothing_missed_is_recovered_and_empty(daemon: ChatDaemon) -> None:
    carol = signed_in(daemon.tcp_port, "carol")
    seen = point(carol, "dev")
    carol.close()
    carol, reply = connect(daemon.tcp_port, "carol", resume={"dev": seen})
    assert by_room(reply)["dev"] == {
        "room": "dev", "recovered": True, "epoch": seen["epoch"], "last": seen["seq"],
        "messages": [],
    }  # fmt: skip
    carol.close()


def test_another_epoch_or_a_history_too_short_is_not_recovered(daemon: ChatDaemon) -> None:
    dave = signed_in(daemon.tcp_port, "dave")
    seen = point(dave, "lobby")
    dave.ok("create", room="short")
    short = point(dave, "short")
    dave.close()
    erin = signed_in(daemon.tcp_port, "erin")
    point(erin, "lobby")
    last = post(erin, "lobby", 2, "e")[-1]
    erin.close()

    resume = {
        "lobby": {"seq": seen["seq"], "epoch": "another-numbering"},
        "short": {"seq": short["seq"] + 5, "epoch": short["epoch"]},  # past the newest
    }
    dave, reply = connect(daemon.tcp_port, "dave", resume=resume)
    rooms = by_room(reply)
    assert rooms["lobby"] == {
        "room": "lobby",
        "recovered": False,
        "epoch": seen["epoch"],
        "last": last,
        "messages": [],
    }
    assert rooms["short"]["recovered"] is False and rooms["short"]["messages"] == []
    dave.close()


def test_a_history_that_no_longer_reaches_back_is_not_recovered() -> None:
    options = ("--secret", SECRET, "--rate-limit", "0", "--history-size", "10")
    with ChatDaemon(*options) as small:
        frank = signed_in(small.tcp_port, "frank")
        seen = point(frank, "lobby")
        frank.close()
        gina = signed_in(small.tcp_port, "gina")
        point(gina, "lobby")
        seqs = post(gina, "lobby", 11, "g")  # one more than the history keeps
        frank, reply = connect(small.tcp_port, "frank", resume={"lobby": seen})
        lobby = by_room(reply)["lobby"]
        assert lobby["recovered"] is False and lobby["messages"] == []
        assert lobby["last"] == seqs[-1] and lobby["epoch"] == seen["epoch"]
        # Ten back is still kept: recovered.
        frank.close()
        frank, reply = connect(small.tcp_port, "frank", resume={"lobby": {**seen, "seq": 1}})
        assert [m["seq"] for m in by_room(reply)["lobby"]["messages"]] == seqs[1:]
        for client in (frank, gina):
            client.close()


def test_rooms_the_user_is_not_in_are_named_with_a_code(daemon: ChatDaemon) -> None:
    hank = signed_in(daemon.tcp_port, "hank")
    seen = point(hank, "lobby")
    hank.ok("leave", room="lobby")
    hank.close()
    resume = {"lobby": seen, "nowhere": {"seq": 1, "epoch": "x"}}
    hank, reply = connect(daemon.tcp_port, "hank", resume=resume)
    assert by_room(reply) == {
        "lobby": {"room": "lobby", "recovered": False, "code": "not-a-member", "messages": []},
        "nowhere": {"room": "nowhere", "recovered": False, "code": "no-such-room", "messages": []},
    }
    hank.close()


class Poster(threading.Thread):
    """Posts to ``room``, ``WINDOW`` in flight, as fast as the server takes them: ``head``
    acknowledged posts (then ``posting`` is set), on and on until ``finish`` is set, then
    ``tail`` more (``cap`` in all at most); ``seqs`` are the acknowledged ones."""

    def __init__(self, client: Client, room: str, head: int, tail: int, cap: int) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.room = room
        self.head = head
        self.tail = tail
        self.cap = cap
        self.seqs: list[int] = []
        self.posting = threading.Event()
        self.finish = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            sent = 0
            last = self.cap
            pending: list[int] = []
            while sent < last or pending:
                if self.finish.is_set() and last == self.cap:
                    last = min(sent + self.tail, self.cap)
                while sent < last and len(pending) < WINDOW:
                    pending.append(self.client.send("post", room=self.room, text=f"p-{sent}"))
                    sent += 1
                reply = self.client.receive()
                assert reply["id"] == pending.pop(0) and reply["op"] == "post", reply
                self.seqs.append(reply["seq"])
                if len(self.seqs) == self.head:
                    self.posting.set()
        except BaseException as error:  # reported by the test
            self.error = error
            self.posting.set()


def test_a_resume_racing_live_posts_has_no_gap_and_no_duplicate(daemon: ChatDaemon) -> None:
    ivan = signed_in(daemon.tcp_port, "ivan")
    ivan.ok("create", room="race")
    seen = point(ivan, "race")
    ivan.close()
    judy = signed_in(daemon.tcp_port, "judy")
    point(judy, "race")
    poster = Poster(judy, "race", head=100, tail=100, cap=900)  # history_size is 1000
    poster.start()
    assert poster.posting.wait(10)
    ivan, reply = connect(daemon.tcp_port, "ivan", resume={"race": seen})  # posts go on
    poster.finish.set()
    race = by_room(reply)["race"]
    assert race["recovered"] is True
    replayed = [m["seq"] for m in race["messages"]]
    poster.join(20)
    assert poster.error is None and not poster.is_alive()
    final = poster.seqs[-1]
    live: list[int] = []
    while not live or live[-1] < final:
        if b"\n" not in ivan.buffer:
            data = ivan.sock.recv(65536)
            assert data, "the server closed the connection"
            ivan.buffer += data
        while b"\n" in ivan.buffer:
            raw, _, ivan.buffer = ivan.buffer.partition(b"\n")
            message = json.loads(raw)
            if message["op"] == "message":
                live.append(message["seq"])
    assert len(replayed) >= 100, "the resume came before the posts"
    assert live, "the resume came after every post"
    assert replayed + live == list(range(seen["seq"] + 1, final + 1))
    for client in (ivan, judy):
        client.close()


def test_a_resume_across_a_restart_with_state_dir(tmp_path: Path) -> None:
    chat = DurableChat(str(tmp_path))
    try:
        kim = chat.client("kim")
        seen = point(kim, "lobby")
        kim.ok("create", room="made")
        made = point(kim, "made")
        kim.close()
        leo = chat.client("leo")
        point(leo, "lobby")
        point(leo, "made")
        lobby_seqs = post(leo, "lobby", 20, "a")
        made_seqs = post(leo, "made", 5, "b")
        leo.close()
        assert chat.stop() == 0
        chat = DurableChat(str(tmp_path))
        leo = chat.client("leo")
        more = post(leo, "lobby", 30, "c")  # after the restart: 50 missed in all
        kim, reply = connect(chat.port, "kim", resume={"lobby": seen, "made": made})
        rooms = by_room(reply)
        assert rooms["lobby"]["recovered"] and rooms["made"]["recovered"], rooms
        assert [m["seq"] for m in rooms["lobby"]["messages"]] == lobby_seqs + more
        assert len(lobby_seqs + more) == 50
        assert [m["seq"] for m in rooms["made"]["messages"]] == made_seqs
        for client in (kim, leo):
            client.close()
    finally:
        chat.stop()


def test_a_restart_without_state_dir_changes_the_epoch() -> None:
    options = ("--secret", SECRET, "--rate-limit", "0")
    with ChatDaemon(*options) as first:
        mia = signed_in(first.tcp_port, "mia")
        seen = point(mia, "lobby")
        post(mia, "lobby", 3, "m")
        mia.close()
    with ChatDaemon(*options) as second:
        mia, reply = connect(second.tcp_port, "mia", resume={"lobby": seen})
        # A new world: mia is in no room.
        assert by_room(reply) == {
            "lobby": {"room": "lobby", "recovered": False, "code": "not-a-member", "messages": []}
        }
        point(mia, "lobby")
        mia.close()
        mia, reply = connect(second.tcp_port, "mia", resume={"lobby": seen})
        lobby = by_room(reply)["lobby"]
        assert lobby["recovered"] is False and lobby["epoch"] != seen["epoch"]
        mia.close()


HOSTILE = [
    ({"lobby": {"seq": -1, "epoch": "e"}}, "invalid-value"),
    ({"lobby": {"seq": 2**53, "epoch": "e"}}, "invalid-value"),
    ({"lobby": {"seq": 10**30, "epoch": "e"}}, "invalid-value"),
    ({"lobby": {"seq": "3", "epoch": "e"}}, "wrong-type"),
    ({"lobby": {"seq": 3}}, "missing-field"),
    ({"lobby": {"seq": 3, "epoch": "e" * 33}}, "too-long"),
    ({"lobby": 3}, "wrong-type"),
    ([["lobby", 3]], "wrong-type"),
    ({"no way": {"seq": 1, "epoch": "e"}}, "invalid-value"),
    ({f"r{n}": {"seq": 1, "epoch": "e"} for n in range(101)}, "too-long"),
]


@pytest.mark.parametrize(("resume", "code"), HOSTILE)
def test_hostile_resume_is_refused_and_the_server_serves_on(
    daemon: ChatDaemon, resume: Any, code: str
) -> None:
    mallory, reply = connect(daemon.tcp_port, "mallory", resume=resume)
    assert reply["op"] == "error" and reply["code"] == code, reply
    assert "resume" in reply["detail"] or "seq" in reply["detail"] or "epoch" in reply["detail"]
    # Not signed in, but the connection and the server go on: a plain hello is accepted.
    assert (
        mallory.request("hello", v=1, user="mallory", token=make_token(SECRET, "mallory"))["op"]
        == "hello"
    )
    mallory.close()
    other = signed_in(daemon.tcp_port, "oscar")
    assert other.request("ping")["op"] == "pong"
    other.close()


def test_one_hello_replays_at_most_resume_max_messages() -> None:
    """The cap is over all rooms of one hello, taken in the order the client named them: a room
    whose messages do not fit in what is left is not recovered (the client reloads it), and a
    smaller room after it still is."""
    hub = Hub(ChatSettings(history_size=RESUME_MAX))
    ann = hub.presence.add("ann", guest=False)
    rooms = [hub.create_room(name, False, "") for name in ("a", "b", "c")]
    for room, count in zip(rooms, (RESUME_MAX - 10, 11, 5), strict=True):
        hub.join_room(ann, room)
        for _ in range(count):
            post_message(hub, room, "bob", "x")
    points = {room.name: p.ResumePoint(0, room.epoch) for room in rooms}
    got = {entry.room: entry for entry in resume(hub, ann, points)}
    assert got["a"].recovered and len(got["a"].messages) == RESUME_MAX - 10
    assert not got["b"].recovered and got["b"].messages == [] and got["b"].last == 11
    assert got["c"].recovered and len(got["c"].messages) == 5  # still fits
