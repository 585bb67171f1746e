"""Logging for resident daemons: leveled, structured, and never blocking the event loop.

Everything goes through the stdlib :mod:`logging` module, so the logs of third-party libraries
land in the same place. :func:`setup_logging` puts one queue handler on the root logger: a log
call appends the record to a deque, without a lock or any formatting, and that is all the
calling thread does. One writer thread wakes at most every few milliseconds, takes what has
gathered, merges messages with their arguments, renders them as ``text``, ``logfmt`` or
``json`` and writes them to stderr or a file in slices of a few dozen lines, so a slow disk
never stalls the loop and the loop never waits long for the GIL. The queue is bounded: should
the writer fall that far behind, new records are dropped and counted, and the count is logged
once the writer catches up. (The daemon also makes records cheaper to build: see
:mod:`residentd.daemon.logrecord`.)

Context travels as record attributes: ``app``, ``conn`` and ``peer`` (set with ``extra=`` or a
:class:`~logging.LoggerAdapter`) and the keys of a dict attribute ``ctx`` become fields of the
line. A :class:`RateLimitFilter` keeps a flood of one warning down to a few lines a second, then
says how many it held back.

The :class:`LogRuntime` that :func:`setup_logging` returns changes the level, format and file
while the daemon runs, reopens the file after logrotate moved it, and at exit writes out every
queued line before it returns. Changes of format or file travel through the queue like records,
so every line is written in the format and to the file that were current when it was logged.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import queue
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import IO, Any, Final

import msgspec

__all__ = [
    "FORMATS",
    "LEVELS",
    "JsonFormatter",
    "LogRuntime",
    "LogSettings",
    "LogfmtFormatter",
    "RateLimitFilter",
    "RecordFormatter",
    "TextFormatter",
    "make_formatter",
    "set_process_fields",
    "setup_logging",
]

LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS: Final = ("text", "logfmt", "json")

#: Record attributes rendered as context fields, in this order, before the items of ``ctx``.
CONTEXT_ATTRS: Final = ("app", "conn", "peer")
_CORE_FIELDS: Final = frozenset({"ts", "level", "logger", "msg", "exc", "stack"})
#: Fields every record of this process carries, first among its context (a worker's slot,
#: so that the records of several workers in one log file say whose they are).
_PROCESS_FIELDS: list[tuple[str, Any]] = []


def set_process_fields(**fields: Any) -> None:
    """Give every record of this process these context fields from now on."""
    _PROCESS_FIELDS[:] = list(fields.items())


_log = logging.getLogger("residentd.logs")


@dataclass(frozen=True, slots=True)
class LogSettings:
    """Where logs go and what they look like. ``file=None`` means stderr."""

    level: str = "INFO"
    format: str = "text"
    file: str | None = None

    def __post_init__(self) -> None:
        level = str(self.level).upper()
        if level not in LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {self.level!r}")
        object.__setattr__(self, "level", level)
        if self.format not in FORMATS:
            raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.file == "":
            raise ValueError("log file must be a path, or None for stderr")


# -- formatters ---------------------------------------------------------------------------------

_plain_value = re.compile(r'[^\s"=\\\x00-\x1f\x7f]+').fullmatch
_json_encode = msgspec.json.Encoder(enc_hook=str).encode
_MILLIS: Final = tuple(f".{ms:03d}Z" for ms in range(1000))
_PADDED_LEVELS: Final = {name: f"{name:<5}" for name in LEVELS}


def _quote(value: object) -> str:
    """A logfmt value: bare when it is one plain word, else a double-quoted escaped string."""
    if type(value) is int:
        return str(value)
    text = value if isinstance(value, str) else str(value)
    if _plain_value(text):
        return text
    return _json_encode(text).decode()


def _pairs(fields: list[tuple[str, Any]]) -> str:
    """``key=value`` pairs, each after a space, for the text and logfmt formats."""
    text = ""
    for key, value in fields:
        text += f" {key}={_quote(value)}"
    return text


def _ctx_fields(ctx: dict[Any, Any]) -> list[tuple[str, Any]]:
    """The items of a ``ctx`` dict; a key that clashes with a core field is renamed
    ``ctx.<key>`` so it cannot overwrite ``msg`` and the like."""
    fields = []
    for key, value in ctx.items():
        name = str(key)
        fields.append((f"ctx.{name}" if name in _CORE_FIELDS else name, value))
    return fields


class RecordFormatter(logging.Formatter):
    """What the three formats share: UTC timestamps, context fields, exception text.

    A subclass implements :meth:`render`, given the record and its message already merged with
    its arguments (the log writer merges them once, before it renders). The helpers are written
    for speed, as the writer thread runs them for every line.
    """

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._prefix = ""

    def format(self, record: logging.LogRecord) -> str:
        return self.render(record, record.getMessage())

    def render(self, record: logging.LogRecord, message: str) -> str:
        raise NotImplementedError

    def timestamp(self, record: logging.LogRecord) -> str:
        """``2026-11-28T05:01:02.123Z``: UTC, milliseconds. The date part is cached per second."""
        second = int(record.created)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return self._prefix + _MILLIS[int(record.msecs)]

    @staticmethod
    def context(record: logging.LogRecord) -> list[tuple[str, Any]]:
        """The context fields of a record: ``app``, ``conn``, ``peer``, then the items of
        ``ctx`` (see :func:`_ctx_fields`)."""
        get = record.__dict__.get
        fields = list(_PROCESS_FIELDS)
        for name in CONTEXT_ATTRS:
            value = get(name)
            if value is not None:
                fields.append((name, value))
        ctx = get("ctx")
        if ctx and isinstance(ctx, dict):
            fields += _ctx_fields(ctx)
        return fields

    def trailers(self, record: logging.LogRecord) -> list[tuple[str, str]]:
        """The traceback (``exc``) and stack (``stack``) texts of a record, when it has them."""
        found = []
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            found.append(("exc", record.exc_text))
        if record.stack_info:
            found.append(("stack", record.stack_info))
        return found


class TextFormatter(RecordFormatter):
    """For people: ``2026-11-28T05:01:02.123Z INFO  residentd.conn: message conn=12 peer=...``.

    A traceback follows on indented lines, and so do further lines of a multi-line message: a
    line that starts at column 0 always starts a record.
    """

    def render(self, record: logging.LogRecord, message: str) -> str:
        level = record.levelname
        line = (
            f"{self.timestamp(record)} {_PADDED_LEVELS.get(level) or level} "
            f"{record.name}: {message}{_pairs(self.context(record))}"
        )
        if record.exc_info or record.exc_text or record.stack_info:
            line += "".join("\n" + text for _, text in self.trailers(record))
        return line.replace("\n", "\n    ") if "\n" in line else line


class LogfmtFormatter(RecordFormatter):
    """One line of ``key=value`` pairs: ``ts=... level=info logger=... msg="..." conn=12``."""

    def render(self, record: logging.LogRecord, message: str) -> str:
        line = (
            f"ts={self.timestamp(record)} level={record.levelname.lower()} "
            f"logger={_quote(record.name)} msg={_quote(message)}{_pairs(self.context(record))}"
        )
        if record.exc_info or record.exc_text or record.stack_info:
            line += _pairs(self.trailers(record))
        return line


class JsonFormatter(RecordFormatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, context, ``exc``.

    Context values JSON cannot hold are written as their ``str()``.
    """

    def render(self, record: logging.LogRecord, message: str) -> str:
        doc: dict[str, Any] = {
            "ts": self.timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": message,
        }
        doc.update(self.context(record))
        if record.exc_info or record.exc_text or record.stack_info:
            doc.update(self.trailers(record))
        return _json_encode(doc).decode()


