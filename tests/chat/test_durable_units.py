"""The chat's journal records and snapshot, in process: the post record written by hand is the
one msgspec writes, and a world saved and loaded, or replayed from its records, is the same."""

from __future__ import annotations

import io
from typing import Any

import msgspec

from residentd.apps.chat import durable as d
from residentd.apps.chat import protocol as p
from residentd.apps.chat.daemon import build_app
from residentd.apps.chat.hub import Hub
from residentd.apps.chat.settings import ChatSettings


class Recorder:
    """Stands in for ``Persistence``: keeps the framed records."""

    writable = True

    def __init__(self) -> None:
        self.records: list[bytes] = []

    def append(self, record: bytes, waiter: object = None) -> None:
        self.records.append(record)


class FakeSession:
    def __init__(self, user: Any) -> None:
        self.user = user
        self.conn = None


def test_the_post_record_is_the_one_msgspec_writes() -> None:
    message = p.encode(p.Message(room="a.b-c_9", seq=3, ts=17, user="~gus", text='"q"\n\\ é'))
    recorder = Recorder()
    d.Journal(recorder).post("a.b-c_9", message, None)  # type: ignore[arg-type]
    framed = recorder.records[0]
    [(payload, _)] = list(d.ChatState.records.scan(framed))
    assert payload == d._encode(d.Post("a.b-c_9", msgspec.Raw(message)))
    record = d._decode(payload)
    assert isinstance(record, d.Post) and bytes(record.message) == message


def build_world(hub: Hub) -> None:
    users = {name: hub.presence.add(name, False) for name in ("ann", "bob", "cid")}
    for index, user in enumerate(users.values()):
        hub.presence.seen(user, 1000 + index)  # offline, as after a sign-out
        if hub.journal is not None:
            hub.journal.write(d.Offline(user.name, 1000 + index))
    secret = hub.create_room("secret", True, "plans")
    hub.join_room(users["ann"], secret)
    hub.join_room(users["cid"], secret)
    secret.invite(users["bob"])
    if hub.journal is not None:
        hub.journal.write(d.Invite("secret", "bob"))
    pub = hub.create_room("pub", False, "")
    hub.join_room(users["bob"], pub)
    for seq in range(1, 6):
        message = p.Message(room="pub", seq=seq, ts=seq, user="bob", text=f"m{seq}")
        payload = p.encode(message)
        pub.history.append(payload)
        if hub.journal is not None:
            hub.journal.post("pub", payload, None)
    state = users["ann"].state = d.UserState()
    state.set("k", msgspec.Raw(b'{"a":[1,2]}'), 10, 1000)
    if hub.journal is not None:
        hub.journal.write(d.StateSet("ann", "k", msgspec.Raw(b'{"a":[1,2]}')))


def test_a_saved_world_loads_and_replays_the_same() -> None:
    settings = ChatSettings(history_size=3)
    recorder = Recorder()
    live = Hub(settings, d.Journal(recorder))  # type: ignore[arg-type]
    d.after_load(live)  # as the daemon's start does: the configured rooms' epochs are journaled
    build_world(live)
    saved = msgspec.json.encode(d.save(live))

    # Loaded from a snapshot.
    app = build_app()
    app.options["history_size"] = 3
    machine = d.ChatState(app)
    out = io.BytesIO()
    d.ChatState.snapshot_format.write(out, machine_dump(live))
    machine.reset()
    machine.load(d.ChatState.snapshot_format.read(out.getvalue()))
    assert app.hub.journal is None
    assert msgspec.json.encode(d.save(app.hub)) == saved

    # Replayed from the journal records.
    app.forget_hub()
    for framed in recorder.records:
        for payload, _ in d.ChatState.records.scan(framed):
            machine.apply(payload)
    assert msgspec.json.encode(d.save(app.hub)) == saved
    assert [bytes(m) for m in app.hub.rooms["pub"].history.kept()] == [
        bytes(m) for m in live.rooms["pub"].history.kept()
    ]


def machine_dump(hub: Hub) -> Any:
    def dump(out: Any) -> None:
        out.write(msgspec.json.encode(d.save(hub)))

    return dump


def test_a_journal_and_a_snapshot_from_before_epochs_still_load() -> None:
    """Records and snapshots written before rooms had epochs decode; the room gets a new epoch
    (its clients cannot resume across that one upgrade, and are told so)."""
    app = build_app()
    machine = d.ChatState(app)
    machine.reset()
    machine.apply(b'["create","old",false,"a topic"]')
    machine.apply(
        b'["post","old",{"op":"message","room":"old","seq":1,"ts":1,"user":"a","text":"x"}]'
    )
    room = app.hub.rooms["old"]
    assert room.epoch and room.history.last == 1 and room.topic == "a topic"
    machine.apply(b'["epoch","old","kept-one"]')
    assert room.epoch == "kept-one"
    world = b'{"users":[],"rooms":[["snap",false,"",[],[],4,[]]]}'
    machine.reset()
    machine.load(world)
    assert app.hub.rooms["snap"].history.last == 4 and app.hub.rooms["snap"].epoch
