"""The hub: the chat's whole world in memory (users, connections, rooms) and what changes it.

Sessions hand every decoded request to ``Hub.handle``, which checks the sign-in and the user's
rate, runs the handler for the request's type and returns the reply, or raises ``ChatError``.
All of it runs on the event loop, one request at a time, so the world needs no locks and every
member of a room sees that room's messages in the same order.

Fan-out encodes a message once: the JSON of a push is framed once per wire format (a line for
TCP, a text frame for WebSocket) and the same bytes object is queued on every connection in the
room's ``sinks`` with ``Connection.send_bytes``, which costs a list append; the connection writes
what it has queued once per loop iteration.

Presence pushes (``joined``, ``left``, ``presence``) go to rooms of at most
``presence_push_limit`` members: in larger rooms a sign-in would cost a push to every member,
so their clients ask ``who`` instead.

``tick`` runs once a second: it closes connections that did not sign in within
``hello_timeout``, pings connections silent for ``ping_interval`` and closes those still
silent ``ping_timeout`` seconds later as dead peers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from residentd.apps.chat import protocol as p
from residentd.apps.chat.presence import Presence, User
from residentd.apps.chat.protocol import ChatError
from residentd.apps.chat.ratelimit import TokenBucket
from residentd.apps.chat.rooms import TCP, WS, Room
from residentd.apps.chat.settings import ChatSettings
from residentd.apps.chat.state import UserState
from residentd.apps.chat.tokens import check_token
from residentd.codecs.websocket import text_frame

if TYPE_CHECKING:
    from residentd.apps.chat.session import ChatSession
    from residentd.net.connection import Connection

# A room list, a member list and an online list are cut at this many entries.
MAX_LISTED = 1000

_PING = p.encode(p.ServerPing())
PING_WIRE = (_PING + b"\n", text_frame(_PING))


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class HubStats:
    """Counters since start, read by the dashboard's sampler."""

    requests: int = 0
    posts: int = 0
    directs: int = 0
    deliveries: int = 0
    rate_limited: int = 0


Handler = Callable[["Hub", "ChatSession", Any], p.Reply | None]
_handlers: dict[type, Handler] = {}


def _handles(kind: type) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _handlers[kind] = handler
        return handler

    return register


class Hub:
    def __init__(self, settings: ChatSettings) -> None:
        self.settings = settings
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
        if self.presence.detach(user, session, now_ms()):
            for room in user.rooms:
                room.online -= 1
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
        return _handlers[kind](self, session, request)

    def _charge(self, user: User) -> None:
        settings = self.settings
        now = time.monotonic()
        bucket = user.bucket
        if bucket is None:
            bucket = user.bucket = TokenBucket(settings.rate_burst, now)
        wait = bucket.take(settings.rate_limit, settings.rate_burst, now)
        if wait:
            self.stats.rate_limited += 1
            raise ChatError(
                "rate-limited",
                f"limit {settings.rate_limit:g}/s, burst {settings.rate_burst:g}",
                round(wait, 3),
            )

    def hello(self, session: ChatSession, request: p.Hello) -> p.HelloReply:
        settings = self.settings
        if request.v != p.VERSION:
            raise ChatError("unsupported-version", f"this server speaks version {p.VERSION}")
        name = request.user
        user = self.presence.get(name)
        if request.token is not None:
            problem = check_token(settings.secret or "", name, request.token)
            if problem is not None:
                raise ChatError("bad-token", problem)
            guest = False
        elif not settings.guests:
            raise ChatError("bad-token", "this server needs a token: guests are not allowed")
        else:
            guest = True
            if user is not None and not user.guest:
                raise ChatError("name-taken", f"{name!r} signs in with a token")
            if user is not None and user.sessions:
                raise ChatError("name-taken", f"a guest named {name!r} is online")
        if user is None:
            user = self._new_user(name, guest)
        elif not guest and user.guest:
            # The name's owner came with a token: guests who used it are shown the door.
            for impostor in user.sessions:
                self.disconnected(impostor)
                impostor.fail("name-taken", f"{name!r} signed in with a token")
            user.guest = False
        if len(user.sessions) >= settings.max_connections_per_user:
            limit = settings.max_connections_per_user
            raise ChatError("too-many-connections", f"limit {limit} per user")
        self._attach(session, user)
        return p.HelloReply(
            v=p.VERSION,
            user=user.name,
            guest=user.guest,
            conn=session.conn.id,
            time=now_ms(),
            online=len(self.presence.online),
            rooms=[room.name for room in user.rooms],
            ping_interval=settings.ping_interval,
        )

    def _new_user(self, name: str, guest: bool) -> User:
        presence = self.presence
        if len(presence.users) >= self.settings.max_users:
            oldest = presence.oldest_offline()
            if oldest is None:
                raise ChatError("server-full", f"max_users={self.settings.max_users}")
            self._forget(oldest)
        return presence.add(name, guest)

    def _forget(self, user: User) -> None:
        for room in user.rooms:
            self.leave_room(user, room)
        self.presence.forget(user)

    def _attach(self, session: ChatSession, user: User) -> None:
        self.pending.pop(session, None)
        session.user = user
        self.connections[session.wire] += 1
        came_online = self.presence.attach(user, session)
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
            session.fail("hello-timeout", f"limit={settings.hello_timeout:g}s")
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
                    session.fail("dead-peer", f"no answer to ping in {timeout:g}s")

    # -- rooms ---------------------------------------------------------------------------------

    def room(self, name: str) -> Room:
        room = self.rooms.get(name)
        if room is None:
            raise ChatError("no-such-room", name)
        return room

    def visible_room(self, user: User, name: str) -> Room:
        room = self.room(name)
        if not room.admits(user):
            raise ChatError("not-a-member", f"{name} is private")
        return room

    def member_room(self, user: User, name: str) -> Room:
        room = self.room(name)
        if user not in room.members:
            raise ChatError("not-a-member", name)
        return room

    def check_quota(self, user: User) -> None:
        limit = self.settings.max_rooms_per_user
        if len(user.rooms) >= limit:
            raise ChatError("too-many-rooms", f"limit {limit} per user")

    def join_room(self, user: User, room: Room) -> None:
        room.add_member(user)
        user.rooms += (room,)
        if self._pushes(room):
            self.fanout(room.sinks, p.encode(p.Joined(room=room.name, user=user.name)))

    def leave_room(self, user: User, room: Room) -> None:
        if self._pushes(room):
            self.fanout(room.sinks, p.encode(p.Left(room=room.name, user=user.name)))
        room.remove_member(user)
        user.rooms = tuple(other for other in user.rooms if other is not room)


