"""The chat's durable state: one journal record per change, and a snapshot of the whole world.

With ``state_dir`` set, the hub writes a record for every change it makes to what outlives a
connection (``Journal`` below), and the framework (``residentd.state``) puts the records in an
append-only journal, fsynced as ``appendfsync`` says (chat's default: ``everysec``), compacts
it into a snapshot in a forked child when it grows, and replays it at start-up. Without
``state_dir`` the hub has no journal and nothing here runs.

A record is a msgspec struct encoded as a JSON array (``["post", "lobby", {...}]``) in the
framework's default framing (length and CRC32 per record). Replaying a record calls the same
hub and room methods the live change did; the hub has no journal while it replays, so a replay
writes nothing. A post's record carries the ``message`` push exactly as it was fanned out, so
the history after a restart holds the same bytes, sequence numbers and times.

What is written: users who signed in with a token (when they came online and went offline, so
``last_seen`` survives, and when ``max_users`` made the server forget one), rooms (created,
topic, members, invitations, deleted), each room's messages, and each user's state document.
Guests (``~name``) are never written: not their sign-ins, memberships, invitations or state. A
message a guest posted is the room's, and stays in its history. A private room whose members
were all guests has no members after a restart and is deleted then (``after_load``), as it
would have been when they left.

The snapshot is the framework's default container (magic ``CHT1``, version, CRC32) around one
JSON document: every known user with its last-seen time and state document (a user online at
that moment gets the snapshot's time as its last-seen time), and every room with its members,
invitations, last sequence number, kept messages and history epoch (rooms.py).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, BinaryIO

import msgspec

from residentd.apps.chat import protocol as p
from residentd.apps.chat.errors import ChatError, ErrorCode
from residentd.apps.chat.state import UserState
from residentd.state import (
    BadSnapshot,
    Container,
    LengthCrcRecords,
    NotWritable,
    RecordReader,
    SnapshotFormat,
    encode_record,
)

if TYPE_CHECKING:
    from residentd.apps.chat.daemon import ChatApp
    from residentd.apps.chat.hub import Hub
    from residentd.state import Persistence

# Replayed state documents are taken whole: the limits were checked when they were changed.
UNLIMITED = sys.maxsize


class Record(msgspec.Struct, tag_field="t", array_like=True):
    """One change, as the journal holds it."""


class Online(Record, tag="on"):
    user: str
    at: int  # Unix ms: when it came online


class Offline(Record, tag="off"):
    user: str
    at: int  # Unix ms: when it went offline (its last_seen)


class Forget(Record, tag="forget"):
    user: str


class Create(Record, tag="create"):
    room: str
    private: bool
    topic: str
    epoch: str = ""  # "" in journals written before rooms had epochs


class Epoch(Record, tag="epoch"):
    """The history epoch of a room made without a ``create`` record (a configured room)."""

    room: str
    epoch: str


class Join(Record, tag="join"):
    room: str
    user: str


class Leave(Record, tag="leave"):
    room: str
    user: str


class Drop(Record, tag="drop"):
    room: str


class Invite(Record, tag="invite"):
    room: str
    user: str


class Topic(Record, tag="topic"):
    room: str
    topic: str


class Post(Record, tag="post"):
    room: str
    message: msgspec.Raw  # the ``message`` push as fanned out


class StateSet(Record, tag="set"):
    user: str
    key: str
    value: msgspec.Raw


class StateDel(Record, tag="del"):
    user: str
    key: str


AnyRecord = (
    Online | Offline | Forget | Create | Epoch | Join | Leave | Drop | Invite | Topic | Post
) | (StateSet | StateDel)

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(AnyRecord).decode


class Journal:
    """What the hub calls for each change it makes: one framed record per change. ``waiter``
    is the connection whose reply acknowledges the change (with ``always`` it waits for the
    fsync). Changes by or to guests are not written."""

    __slots__ = ("persistence",)

    def __init__(self, persistence: Persistence) -> None:
        self.persistence = persistence

    def check(self) -> None:
        """Raise ``ChatError(ErrorCode.STORAGE_ERROR)`` while the disk refuses the journal."""
        if not self.persistence.writable:
            try:
                self.persistence.check_writable()
            except NotWritable as exc:
                detail = f"the server cannot save changes now ({exc}); reads still work"
                raise ChatError(ErrorCode.STORAGE_ERROR, detail, 1.0) from None

    def write(self, record: Record, waiter: object = None) -> None:
        self.persistence.append(encode_record(_encode(record)), waiter)

    def post(self, room: str, message: bytes, waiter: object) -> None:
        """The hot path: ``Post(room, message)`` as ``_encode`` would write it, formatted
        directly (a room name is ASCII letters, digits, ``_ . -``: nothing to escape)."""
        record = b'["post","%s",%s]' % (room.encode(), message)
        self.persistence.append(encode_record(record), waiter)


class ChatState:
    """The chat's ``StateMachine`` for ``residentd.state.Persistence`` (see api.py there)."""

    records: RecordReader = LengthCrcRecords()
    snapshot_format: SnapshotFormat = Container(b"CHT1", 1)

    def __init__(self, app: ChatApp) -> None:
        self.app = app

    def reset(self) -> None:
        self.app.forget_hub()

    def load(self, payload: bytes) -> None:
        try:
            world = msgspec.json.decode(payload, type=World)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BadSnapshot(f"not a chat snapshot: {exc}") from None
        hub = self.app.hub
        with _replaying(hub):
            restore(hub, world)

    def apply(self, record: bytes) -> None:
        hub = self.app.hub
        with _replaying(hub):
            replay(hub, _decode(record))

    def dump(self, out: BinaryIO) -> None:
        out.write(msgspec.json.encode(save(self.app.hub)))


