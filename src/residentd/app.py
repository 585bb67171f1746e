"""What a daemon author writes: sessions, services and the App that groups them.

A ``Session`` is one connected peer as the author sees it: ``on_connect``, ``on_message``,
``on_close(reason)`` and friends are called by the connection, and ``send``/``close`` talk back.
``on_message`` may be a plain method (the fast path: called inline, no Task per message) or an
``async def``: then it runs in a task per connection, one message at a time in arrival order,
so a slow handler never blocks other connections and never sees messages out of order.
The connection is ``self.conn``, a ``Transport``: what a session may use of it (send, close,
timers, id, peer, ...) is all that protocol lists. ``self.app`` is the app (``Session[MyApp]``
types it), and ``self.app.server`` the server running it, seen as a ``Host``.

A ``Service`` binds a session class to a codec and to default listening addresses. An ``App``
is a named set of services plus what lives beside them: settings (dataclasses declared with
``App.declare``, see residentd.settings), start/stop/reload hooks and periodic jobs, which run
on the app's own timers and are released when it stops.

    app = App("echo")

    class Echo(Session):
        def on_message(self, line: bytes) -> None:
            self.send(line)

    app.service("echo", Echo, codec=LineCodec, listen=["127.0.0.1:7007"])
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

from residentd.codecs.base import Codec
from residentd.limits import Limits
from residentd.settings import Setting, Values, build, check_owner, settings_of

Hook = Callable[[], Awaitable[None] | None]
H = TypeVar("H", bound=Callable[..., Any])
AppT = TypeVar("AppT", bound="App")
T = TypeVar("T")

# The author API names the layers built on it only through the protocols below: ``residentd.net``
# implements most of them (``Connection`` is a ``Transport``, ``Server`` a ``Host``) and
# ``residentd.state`` the last (``Persistence`` is ``Durable``). Nothing here imports either, so
# an app depends on what it uses, not on how the server or the state is built.


class Timer(Protocol):
    """A timer started by ``call_later`` or ``call_every`` (``residentd.net.timers.Timer``)."""

    @property
    def active(self) -> bool: ...
    @property
    def when(self) -> float | None: ...
    def cancel(self) -> None: ...


class Timers(Protocol):
    """An owner's timers, cancelled when the owner goes (a connection, a server)."""

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer: ...
    def call_every(
        self, interval: float, callback: Callable[..., Any], *args: Any, delay: float | None = ...
    ) -> Timer: ...


class Transport(Protocol):
    """What a session uses of its connection (as Twisted's ``ITransport``): the network layer
    implements it, the author API names nothing else of it."""

    @property
    def id(self) -> int: ...
    @property
    def peer(self) -> str: ...
    @property
    def app(self) -> App:
        """The app whose service accepted the connection."""

    @property
    def codec(self) -> Codec:
        """This connection's codec (a session may ask it to upgrade, say)."""

    @property
    def timers(self) -> Timers:
        """Timers cancelled when the connection closes."""

    @property
    def closing(self) -> bool:
        """True once a close began: what is sent from then on is dropped."""

    @property
    def connected_at(self) -> float:
        """Loop time of the accept."""

    @property
    def last_active(self) -> float:
        """Loop time of the last input from the peer."""

    @property
    def bytes_in(self) -> int:
        """Bytes read from the peer so far."""

    @property
    def write_buffer_size(self) -> int:
        """Bytes queued for the peer and not yet written to the socket."""

    #: While True the idle timeout does not apply (a pub/sub subscriber that only listens).
    idle_exempt: bool

    def send(self, message: Any) -> None: ...
    def send_many(self, messages: list[Any]) -> None: ...
    def send_bytes(self, data: bytes, count: int = 1, /) -> None:
        """Queue bytes already encoded: ``count`` messages in one piece (a pipeline's replies)."""

    def close(self, reason: str = ...) -> None: ...
    def abort(self, reason: str = ...) -> None: ...
    def pause_reading(self) -> None:
        """Read nothing more from the peer until ``resume_reading`` (a session's backpressure)."""

    def resume_reading(self) -> None: ...
    def serve_now(self) -> None:
        """Read what the peer sent without waiting, handle it and write the output at once:
        for a handler that holds the loop for long (kv's slow scripts answer -BUSY)."""


