"""Users and presence: who is known, who is online, and when the others were last seen.

A ``User`` is one name, whatever number of connections (devices) it holds. It is *online* while
it holds at least one signed-in connection, so presence counts a user once: the first
connection brings it online and the last one to close takes it offline, stamping ``last_seen``.
A user who signed in with a token stays known while offline, with its rooms, invitations and
state, until the server holds more than ``max_users`` users; then the one offline the longest
is forgotten to make room. With ``state_dir`` set, that record survives restarts (durable.py),
so a name that signed in with a token stays its own after a restart too. A
guest (``guest`` is true, its name is ``~name``) is never kept: the hub forgets it, rooms and
all, when its connection closes, so a later guest of the same name starts from nothing.

Per-user structures are small, since an idle server may hold tens of thousands of users: slots,
tuples for the (short) lists of connections and rooms, so that the empty ones cost nothing, and
the state document and rate bucket made only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from residentd.apps.chat.ratelimit import TokenBucket
    from residentd.apps.chat.rooms import Room
    from residentd.apps.chat.session import ChatSession
    from residentd.apps.chat.state import UserState


class User:
    __slots__ = ("bucket", "guest", "invites", "last_seen", "name", "rooms", "sessions", "state")

    def __init__(self, name: str, guest: bool) -> None:
        self.name = name
        self.guest = guest
        self.sessions: tuple[ChatSession, ...] = ()
        self.rooms: tuple[Room, ...] = ()
        self.invites: tuple[Room, ...] = ()  # private rooms it is invited to
        self.last_seen = 0  # Unix time in ms of going offline; 0 while online or never seen
        self.state: UserState | None = None
        self.bucket: TokenBucket | None = None

    @property
    def online(self) -> bool:
        return bool(self.sessions)

    def __repr__(self) -> str:
        return f"<User {self.name} sessions={len(self.sessions)} rooms={len(self.rooms)}>"


class Presence:
    """Every known user by name, the online ones in the order they came online, the offline
    ones in the order they left (the first is the one to forget first)."""

    __slots__ = ("_offline", "online", "users")

    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.online: dict[str, User] = {}
        self._offline: dict[str, User] = {}

    def get(self, name: str) -> User | None:
        return self.users.get(name)

    def add(self, name: str, guest: bool) -> User:
        user = self.users[name] = User(name, guest)
        self._offline[name] = user
        return user

    def oldest_offline(self) -> User | None:
        """The user to forget first, if any user is offline."""
        return next(iter(self._offline.values()), None)

    def forget(self, user: User) -> None:
        assert not user.sessions, "an online user cannot be forgotten"
        del self.users[user.name]
        self._offline.pop(user.name, None)

    def by_age(self) -> list[User]:
        """Every known user: the offline ones in the order they left, then the online ones."""
        return [*self._offline.values(), *self.online.values()]

    def seen(self, user: User, at_ms: int) -> None:
        """An offline user was last seen at ``at_ms`` (a replayed sign-in or sign-out): it is
        now the last one to forget."""
        user.last_seen = at_ms
        self._offline.pop(user.name, None)
        self._offline[user.name] = user

    def attach(self, user: User, session: ChatSession) -> bool:
        """Add a connection to ``user``; True if that brought the user online."""
        user.sessions += (session,)
        if len(user.sessions) > 1:
            return False
        self._offline.pop(user.name, None)
        self.online[user.name] = user
        user.last_seen = 0
        return True

    def detach(self, user: User, session: ChatSession, now_ms: int) -> bool:
        """Remove a connection from ``user``; True if that took the user offline."""
        user.sessions = tuple(other for other in user.sessions if other is not session)
        if user.sessions:
            return False
        del self.online[user.name]
        self._offline[user.name] = user
        user.last_seen = now_ms
        return True
