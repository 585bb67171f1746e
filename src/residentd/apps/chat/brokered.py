"""The hub of a node that shares its world with other nodes through a broker (Redis).

With ``broker`` set the app builds a ``BrokeredHub`` instead of a ``Hub``. What the hub keeps
in memory without a broker (users known, rooms, membership, invitations, history, state)
lives in Redis, and every change is a script (scripts.py) that checks, changes and publishes
an event in one step. The BrokeredHub keeps only what its own connections need, as a local
cache fed by the event stream: the users signed in here (``presence``) and, for each room one
of them is a member of, the room's ``sinks`` (``rooms``). Each node receives every event once
and fans it out to its own members with the hub's ``fanout``, so the broker carries one copy
of a message per node, not per member, and every node applies events in the one order Redis
published them in: a room's messages reach every member in seq order.

Requests go through ``submit``: ``ping`` and ``pong`` are answered at once, as without a
broker; the others start at once as tasks awaiting their scripts (so the loop never blocks on
Redis, a connection's scripts reach Redis in the order of its requests, and several in flight
share a round trip), and ``_drain`` sends their replies in that order. Requests after a
``hello`` still in flight wait for its answer, which decides who the session is. While the
broker is down, every request that needs it is answered ``broker-unavailable`` at once;
sign-outs are not lost: when the link is back the hub re-registers exactly the connections it
holds (``sync``).

Liveness: every second (``tick``) the node refreshes its heartbeat in the sorted set of nodes
and sweeps the nodes whose heartbeat is older than ``DEAD_AFTER``: their users lose those
connections, and those left with none go offline, ``last_seen`` being the dead node's last
heartbeat. If a node finds itself swept (its loop stalled, or Redis was down longer than
``DEAD_AFTER``), it registers its connections again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, get_args

import msgspec

from residentd.apps.chat import protocol as p
from residentd.apps.chat.broker import BrokerLink
from residentd.apps.chat.errors import ChatError, ErrorCode
from residentd.apps.chat.handlers import HANDLERS, MAX_LISTED, admit, check_table, hello_name
from residentd.apps.chat.history import RoomHistory
from residentd.apps.chat.hub import RESUME_MAX, Hub, _text_too_long
from residentd.apps.chat.rooms import Room, new_epoch
from residentd.apps.chat.settings import ChatSettings
from residentd.errors import CloseCode

if TYPE_CHECKING:
    from residentd.apps.chat.presence import User
    from residentd.apps.chat.session import ChatSession

log = logging.getLogger("residentd.chat.broker")

BEAT = 1.0  # seconds between heartbeats (the app's tick)
DEAD_AFTER = 3.0  # seconds without a heartbeat after which a node counts as dead
# So a dead node's users are offline everywhere within DEAD_AFTER + BEAT seconds (+ one sweep).
LOCAL = frozenset({p.Ping, p.Pong})  # answered without the broker

Handler = Callable[["BrokeredHub", "ChatSession", Any], Awaitable[p.Reply | None]]
BROKERED: dict[type, Handler] = {}


def _blocks(entry: list[Any]) -> bool:
    """Whether a request of a backlog keeps later ones from starting: one not started yet,
    or a ``hello`` (its answer signs the session in)."""
    return entry[0] is None or type(entry[1]) is p.Hello


def node_name(node_id: str | None, worker: int | None = None) -> str:
    """This process's name on the broker: ``node_id``, or HOSTNAME:PID when none is set; in a
    master's worker (``worker``, its slot), ``node_id/PID``: each worker is a node, and the
    worker that replaces a dead one is another node, so the dead one's users are swept."""
    pid = os.getpid()
    if node_id is None:
        return f"{socket.gethostname()}:{pid}"
    return node_id if worker is None else f"{node_id}/{pid}"