def _user(session: ChatSession) -> User:
    user = session.user
    assert user is not None
    return user


@_handles(p.Ping)
def _ping(hub: Hub, session: ChatSession, request: p.Ping) -> p.Reply:
    return p.PongReply()


@_handles(p.Pong)
def _pong(hub: Hub, session: ChatSession, request: p.Pong) -> None:
    return None


@_handles(p.Hello)
def _hello_again(hub: Hub, session: ChatSession, request: p.Hello) -> None:
    raise ChatError("already-signed-in", f"as {_user(session).name}")


@_handles(p.Who)
def _who(hub: Hub, session: ChatSession, request: p.Who) -> p.Reply:
    limit = request.limit
    if request.room is None:
        online = hub.presence.online
        users: list[p.UserInfo] = []
        for name in online:
            if len(users) >= limit:
                break
            users.append(p.UserInfo(name, True))
        return p.WhoReply(online=len(online), users=users)
    room = hub.visible_room(_user(session), request.room)
    here = [user for user in room.members if user.sessions]
    away = [user for user in room.members if not user.sessions]
    listed = [p.UserInfo(user.name, True) for user in here[:limit]]
    for user in away[: limit - len(listed)]:
        listed.append(p.UserInfo(user.name, False, user.last_seen or None))
    return p.WhoReply(room=room.name, online=room.online, users=listed)


@_handles(p.Seen)
def _seen(hub: Hub, session: ChatSession, request: p.Seen) -> p.Reply:
    user = hub.presence.get(request.user)
    if user is None:
        raise ChatError("no-such-user", request.user)
    return p.SeenReply(user=user.name, online=user.online, last_seen=user.last_seen or None)


@_handles(p.Rooms)
def _rooms(hub: Hub, session: ChatSession, request: p.Rooms) -> p.Reply:
    user = _user(session)
    listed = []
    for room in hub.rooms.values():
        if room.admits(user):
            listed.append(room.info())
            if len(listed) >= MAX_LISTED:
                break
    return p.RoomsReply(rooms=listed)


@_handles(p.Create)
def _create(hub: Hub, session: ChatSession, request: p.Create) -> p.Reply:
    user = _user(session)
    if request.room in hub.rooms:
        raise ChatError("room-exists", request.room)
    if len(hub.rooms) >= hub.settings.max_rooms:
        raise ChatError("rooms-full", f"max_rooms={hub.settings.max_rooms}")
    hub.check_quota(user)
    room = Room(request.room, request.private, request.topic, hub.settings.history_size)
    hub.rooms[room.name] = room
    hub.join_room(user, room)
    return p.CreateReply(room=room.info())


@_handles(p.Join)
def _join(hub: Hub, session: ChatSession, request: p.Join) -> p.Reply:
    user = _user(session)
    room = hub.room(request.room)
    if user not in room.members:
        if not room.admits(user):
            raise ChatError("not-invited", f"{room.name} is private")
        hub.check_quota(user)
        hub.join_room(user, room)
    return p.JoinReply(room=room.info(), last=room.history.last)


