"""The hub: the chat's whole world in memory (users, connections, rooms) and what changes it.

Sessions hand every decoded request to ``Hub.handle``, which checks the sign-in and the user's
rate, runs the handler for the request's type (``handlers.py``) and returns the reply, or
raises ``ChatError``; signing in (``hello``) is done here, since it attaches a connection.
All of it runs on the event loop, one request at a time, so the world needs no locks and every
member of a room sees that room's messages in the same order.

Fan-out encodes a message once: the JSON of a push is framed once per wire format (a line for
TCP, a text frame for WebSocket) and the same bytes object is queued on every connection in the
room's ``sinks`` with ``Connection.send_bytes``, which costs a list append; the connection writes
what it has queued once per loop iteration.

Guests live in their own namespace (``~name``, see names.py) and only as long as their one
connection: when it closes the hub forgets the guest, leaving its rooms and dropping its
invitations and state, so nothing of it passes to a later guest of the same name. A private
room whose last member leaves is deleted, since nobody could enter it again.

Presence pushes (``joined``, ``left``, ``presence``) go to rooms of at most
``presence_push_limit`` members: in larger rooms a sign-in would cost a push to every member,
so their clients ask ``who`` instead.

``tick`` runs once a second: it closes connections that did not sign in within
``hello_timeout``, pings connections silent for ``ping_interval`` and closes those still
silent ``ping_timeout`` seconds later as dead peers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from residentd.apps.chat import durable as d
from residentd.apps.chat import protocol as p
from residentd.apps.chat.handlers import HANDLERS
from residentd.apps.chat.names import guest_name, is_guest
from residentd.apps.chat.presence import Presence, User
from residentd.apps.chat.protocol import ChatError
from residentd.apps.chat.ratelimit import TokenBucket
from residentd.apps.chat.rooms import TCP, WS, Room
from residentd.apps.chat.settings import ChatSettings
from residentd.apps.chat.tokens import check_token
from residentd.codecs.websocket import text_frame

if TYPE_CHECKING:
    from residentd.apps.chat.session import ChatSession
    from residentd.net.connection import Connection

_PING = p.encode(p.ServerPing())
PING_WIRE = (_PING + b"\n", text_frame(_PING))

# Requests that change what a journal keeps: refused while the disk refuses the journal.
WRITES = frozenset(
    {p.Create, p.Join, p.Leave, p.Invite, p.SetTopic, p.Post, p.StateSet, p.StateIncr, p.StateDel}
)


@dataclass(slots=True)
class HubStats:
    """Counters since start, read by the dashboard's sampler."""

    requests: int = 0
    posts: int = 0
    directs: int = 0
    deliveries: int = 0
    rate_limited: int = 0