class BrokeredHub(Hub):
    def __init__(self, settings: ChatSettings, url: str, node: str) -> None:
        super().__init__(settings, None)
        self.broker = self
        self.rooms = {}  # only rooms with members signed in here: their sinks
        self.node = node  # its name on the broker: node_name()
        self.link = BrokerLink(url, self.on_events, self.on_up)
        self.backlogs: dict[ChatSession, deque[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._beating = False
        self._up_since = 0.0  # loop time the link last came up
        self._syncing = False  # a sync of adopted sessions is on its way

    # -- requests ------------------------------------------------------------------------------

    def submit(self, session: ChatSession, request: Any) -> None:
        """Run ``request`` now, its reply sent after those of the session's earlier requests:
        the scripts of a session's requests reach Redis in order, and several in flight share
        a round trip. A request after a ``hello`` still in flight (or before any) waits for
        its answer, which decides who the session is. ``ping`` and ``pong`` are answered at
        once when nothing is waiting."""
        backlog = self.backlogs.get(session)
        if backlog is None:
            if type(request) in LOCAL:
                reply = HANDLERS[type(request)](self, session, request)
                if reply is not None:
                    reply.id = request.id
                    session.send(reply)
                return
            backlog = self.backlogs[session] = deque()
            self._spawn(self._drain(session, backlog))
        entry: list[Any] = [None, request]
        # Every entry after one that blocks is blocked too, so the last one says for them all.
        if session.user is not None and not (backlog and _blocks(backlog[-1])):
            entry[0] = asyncio.ensure_future(dispatch(self, session, request))
        backlog.append(entry)

    async def _drain(self, session: ChatSession, backlog: deque[list[Any]]) -> None:
        """Send the replies of ``session``'s requests in their order."""
        try:
            while backlog:
                entry = backlog[0]
                task, request = entry
                if task is None:
                    task = entry[0] = asyncio.ensure_future(dispatch(self, session, request))
                try:
                    reply = await task
                except ChatError as error:
                    session.refuse(request, error)
                except Exception:  # a bug: the connection goes, as on_message's would
                    log.exception("%s raised; closing the connection", type(request).__name__)
                    session.close(CloseCode.INTERNAL_ERROR)
                else:
                    if reply is not None:
                        reply.id = request.id
                        session.send(reply)
                backlog.popleft()
                if session.user is not None:  # what waited for a hello may start
                    for waiting in backlog:
                        if type(waiting[1]) is p.Hello:
                            break
                        if waiting[0] is None:
                            waiting[0] = asyncio.ensure_future(dispatch(self, session, waiting[1]))
        finally:
            del self.backlogs[session]

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            error = task.exception()
            if error is not None and not isinstance(error, ChatError):
                log.error("broker task failed", exc_info=error)

    def fire(self, script: str, *args: Any) -> None:
        """Run a script whose answer nobody waits for (a sign-out): if the broker is down,
        the re-registration when it is back does the work."""

        async def run() -> None:
            with contextlib.suppress(ChatError):
                await self.link.call(script, *args)

        self._spawn(run())

    # -- this node's connections ---------------------------------------------------------------

    def attach(self, session: ChatSession, user: User, rooms: list[str]) -> None:
        """A signed-in session: its user's rooms' pushes reach it from now on."""
        self.pending.pop(session, None)
        session.user = user
        self.connections[session.wire] += 1
        self.presence.attach(user, session)
        for name in rooms:
            room = self._local_room(name)
            if user in room.members:
                room.sinks[session.wire][session] = session.push
            else:
                room.add_member(user)
                user.rooms += (room,)

    def adopt_rooms(self, session: ChatSession, user: User, rooms: list[str]) -> None:
        """A session handed over by a live upgrade: attached here as it was there, and
        registered on the broker under this process's name before the last generation's
        registrations are swept (or said goodbye to), so its user never goes offline."""
        self.attach(session, user, rooms)
        if not self._syncing:
            self._syncing = True
            self._spawn(self._sync_soon())

    async def _sync_soon(self) -> None:
        await asyncio.sleep(0)  # the other sessions handed over in this step too
        self._syncing = False
        await self.sync()

    def disconnected(self, session: ChatSession) -> None:
        user = self.unhook(session)
        if user is None:
            return
        now = p.now_ms()
        if self.presence.detach(user, session, now):  # its last connection here
            for room in user.rooms:
                self._drop_member(user, room)
            self.presence.forget(user)
        if not self.link.closed:
            self.fire("bye", user.name, self.node, self.settings.presence_push_limit, now)

    def _rejoin(self, user: User, names: set[str]) -> None:
        """Make ``user``'s local rooms be ``names``."""
        for room in user.rooms:
            if room.name not in names:
                self._drop_member(user, room)
        have = {room.name for room in user.rooms}
        for name in names - have:
            room = self._local_room(name)
            room.add_member(user)
            user.rooms += (room,)

    def _local_room(self, name: str) -> Room:
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(name, False, "", 0)
        return room

    def _drop_member(self, user: User, room: Room) -> None:
        if user in room.members:
            self.remove_member(user, room)
        if not room.members:
            self.rooms.pop(room.name, None)

    def counts(self) -> list[Any]:
        """The connections held here, as the ``sync`` script takes them."""
        flat: list[Any] = []
        for user in self.presence.online.values():
            flat += (user.name, len(user.sessions))
        return flat

    # -- the event stream ----------------------------------------------------------------------

    def on_events(self, events: list[bytes]) -> None:
        """Events of the channel, in the order Redis published them: a batch the link hands
        over (broker.py), fanned out in this one loop iteration, so a member gets them in one
        write."""
        for data in events:
            try:
                self.on_event(data)
            except Exception:  # one event the hub cannot take costs only itself
                log.exception("broker event %r not applied", data[:200])

    def on_event(self, data: bytes) -> None:
        """One event of the channel, in the order Redis published it."""
        kind = data[:1]
        if kind == b"R":  # a room's push: a message or a topic change
            name, _, payload = data[1:].partition(b"\n")
            room = self.rooms.get(name.decode())
            if room is not None:
                self.fanout(room.sinks, payload)
            return
        header, _, payload = data[1:].partition(b"\n")
        event = msgspec.json.decode(header)
        if kind == b"J":
            self._joined(event)
        elif kind == b"L":
            self._left(event)
        elif kind == b"P":
            rooms = event["rooms"] or ()  # Lua's cjson writes an empty list as {}
            push = p.Presence(room="", user=event["user"], online=event["online"])
            push.last_seen = event.get("last_seen")
            for name in rooms:
                room = self.rooms.get(name)
                if room is not None:
                    push.room = name
                    self.fanout(room.sinks, p.encode(push))
        elif kind == b"U":
            for name in event["users"]:
                user = self.presence.get(name)
                if user is not None:
                    self.send_to(user, payload)

    def _joined(self, event: dict[str, Any]) -> None:
        name = event["room"]
        user = self.presence.get(event["user"])
        if user is not None and not any(room.name == name for room in user.rooms):
            room = self._local_room(name)
            room.add_member(user)
            user.rooms += (room,)
        room_here = self.rooms.get(name)
        if event["push"] and room_here is not None:
            self.fanout(room_here.sinks, p.encode(p.Joined(room=name, user=event["user"])))

    def _left(self, event: dict[str, Any]) -> None:
        name = event["room"]
        room = self.rooms.get(name)
        if room is None:
            return
        if event["push"]:
            self.fanout(room.sinks, p.encode(p.Left(room=name, user=event["user"])))
        user = self.presence.get(event["user"])
        if user is not None and room in user.rooms:
            self._drop_member(user, room)

    # -- the link's life -----------------------------------------------------------------------

    async def on_up(self) -> None:
        """The link is (back) up: the configured rooms exist, and Redis holds exactly the
        connections of this node."""
        settings = self.settings
        ensure: list[Any] = [settings.history_size]
        for name in settings.rooms:
            ensure += (name, new_epoch())
        await self.link.call("ensure", *ensure)
        await self.sync()
        # Events missed while the link was down may have changed its users' rooms (a join
        # from another node): take their memberships from Redis again.
        users = list(self.presence.online.values())
        found = await asyncio.gather(
            *(self.link.command("SMEMBERS", f"chat:urooms:{user.name}") for user in users)
        )
        for user, rooms in zip(users, found, strict=True):
            self._rejoin(user, {_text(name) for name in rooms})
        self._up_since = asyncio.get_running_loop().time()

    async def sync(self) -> None:
        settings = self.settings
        await self.link.call(
            "sync", self.node, p.now_ms(), settings.presence_push_limit, *self.counts()
        )

    def tick(self, now: float) -> None:
        super().tick(now)
        if self.link.up and not self._beating:
            self._beating = True
            self._spawn(self._beat())

    async def _beat(self) -> None:
        try:
            alive, *swept = await self.link.call(
                "beat",
                self.node,
                p.now_ms(),
                int(DEAD_AFTER * 1000),
                self.settings.presence_push_limit,
                # Right after (re)connecting, the others may not have beaten yet: no sweep.
                int(asyncio.get_running_loop().time() - self._up_since >= DEAD_AFTER),
            )
            for index in range(0, len(swept), 2):
                log.warning(
                    "broker: node %s missed its heartbeats: %d users had connections there",
                    swept[index].decode(),
                    swept[index + 1],
                )
            if not alive:
                log.warning("broker: this node was counted dead: registering its users again")
                await self.sync()
        finally:
            self._beating = False

    async def close(self) -> None:
        """A node's goodbye: wait (a little) for the requests in flight, take this node's
        connections off the broker's presence, and close the link."""
        for _ in range(20):
            if not self.backlogs:
                break
            await asyncio.sleep(0.05)
        with contextlib.suppress(ChatError):
            await self.link.call(
                "goodbye", self.node, p.now_ms(), self.settings.presence_push_limit
            )
        await self.link.close()
        for task in list(self._tasks):
            task.cancel()


# -- the requests, as the broker answers them -------------------------------------------------


def handles(kind: type) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        BROKERED[kind] = handler
        return handler

    return register


async def dispatch(hub: BrokeredHub, session: ChatSession, request: Any) -> p.Reply | None:
    """``handlers.dispatch`` with a broker: the same gate and rate charge, then the request's
    brokered handler."""
    kind = type(request)
    admit(hub, session, kind)
    return await BROKERED[kind](hub, session, request)


def _user(session: ChatSession) -> User:
    user = session.user
    assert user is not None
    return user


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _info(row: list[Any]) -> p.RoomInfo:
    room, topic, private, members, online, epoch, last = row
    return p.RoomInfo(
        _text(room),
        _text(topic),
        private == b"1",
        int(members),
        int(online),
        _text(epoch),
        int(last),
    )


def _split(payload: bytes, field: bytes) -> tuple[bytes, bytes]:
    """The JSON of a push around the value 0 of ``field``, for a script to put the number
    Redis assigns in its place."""
    marker = b'"' + field + b'":0,'
    before, found, after = payload.partition(marker)
    assert found, f"no {marker!r} in {payload!r}"
    return before + marker[:-2], b"," + after


@handles(p.Ping)
async def _ping(hub: BrokeredHub, session: ChatSession, request: p.Ping) -> p.Reply | None:
    return HANDLERS[p.Ping](hub, session, request)


@handles(p.Pong)
async def _pong(hub: BrokeredHub, session: ChatSession, request: p.Pong) -> p.Reply | None:
    return None


@handles(p.Hello)
async def _hello(hub: BrokeredHub, session: ChatSession, request: p.Hello) -> p.Reply | None:
    settings = hub.settings
    name, guest = hello_name(hub, session, request)
    online, rooms = await hub.link.call(
        "hello",
        name,
        int(guest),
        hub.node,
        settings.max_connections_per_user,
        settings.presence_push_limit,
        p.now_ms(),
    )
    if session not in hub.pending:  # closed while Redis signed it in
        hub.fire("bye", name, hub.node, settings.presence_push_limit, p.now_ms())
        return None
    user = hub.presence.get(name) or hub.presence.add(name, guest)
    names = [_text(room) for room in rooms]
    hub.attach(session, user, names)
    resumed = None
    if request.resume is not None:
        resumed = await _resume(hub, user, names, request.resume)
    return p.HelloReply(
        v=p.VERSION,
        user=name,
        guest=guest,
        conn=session.id,
        time=p.now_ms(),
        online=int(online),
        rooms=names,
        ping_interval=settings.ping_interval,
        resumed=resumed,
    )


async def _resume(
    hub: BrokeredHub, user: User, rooms: list[str], points: dict[str, p.ResumePoint]
) -> list[p.Resumed]:
    """``hub.resume`` from the histories in Redis. A message posted while the reply is on its
    way may come both here and as a push (the client drops a seq it has)."""
    resumed = []
    budget = RESUME_MAX
    for name, point in points.items():
        try:
            history, epoch = await _history(hub, user, name)
        except ChatError as error:
            resumed.append(p.Resumed(name, False, [], code=error.code))
            continue
        if name not in rooms:
            resumed.append(p.Resumed(name, False, [], code=ErrorCode.NOT_A_MEMBER))
            continue
        messages = history.since(point.seq) if point.epoch == epoch else None
        if messages is None or len(messages) > budget:
            resumed.append(p.Resumed(name, False, [], epoch, history.last))
            continue
        budget -= len(messages)
        resumed.append(p.Resumed(name, True, messages, epoch, history.last))
    return resumed


@handles(p.Who)
async def _who(hub: BrokeredHub, session: ChatSession, request: p.Who) -> p.Reply | None:
    if request.room is None:
        online, names = await hub.link.call("who", request.limit)
        users = [p.UserInfo(_text(name), True) for name in names]
        return p.WhoReply(online=int(online), users=users)
    online, rows = await hub.link.call("who_room", _user(session).name, request.room, request.limit)
    users = [p.UserInfo(_text(name), bool(here), int(seen) or None) for name, here, seen in rows]
    return p.WhoReply(room=request.room, online=int(online), users=users)


@handles(p.Seen)
async def _seen(hub: BrokeredHub, session: ChatSession, request: p.Seen) -> p.Reply | None:
    online, seen = await hub.link.call("seen", request.user)
    return p.SeenReply(user=request.user, online=bool(online), last_seen=int(seen) or None)


@handles(p.Rooms)
async def _rooms(hub: BrokeredHub, session: ChatSession, request: p.Rooms) -> p.Reply | None:
    rows = await hub.link.call("rooms", _user(session).name, MAX_LISTED)
    return p.RoomsReply(rooms=[_info(row) for row in rows])


@handles(p.Create)
async def _create(hub: BrokeredHub, session: ChatSession, request: p.Create) -> p.Reply | None:
    settings = hub.settings
    (row,) = await hub.link.call(
        "create",
        _user(session).name,
        request.room,
        int(request.private),
        request.topic,
        new_epoch(),
        settings.max_rooms,
        settings.max_rooms_per_user,
        settings.presence_push_limit,
    )
    return p.CreateReply(room=_info(row))


@handles(p.Join)
async def _join(hub: BrokeredHub, session: ChatSession, request: p.Join) -> p.Reply | None:
    settings = hub.settings
    (row,) = await hub.link.call(
        "join",
        _user(session).name,
        request.room,
        settings.max_rooms_per_user,
        settings.presence_push_limit,
    )
    info = _info(row)
    return p.JoinReply(room=info, last=info.last)


@handles(p.Leave)
async def _leave(hub: BrokeredHub, session: ChatSession, request: p.Leave) -> p.Reply | None:
    limit = hub.settings.presence_push_limit
    await hub.link.call("leave", _user(session).name, request.room, limit)
    return p.LeaveReply(room=request.room)


@handles(p.Invite)
async def _invite(hub: BrokeredHub, session: ChatSession, request: p.Invite) -> p.Reply | None:
    name = _user(session).name
    payload = p.encode(p.Invited(room=request.room, by=name))
    await hub.link.call("invite", name, request.room, request.user, payload)
    return p.InviteReply(room=request.room, user=request.user)


@handles(p.SetTopic)
async def _topic(hub: BrokeredHub, session: ChatSession, request: p.SetTopic) -> p.Reply | None:
    name = _user(session).name
    payload = p.encode(p.TopicChanged(room=request.room, topic=request.topic, by=name))
    await hub.link.call("topic", name, request.room, request.topic, payload)
    return p.TopicReply(room=request.room, topic=request.topic)


@handles(p.Post)
async def _post(hub: BrokeredHub, session: ChatSession, request: p.Post) -> p.Reply | None:
    name = _user(session).name
    text = request.text
    limit = hub.settings.max_text
    if len(text) > limit:
        raise ChatError(ErrorCode.TOO_LONG, _text_too_long(text, limit))
    ts = p.now_ms()
    message = p.encode(p.Message(room=request.room, seq=0, ts=ts, user=name, text=text))
    before, after = _split(message, b"seq")
    (seq,) = await hub.link.call(
        "post", name, request.room, before, after, hub.settings.history_size
    )
    hub.stats.posts += 1
    return p.PostReply(room=request.room, seq=int(seq), ts=ts)


@handles(p.Direct)
async def _direct(hub: BrokeredHub, session: ChatSession, request: p.Direct) -> p.Reply | None:
    name = _user(session).name
    text = request.text
    limit = hub.settings.max_text
    if len(text) > limit:
        raise ChatError(ErrorCode.TOO_LONG, _text_too_long(text, limit))
    ts = p.now_ms()
    message = p.encode(p.DirectMessage(msg=0, ts=ts, sender=name, to=request.to, text=text))
    before, after = _split(message, b"msg")
    (msg,) = await hub.link.call("direct", name, request.to, before, after)
    hub.stats.directs += 1
    return p.DirectReply(to=request.to, msg=int(msg), ts=ts)


async def _history(hub: BrokeredHub, user: User, room: str) -> tuple[RoomHistory, str]:
    last, epoch, messages = await hub.link.call("history", user.name, room)
    history = RoomHistory(len(messages))
    history.restore(int(last), messages)
    return history, _text(epoch)


@handles(p.History)
async def _read_history(
    hub: BrokeredHub, session: ChatSession, request: p.History
) -> p.Reply | None:
    history, _ = await _history(hub, _user(session), request.room)
    messages, more = history.page(request.before, request.limit)
    return p.HistoryReply(room=request.room, messages=messages, more=more)


@handles(p.StateSet)
async def _state_set(hub: BrokeredHub, session: ChatSession, request: p.StateSet) -> p.Reply | None:
    settings = hub.settings
    (size,) = await hub.link.call(
        "state_set",
        _user(session).name,
        request.key,
        bytes(request.value),
        settings.state_max_keys,
        settings.state_max_bytes,
    )
    return p.StateSetReply(key=request.key, size=int(size))


@handles(p.StateGet)
async def _state_get(hub: BrokeredHub, session: ChatSession, request: p.StateGet) -> p.Reply | None:
    key = f"chat:state:{_user(session).name}"
    if request.key is None:
        flat = await hub.link.command("HGETALL", key)  # field, value, field, value, ...
        document = {_text(k): msgspec.Raw(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}
        return p.StateGetReply(value=msgspec.Raw(msgspec.json.encode(document)))
    value = await hub.link.command("HGET", key, request.key)
    raw = None if value is None else msgspec.Raw(value)
    return p.StateGetReply(key=request.key, value=raw)


@handles(p.StateIncr)
async def _state_incr(
    hub: BrokeredHub, session: ChatSession, request: p.StateIncr
) -> p.Reply | None:
    settings = hub.settings
    (value,) = await hub.link.call(
        "state_incr",
        _user(session).name,
        request.key,
        request.by,
        settings.state_max_keys,
        settings.state_max_bytes,
    )
    return p.StateIncrReply(key=request.key, value=int(value))


@handles(p.StateDel)
async def _state_del(hub: BrokeredHub, session: ChatSession, request: p.StateDel) -> p.Reply | None:
    deleted = await hub.link.command("HDEL", f"chat:state:{_user(session).name}", request.key)
    return p.StateDelReply(key=request.key, deleted=bool(deleted))


check_table(BROKERED, frozenset(get_args(p.AnyRequest)))

__all__ = ["BEAT", "BROKERED", "DEAD_AFTER", "BrokeredHub", "dispatch", "node_name"]