class Address(Protocol):
    """A bound listening address (``residentd.net.listener.Address``)."""

    @property
    def kind(self) -> str:
        """``tcp`` or ``unix``."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def path(self) -> str: ...


class Host(Protocol):
    """What an app uses of the server that runs it (``App.server``, ``Session.app.server``)."""

    @property
    def limits(self) -> Limits:
        """The limits in force (a reload replaces the object: read it on each use)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def timers(self) -> Timers:
        """The app's timers, cancelled when the server stops."""

    @property
    def connections(self) -> Mapping[int, Transport]:
        """The open connections by id."""

    def addresses(self, service: str | None = None) -> Sequence[Address]:
        """The bound addresses, of one service or of all."""

    def accept_now(self) -> None:
        """Accept the connections waiting on the listeners without waiting: for a handler
        that holds the loop and serves the connections with ``serve_now`` meanwhile (kv's
        slow scripts). They go to the loop at ``release_accepted``."""

    def release_accepted(self) -> None:
        """Hand the connections ``accept_now`` took to the loop (the handler returned)."""

    def snapshot(self) -> dict[str, Any]:
        """The counters as plain data (what ``residentd status`` shows)."""


class Durable(Protocol):
    """What the daemon uses of an app's durable state (``residentd.state.Persistence``): it
    loads it before listening, reconfigures it on a reload, reports it and closes it."""

    @property
    def enabled(self) -> bool: ...
    @property
    def names(self) -> Mapping[str, str]:
        """The app options that hold its settings, by setting (``dir``: the folder's)."""

    @property
    def loaded(self) -> Mapping[str, Any]:
        """What the last ``open`` loaded, for the log."""

    def open(
        self, options: Mapping[str, Any], loop: asyncio.AbstractEventLoop, flushes: Any
    ) -> None:
        """Load the state and start journaling; ``flushes`` is the server's flush queue."""

    def reconfigure(self, options: Mapping[str, Any]) -> None: ...
    def info(self) -> dict[str, Any]: ...
    def close(self) -> None: ...

    # A live upgrade (daemon/upgrade.py): the new generation opens the files without loading
    # them (``handed_over``), imports the streamed state and journals once it has taken over.
    handed_over: bool

    def settle(self) -> None: ...
    def export_snapshot(self) -> bytes: ...
    def import_snapshot(self, snapshot: bytes) -> None: ...
    def take_over(self) -> None: ...
    def let_go(self) -> None: ...


class Session(Generic[AppT]):
    """One connected peer. Subclass it and override the ``on_*`` methods you need;
    ``Session[MyApp]`` types ``self.app`` as ``MyApp``."""

    __slots__ = ("conn",)

    #: Write the replies to a chunk at the end of the loop iteration, with every other
    #: connection's, instead of as soon as the chunk is handled (see net/connection.py).
    defer_writes: ClassVar[bool] = False

    #: A session that reads and handles some chunks itself, in C, may name the function here:
    #: ``serve_chunk(session, codec, data)`` runs before the codec sees each chunk and returns
    #: the number of messages it handled (their replies sent as ``on_messages`` would send
    #: them), or None, having changed nothing, to leave the chunk to the codec and
    #: ``on_messages``. Only for ``on_messages`` sessions (kv's ``_fastpath.serve``).
    serve_chunk: ClassVar[Callable[[Any, Any, bytes], int | None] | None] = None

    def __init__(self, conn: Transport) -> None:
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

    def send_bytes(self, data: bytes, count: int = 1) -> None:
        """Send bytes already encoded for this connection's codec, as they are: ``count``
        messages in one piece (the replies to a pipeline, say)."""
        self.conn.send_bytes(data, count)

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
        return self.conn.app  # type: ignore[return-value]

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
    session: Callable[[Transport], Session[Any]]
    codec: Callable[[], Codec]
    listen: list[str] = field(default_factory=list)

    # How the connections of this service hand messages to its sessions; the network layer
    # asks these once per service, when it starts listening.

    @property
    def async_handler(self) -> bool:
        """Whether ``on_message`` is an ``async def`` (messages go through a backlog task)."""
        handler = getattr(self.session, "on_message", None)
        return inspect.iscoroutinefunction(handler)

    @property
    def batch_handler(self) -> bool:
        """Whether the session class defines its own ``on_messages``, called once per chunk
        (never with an ``async def`` ``on_message``)."""
        handler = getattr(self.session, "on_messages", None)
        return handler is not None and handler is not Session.on_messages and not self.async_handler


@dataclass(frozen=True, slots=True)
class Declared:
    """A settings class an app declared (``App.declare``): its fields renamed by ``names``, with
    the app's ``defaults``, less the fields in ``skip``."""

    cls: type
    names: dict[str, str]
    defaults: dict[str, Any]
    skip: tuple[str, ...] = ()

    def settings(self) -> list[Setting]:
        return settings_of(
            self.cls,
            names=self.names,
            defaults=self.defaults,
            skip=self.skip,
            app_option=True,
        )