class _replaying:
    """The hub without its journal, so a replayed change is not written again."""

    __slots__ = ("hub", "journal")

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def __enter__(self) -> None:
        self.journal, self.hub.journal = self.hub.journal, None

    def __exit__(self, *exc: object) -> None:
        self.hub.journal = self.journal


# -- replay ------------------------------------------------------------------------------------


def replay(hub: Hub, record: Any) -> None:
    """Apply one journal record to ``hub`` through the methods the live change used. Only a
    sign-in makes a user known; a record about a user or room that is gone is skipped."""
    kind = type(record)
    presence = hub.presence
    if kind is Online or kind is Offline:
        known = presence.get(record.user) or presence.add(record.user, False)
        if record.at:  # 0: made by the backend API, never seen online
            presence.seen(known, record.at)
        return
    if kind is Create:
        if record.room not in hub.rooms:
            hub.create_room(record.room, record.private, record.topic, epoch=record.epoch or None)
        return
    if kind is StateSet or kind is StateDel or kind is Forget:
        user = presence.get(record.user)
        if user is None:
            return
        if kind is Forget:
            hub.forget(user)
        elif kind is StateDel:
            if user.state is not None:
                user.state.delete(record.key)
        else:
            if user.state is None:
                user.state = UserState()
            user.state.set(record.key, record.value, UNLIMITED, UNLIMITED)
        return
    room = hub.rooms.get(record.room)
    if room is None:
        return
    if kind is Post:
        room.history.append(bytes(record.message))
    elif kind is Epoch:
        room.epoch = record.epoch
    elif kind is Topic:
        room.topic = record.topic
    elif kind is Drop:
        hub.drop_room(room)
    else:
        user = presence.get(record.user)
        if user is None:
            return
        if kind is Join:
            if user not in room.members:
                hub.join_room(user, room)
        elif kind is Leave:
            if user in room.members:
                hub.remove_member(user, room)
        elif kind is Invite:
            room.invite(user)


def after_load(hub: Hub) -> None:
    """Delete the private rooms nobody is a member of any more (their members were guests,
    who are not kept): nobody could enter them again, as when their last member leaves. Then
    journal every room's epoch: a configured room has no ``create`` record to keep it in, so
    without this its epoch would change at the next start and no client could resume it."""
    for room in [room for room in hub.rooms.values() if room.private and not room.members]:
        hub.drop_room(room)
    journal = hub.journal
    if journal is not None:
        for room in hub.rooms.values():
            journal.write(Epoch(room.name, room.epoch))


# -- the snapshot --------------------------------------------------------------------------------


class SavedUser(msgspec.Struct, array_like=True):
    name: str
    last_seen: int
    state: dict[str, msgspec.Raw] | None


class SavedRoom(msgspec.Struct, array_like=True):
    name: str
    private: bool
    topic: str
    members: list[str]
    invited: list[str]
    last: int
    messages: list[msgspec.Raw]
    epoch: str = ""  # "" in snapshots written before rooms had epochs


class World(msgspec.Struct):
    users: list[SavedUser]
    rooms: list[SavedRoom]


def save(hub: Hub) -> World:
    """The whole durable world of ``hub`` (guests left out)."""
    now = p.now_ms()
    presence = hub.presence
    users = [
        SavedUser(
            user.name,
            user.last_seen or now,  # online now: seen now
            user.state.values if user.state is not None and user.state.values else None,
        )
        for user in presence.by_age()
        if not user.guest
    ]
    rooms = [
        SavedRoom(
            room.name,
            room.private,
            room.topic,
            [user.name for user in room.members if not user.guest],
            [user.name for user in room.invited if not user.guest],
            room.history.last,
            room.history.kept(),
            room.epoch,
        )
        for room in hub.rooms.values()
    ]
    return World(users, rooms)


def restore(hub: Hub, world: World) -> None:
    """Put a saved world into a fresh ``hub`` (which has only the configured rooms)."""
    presence = hub.presence
    for saved in world.users:
        user = presence.add(saved.name, False)
        presence.seen(user, saved.last_seen)
        if saved.state:
            user.state = UserState()
            for key, value in saved.state.items():
                user.state.set(key, value, UNLIMITED, UNLIMITED)
    for saved_room in world.rooms:
        hub.rooms.pop(saved_room.name, None)
        room = hub.create_room(
            saved_room.name, saved_room.private, saved_room.topic, epoch=saved_room.epoch or None
        )
        room.history.restore(saved_room.last, [bytes(raw) for raw in saved_room.messages])
        for name in saved_room.members:
            member = presence.get(name)
            if member is not None:
                hub.join_room(member, room)
        for name in saved_room.invited:
            invited = presence.get(name)
            if invited is not None:
                room.invite(invited)


__all__ = ["ChatState", "Journal", "after_load"]
