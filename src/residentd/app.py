"""What a daemon author writes: sessions, services and the App that groups them.

A ``Session`` is one connected peer as the author sees it: ``on_connect``, ``on_message``,
``on_close(reason)`` and friends are called by the connection, and ``send``/``close`` talk back.
``on_message`` may be a plain method (the fast path: called inline, no Task per message) or an
``async def``: then it runs in a task per connection, one message at a time in arrival order,
so a slow handler never blocks other connections and never sees messages out of order.

A ``Service`` binds a session class to a codec and to default listening addresses. An ``App``
is a named set of services plus what lives beside them: options, start/stop/reload hooks and
periodic jobs, which run on the app's own timers and are released when it stops.

    app = App("echo")

    class Echo(Session):
        def on_message(self, line: bytes) -> None:
            self.send(line)

    app.service("echo", Echo, codec=LineCodec, listen=["127.0.0.1:7007"])
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from residentd.codecs.base import Codec
from residentd.limits import Limits

if TYPE_CHECKING:
    from residentd.net.connection import Connection
    from residentd.net.server import Server
    from residentd.net.timers import Timer
    from residentd.state.persistence import Persistence

Hook = Callable[[], Awaitable[None] | None]
H = TypeVar("H", bound=Callable[..., Any])
AppT = TypeVar("AppT", bound="App")


class Transport(Protocol):
    """What a session uses of its connection (as Twisted's ``ITransport``): the network layer
    implements it, the author API names nothing else of it."""

    id: int
    peer: str

    def send(self, message: Any) -> None: ...
    def send_many(self, messages: list[Any]) -> None: ...
    def send_bytes(self, data: bytes) -> None: ...
    def close(self, reason: str = ...) -> None: ...
    def abort(self, reason: str = ...) -> None: ...


class Session(Generic[AppT]):
    """One connected peer. Subclass it and override the ``on_*`` methods you need;
    ``Session[MyApp]`` types ``self.app`` as ``MyApp``."""

    __slots__ = ("conn",)

    #: Write the replies to a chunk at the end of the loop iteration, with every other
    #: connection's, instead of as soon as the chunk is handled (see net/connection.py).
    defer_writes: ClassVar[bool] = False

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- called by residentd ----------------------------------------------------------------

    def on_connect(self) -> None:
        """The connection is open and admitted."""

    def on_message(self, message: Any) -> Any:
        """One decoded message arrived (may be ``async def``)."""

    def on_messages(self, messages: list[Any]) -> None:
        """Optional batch handler: when a session class defines it, it is called once per chunk
        read, with every message decoded from that chunk, instead of ``on_message`` per message
        (cheaper for pipelined peers). Not used with an ``async def`` ``on_message``."""
        for message in messages:
            self.on_message(message)

    def on_close(self, reason: str) -> None:
        """The connection closed; ``reason`` is a short code such as ``closed-by-peer``."""

    def on_pause_writing(self) -> None:
        """Output passed the high watermark: stop producing until ``on_resume_writing``."""

    def on_resume_writing(self) -> None:
        """Output drained below the low watermark."""

    def on_shutdown(self) -> None:
        """The daemon is stopping gracefully: a last chance to send a goodbye."""

    # -- for the author ---------------------------------------------------------------------

    def send(self, message: Any) -> None:
        self.conn.send(message)

    def send_many(self, messages: list[Any]) -> None:
        self.conn.send_many(messages)

    def send_bytes(self, data: bytes) -> None:
        """Send bytes already encoded for this connection's codec, as they are."""
        self.conn.send_bytes(data)

    def close(self, reason: str = "closed") -> None:
        self.conn.close(reason)

    def abort(self, reason: str = "aborted") -> None:
        self.conn.abort(reason)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """A one-shot timer owned by this connection (cancelled when it closes)."""
        return self.conn.timers.call_later(delay, callback, *args)

    def call_every(self, interval: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """A fixed-rate periodic timer owned by this connection."""
        return self.conn.timers.call_every(interval, callback, *args)

    @property
    def app(self) -> AppT:
        return self.conn.server.app  # type: ignore[return-value]

    @property
    def id(self) -> int:
        return self.conn.id

    @property
    def peer(self) -> str:
        return self.conn.peer

    # -- live upgrade (daemon/upgrade.py) ---------------------------------------------------

    def export_state(self) -> Any:
        """This session's own state as plain data (dicts, lists, str, bytes, numbers, None;
        no classes), for the next generation's ``import_state``; called at a message
        boundary, with every reply sent. Return ``None`` (the default) to be closed with the
        ``on_shutdown`` goodbye instead of handed over."""
        return None

    def import_state(self, state: Any) -> None:
        """In the next generation, instead of ``on_connect``: take over a connection that the
        last one's ``export_state`` described (the app's state is already in place)."""


@dataclass(slots=True)
class Service:
    """A session class served with one codec on a set of listening addresses."""

    name: str
    session: Callable[[Connection], Session]
    codec: Callable[[], Codec]
    listen: list[str] = field(default_factory=list)

    @property
    def async_handler(self) -> bool:
        handler = getattr(self.session, "on_message", None)
        return inspect.iscoroutinefunction(handler)

    @property
    def batch_handler(self) -> bool:
        """Whether the session class defines its own ``on_messages``."""
        handler = getattr(self.session, "on_messages", None)
        return handler is not None and handler is not Session.on_messages


@dataclass(slots=True)
class Option:
    """An app-specific setting, given in the ``[app]`` table, as a flag or in the environment."""

    name: str
    default: Any
    help: str
    reloadable: bool = False
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    # Checks a value beyond its type: returns why it is not allowed, or None when it is.
    check: Callable[[Any], str | None] | None = None
    # Never printed or logged (shown as ``<redacted>``); options named ``*secret``, ``*token``
    # and ``*password`` are secrets whatever this says.
    secret: bool = False


@dataclass(slots=True)
class PeriodicJob:
    interval: float
    callback: Callable[[], Any]


class App:
    """A named set of services, options, hooks and periodic jobs."""

    def __init__(self, name: str, description: str = "") -> None:
        self.name = name
        self.description = description
        self.services: list[Service] = []
        self.declared_options: dict[str, Option] = {}
        self.options: dict[str, Any] = {}
        self.start_hooks: list[Hook] = []
        self.stop_hooks: list[Hook] = []
        self.reload_hooks: list[Callable[[dict[str, Any]], Any]] = []
        self.jobs: list[PeriodicJob] = []
        self.limit_defaults: dict[str, Any] = {}
        self.server: Server | None = None
        #: The app's durable state (``residentd.state.Persistence.attach``), or None.
        self.persistence: Persistence | None = None

    def service(
        self,
        name: str,
        session: Callable[[Connection], Session],
        codec: Callable[[], Codec],
        listen: list[str] | tuple[str, ...] = (),
    ) -> Service:
        if any(service.name == name for service in self.services):
            raise ValueError(f"app {self.name!r} already has a service named {name!r}")
        service = Service(name, session, codec, list(listen))
        self.services.append(service)
        return service

    def option(
        self,
        name: str,
        default: Any,
        help: str,
        *,
        reloadable: bool = False,
        choices: tuple[Any, ...] | None = None,
        minimum: float | None = None,
        check: Callable[[Any], str | None] | None = None,
        secret: bool = False,
    ) -> None:
        """Declare an app option; its current value is ``app.options[name]``. ``check`` returns
        why a value is not allowed (or None), and is run wherever a value is given: the config
        file, the environment, a flag, a reload, so a bad value stops the start (exit 2). A
        ``secret`` is shown as ``<redacted>`` wherever the config is printed or logged."""
        self.declared_options[name] = Option(
            name, default, help, reloadable, choices, minimum, check, secret
        )
        self.options[name] = default

    def default_limits(self, **values: Any) -> None:
        """Defaults of core limits that suit this app's protocol better than the core's (a
        Redis-like store never times out an idle client, for one). Config, environment and
        flags still override them."""
        known = {field.name for field in fields(Limits)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"not core limits: {', '.join(unknown)}")
        Limits(**{**self.limit_defaults, **values})  # consistent, or ValueError now
        self.limit_defaults.update(values)

    def on_start(self, hook: H) -> H:
        """Run ``hook()`` (may be async) once the listeners are bound."""
        self.start_hooks.append(hook)
        return hook

    def on_stop(self, hook: H) -> H:
        """Run ``hook()`` (may be async) when a graceful stop begins."""
        self.stop_hooks.append(hook)
        return hook

    def on_reload(self, hook: H) -> H:
        """Run ``hook(changed_options)`` after a reload applied new option values."""
        self.reload_hooks.append(hook)
        return hook

    def every(self, interval: float) -> Callable[[H], H]:
        """Decorator: run the function every ``interval`` seconds while the app runs. It may be
        ``async def``: then a run that is still going when the next is due skips that one."""

        def register(callback: H) -> H:
            self.jobs.append(PeriodicJob(interval, callback))
            return callback

        return register
