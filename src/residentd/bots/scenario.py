"""The scenario API: what a user of ``residentd bots`` writes to describe one kind of user.

A scenario is a ``Scenario`` subclass; every bot of a run is one instance of it, with its own
connection (``self.conn``), random generator (``self.random``) and index. A bot connects, runs
``on_start`` (sign in, join rooms), then runs its tasks, picked by weight, with the load
model's think time between them, until the run ends; then ``on_stop``, and the connection
closes. Tasks are ``async def`` methods marked with ``@task(weight)``.

Latency is recorded by step name: ``with self.step("post"): ...`` times what runs inside and
records it under ``post``; an exception inside counts as an error of that step, by kind (the
exception's ``kind`` for ``StepFailed``, otherwise a short name such as ``timeout`` or
``connection-reset``), and goes on up to end the task. In the open model a task has an intended
start; its first step is timed from that moment, not from when the bot got round to it, which
is how coordinated omission is corrected.

    class Echo(Scenario):
        transport = "lines"
        port = 7007

        @task()
        async def echo(self) -> None:
            with self.step("echo"):
                reply = await self.conn.request(b"hello")
            if reply != b"hello":
                raise StepFailed("wrong-reply", repr(reply))
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, TypeVar

from residentd.bots.stats import Recorder
from residentd.bots.transports import Connection, ConnectionClosed, Watchdog, open_connection
from residentd.errors import ResidentdError

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
Task = Callable[[], Awaitable[Any]]


class StepFailed(ResidentdError):
    """A step got an answer it should not have; ``kind`` is the error counted for it."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


def error_kind(exc: BaseException) -> str:
    """The short code an exception is counted under."""
    if isinstance(exc, StepFailed):
        return exc.kind
    if isinstance(exc, ConnectionClosed):
        return exc.reason
    if isinstance(exc, ConnectionRefusedError):
        return "connection-refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "connection-reset"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower().replace(" ", "-")
    return type(exc).__name__


def task(weight: int = 1) -> Callable[[F], F]:
    """Mark an ``async def`` method as a task, picked ``weight`` times in every sum of weights."""
    if weight < 1:
        raise ValueError("a task's weight must be at least 1")

    def mark(method: F) -> F:
        method._bots_weight = weight  # type: ignore[attr-defined]
        return method

    return mark


@dataclass
class Context:
    """What the bots of one generator share: targets, transport, recorder, options."""

    #: (host, port) of every server the run drives; bot ``i`` connects to ``targets[i % n]``
    targets: list[tuple[str, int]]
    transport: str
    recorder: Recorder
    options: dict[str, Any] = field(default_factory=dict)
    path: str = "/"
    sources: list[str] = field(default_factory=list)
    timeout: float = 10.0
    seed: int | None = None
    watchdog: Watchdog | None = None
    #: what the bots of this generator share, as the scenario likes (say, who is online)
    shared: dict[str, Any] = field(default_factory=dict)

    def target_for(self, index: int) -> tuple[str, int]:
        return self.targets[index % len(self.targets)]

    def source_for(self, index: int) -> str | None:
        return self.sources[index % len(self.sources)] if self.sources else None


class Step:
    """Times one step: a context manager recording the latency or the error under ``name``."""

    __slots__ = ("name", "recorder", "start")

    def __init__(self, recorder: Recorder, name: str, start: int) -> None:
        self.recorder = recorder
        self.name = name
        self.start = start

    def __enter__(self) -> Step:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            self.recorder.record(self.name, time.perf_counter_ns() - self.start)
        elif isinstance(exc, Exception):
            self.recorder.error(self.name, error_kind(exc))
            with contextlib.suppress(AttributeError, TypeError):
                exc._bots_counted = True  # type: ignore[attr-defined]
        # A cancelled step (the run ended) is neither a success nor an error.