@dataclass(slots=True)
class PeriodicJob:
    interval: float
    callback: Callable[[], Any]


class App:
    """A named set of services, settings, hooks and periodic jobs."""

    def __init__(self, name: str, description: str = "") -> None:
        self.name = name
        self.description = description
        self.services: list[Service] = []
        #: The settings classes the app declared (``declare``).
        self.declared: list[Declared] = []
        #: The values in force of the app's own settings, by name (``current`` reads them
        #: typed); a reload updates them.
        self.options: dict[str, Any] = Values()
        self._current: dict[type, tuple[int, Any]] = {}
        self.start_hooks: list[Hook] = []
        self.stop_hooks: list[Hook] = []
        self.reload_hooks: list[Callable[[dict[str, Any]], Any]] = []
        self.jobs: list[PeriodicJob] = []
        #: The app's defaults for core limits (``declare(Limits, ...)``).
        self.limit_defaults: dict[str, Any] = {}
        #: The server running the app while it runs, else None.
        self.server: Host | None = None
        #: The app's durable state (``residentd.state.Persistence.attach``), or None.
        self.persistence: Durable | None = None
        #: This process's slot when it is one of a master's workers (``workers > 1``), else
        #: None: an app that names itself to others (chat's broker node) tells workers apart.
        self.worker: int | None = None

    def service(
        self,
        name: str,
        session: Callable[[Transport], Session[Any]],
        codec: Callable[[], Codec],
        listen: list[str] | tuple[str, ...] = (),
    ) -> Service:
        if any(service.name == name for service in self.services):
            raise ValueError(f"app {self.name!r} already has a service named {name!r}")
        service = Service(name, session, codec, list(listen))
        self.services.append(service)
        return service

    def declare(
        self,
        cls: type,
        *,
        names: Mapping[str, str] | None = None,
        skip: tuple[str, ...] = (),
        **defaults: Any,
    ) -> None:
        """Declare a settings dataclass (fields made with ``residentd.settings.setting``) as
        this app's: each field is a setting (flag, environment variable, key in the config
        file), named as ``names`` renames it, with ``defaults`` in place of the class's own;
        the fields in ``skip`` are left out (another class of the app declares that name).
        ``current(cls)`` reads the values in force; ``options`` holds them by name.

        ``Limits`` is the core's: declaring it only gives the app's own defaults for the
        limits (a Redis-like store never times out an idle client, say). A declaration that
        cannot work (a name the class lacks, a clash, a field that is no setting, defaults
        the class refuses) raises ValueError at once."""
        check_owner(cls, names, defaults)
        declared = Declared(cls, dict(names or {}), dict(defaults), tuple(skip))
        if cls is Limits:
            if names or skip:
                raise ValueError("the core limits keep their names: give Limits defaults only")
            merged = {**self.limit_defaults, **defaults}
            Limits(**merged)  # consistent, or ValueError now
            self.limit_defaults = merged
            return
        if any(item.cls is cls for item in self.declared):
            raise ValueError(f"app {self.name!r} already declares {cls.__name__}")
        new = declared.settings()
        clash = sorted({item.name for item in new} & set(self.options))
        if clash:
            raise ValueError(f"app {self.name!r} already has settings named {', '.join(clash)}")
        self.declared.append(declared)
        for item in new:
            self.options[item.name] = item.default

    def declared_settings(self) -> list[Setting]:
        """The app's own settings, from every class it declared."""
        return [item for declared in self.declared for item in declared.settings()]

    def current(self, cls: type[T]) -> T:
        """The values in force of the declared settings class ``cls`` (built again only after
        ``options`` changed)."""
        version = getattr(self.options, "version", None)
        cached = self._current.get(cls)
        if cached is not None and version is not None and cached[0] == version:
            return cast(T, cached[1])
        for declared in self.declared:
            if declared.cls is cls:
                current = build(cls, self.options, declared.names)
                if version is not None:
                    self._current[cls] = (version, current)
                return current
        raise LookupError(f"app {self.name!r} does not declare {cls.__name__}")

    def workers_refused(self, workers: int, options: Mapping[str, Any]) -> str | None:
        """Why this app cannot run as ``workers`` processes (``workers > 1``) with the app
        ``options`` of the config being started (by setting name), or None when it can. Each
        worker has its own memory: an app whose state lives in one process's memory refuses,
        and the daemon exits with status 2 and this text before binding anything."""
        return None

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
