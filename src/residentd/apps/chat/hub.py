"""The hub: the chat's whole world in memory (users, connections, rooms) and what changes it.

The hub knows nothing of requests: the dispatcher (handlers.py) checks the sign-in and the
user's rate and runs a request's handler, which changes the world through the methods and
functions here; the backend API (api.py) calls the same ones, and so does a journal replay
(durable.py), so a change is made, journaled and fanned out one way whoever asks for it.
A function that refuses raises ``ChatError``. All of it runs on the event loop, one change at a
time, so the world needs no locks and every member of a room sees that room's messages in the
same order.

Fan-out encodes a message once: the JSON of a push is framed once per wire (wire.py: a line for
TCP, a text frame for WebSocket) and the same bytes object is queued on every session in the
room's ``sinks`` with the session's ``push`` (its connection's ``send_bytes``), which costs a
list append; the connection writes what it has queued once per loop iteration. The loop over
the sinks is ``push_all`` (net/connection_core.py), which in C runs each connection's own
``send_bytes`` in place, with no call per member.

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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from residentd.apps.chat import durable as d
from residentd.apps.chat import protocol as p
from residentd.apps.chat.errors import ChatError, ErrorCode
from residentd.apps.chat.names import is_guest
from residentd.apps.chat.presence import Presence, User
from residentd.apps.chat.rooms import Room, Sinks
from residentd.apps.chat.settings import ChatSettings
from residentd.apps.chat.state import UserState
from residentd.apps.chat.wire import WIRES, Wire
from residentd.net.connection import push_all

if TYPE_CHECKING:
    from residentd.apps.chat.brokered import BrokeredHub
    from residentd.apps.chat.session import ChatSession

# A room list, a member list and an online list are cut at this many entries.
MAX_LISTED = 1000
# Messages one hello's ``resume`` replays, all rooms together; a room past it is not recovered.
RESUME_MAX = 2000


@dataclass(slots=True)
class HubStats:
    """Counters since start, read by the dashboard's sampler."""

    requests: int = 0
    posts: int = 0
    directs: int = 0
    deliveries: int = 0
    rate_limited: int = 0