class Hub:
    def __init__(self, settings: ChatSettings, journal: d.Journal | None = None) -> None:
        self.settings = settings
        self.journal = journal  # with state_dir: where each change is written (durable.py)
        self.presence = Presence()
        self.rooms: dict[str, Room] = {}
        self.pending: dict[ChatSession, None] = {}  # connections that have not signed in
        self.connections = [0, 0]  # signed-in connections, by wire
        self.stats = HubStats()
        self.direct_ids = 0
        for name in settings.rooms:
            self.rooms[name] = Room(name, False, "", settings.history_size)

    def reconfigure(self, settings: ChatSettings) -> None:
        """Apply reloaded options: the new limits hold for everyone from now on."""
        self.settings = settings
        for room in self.rooms.values():
            room.history.resize(settings.history_size)

    # -- connections ---------------------------------------------------------------------------

    def connected(self, session: ChatSession) -> None:
        """A chat connection opened; it has ``hello_timeout`` seconds to sign in."""
        self.pending[session] = None

    def disconnected(self, session: ChatSession) -> None:
        self.pending.pop(session, None)
        user = session.user
        if user is None:
            return
        session.user = None
        self.connections[session.wire] -= 1
        for room in user.rooms:
            room.sinks[session.wire].pop(session.conn, None)
        if self.presence.detach(user, session, p.now_ms()):
            for room in user.rooms:
                room.online -= 1
            if user.guest:  # a guest ends with its connection
                self.forget(user)
                return
            if self.journal is not None:
                self.journal.write(d.Offline(user.name, user.last_seen))
            for room in user.rooms:
                if self._pushes(room):
                    push = p.Presence(
                        room=room.name, user=user.name, online=False, last_seen=user.last_seen
                    )
                    self.fanout(room.sinks, p.encode(push))

    # -- requests ------------------------------------------------------------------------------

    def handle(self, session: ChatSession, request: Any) -> p.Reply | None:
        """Run one request; returns its reply (None for none) or raises ``ChatError``."""
        self.stats.requests += 1
        user = session.user
        kind = type(request)
        if user is None:
            if kind is p.Hello:
                return self.hello(session, request)
            if kind is p.Ping:
                return p.PongReply()
            if kind is p.Pong:
                return None
            raise ChatError("not-signed-in", "send hello first")
        if kind is not p.Pong and kind is not p.Ping and self.settings.rate_limit:
            self._charge(user)
        if self.journal is not None and kind in WRITES:
            self.journal.check()
        return HANDLERS[kind](self, session, request)

    def _charge(self, user: User) -> None:
        settings = self.settings
        now = time.monotonic()
        bucket = user.bucket
        if bucket is None:
            bucket = user.bucket = TokenBucket(settings.rate_burst, now)
        wait = bucket.take(settings.rate_limit, settings.rate_burst, now)
        if wait:
            self.stats.rate_limited += 1
            limits = (
                f"{p.setting('rate_limit', settings.rate_limit)}, "
                f"{p.setting('rate_burst', settings.rate_burst)}"
            )
            detail = f"too many requests a second ({limits})"
            raise ChatError("rate-limited", detail, p.retry_after(wait))

    def hello(self, session: ChatSession, request: p.Hello) -> p.HelloReply:
        settings = self.settings
        if request.v != p.VERSION:
            raise ChatError("unsupported-version", f"this server speaks version {p.VERSION}")
        name = request.user
        if request.token is not None:
            if is_guest(name):
                raise ChatError("bad-token", f"{name} is a guest's name: tokens are for user names")
            problem = check_token(settings.secret or "", name, request.token)
            if problem is not None:
                raise ChatError("bad-token", problem)
            user = self.presence.get(name) or self._new_user(name, False)
        elif not settings.guests:
            raise ChatError("bad-token", "this server needs a token: guests are not allowed")
        else:
            name = guest_name(name)
            if self.presence.get(name) is not None:
                raise ChatError("name-taken", f"a guest named {name} is online")
            user = self._new_user(name, True)
        if len(user.sessions) >= settings.max_connections_per_user:
            limit = settings.max_connections_per_user
            setting = p.setting("max_connections_per_user", limit)
            raise ChatError(
                "too-many-connections", f"{name} holds {limit} connections already ({setting})"
            )
        self._attach(session, user)
        return p.HelloReply(
            v=p.VERSION,
            user=user.name,
            guest=user.guest,
            conn=session.conn.id,
            time=p.now_ms(),
            online=len(self.presence.online),
            rooms=[room.name for room in user.rooms],
            ping_interval=settings.ping_interval,
        )

    def user(self, name: str) -> User:
        """The user or guest ``name``, if the server knows it."""
        user = self.presence.get(name)
        if user is None:
            raise ChatError("no-such-user", f"no user is named {name}")
        return user

    def known_user(self, name: str, waiter: object = None) -> User:
        """The user ``name``, made (offline, not a guest) if the server does not know it: the
        backend API vouches for the users it names. A guest is made only by its own
        connection, so an unknown ``~`` name is ``no-such-user``. A user made here is
        journaled as one that has never been online."""
        if is_guest(name):
            return self.user(name)
        user = self.presence.get(name)
        if user is None:
            user = self._new_user(name, False)
            if self.journal is not None:
                self.journal.write(d.Offline(name, 0), waiter)
        return user

    def kick(self, user: User, reason: str) -> int:
        """Close every connection of ``user`` with a ``kicked`` error; how many were closed."""
        sessions = user.sessions
        for session in sessions:
            self.disconnected(session)  # offline now, not when the sockets are gone
            session.fail("kicked", reason)
        return len(sessions)

    def _new_user(self, name: str, guest: bool) -> User:
        presence = self.presence
        if len(presence.users) >= self.settings.max_users:
            oldest = presence.oldest_offline()
            if oldest is None:
                limit = p.setting("max_users", self.settings.max_users)
                raise ChatError("server-full", f"every known user is online ({limit})")
            self.forget(oldest)
        return presence.add(name, guest)

    def forget(self, user: User) -> None:
        """Drop an offline user and everything it had: rooms, invitations, state."""
        for room in user.rooms:
            self.leave_room(user, room)
        for room in user.invites:
            room.uninvite(user)
        self.presence.forget(user)
        if self.journal is not None and not user.guest:
            self.journal.write(d.Forget(user.name))

    def _attach(self, session: ChatSession, user: User) -> None:
        self.pending.pop(session, None)
        session.user = user
        self.connections[session.wire] += 1
        came_online = self.presence.attach(user, session)
        if came_online and self.journal is not None and not user.guest:
            self.journal.write(d.Online(user.name, p.now_ms()), session.conn)
        for room in user.rooms:
            if came_online:
                room.online += 1
                if self._pushes(room):
                    push = p.Presence(room=room.name, user=user.name, online=True)
                    self.fanout(room.sinks, p.encode(push))
            room.sinks[session.wire][session.conn] = None

    # -- fan-out -------------------------------------------------------------------------------

    def fanout(
        self, sinks: tuple[dict[Connection, None], dict[Connection, None]], payload: bytes
    ) -> None:
        """Queue one encoded push on every connection of ``sinks``."""
        tcp, ws = sinks
        if tcp:
            line = payload + b"\n"
            for conn in tcp:
                conn.send_bytes(line)
        if ws:
            frame = text_frame(payload)
            for conn in ws:
                conn.send_bytes(frame)
        self.stats.deliveries += len(tcp) + len(ws)

    def send_to(self, user: User, payload: bytes) -> None:
        """Queue one encoded push on every connection of ``user``."""
        wire: list[bytes | None] = [None, None]
        for session in user.sessions:
            data = wire[session.wire]
            if data is None:
                data = wire[session.wire] = (
                    payload + b"\n" if session.wire == TCP else text_frame(payload)
                )
            session.conn.send_bytes(data)
        self.stats.deliveries += len(user.sessions)

    def _pushes(self, room: Room) -> bool:
        return len(room.members) <= self.settings.presence_push_limit

    # -- liveness ------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Once a second (``now`` is loop time): sign-in deadlines, pings, dead peers."""
        settings = self.settings
        deadline = now - settings.hello_timeout
        late = [session for session in self.pending if session.conn.connected_at <= deadline]
        for session in late:
            limit = p.setting("hello_timeout", settings.hello_timeout)
            session.fail("hello-timeout", f"no accepted hello in time ({limit})")
        interval = settings.ping_interval
        if not interval:
            return
        silent_since = now - interval
        timeout = settings.ping_timeout
        for user in list(self.presence.online.values()):
            for session in user.sessions:
                last = session.conn.last_active
                if last > silent_since:
                    continue
                if session.pinged <= last:  # not pinged since it last said something
                    session.pinged = now
                    session.conn.send_bytes(PING_WIRE[session.wire])
                elif now - session.pinged >= timeout:
                    limit = p.setting("ping_timeout", timeout)
                    session.fail("dead-peer", f"no answer to ping in time ({limit})")

    # -- rooms ---------------------------------------------------------------------------------

    def room(self, name: str) -> Room:
        room = self.rooms.get(name)
        if room is None:
            raise ChatError("no-such-room", f"no room is named {name}")
        return room

    def visible_room(self, user: User, name: str) -> Room:
        room = self.room(name)
        if not room.admits(user):
            raise ChatError("not-a-member", f"{name} is private: only its members may see it")
        return room

    def member_room(self, user: User, name: str) -> Room:
        room = self.room(name)
        if user not in room.members:
            raise ChatError("not-a-member", f"you are not a member of {name}")
        return room

    def check_quota(self, user: User) -> None:
        limit = self.settings.max_rooms_per_user
        if len(user.rooms) >= limit:
            setting = p.setting("max_rooms_per_user", limit)
            raise ChatError("too-many-rooms", f"already in {len(user.rooms)} rooms ({setting})")

    def create_room(self, name: str, private: bool, topic: str, waiter: object = None) -> Room:
        room = self.rooms[name] = Room(name, private, topic, self.settings.history_size)
        if self.journal is not None:
            self.journal.write(d.Create(name, private, topic), waiter)
        return room

    def join_room(self, user: User, room: Room, waiter: object = None) -> None:
        room.add_member(user)
        user.rooms += (room,)
        if self.journal is not None and not user.guest:
            self.journal.write(d.Join(room.name, user.name), waiter)
        if self._pushes(room):
            self.fanout(room.sinks, p.encode(p.Joined(room=room.name, user=user.name)))

    def leave_room(self, user: User, room: Room, waiter: object = None) -> None:
        if self._pushes(room):
            self.fanout(room.sinks, p.encode(p.Left(room=room.name, user=user.name)))
        self.remove_member(user, room)
        if self.journal is not None and not user.guest:
            self.journal.write(d.Leave(room.name, user.name), waiter)
        if room.private and not room.members:  # nobody could enter it again
            self.drop_room(room, waiter)

    def remove_member(self, user: User, room: Room) -> None:
        room.remove_member(user)
        user.rooms = tuple(other for other in user.rooms if other is not room)

    def drop_room(self, room: Room, waiter: object = None) -> None:
        """Delete a room (a private one nobody is a member of), with its invitations."""
        for invited in list(room.invited):
            room.uninvite(invited)
        del self.rooms[room.name]
        if self.journal is not None:
            self.journal.write(d.Drop(room.name), waiter)


__all__ = ["TCP", "WS", "Hub", "HubStats"]
