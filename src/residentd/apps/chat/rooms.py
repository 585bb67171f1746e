"""Rooms: who belongs, who may join, and which connections a message to the room goes to.

Membership belongs to the user, not to a connection: a user who joins a room is in it on every
device, and stays a member while offline, until it leaves (a guest leaves when it goes
offline). A *public* room lets anyone join and read its history; a *private* one only its
members and the users they invited (an invitation is used up by joining). Invitations are
kept by ``User``, not by name, so they are for the user invited and no other who later signs
in under the same name; each user keeps the rooms it is invited to, so forgetting a user
drops its invitations.

For fan-out a room keeps its ``sinks``: the signed-in sessions of its online members, one dict
per wire (wire.py), so that a message is framed once per wire and then queued on each session
with no lookups: the dict maps a session to its ``push`` (its connection's ``send_bytes``),
and fan-out calls the values. ``sinks[LINES]`` takes JSON lines, ``sinks[TEXT_FRAMES]``
WebSocket text frames. The hub keeps them in step with connections signing in and closing and
with users joining and leaving.

A room's ``epoch`` names the numbering of its history: seqs count from 1 within an epoch. A new
room gets a new one, so a client that saw seq 40 of a room since deleted and made again, or of
a server restarted without ``state_dir`` (which starts every room again at 1), learns that its
seq means nothing here; the journal and snapshot keep the epoch with the history they keep.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from residentd.apps.chat.history import RoomHistory
from residentd.apps.chat.protocol import RoomInfo
from residentd.apps.chat.wire import WIRES, Wire

if TYPE_CHECKING:
    from residentd.apps.chat.presence import User
    from residentd.apps.chat.session import ChatSession

Sinks = dict[Wire, dict["ChatSession", Callable[[bytes], None]]]


def new_epoch() -> str:
    """A fresh epoch: random, so no two numberings of a room share one."""
    return secrets.token_urlsafe(6)


class Room:
    __slots__ = (
        "epoch",
        "history",
        "invited",
        "members",
        "name",
        "online",
        "private",
        "sinks",
        "topic",
    )

    def __init__(
        self, name: str, private: bool, topic: str, history_size: int, epoch: str | None = None
    ) -> None:
        self.name = name
        self.epoch = epoch or new_epoch()
        self.private = private
        self.topic = topic
        self.members: dict[User, None] = {}
        self.online = 0  # members online now
        self.invited: dict[User, None] = {}
        self.history = RoomHistory(history_size)
        self.sinks: Sinks = {wire: {} for wire in WIRES}

    def info(self) -> RoomInfo:
        return RoomInfo(
            self.name,
            self.topic,
            self.private,
            len(self.members),
            self.online,
            self.epoch,
            self.history.last,
        )

    def admits(self, user: User) -> bool:
        """May ``user`` join this room, see its members and read its history?"""
        return not self.private or user in self.members or user in self.invited

    def invite(self, user: User) -> bool:
        """Let ``user`` in; False if it is a member or invited already."""
        if user in self.members or user in self.invited:
            return False
        self.invited[user] = None
        user.invites += (self,)
        return True

    def uninvite(self, user: User) -> None:
        if user in self.invited:
            del self.invited[user]
            user.invites = tuple(room for room in user.invites if room is not self)

    def add_member(self, user: User) -> None:
        self.members[user] = None
        self.uninvite(user)
        if user.sessions:
            self.online += 1
            for session in user.sessions:
                self.sinks[session.wire][session] = session.push

    def remove_member(self, user: User) -> None:
        del self.members[user]
        if user.sessions:
            self.online -= 1
            for session in user.sessions:
                self.sinks[session.wire].pop(session, None)

    def __repr__(self) -> str:
        kind = "private" if self.private else "public"
        return f"<Room {self.name} {kind} members={len(self.members)} online={self.online}>"