class Hub:
    # With a broker, the BrokeredHub itself (brokered.py): sessions hand it their requests.
    broker: BrokeredHub | None = None

    def __init__(self, settings: ChatSettings, journal: d.Journal | None = None) -> None:
        self.settings = settings
        self.journal = journal  # with state_dir: where each change is written (durable.py)
        self.presence = Presence()
        self.rooms: dict[str, Room] = {}
        self.pending: dict[ChatSession, None] = {}  # connections that have not signed in
        self.connections: dict[Wire, int] = dict.fromkeys(WIRES, 0)  # signed in, by wire
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

    def unhook(self, session: ChatSession) -> User | None:
        """Stop pushing to a closed ``session``; its user, if it had signed in."""
        self.pending.pop(session, None)
        user = session.user
        if user is None:
            return None
        session.user = None
        self.connections[session.wire] -= 1
        for room in user.rooms:
            room.sinks[session.wire].pop(session, None)
        return user

    def disconnected(self, session: ChatSession) -> None:
        user = self.unhook(session)
        if user is None:
            return
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

    # -- signing in ---------------------------------------------------------------------------

    def sign_in(self, session: ChatSession, user: User) -> None:
        """Attach ``session`` to ``user`` (an accepted ``hello``): the user is online, and its
        rooms' pushes reach the session from now on."""
        limit = self.settings.max_connections_per_user
        if len(user.sessions) >= limit:
            setting = p.setting("max_connections_per_user", limit)
            raise ChatError(
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"{user.name} holds {limit} connections already ({setting})",
            )
        self._attach(session, user)

    def user(self, name: str) -> User:
        """The user or guest ``name``, if the server knows it."""
        user = self.presence.get(name)
        if user is None:
            raise ChatError(ErrorCode.NO_SUCH_USER, f"no user is named {name}")
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
            user = self.new_user(name, False)
            if self.journal is not None:
                self.journal.write(d.Offline(name, 0), waiter)
        return user

    def kick(self, user: User, reason: str) -> int:
        """Close every connection of ``user`` with a ``kicked`` error; how many were closed."""
        sessions = user.sessions
        for session in sessions:
            self.disconnected(session)  # offline now, not when the sockets are gone
            session.fail(ErrorCode.KICKED, reason)
        return len(sessions)

    def new_user(self, name: str, guest: bool) -> User:
        """Know ``name`` from now on, forgetting the user offline the longest at ``max_users``."""
        presence = self.presence
        if len(presence.users) >= self.settings.max_users:
            oldest = presence.oldest_offline()
            if oldest is None:
                limit = p.setting("max_users", self.settings.max_users)
                raise ChatError(ErrorCode.SERVER_FULL, f"every known user is online ({limit})")
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

    def adopt(self, session: ChatSession, user: User) -> None:
        """Attach a session handed over by a live upgrade to ``user``, without a word to
        anyone or a journal record: for the rest of the world the user never went offline."""
        self.pending.pop(session, None)
        session.user = user
        self.connections[session.wire] += 1
        if self.presence.attach(user, session):
            for room in user.rooms:
                room.online += 1
        for room in user.rooms:
            room.sinks[session.wire][session] = session.push

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
            room.sinks[session.wire][session] = session.push

    # -- fan-out -------------------------------------------------------------------------------

    def fanout(self, sinks: Sinks, payload: bytes) -> None:
        """Queue one encoded push on every session of ``sinks``, framed once per wire."""
        count = 0
        for wire, sessions in sinks.items():
            if sessions:
                push_all(sessions, wire.frame(payload))
                count += len(sessions)
        self.stats.deliveries += count

    def send_to(self, user: User, payload: bytes) -> None:
        """Queue one encoded push on every session of ``user``, framed once per wire."""
        framed: dict[Wire, bytes] = {}
        for session in user.sessions:
            wire = session.wire
            data = framed.get(wire)
            if data is None:
                data = framed[wire] = wire.frame(payload)
            session.push(data)
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
            session.fail(ErrorCode.HELLO_TIMEOUT, f"no accepted hello in time ({limit})")
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
                    session.send_bytes(session.wire.ping)
                elif now - session.pinged >= timeout:
                    limit = p.setting("ping_timeout", timeout)
                    session.fail(ErrorCode.DEAD_PEER, f"no answer to ping in time ({limit})")

    # -- rooms ---------------------------------------------------------------------------------

    def room(self, name: str) -> Room:
        room = self.rooms.get(name)
        if room is None:
            raise ChatError(ErrorCode.NO_SUCH_ROOM, f"no room is named {name}")
        return room

    def visible_room(self, user: User, name: str) -> Room:
        room = self.room(name)
        if not room.admits(user):
            raise ChatError(
                ErrorCode.NOT_A_MEMBER, f"{name} is private: only its members may see it"
            )
        return room

    def member_room(self, user: User, name: str) -> Room:
        room = self.room(name)
        if user not in room.members:
            raise ChatError(ErrorCode.NOT_A_MEMBER, f"you are not a member of {name}")
        return room

    def check_quota(self, user: User) -> None:
        limit = self.settings.max_rooms_per_user
        if len(user.rooms) >= limit:
            setting = p.setting("max_rooms_per_user", limit)
            raise ChatError(
                ErrorCode.TOO_MANY_ROOMS, f"already in {len(user.rooms)} rooms ({setting})"
            )

    def create_room(
        self, name: str, private: bool, topic: str, waiter: object = None, epoch: str | None = None
    ) -> Room:
        """A new room, in a new history ``epoch`` unless one (kept on disk) is given."""
        room = self.rooms[name] = Room(name, private, topic, self.settings.history_size, epoch)
        if self.journal is not None:
            self.journal.write(d.Create(name, private, topic, room.epoch), waiter)
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

    def invite(self, room: Room, invited: User, by: str, waiter: object = None) -> None:
        """Let ``invited`` into the private ``room`` and tell its connections who did."""
        if room.invite(invited):
            if self.journal is not None and not invited.guest:
                self.journal.write(d.Invite(room.name, invited.name), waiter)
            self.send_to(invited, p.encode(p.Invited(room=room.name, by=by)))

    def set_topic(self, room: Room, topic: str, by: str, waiter: object = None) -> None:
        room.topic = topic
        if self.journal is not None:
            self.journal.write(d.Topic(room.name, topic), waiter)
        self.fanout(room.sinks, p.encode(p.TopicChanged(room=room.name, topic=topic, by=by)))

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


