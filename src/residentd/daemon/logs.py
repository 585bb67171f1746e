"""Logging for resident daemons: leveled, structured, and never blocking the event loop.

Everything goes through the stdlib :mod:`logging` module, so the logs of third-party libraries
land in the same place. :func:`setup_logging` puts one :class:`~logging.handlers.QueueHandler` on
the root logger: a log call merges the message with its arguments and appends the record to a
queue, and that is all the calling thread does. One writer thread takes records off the queue in
batches, renders them as ``text``, ``logfmt`` or ``json`` and writes them to stderr or a file, so
a slow disk never stalls the loop. The queue is bounded: should the writer fall that far behind,
new records are dropped and counted, and the count is logged once the writer catches up.

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
import logging.handlers
import queue
import re
import sys
import threading
import time
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
    "setup_logging",
]

LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS: Final = ("text", "logfmt", "json")

#: Record attributes rendered as context fields, in this order, before the items of ``ctx``.
CONTEXT_ATTRS: Final = ("app", "conn", "peer")
_CORE_FIELDS: Final = frozenset({"ts", "level", "logger", "msg", "exc", "stack"})

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

_PLAIN_VALUE = re.compile(r'[^\s"=\\\x00-\x1f\x7f]+')
_json_encode = msgspec.json.Encoder(enc_hook=str).encode


def _quote(value: object) -> str:
    """A logfmt value: bare when it is one plain word, else a double-quoted escaped string."""
    if type(value) is int:
        return str(value)
    text = value if isinstance(value, str) else str(value)
    if _PLAIN_VALUE.fullmatch(text):
        return text
    return _json_encode(text).decode()


class RecordFormatter(logging.Formatter):
    """What the three formats share: UTC timestamps, context fields, exception text.

    A subclass implements :meth:`render`, given the record and its message already merged with
    its arguments (the queue handler merges them in the thread that logged).
    """

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        return self.render(record, record.getMessage())

    def render(self, record: logging.LogRecord, message: str) -> str:
        raise NotImplementedError

    def timestamp(self, record: logging.LogRecord) -> str:
        """``2026-11-28T05:01:02.123Z``: UTC, milliseconds. The date part is cached per second."""
        second = int(record.created)
        cached, prefix = self._second
        if second != cached:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, prefix)
        return f"{prefix}.{int(record.msecs):03d}Z"

    @staticmethod
    def context(record: logging.LogRecord) -> list[tuple[str, Any]]:
        """The context fields of a record; a ``ctx`` key that clashes with a core field is
        renamed ``ctx.<key>`` so it cannot overwrite ``msg`` and the like."""
        attrs = record.__dict__
        fields = [(name, attrs[name]) for name in CONTEXT_ATTRS if attrs.get(name) is not None]
        ctx = attrs.get("ctx")
        if isinstance(ctx, dict):
            for key, value in ctx.items():
                key = str(key)
                fields.append((f"ctx.{key}" if key in _CORE_FIELDS else key, value))
        return fields

    def trailers(self, record: logging.LogRecord) -> list[tuple[str, str]]:
        """The traceback (``exc``) and stack (``stack``) texts of a record, when it has them."""
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        found = []
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
        line = f"{self.timestamp(record)} {record.levelname:<5} {record.name}: {message}"
        fields = self.context(record)
        if fields:
            line += " " + " ".join(f"{key}={_quote(value)}" for key, value in fields)
        for _, text in self.trailers(record):
            line += "\n" + text
        return line.replace("\n", "\n    ")


class LogfmtFormatter(RecordFormatter):
    """One line of ``key=value`` pairs: ``ts=... level=info logger=... msg="..." conn=12``."""

    def render(self, record: logging.LogRecord, message: str) -> str:
        parts = [
            f"ts={self.timestamp(record)}",
            f"level={record.levelname.lower()}",
            f"logger={_quote(record.name)}",
            f"msg={_quote(message)}",
        ]
        parts.extend(f"{key}={_quote(value)}" for key, value in self.context(record))
        parts.extend(f"{key}={_quote(text)}" for key, text in self.trailers(record))
        return " ".join(parts)


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
    __slots__ = ("level", "name", "passed", "start", "suppressed", "template")

    def __init__(self, start: float, record: logging.LogRecord, template: str) -> None:
        self.start = start
        self.passed = 1
        self.suppressed = 0
        self.name = record.name
        self.level = record.levelno
        self.template = template

    def summary(self) -> logging.LogRecord:
        text = f"suppressed {self.suppressed} similar messages: {self.template}"
        record = logging.LogRecord(self.name, self.level, "", 0, text, None, None)
        record.suppressed = self.suppressed
        return record


class RateLimitFilter(logging.Filter):
    """Let through at most ``burst`` records per (logger name, message template) per ``period``
    seconds; count the rest and, once the window has passed, log one record
    ``suppressed N similar messages: <template>`` in their place.

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
                self._windows[key] = _Window(now, record, template)
                allowed = True
            elif now - window.start >= self.period:
                if window.suppressed:
                    summaries.append(window.summary())
                self._windows[key] = _Window(now, record, template)
                allowed = True
            elif window.passed < self.burst:
                window.passed += 1
                allowed = True
            else:
                window.suppressed += 1
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
_CHUNK: Final = 64  # records per write; each write lets the loop's thread take the GIL back
_plain_formatter = logging.Formatter()