_FORMATTERS: Final[dict[str, type[RecordFormatter]]] = {
    "text": TextFormatter,
    "logfmt": LogfmtFormatter,
    "json": JsonFormatter,
}


def make_formatter(name: str) -> RecordFormatter:
    """A new formatter for one of :data:`FORMATS`."""
    try:
        return _FORMATTERS[name]()
    except KeyError:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {name!r}") from None


# -- rate limiting ------------------------------------------------------------------------------


class _Window:
    __slots__ = ("last", "level", "name", "passed", "start", "suppressed")

    def __init__(self, start: float, record: logging.LogRecord) -> None:
        self.start = start
        self.passed = 1
        self.suppressed = 0
        self.name = record.name
        self.level = record.levelno
        self.last = record  # the latest record held back, merged only for the summary

    def summary(self) -> logging.LogRecord:
        try:
            message = self.last.getMessage()
        except Exception:  # arguments that do not fit the template: show the template
            message = str(self.last.msg)
        text = f"suppressed {self.suppressed} similar messages, the last one: {message}"
        record = logging.LogRecord(self.name, self.level, "", 0, text, None, None)
        record.suppressed = self.suppressed
        return record


class RateLimitFilter(logging.Filter):
    """Let through at most ``burst`` records per (logger name, message template) per ``period``
    seconds; count the rest and, once the window has passed, log one record
    ``suppressed N similar messages, the last one: <message>`` in their place, the message
    being the last one held back, merged with its arguments.

    Only records at ``level`` or above are limited. The template is the message before its
    arguments are merged in, so ``log.warning("bad frame from %s", peer)`` is one key however
    many peers there are. The table of keys holds at most ``max_keys`` entries; past that the
    oldest goes (its count, if any, is reported first). Windows that have passed are cleared,
    and their counts reported, by any later record or by :meth:`sweep`; :meth:`flush` reports
    every count at once (at shutdown). Summary records carry the count as ``record.suppressed``
    and are never limited themselves. They are logged through the logger of the records they
    stand for, so they reach the same handlers.
    """

    def __init__(
        self,
        burst: int = 5,
        period: float = 1.0,
        *,
        level: int = logging.WARNING,
        max_keys: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if burst < 1 or period <= 0 or max_keys < 1:
            raise ValueError("burst and max_keys must be at least 1 and period above 0")
        self.burst = burst
        self.period = period
        self.level = level
        self.max_keys = max_keys
        self.suppressed_total = 0
        self._clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}
        self._next_sweep = 0.0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level or hasattr(record, "suppressed"):
            return True
        template = str(record.msg)
        key = (record.name, template)
        now = self._clock()
        summaries: list[logging.LogRecord] = []
        with self._lock:
            if now >= self._next_sweep:
                self._sweep(now, summaries)
            window = self._windows.get(key)
            if window is None:
                if len(self._windows) >= self.max_keys:
                    oldest = self._windows.pop(next(iter(self._windows)))
                    if oldest.suppressed:
                        summaries.append(oldest.summary())
                self._windows[key] = _Window(now, record)
                allowed = True
            elif now - window.start >= self.period:
                if window.suppressed:
                    summaries.append(window.summary())
                self._windows[key] = _Window(now, record)
                allowed = True
            elif window.passed < self.burst:
                window.passed += 1
                allowed = True
            else:
                window.suppressed += 1
                window.last = record
                self.suppressed_total += 1
                allowed = False
        self._emit(summaries)
        return allowed

    def sweep(self) -> None:
        """Clear the windows that have passed and report what they held back."""
        summaries: list[logging.LogRecord] = []
        with self._lock:
            self._sweep(self._clock(), summaries)
        self._emit(summaries)

    def flush(self) -> None:
        """Report every count held back so far, whether or not its window has passed."""
        with self._lock:
            summaries = [window.summary() for window in self._windows.values() if window.suppressed]
            self._windows.clear()
        self._emit(summaries)

    def _sweep(self, now: float, summaries: list[logging.LogRecord]) -> None:
        for key, window in list(self._windows.items()):
            if now - window.start >= self.period:
                del self._windows[key]
                if window.suppressed:
                    summaries.append(window.summary())
        self._next_sweep = now + self.period

    @staticmethod
    def _emit(summaries: list[logging.LogRecord]) -> None:
        for summary in summaries:
            logging.getLogger(summary.name).handle(summary)