@_handles(p.Leave)
def _leave(hub: Hub, session: ChatSession, request: p.Leave) -> p.Reply:
    user = _user(session)
    room = hub.member_room(user, request.room)
    hub.leave_room(user, room)
    return p.LeaveReply(room=room.name)


@_handles(p.Invite)
def _invite(hub: Hub, session: ChatSession, request: p.Invite) -> p.Reply:
    user = _user(session)
    room = hub.member_room(user, request.room)
    guest = hub.presence.get(request.user)
    if guest is None:
        raise ChatError("no-such-user", request.user)
    if guest not in room.members and guest.name not in room.invited:
        room.invited.add(guest.name)
        hub.send_to(guest, p.encode(p.Invited(room=room.name, by=user.name)))
    return p.InviteReply(room=room.name, user=guest.name)


@_handles(p.SetTopic)
def _topic(hub: Hub, session: ChatSession, request: p.SetTopic) -> p.Reply:
    user = _user(session)
    room = hub.member_room(user, request.room)
    room.topic = request.topic
    push = p.TopicChanged(room=room.name, topic=room.topic, by=user.name)
    hub.fanout(room.sinks, p.encode(push))
    return p.TopicReply(room=room.name, topic=room.topic)


@_handles(p.Post)
def _post(hub: Hub, session: ChatSession, request: p.Post) -> p.Reply:
    user = _user(session)
    room = hub.rooms.get(request.room)
    if room is None or user not in room.members:
        raise ChatError("not-a-member" if room else "no-such-room", request.room)
    limit = hub.settings.max_text
    if len(request.text) > limit:
        raise ChatError("too-long", f"max_text={limit}")
    history = room.history
    seq = history.next_seq()
    ts = now_ms()
    message = p.Message(room=room.name, seq=seq, ts=ts, user=user.name, text=request.text)
    payload = p.encode(message)
    history.append(payload)
    hub.fanout(room.sinks, payload)
    hub.stats.posts += 1
    return p.PostReply(room=room.name, seq=seq, ts=ts)


@_handles(p.Direct)
def _direct(hub: Hub, session: ChatSession, request: p.Direct) -> p.Reply:
    user = _user(session)
    target = hub.presence.get(request.to)
    if target is None:
        raise ChatError("no-such-user", request.to)
    if not target.sessions:
        raise ChatError("user-offline", request.to)
    limit = hub.settings.max_text
    if len(request.text) > limit:
        raise ChatError("too-long", f"max_text={limit}")
    hub.direct_ids += 1
    ts = now_ms()
    message = p.DirectMessage(
        msg=hub.direct_ids, ts=ts, sender=user.name, to=target.name, text=request.text
    )
    payload = p.encode(message)
    hub.send_to(target, payload)
    if target is not user:
        hub.send_to(user, payload)
    hub.stats.directs += 1
    return p.DirectReply(to=target.name, msg=hub.direct_ids, ts=ts)


@_handles(p.History)
def _history(hub: Hub, session: ChatSession, request: p.History) -> p.Reply:
    room = hub.visible_room(_user(session), request.room)
    messages, more = room.history.page(request.before, request.limit)
    return p.HistoryReply(room=room.name, messages=messages, more=more)


def _state(user: User) -> UserState:
    if user.state is None:
        user.state = UserState()
    return user.state


@_handles(p.StateSet)
def _state_set(hub: Hub, session: ChatSession, request: p.StateSet) -> p.Reply:
    settings = hub.settings
    state = _state(_user(session))
    size = state.set(request.key, request.value, settings.state_max_keys, settings.state_max_bytes)
    return p.StateSetReply(key=request.key, size=size)


@_handles(p.StateGet)
def _state_get(hub: Hub, session: ChatSession, request: p.StateGet) -> p.Reply:
    state = _state(_user(session))
    if request.key is None:
        return p.StateGetReply(value=state.document())
    return p.StateGetReply(key=request.key, value=state.get(request.key))


@_handles(p.StateIncr)
def _state_incr(hub: Hub, session: ChatSession, request: p.StateIncr) -> p.Reply:
    settings = hub.settings
    state = _state(_user(session))
    value = state.incr(request.key, request.by, settings.state_max_keys, settings.state_max_bytes)
    return p.StateIncrReply(key=request.key, value=value)


@_handles(p.StateDel)
def _state_del(hub: Hub, session: ChatSession, request: p.StateDel) -> p.Reply:
    state = _state(_user(session))
    return p.StateDelReply(key=request.key, deleted=state.delete(request.key))


__all__ = ["MAX_LISTED", "TCP", "WS", "Hub", "HubStats", "now_ms"]