class Scenario:
    """One kind of user. Subclass it, set the class attributes, write ``@task`` methods."""

    #: the name reports show; the class name when left empty
    name: ClassVar[str] = ""
    #: one of ``lines``, ``json``, ``resp``, ``websocket``
    transport: ClassVar[str] = "lines"
    #: the target port when ``--target`` gives none, and per transport if it differs
    port: ClassVar[int] = 7007
    ports: ClassVar[dict[str, int]] = {}
    #: the HTTP path of a WebSocket target
    path: ClassVar[str] = "/"
    #: default think time between tasks (``--think`` overrides)
    think: ClassVar[str] = "0"
    #: default options, overridden with ``--set KEY=VALUE`` (the value takes the default's type)
    options: ClassVar[dict[str, Any]] = {}

    _tasks: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        weighted: list[str] = []
        for attr in dir(cls):
            weight = getattr(getattr(cls, attr, None), "_bots_weight", 0)
            weighted.extend([attr] * weight)
        cls._tasks = tuple(weighted)

    def __init__(self, context: Context, index: int) -> None:
        self.context = context
        self.index = index
        self.random = random.Random(None if context.seed is None else context.seed + index)
        self.opts = context.options
        self.conn: Connection = None  # type: ignore[assignment]  # set by connect()
        self.intended = 0  # open model: perf_counter_ns the next task was meant to start

    @classmethod
    def display_name(cls) -> str:
        return cls.name or cls.__name__

    @classmethod
    def default_port(cls, transport: str) -> int:
        return cls.ports.get(transport, cls.port)

    # -- the life of a bot: override what you need ---------------------------------------------

    async def connect(self) -> None:
        """Open ``self.conn`` (timed as step ``connect``)."""
        ctx = self.context
        host, port = ctx.target_for(self.index)
        with self.step("connect"):
            self.conn = await open_connection(
                ctx.transport,
                host,
                port,
                source=ctx.source_for(self.index),
                path=ctx.path,
                timeout=ctx.timeout,
            )
        if ctx.watchdog is not None:
            ctx.watchdog.connections.add(self.conn)

    async def on_start(self) -> None:
        """After connecting: sign in, join rooms... The bot counts as online once it returns."""

    async def on_stop(self) -> None:
        """The run is ending and the connection still works: say goodbye if the protocol has it."""

    def disconnect(self) -> None:
        conn = self.conn
        if conn is None:
            return
        conn.close()
        if self.context.watchdog is not None:
            self.context.watchdog.connections.discard(conn)

    # -- for the scenario's code ----------------------------------------------------------------

    def step(self, name: str) -> Step:
        """Time what runs inside ``with`` under ``name``; in the open model, the first step of
        a task is timed from the task's intended start."""
        start = self.intended
        if start:
            self.intended = 0
        else:
            start = time.perf_counter_ns()
        return Step(self.context.recorder, name, start)

    def pick(self) -> Task | None:
        """The next task, picked by weight; ``None`` for a scenario without tasks."""
        tasks = self._tasks
        if not tasks:
            return None
        name = tasks[0] if len(tasks) == 1 else self.random.choice(tasks)
        method: Task = getattr(self, name)
        return method

    @property
    def alive(self) -> bool:
        return self.conn is not None and self.conn.closed is None


def load_scenario(spec: str) -> type[Scenario]:
    """A built-in scenario by name (``echo``, ``kv``, ``chat``, ``chat-idle``) or
    ``module:Class`` (``module`` may be a ``.py`` file path)."""
    from residentd.bots.scenarios import BUILTIN

    if spec in BUILTIN:
        spec = BUILTIN[spec]
    module_name, sep, attr = spec.partition(":")
    if not sep or not attr:
        names = ", ".join(sorted(BUILTIN))
        raise ValueError(f"scenario {spec!r} is neither built in ({names}) nor module:Class")
    module = _import(module_name)
    try:
        found = getattr(module, attr)
    except AttributeError:
        raise ValueError(f"scenario {spec!r}: {module_name} has no {attr!r}") from None
    if not (isinstance(found, type) and issubclass(found, Scenario)):
        raise ValueError(f"scenario {spec!r} is not a residentd.bots.Scenario subclass")
    return found


def _import(name: str) -> Any:
    import importlib
    import importlib.util
    import os
    import sys

    if name.endswith(".py"):
        path = os.path.abspath(name)
        if not os.path.exists(path):
            raise ValueError(f"scenario file {name} does not exist")
        module_name = "_bots_scenario_" + os.path.splitext(os.path.basename(path))[0]
        if module_name in sys.modules:
            return sys.modules[module_name]
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise ValueError(f"scenario file {name} failed to load: {exc!r}") from None
        return module
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise ValueError(f"cannot import scenario module {name!r}: {exc}") from None
    except Exception as exc:
        raise ValueError(f"scenario module {name!r} failed to load: {exc!r}") from None