# -- the queue and its writer -------------------------------------------------------------------

_STOP: Final = object()
_GATHER: Final = 0.005  # s the writer lets records gather after a batch: ~200 wake-ups/s at most
_SLICE: Final = 64  # records per write: the writer holds the GIL for one slice at most
_FROZEN: Final = frozenset({int, str, float, bool, bytes, type(None)})
_plain_formatter = logging.Formatter()


class _QueueHandler(logging.Handler):
    """Appends ``(record, message)`` to a deque for the writer thread; what does not fit in
    ``maxsize`` is counted in ``dropped``.

    This is all a log call costs the thread that makes it: no lock (a deque append is atomic),
    no formatting, and a wake-up for the writer only when it has gone to sleep. The message is
    merged with its arguments later, by the writer, when they are immutable scalars (the
    common case); other arguments may be objects the caller goes on changing, so their message
    is merged here, and a traceback is rendered here too, while its frames are current. The
    record is not changed beyond the usual ``exc_text`` cache, so other handlers of the same
    record see it as it came.
    """

    def __init__(self, rate_limit: RateLimitFilter, maxsize: int) -> None:
        super().__init__()
        self.pending: deque[object] = deque()
        self.wake: queue.SimpleQueue[None] = queue.SimpleQueue()
        self.asleep = False  # set by the writer before it waits on ``wake``
        self.rate_limit = rate_limit
        self.maxsize = maxsize
        self.dropped = 0
        self._drop_lock = threading.Lock()

    def createLock(self) -> None:
        self.lock = None

    def handle(self, record: logging.LogRecord) -> bool:
        limit = self.rate_limit
        if record.levelno >= limit.level and not limit.filter(record):
            return False
        if self.filters and not self.filter(record):
            return False
        try:
            args = record.args
            message = None
            if type(record.msg) is not str or type(args) is not tuple:
                message = record.getMessage()
            else:
                for arg in args:
                    if type(arg) not in _FROZEN:
                        message = record.getMessage()
                        break
            if record.exc_info and not record.exc_text:
                record.exc_text = _plain_formatter.formatException(record.exc_info)
            self.put((record, message))
        except Exception:
            self.handleError(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    def put(self, item: object) -> None:
        """Queue a record, or a switch or stop marker for the writer, and wake it if it sleeps.
        A record that finds the queue full is dropped and counted."""
        pending = self.pending
        if len(pending) >= self.maxsize and type(item) is tuple:
            with self._drop_lock:
                self.dropped += 1
            return
        pending.append(item)
        if self.asleep:
            self.asleep = False
            self.wake.put(None)


def _open(file: str | None) -> tuple[IO[str], bool]:
    """The stream for ``file`` and whether it is ours to close."""
    if file is None:
        return sys.stderr, False
    return open(file, "a", encoding="utf-8", errors="backslashreplace"), True


class LogRuntime:
    """The running log pipeline: the queue handler on the root logger and its writer thread.

    Made by :func:`setup_logging`. :meth:`apply` and :meth:`reopen` open any new file in the
    calling thread, so a path that cannot be opened raises :class:`OSError` there and the old
    output stays in use.
    """

    def __init__(
        self,
        settings: LogSettings,
        *,
        burst: int = 5,
        period: float = 1.0,
        queue_size: int = 100_000,
        stdio_follows: bool = False,
    ) -> None:
        self._settings = settings
        self._stream, self._owns_stream = _open(settings.file)
        #: Under ``--daemon`` stdout and stderr are the log file: a reopened or new file
        #: replaces them too, so the rotated file is not held open and stray output follows.
        self.stdio_follows = stdio_follows
        self._formatter = make_formatter(settings.format)
        self.rate_limit = RateLimitFilter(burst, period)
        self._handler = _QueueHandler(self.rate_limit, queue_size)
        self._reported_drops = 0
        self._failed_stream: IO[str] | None = None
        self.write_errors = 0
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="residentd-log-writer", daemon=True)

    @property
    def settings(self) -> LogSettings:
        return self._settings

    @property
    def dropped(self) -> int:
        """Records dropped because the queue was full."""
        return self._handler.dropped

    def start(self) -> None:
        """Start the writer and put the handler on the root logger (done by setup_logging)."""
        self._thread.start()
        root = logging.getLogger()
        root.addHandler(self._handler)
        root.setLevel(self._settings.level)
        atexit.register(self.close)

    def apply(self, settings: LogSettings) -> None:
        """Switch to new settings. The level applies at once; a new format or file applies
        from the next record logged, after every record already queued is written."""
        with self._lock:
            if self._closed:
                return
            current = self._settings
            stream = None if settings.file == current.file else self._open(settings.file)
            formatter = None
            if settings.format != current.format:
                formatter = make_formatter(settings.format)
            logging.getLogger().setLevel(settings.level)
            if stream is not None or formatter is not None:
                self._handler.put(functools.partial(self._switch, stream, formatter))
            self._settings = settings

    def set_level(self, level: str) -> None:
        """Set the root logger's level now; a level not in :data:`LEVELS` is a ValueError."""
        self.apply(replace(self._settings, level=level))

    def reopen(self) -> None:
        """Reopen the log file at its path (after logrotate moved it); no-op on stderr.

        Records queued before the call are written to the old file, later ones to the new.
        """
        with self._lock:
            if self._closed or self._settings.file is None:
                return
            stream = self._open(self._settings.file)
            self._handler.put(functools.partial(self._switch, stream, None))

    def _open(self, file: str | None) -> tuple[IO[str], bool]:
        opened = _open(file)
        if self.stdio_follows and opened[1]:
            for fd in (1, 2):
                os.dup2(opened[0].fileno(), fd)
        return opened

    def close(self) -> None:
        """Write every queued record, stop the writer and close the file. Idempotent; also run
        at interpreter exit. Records logged afterwards go to logging's last-resort handler."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        self.rate_limit.flush()
        logging.getLogger().removeHandler(self._handler)
        if self._thread.is_alive():
            self._handler.put(_STOP)
            self._thread.join()
        # Whatever another thread queued after the stop marker, and any switch still pending.
        pending = self._handler.pending
        while pending:
            self._handle([pending.popleft()])
        self._report_drops()
        self._close_stream()

    # The rest runs on the writer thread (or, in close(), after it has stopped).

    def _run(self) -> None:
        handler = self._handler
        pending, popleft, wake = handler.pending, handler.pending.popleft, handler.wake
        period = self.rate_limit.period
        next_sweep = time.monotonic() + period
        while True:
            if not pending:
                handler.asleep = True
                if not pending:  # checked again: a record may have come before ``asleep``
                    with contextlib.suppress(queue.Empty):
                        wake.get(timeout=max(0.0, next_sweep - time.monotonic()))
                handler.asleep = False
            while pending:
                # One slice at a time: its write releases the GIL, so a loop that wants it
                # back waits for one slice at most, not for the whole backlog.
                chunk = [popleft() for _ in range(min(len(pending), _SLICE))]
                try:
                    if not self._handle(chunk):
                        return
                except Exception as exc:  # a bug here must not silence the log for good
                    _last_words(f"residentd: the log writer lost {len(chunk)} lines: {exc!r}")
                # Give the CPU away, not just the GIL: on a daemon pinned to one core, the loop
                # thread woken by the release would otherwise wait for this thread's time slice
                # to end, and then for the GIL's switch interval.
                os.sched_yield()
            self._report_drops()
            if time.monotonic() >= next_sweep:
                # Report the counts of floods that have ended, though no warning follows them.
                self.rate_limit.sweep()
                next_sweep = time.monotonic() + period
            time.sleep(_GATHER)

    def _handle(self, items: list[object]) -> bool:
        """Write records and run switches in queue order; False once the stop marker comes."""
        lines: list[str] = []
        render = self._render
        for item in items:
            if type(item) is tuple:
                lines.append(render(*item))
                continue
            self._write(lines)
            lines = []
            if item is _STOP:
                return False
            if callable(item):
                item()
        self._write(lines)
        return True

    def _render(self, record: logging.LogRecord, message: str | None) -> str:
        """The line for a record; ``message`` is None when its merge was left to the writer."""
        try:
            if message is None:
                message = record.getMessage()
            return self._formatter.render(record, message)
        except Exception as exc:
            shown = record.msg if message is None else message
            return f"<cannot format a record from {record.name}: {exc!r}: {shown!r}>"

    def _write(self, lines: list[str]) -> None:
        if not lines:
            return
        try:
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()
        except (OSError, ValueError) as exc:
            self.write_errors += 1
            if self._failed_stream is not self._stream:
                self._failed_stream = self._stream
                _last_words(f"residentd: cannot write the log: {exc}")

    def _switch(
        self, stream: tuple[IO[str], bool] | None, formatter: RecordFormatter | None
    ) -> None:
        if stream is not None:
            self._close_stream()
            self._stream, self._owns_stream = stream
        if formatter is not None:
            self._formatter = formatter

    def _close_stream(self) -> None:
        if self._owns_stream:
            try:
                self._stream.close()
            except (OSError, ValueError):
                self.write_errors += 1

    def _report_drops(self) -> None:
        dropped = self._handler.dropped
        if dropped > self._reported_drops:
            count = dropped - self._reported_drops
            self._reported_drops = dropped
            text = f"log queue full: dropped {count} records"
            record = logging.LogRecord(_log.name, logging.WARNING, "", 0, text, None, None)
            self._write([self._render(record, text)])


def _last_words(text: str) -> None:
    """Tell stderr something about logging itself, if stderr still works."""
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.__stderr__ or sys.stderr, flush=True)


_active: LogRuntime | None = None
_active_lock = threading.Lock()


def setup_logging(
    settings: LogSettings | None = None,
    *,
    burst: int = 5,
    period: float = 1.0,
    queue_size: int = 100_000,
    stdio_follows: bool = False,
) -> LogRuntime:
    """Send all logging through a queue to one writer thread; return the running pipeline.

    ``burst`` and ``period`` configure the :class:`RateLimitFilter` on the queue handler;
    ``queue_size`` bounds the records waiting for the writer. ``stdio_follows`` points
    stdout and stderr at every log file opened later (see :class:`LogRuntime`). Calling it
    again replaces the earlier pipeline (which is closed first, its lines written). Handlers
    that other code put on the root logger are left alone. Call it after
    :func:`~residentd.daemon.daemonize.daemonize`: the writer thread does not survive a fork.
    """
    global _active
    settings = settings or LogSettings()
    runtime = LogRuntime(
        settings, burst=burst, period=period, queue_size=queue_size, stdio_follows=stdio_follows
    )
    with _active_lock:
        if _active is not None:
            _active.close()
        _active = runtime
        runtime.start()
    return runtime
