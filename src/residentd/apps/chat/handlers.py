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
    from residentd.apps.chat.rooms import Room
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
    return p.WhoReply(room=room.name, online=room.online, users=member_list(room, limit))


def member_list(room: Room, limit: int) -> list[p.UserInfo]:
    """Up to ``limit`` members of ``room``, the online ones first."""
    here = [user for user in room.members if user.sessions]
    away = [user for user in room.members if not user.sessions]
    listed = [p.UserInfo(user.name, True) for user in here[:limit]]
    for user in away[: limit - len(listed)]:
        listed.append(p.UserInfo(user.name, False, user.last_seen or None))
    return listed


@_handles(p.Seen)
def _seen(hub: Hub, session: ChatSession, request: p.Seen) -> p.Reply:
    user = hub.user(request.user)
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
    invited = hub.user(request.user)
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
    return post_message(hub, room, user.name, request.text, session.conn)


def post_message(
    hub: Hub, room: Room, sender: str, text: str, waiter: object = None
) -> p.PostReply:
    """Post ``text`` to ``room`` as ``sender``: kept in its history (journaled, acknowledged
    through ``waiter``), sent to its members."""
    limit = hub.settings.max_text
    if len(text) > limit:
        raise ChatError("too-long", _text_too_long(text, limit))
    history = room.history
    seq = history.next_seq()
    ts = p.now_ms()
    payload = p.encode(p.Message(room=room.name, seq=seq, ts=ts, user=sender, text=text))
    history.append(payload)
    if hub.journal is not None:
        hub.journal.post(room.name, payload, waiter)
    hub.fanout(room.sinks, payload)
    hub.stats.posts += 1
    return p.PostReply(room=room.name, seq=seq, ts=ts)


@_handles(p.Direct)
def _direct(hub: Hub, session: ChatSession, request: p.Direct) -> p.Reply:
    user = _user(session)
    return send_direct(hub, user.name, request.to, request.text)


def send_direct(hub: Hub, sender: str, to: str, text: str) -> p.DirectReply:
    """Send ``text`` from ``sender`` to every connection of ``to``, and a copy to the sender's
    own connections when the sender is a user online."""
    target = hub.user(to)
    if not target.sessions:
        raise ChatError("user-offline", f"{to} is offline")
    limit = hub.settings.max_text
    if len(text) > limit:
        raise ChatError("too-long", _text_too_long(text, limit))
    hub.direct_ids += 1
    ts = p.now_ms()
    message = p.DirectMessage(msg=hub.direct_ids, ts=ts, sender=sender, to=target.name, text=text)
    payload = p.encode(message)
    hub.send_to(target, payload)
    author = hub.presence.get(sender)
    if author is not None and author is not target:
        hub.send_to(author, payload)
    hub.stats.directs += 1
    return p.DirectReply(to=target.name, msg=hub.direct_ids, ts=ts)


@_handles(p.History)
def _history(hub: Hub, session: ChatSession, request: p.History) -> p.Reply:
    room = hub.visible_room(_user(session), request.room)
    messages, more = room.history.page(request.before, request.limit)
    return p.HistoryReply(room=room.name, messages=messages, more=more)


def user_state(user: User) -> UserState:
    """The state document of ``user``, made when first used."""
    if user.state is None:
        user.state = UserState()
    return user.state


def set_state(hub: Hub, user: User, key: str, value: Any, waiter: object) -> int:
    """Set ``key`` of ``user``'s state document (journaled, acknowledged through ``waiter``);
    the document's size."""
    settings = hub.settings
    size = user_state(user).set(key, value, settings.state_max_keys, settings.state_max_bytes)
    if hub.journal is not None and not user.guest:
        hub.journal.write(d.StateSet(user.name, key, value), waiter)
    return size


def incr_state(hub: Hub, user: User, key: str, by: int, waiter: object) -> int:
    """Add ``by`` to ``key`` of ``user``'s state document; the new value. The journal keeps the
    value itself, so a replay gives the same number."""
    settings = hub.settings
    state = user_state(user)
    value = state.incr(key, by, settings.state_max_keys, settings.state_max_bytes)
    if hub.journal is not None and not user.guest:
        hub.journal.write(d.StateSet(user.name, key, state.values[key]), waiter)
    return value


def delete_state(hub: Hub, user: User, key: str, waiter: object) -> bool:
    """Delete ``key`` of ``user``'s state document; whether it was there."""
    deleted = user.state is not None and user.state.delete(key)
    if deleted and hub.journal is not None and not user.guest:
        hub.journal.write(d.StateDel(user.name, key), waiter)
    return deleted


@_handles(p.StateSet)
def _state_set(hub: Hub, session: ChatSession, request: p.StateSet) -> p.Reply:
    size = set_state(hub, _user(session), request.key, request.value, session.conn)
    return p.StateSetReply(key=request.key, size=size)


@_handles(p.StateGet)
def _state_get(hub: Hub, session: ChatSession, request: p.StateGet) -> p.Reply:
    state = user_state(_user(session))
    if request.key is None:
        return p.StateGetReply(value=state.document())
    return p.StateGetReply(key=request.key, value=state.get(request.key))


@_handles(p.StateIncr)
def _state_incr(hub: Hub, session: ChatSession, request: p.StateIncr) -> p.Reply:
    value = incr_state(hub, _user(session), request.key, request.by, session.conn)
    return p.StateIncrReply(key=request.key, value=value)


@_handles(p.StateDel)
def _state_del(hub: Hub, session: ChatSession, request: p.StateDel) -> p.Reply:
    deleted = delete_state(hub, _user(session), request.key, session.conn)
    return p.StateDelReply(key=request.key, deleted=deleted)
