"""The dispatcher: the sign-in gate, the rate charge and the handler of each request type.

``dispatch`` runs one decoded request for a session: before ``hello`` only the requests
registered ``before_hello`` pass (``not-signed-in`` otherwise), a signed-in user's request is
charged to its token bucket (``rate-limited`` past ``rate_limit``) unless registered
``charged=False``, and a request registered ``writes`` is refused while the disk refuses the
journal (``storage-error``). Then the request's handler changes the world through the hub
(hub.py) and returns the reply, or None for none, or raises ``ChatError``.

``HANDLERS`` holds one handler per request struct of ``protocol.AnyRequest``, registered with
``@handles``; the table is checked against the union when this module is imported, so a
request without a handler (or a handler of no request) fails at start, not as an
``internal-error`` close when a client first sends it. Adding a request is its struct in
protocol.py and its handler here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, get_args

from residentd.apps.chat import protocol as p
from residentd.apps.chat.errors import ChatError, ErrorCode
from residentd.apps.chat.hub import (
    MAX_LISTED,
    delete_state,
    incr_state,
    member_list,
    post_message,
    resume,
    send_direct,
    set_state,
    user_state,
)
from residentd.apps.chat.names import guest_name, is_guest
from residentd.apps.chat.ratelimit import TokenBucket
from residentd.apps.chat.tokens import check_token
from residentd.errors import ResidentdError

if TYPE_CHECKING:
    from residentd.apps.chat.hub import Hub
    from residentd.apps.chat.presence import User
    from residentd.apps.chat.session import ChatSession

Handler = Callable[["Hub", "ChatSession", Any], p.Reply | None]
HANDLERS: dict[type, Handler] = {}
BEFORE_HELLO: set[type] = set()  # allowed before the connection signed in
UNCHARGED: set[type] = set()  # not charged to the user's rate
WRITES: set[type] = set()  # change what a journal keeps: refused while the disk refuses it

# The request structs of the protocol, as the table must cover them.
REQUESTS: frozenset[type] = frozenset(get_args(p.AnyRequest))


class HandlerTableError(ResidentdError):
    """The handler table does not match the protocol's requests."""


def handles(
    kind: type, *, before_hello: bool = False, charged: bool = True, writes: bool = False
) -> Callable[[Handler], Handler]:
    """Register the handler of the request struct ``kind``."""

    def register(handler: Handler) -> Handler:
        if kind in HANDLERS:
            raise HandlerTableError(f"two handlers of {kind.__name__}")
        HANDLERS[kind] = handler
        if before_hello:
            BEFORE_HELLO.add(kind)
        if not charged:
            UNCHARGED.add(kind)
        if writes:
            WRITES.add(kind)
        return handler

    return register


def check_table(handlers: Collection[type], requests: Collection[type] = REQUESTS) -> None:
    """Raise ``HandlerTableError`` unless ``handlers`` has exactly the ``requests``."""
    missing = sorted(kind.__name__ for kind in requests if kind not in handlers)
    extra = sorted(kind.__name__ for kind in handlers if kind not in requests)
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"no handler of {', '.join(missing)}")
        if extra:
            problems.append(f"handlers of {', '.join(extra)}, not in protocol.AnyRequest")
        raise HandlerTableError("; ".join(problems))


def dispatch(hub: Hub, session: ChatSession, request: Any) -> p.Reply | None:
    """Run one request; returns its reply (None for none) or raises ``ChatError``."""
    kind = type(request)
    admit(hub, session, kind)
    if hub.journal is not None and kind in WRITES:
        hub.journal.check()
    return HANDLERS[kind](hub, session, request)


def admit(hub: Hub, session: ChatSession, kind: type) -> None:
    """Count a request of ``kind``, and let it pass the sign-in gate and the rate charge, or
    raise ``not-signed-in`` or ``rate-limited``."""
    hub.stats.requests += 1
    user = session.user
    if user is None:
        if kind not in BEFORE_HELLO:
            raise ChatError(ErrorCode.NOT_SIGNED_IN, "send hello first")
    elif hub.settings.rate_limit and kind not in UNCHARGED:
        charge(hub, user)