# -- changes shared by the socket protocol and the backend API ------------------------------------


def _text_too_long(text: str, limit: int) -> str:
    return f"the text is {len(text)} characters ({p.setting('max_text', limit)})"


def member_list(room: Room, limit: int) -> list[p.UserInfo]:
    """Up to ``limit`` members of ``room``, the online ones first."""
    here = [user for user in room.members if user.sessions]
    away = [user for user in room.members if not user.sessions]
    listed = [p.UserInfo(user.name, True) for user in here[:limit]]
    for user in away[: limit - len(listed)]:
        listed.append(p.UserInfo(user.name, False, user.last_seen or None))
    return listed


def post_message(
    hub: Hub, room: Room, sender: str, text: str, waiter: object = None
) -> p.PostReply:
    """Post ``text`` to ``room`` as ``sender``: kept in its history (journaled, acknowledged
    through ``waiter``), sent to its members."""
    limit = hub.settings.max_text
    if len(text) > limit:
        raise ChatError(ErrorCode.TOO_LONG, _text_too_long(text, limit))
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


def resume(hub: Hub, user: User, points: dict[str, p.ResumePoint]) -> list[p.Resumed]:
    """What ``user`` missed in each room of a ``hello``'s ``resume``, since the seq it names.
    Called in the same loop step as the sign-in that made the session a receiver of the rooms'
    pushes, so every later message is pushed and every earlier one is here: none twice, none
    missed. A room is recovered only if it is the same numbering (``epoch``), the history still
    holds every message after the seq, and the reply stays under ``RESUME_MAX`` messages."""
    resumed = []
    budget = RESUME_MAX
    for name, point in points.items():
        room = hub.rooms.get(name)
        if room is None:
            resumed.append(p.Resumed(name, False, [], code=ErrorCode.NO_SUCH_ROOM))
            continue
        if user not in room.members:
            resumed.append(p.Resumed(name, False, [], code=ErrorCode.NOT_A_MEMBER))
            continue
        history = room.history
        messages = history.since(point.seq) if point.epoch == room.epoch else None
        if messages is None or len(messages) > budget:
            resumed.append(p.Resumed(name, False, [], room.epoch, history.last))
            continue
        budget -= len(messages)
        resumed.append(p.Resumed(name, True, messages, room.epoch, history.last))
    return resumed


def send_direct(hub: Hub, sender: str, to: str, text: str) -> p.DirectReply:
    """Send ``text`` from ``sender`` to every connection of ``to``, and a copy to the sender's
    own connections when the sender is a user online."""
    target = hub.user(to)
    if not target.sessions:
        raise ChatError(ErrorCode.USER_OFFLINE, f"{to} is offline")
    limit = hub.settings.max_text
    if len(text) > limit:
        raise ChatError(ErrorCode.TOO_LONG, _text_too_long(text, limit))
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


__all__ = [
    "MAX_LISTED",
    "RESUME_MAX",
    "Hub",
    "HubStats",
    "delete_state",
    "incr_state",
    "member_list",
    "post_message",
    "resume",
    "send_direct",
    "set_state",
    "user_state",
]
