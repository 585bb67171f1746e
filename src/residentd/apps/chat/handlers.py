"""The request handlers: what each request does to the hub, and the reply it gets.

One function per request type, registered in ``HANDLERS`` by the struct it handles; the hub
calls them once the user is signed in and charged for the request. A handler reads and changes
the hub's world through its rooms, users and fan-out, returns its reply, or raises
``ChatError`` for an ``error`` reply. ``hello`` is not here: signing in is the hub's own
business, since it attaches the connection to a user.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from residentd.apps.chat import durable as d
from residentd.apps.chat import protocol as p
from residentd.apps.chat.protocol import ChatError
from residentd.apps.chat.state import UserState

if TYPE_CHECKING:
    from residentd.apps.chat.hub import Hub
    from residentd.apps.chat.presence import User
    from residentd.apps.chat.session import ChatSession

# A room list, a member list and an online list are cut at this many entries.
MAX_LISTED = 1000

Handler = Callable[["Hub", "ChatSession", Any], p.Reply | None]
HANDLERS: dict[type, Handler] = {}


def _handles(kind: type) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[kind] = handler
        return handler

    return register


def _user(session: ChatSession) -> User:
    user = session.user
    assert user is not None
    return user


def _text_too_long(text: str, limit: int) -> str:
    return f"the text is {len(text)} characters ({p.setting('max_text', limit)})"


@_handles(p.Ping)
def _ping(hub: Hub, session: ChatSession, request: p.Ping) -> p.Reply:
    return p.PongReply()


@_handles(p.Pong)
def _pong(hub: Hub, session: ChatSession, request: p.Pong) -> None:
    return None


@_handles(p.Hello)
def _hello_again(hub: Hub, session: ChatSession, request: p.Hello) -> None:
    raise ChatError("already-signed-in", f"signed in as {_user(session).name} already")


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
        raise ChatError("no-such-user", f"no user is named {request.user}")
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
        raise ChatError("room-exists", f"a room named {request.room} exists already")
    if len(hub.rooms) >= hub.settings.max_rooms:
        limit = p.setting("max_rooms", hub.settings.max_rooms)
        raise ChatError("rooms-full", f"the server holds {len(hub.rooms)} rooms ({limit})")
    hub.check_quota(user)
    room = hub.create_room(request.room, request.private, request.topic, session.conn)
    hub.join_room(user, room, session.conn)
    return p.CreateReply(room=room.info())


@_handles(p.Join)
def _join(hub: Hub, session: ChatSession, request: p.Join) -> p.Reply:
    user = _user(session)
    room = hub.room(request.room)
    if user not in room.members:
        if not room.admits(user):
            raise ChatError("not-invited", f"{room.name} is private: a member must invite you")
        hub.check_quota(user)
        hub.join_room(user, room, session.conn)
    return p.JoinReply(room=room.info(), last=room.history.last)


@_handles(p.Leave)
def _leave(hub: Hub, session: ChatSession, request: p.Leave) -> p.Reply:
    user = _user(session)
    room = hub.member_room(user, request.room)
    hub.leave_room(user, room, session.conn)
    return p.LeaveReply(room=room.name)


@_handles(p.Invite)
def _invite(hub: Hub, session: ChatSession, request: p.Invite) -> p.Reply:
    user = _user(session)
    room = hub.member_room(user, request.room)
    invited = hub.presence.get(request.user)
    if invited is None:
        raise ChatError("no-such-user", f"no user is named {request.user}")
    if room.invite(invited):
        if hub.journal is not None and not invited.guest:
            hub.journal.write(d.Invite(room.name, invited.name), session.conn)
        hub.send_to(invited, p.encode(p.Invited(room=room.name, by=user.name)))
    return p.InviteReply(room=room.name, user=invited.name)


@_handles(p.SetTopic)
def _topic(hub: Hub, session: ChatSession, request: p.SetTopic) -> p.Reply:
    user = _user(session)
    room = hub.member_room(user, request.room)
    room.topic = request.topic
    if hub.journal is not None:
        hub.journal.write(d.Topic(room.name, room.topic), session.conn)
    push = p.TopicChanged(room=room.name, topic=room.topic, by=user.name)
    hub.fanout(room.sinks, p.encode(push))
    return p.TopicReply(room=room.name, topic=room.topic)


@_handles(p.Post)
def _post(hub: Hub, session: ChatSession, request: p.Post) -> p.Reply:
    user = _user(session)
    room = hub.rooms.get(request.room)
    if room is None or user not in room.members:
        if room is None:
            raise ChatError("no-such-room", f"no room is named {request.room}")
        raise ChatError("not-a-member", f"only members of {room.name} may post there")
    limit = hub.settings.max_text
    if len(request.text) > limit:
        raise ChatError("too-long", _text_too_long(request.text, limit))
    history = room.history
    seq = history.next_seq()
    ts = p.now_ms()
    message = p.Message(room=room.name, seq=seq, ts=ts, user=user.name, text=request.text)
    payload = p.encode(message)
    history.append(payload)
    if hub.journal is not None:
        hub.journal.post(room.name, payload, session.conn)
    hub.fanout(room.sinks, payload)
    hub.stats.posts += 1
    return p.PostReply(room=room.name, seq=seq, ts=ts)


@_handles(p.Direct)
def _direct(hub: Hub, session: ChatSession, request: p.Direct) -> p.Reply:
    user = _user(session)
    target = hub.presence.get(request.to)
    if target is None:
        raise ChatError("no-such-user", f"no user is named {request.to}")
    if not target.sessions:
        raise ChatError("user-offline", f"{request.to} is offline")
    limit = hub.settings.max_text
    if len(request.text) > limit:
        raise ChatError("too-long", _text_too_long(request.text, limit))
    hub.direct_ids += 1
    ts = p.now_ms()
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
    user = _user(session)
    state = _state(user)
    size = state.set(request.key, request.value, settings.state_max_keys, settings.state_max_bytes)
    if hub.journal is not None and not user.guest:
        hub.journal.write(d.StateSet(user.name, request.key, request.value), session.conn)
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
    user = _user(session)
    state = _state(user)
    value = state.incr(request.key, request.by, settings.state_max_keys, settings.state_max_bytes)
    if hub.journal is not None and not user.guest:
        saved = state.values[request.key]
        hub.journal.write(d.StateSet(user.name, request.key, saved), session.conn)
    return p.StateIncrReply(key=request.key, value=value)


@_handles(p.StateDel)
def _state_del(hub: Hub, session: ChatSession, request: p.StateDel) -> p.Reply:
    user = _user(session)
    deleted = _state(user).delete(request.key)
    if deleted and hub.journal is not None and not user.guest:
        hub.journal.write(d.StateDel(user.name, request.key), session.conn)
    return p.StateDelReply(key=request.key, deleted=deleted)