def charge(hub: Hub, user: User) -> None:
    """Take one request from ``user``'s token bucket, or raise ``rate-limited``."""
    settings = hub.settings
    now = time.monotonic()
    bucket = user.bucket
    if bucket is None:
        bucket = user.bucket = TokenBucket(settings.rate_burst, now)
    wait = bucket.take(settings.rate_limit, settings.rate_burst, now)
    if wait:
        hub.stats.rate_limited += 1
        limits = (
            f"{p.setting('rate_limit', settings.rate_limit)}, "
            f"{p.setting('rate_burst', settings.rate_burst)}"
        )
        detail = f"too many requests a second ({limits})"
        raise ChatError(ErrorCode.RATE_LIMITED, detail, p.retry_after(wait))


def _user(session: ChatSession) -> User:
    user = session.user
    assert user is not None
    return user


def hello_name(hub: Hub, session: ChatSession, request: p.Hello) -> tuple[str, bool]:
    """The name a ``hello`` signs in as and whether it is a guest's, once its version and
    token are checked."""
    if session.user is not None:
        raise ChatError(ErrorCode.ALREADY_SIGNED_IN, f"signed in as {session.user.name} already")
    settings = hub.settings
    if request.v != p.VERSION:
        raise ChatError(ErrorCode.UNSUPPORTED_VERSION, f"this server speaks version {p.VERSION}")
    name = request.user
    if request.token is not None:
        if is_guest(name):
            detail = f"{name} is a guest's name: tokens are for user names"
            raise ChatError(ErrorCode.BAD_TOKEN, detail)
        problem = check_token(settings.secret or "", name, request.token)
        if problem is not None:
            raise ChatError(ErrorCode.BAD_TOKEN, problem)
        return name, False
    if not settings.guests:
        raise ChatError(ErrorCode.BAD_TOKEN, "this server needs a token: guests are not allowed")
    return guest_name(name), True


@handles(p.Hello, before_hello=True)
def _hello(hub: Hub, session: ChatSession, request: p.Hello) -> p.Reply:
    settings = hub.settings
    name, guest = hello_name(hub, session, request)
    if not guest:
        user = hub.presence.get(name) or hub.new_user(name, False)
    else:
        if hub.presence.get(name) is not None:
            raise ChatError(ErrorCode.NAME_TAKEN, f"a guest named {name} is online")
        user = hub.new_user(name, True)
    hub.sign_in(session, user)
    # The replay is read in this step, after the sign-in made the session a receiver of its
    # rooms' pushes: later messages come as pushes after this reply, earlier ones are in it.
    resumed = None if request.resume is None else resume(hub, user, request.resume)
    return p.HelloReply(
        v=p.VERSION,
        user=user.name,
        guest=user.guest,
        conn=session.id,
        time=p.now_ms(),
        online=len(hub.presence.online),
        rooms=[room.name for room in user.rooms],
        ping_interval=settings.ping_interval,
        resumed=resumed,
    )


@handles(p.Ping, before_hello=True, charged=False)
def _ping(hub: Hub, session: ChatSession, request: p.Ping) -> p.Reply:
    return p.PongReply()


@handles(p.Pong, before_hello=True, charged=False)
def _pong(hub: Hub, session: ChatSession, request: p.Pong) -> None:
    return None


@handles(p.Who)
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


@handles(p.Seen)
def _seen(hub: Hub, session: ChatSession, request: p.Seen) -> p.Reply:
    user = hub.user(request.user)
    return p.SeenReply(user=user.name, online=user.online, last_seen=user.last_seen or None)


@handles(p.Rooms)
def _rooms(hub: Hub, session: ChatSession, request: p.Rooms) -> p.Reply:
    user = _user(session)
    listed = []
    for room in hub.rooms.values():
        if room.admits(user):
            listed.append(room.info())
            if len(listed) >= MAX_LISTED:
                break
    return p.RoomsReply(rooms=listed)