class _QueueHandler(logging.handlers.QueueHandler):
    """Puts ``(record, message)`` on a bounded queue; what does not fit is counted in
    ``dropped``.

    The message is merged with its arguments here, in the thread that logged, because the
    arguments may be mutable objects that thread goes on changing; a traceback is rendered here
    too, while its frames are current. The record itself is not changed beyond the usual
    ``exc_text`` cache, so other handlers of the same record see it as it came.
    """

    def __init__(self, records: queue.SimpleQueue[object], maxsize: int) -> None:
        super().__init__(records)
        self.records = records
        self.maxsize = maxsize
        self.dropped = 0
        self._drop_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and not record.exc_text:
                record.exc_text = _plain_formatter.formatException(record.exc_info)
            if self.records.qsize() >= self.maxsize:
                with self._drop_lock:
                    self.dropped += 1
                return
            self.records.put((record, message))
        except Exception:
            self.handleError(record)


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
    ) -> None:
        self._settings = settings
        self._stream, self._owns_stream = _open(settings.file)
        self._formatter = make_formatter(settings.format)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._handler = _QueueHandler(self._queue, queue_size)
        self.rate_limit = RateLimitFilter(burst, period)
        self._handler.addFilter(self.rate_limit)
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
            stream = None if settings.file == current.file else _open(settings.file)
            formatter = None
            if settings.format != current.format:
                formatter = make_formatter(settings.format)
            logging.getLogger().setLevel(settings.level)
            if stream is not None or formatter is not None:
                self._queue.put(functools.partial(self._switch, stream, formatter))
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
            stream = _open(self._settings.file)
            self._queue.put(functools.partial(self._switch, stream, None))

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
            self._queue.put(_STOP)
            self._thread.join()
        # Whatever another thread queued after the stop marker, and any switch still pending.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            self._handle([item])
        self._report_drops()
        self._close_stream()

    # The rest runs on the writer thread (or, in close(), after it has stopped).

    def _run(self) -> None:
        get, get_nowait = self._queue.get, self._queue.get_nowait
        period = self.rate_limit.period
        next_sweep = time.monotonic() + period
        while True:
            try:
                chunk = [get(timeout=max(0.0, next_sweep - time.monotonic()))]
            except queue.Empty:
                chunk = []
            while chunk and len(chunk) < _CHUNK:
                try:
                    chunk.append(get_nowait())
                except queue.Empty:
                    break
            if not self._handle(chunk):
                return
            self._report_drops()
            if time.monotonic() >= next_sweep:
                # Report the counts of floods that have ended, though no warning follows them.
                self.rate_limit.sweep()
                next_sweep = time.monotonic() + period

    def _handle(self, items: list[object]) -> bool:
        """Write records and run switches in queue order; False once the stop marker comes."""
        lines: list[str] = []
        for item in items:
            if isinstance(item, tuple):
                lines.append(self._render(*item))
                continue
            self._write(lines)
            lines = []
            if item is _STOP:
                return False
            if callable(item):
                item()
        self._write(lines)
        return True

    def _render(self, record: logging.LogRecord, message: str) -> str:
        try:
            return self._formatter.render(record, message)
        except Exception as exc:
            return f"<cannot format a record from {record.name}: {exc!r}: {message!r}>"

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
) -> LogRuntime:
    """Send all logging through a queue to one writer thread; return the running pipeline.

    ``burst`` and ``period`` configure the :class:`RateLimitFilter` on the queue handler;
    ``queue_size`` bounds the records waiting for the writer. Calling it again replaces the
    earlier pipeline (which is closed first, its lines written). Handlers that other code put
    on the root logger are left alone. Call it after :func:`~residentd.daemon.daemonize.
    daemonize`: the writer thread does not survive a fork.
    """
    global _active
    settings = settings or LogSettings()
    runtime = LogRuntime(settings, burst=burst, period=period, queue_size=queue_size)
    with _active_lock:
        if _active is not None:
            _active.close()
        _active = runtime
        runtime.start()
    return runtime