@handles(p.Create, writes=True)
def _create(hub: Hub, session: ChatSession, request: p.Create) -> p.Reply:
    user = _user(session)
    if request.room in hub.rooms:
        raise ChatError(ErrorCode.ROOM_EXISTS, f"a room named {request.room} exists already")
    if len(hub.rooms) >= hub.settings.max_rooms:
        limit = p.setting("max_rooms", hub.settings.max_rooms)
        raise ChatError(ErrorCode.ROOMS_FULL, f"the server holds {len(hub.rooms)} rooms ({limit})")
    hub.check_quota(user)
    room = hub.create_room(request.room, request.private, request.topic, session.conn)
    hub.join_room(user, room, session.conn)
    return p.CreateReply(room=room.info())


@handles(p.Join, writes=True)
def _join(hub: Hub, session: ChatSession, request: p.Join) -> p.Reply:
    user = _user(session)
    room = hub.room(request.room)
    if user not in room.members:
        if not room.admits(user):
            raise ChatError(
                ErrorCode.NOT_INVITED, f"{room.name} is private: a member must invite you"
            )
        hub.check_quota(user)
        hub.join_room(user, room, session.conn)
    return p.JoinReply(room=room.info(), last=room.history.last)


@handles(p.Leave, writes=True)
def _leave(hub: Hub, session: ChatSession, request: p.Leave) -> p.Reply:
    user = _user(session)
    room = hub.member_room(user, request.room)
    hub.leave_room(user, room, session.conn)
    return p.LeaveReply(room=room.name)


@handles(p.Invite, writes=True)
def _invite(hub: Hub, session: ChatSession, request: p.Invite) -> p.Reply:
    user = _user(session)
    room = hub.member_room(user, request.room)
    invited = hub.user(request.user)
    hub.invite(room, invited, user.name, session.conn)
    return p.InviteReply(room=room.name, user=invited.name)


@handles(p.SetTopic, writes=True)
def _topic(hub: Hub, session: ChatSession, request: p.SetTopic) -> p.Reply:
    user = _user(session)
    room = hub.member_room(user, request.room)
    hub.set_topic(room, request.topic, user.name, session.conn)
    return p.TopicReply(room=room.name, topic=room.topic)


@handles(p.Post, writes=True)
def _post(hub: Hub, session: ChatSession, request: p.Post) -> p.Reply:
    user = _user(session)
    room = hub.rooms.get(request.room)
    if room is None or user not in room.members:
        if room is None:
            raise ChatError(ErrorCode.NO_SUCH_ROOM, f"no room is named {request.room}")
        raise ChatError(ErrorCode.NOT_A_MEMBER, f"only members of {room.name} may post there")
    return post_message(hub, room, user.name, request.text, session.conn)


@handles(p.Direct)
def _direct(hub: Hub, session: ChatSession, request: p.Direct) -> p.Reply:
    user = _user(session)
    return send_direct(hub, user.name, request.to, request.text)


@handles(p.History)
def _history(hub: Hub, session: ChatSession, request: p.History) -> p.Reply:
    room = hub.visible_room(_user(session), request.room)
    messages, more = room.history.page(request.before, request.limit)
    return p.HistoryReply(room=room.name, messages=messages, more=more)


@handles(p.StateSet, writes=True)
def _state_set(hub: Hub, session: ChatSession, request: p.StateSet) -> p.Reply:
    size = set_state(hub, _user(session), request.key, request.value, session.conn)
    return p.StateSetReply(key=request.key, size=size)


@handles(p.StateGet)
def _state_get(hub: Hub, session: ChatSession, request: p.StateGet) -> p.Reply:
    state = user_state(_user(session))
    if request.key is None:
        return p.StateGetReply(value=state.document())
    return p.StateGetReply(key=request.key, value=state.get(request.key))


@handles(p.StateIncr, writes=True)
def _state_incr(hub: Hub, session: ChatSession, request: p.StateIncr) -> p.Reply:
    value = incr_state(hub, _user(session), request.key, request.by, session.conn)
    return p.StateIncrReply(key=request.key, value=value)


@handles(p.StateDel, writes=True)
def _state_del(hub: Hub, session: ChatSession, request: p.StateDel) -> p.Reply:
    deleted = delete_state(hub, _user(session), request.key, session.conn)
    return p.StateDelReply(key=request.key, deleted=deleted)


check_table(HANDLERS)

__all__ = [
    "HANDLERS",
    "HandlerTableError",
    "admit",
    "check_table",
    "dispatch",
    "handles",
    "hello_name",
]
