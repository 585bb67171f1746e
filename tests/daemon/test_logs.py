"""Logging: the three formats, context and tracebacks, rate limiting, and the queue and writer
thread with run-time changes, logrotate's reopen and a lossless shutdown."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import pytest

from residentd.daemon.logrecord import LeanRecord
from residentd.daemon.logs import (
    JsonFormatter,
    LogfmtFormatter,
    LogRuntime,
    LogSettings,
    RateLimitFilter,
    TextFormatter,
    setup_logging,
)

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

# 2026-11-28T05:01:02.123Z
CREATED = 1795842062.123


def make_record(
    msg: str = "message",
    *args: object,
    level: int = logging.INFO,
    name: str = "residentd.conn",
    exc_info: ExcInfo | None = None,
    **attrs: object,
) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, msg, args, exc_info)
    record.created = CREATED
    record.msecs = 123.0
    record.__dict__.update(attrs)
    return record


def raised() -> ExcInfo:
    try:
        raise ValueError("boom")
    except ValueError as exc:
        return type(exc), exc, exc.__traceback__


# -- formats ------------------------------------------------------------------------------------


def test_text_format() -> None:
    record = make_record("client %s said hi", "alice", conn=12, peer="127.0.0.1:5555")
    assert TextFormatter().format(record) == (
        "2026-11-28T05:01:02.123Z INFO  residentd.conn: client alice said hi "
        "conn=12 peer=127.0.0.1:5555"
    )


def test_text_format_pads_short_levels_only() -> None:
    formatter = TextFormatter()
    assert formatter.format(make_record(level=logging.ERROR)) == (
        "2026-11-28T05:01:02.123Z ERROR residentd.conn: message"
    )
    assert formatter.format(make_record(level=logging.WARNING)) == (
        "2026-11-28T05:01:02.123Z WARNING residentd.conn: message"
    )


def test_logfmt_format() -> None:
    record = make_record("client said hi", conn=12, peer="127.0.0.1:5555")
    assert LogfmtFormatter().format(record) == (
        "ts=2026-11-28T05:01:02.123Z level=info logger=residentd.conn "
        'msg="client said hi" conn=12 peer=127.0.0.1:5555'
    )


def test_logfmt_quotes_only_what_needs_it() -> None:
    record = make_record("plain", ctx={"empty": "", "eq": "a=b", "quote": 'say "hi"\n'})
    assert LogfmtFormatter().format(record) == (
        "ts=2026-11-28T05:01:02.123Z level=info logger=residentd.conn msg=plain "
        'empty="" eq="a=b" quote="say \\"hi\\"\\n"'
    )


def test_json_format() -> None:
    record = make_record("client said hi", level=logging.WARNING, conn=12, peer="127.0.0.1:5555")
    assert JsonFormatter().format(record) == (
        '{"ts":"2026-11-28T05:01:02.123Z","level":"warning","logger":"residentd.conn",'
        '"msg":"client said hi","conn":12,"peer":"127.0.0.1:5555"}'
    )


def test_context_fields_in_every_format() -> None:
    def record() -> logging.LogRecord:
        return make_record(
            app="chat",
            conn=7,
            peer="127.0.0.1:4000",
            ctx={"room": "lobby", "bytes": 10, "msg": "clash", "obj": object},
        )

    doc = json.loads(JsonFormatter().format(record()))
    assert doc == {
        "ts": "2026-11-28T05:01:02.123Z",
        "level": "info",
        "logger": "residentd.conn",
        "msg": "message",
        "app": "chat",
        "conn": 7,
        "peer": "127.0.0.1:4000",
        "room": "lobby",
        "bytes": 10,
        "ctx.msg": "clash",
        "obj": "<class 'object'>",
    }
    fields = 'app=chat conn=7 peer=127.0.0.1:4000 room=lobby bytes=10 ctx.msg=clash obj="<class'
    assert fields in TextFormatter().format(record())
    assert fields in LogfmtFormatter().format(record())


def test_traceback_in_every_format() -> None:
    text = TextFormatter().format(make_record("failed", exc_info=raised()))
    first, *rest = text.split("\n")
    assert first == "2026-11-28T05:01:02.123Z INFO  residentd.conn: failed"
    assert rest[0] == "    Traceback (most recent call last):"
    assert rest[-1] == "    ValueError: boom"
    assert all(line.startswith("    ") for line in rest)

    line = LogfmtFormatter().format(make_record("failed", exc_info=raised()))
    assert "\n" not in line
    exc = re.search(r' exc=("(?:[^"\\]|\\.)*")$', line)
    assert exc is not None
    assert json.loads(exc.group(1)).startswith("Traceback (most recent call last):\n")
    assert json.loads(exc.group(1)).endswith("ValueError: boom")

    doc = json.loads(JsonFormatter().format(make_record("failed", exc_info=raised())))
    assert doc["exc"].startswith("Traceback (most recent call last):\n")
    assert doc["exc"].endswith("ValueError: boom")


def test_text_indents_further_lines_of_a_message() -> None:
    text = TextFormatter().format(make_record("first\n2026-01-01T00:00:00.000Z ERROR forged"))
    assert text.split("\n")[1] == "    2026-01-01T00:00:00.000Z ERROR forged"


def test_settings_are_validated() -> None:
    assert LogSettings(level="debug").level == "DEBUG"
    with pytest.raises(ValueError, match="log level must be one of DEBUG, INFO, WARNING, ERROR"):
        LogSettings(level="LOUD")
    with pytest.raises(ValueError, match="log format must be one of text, logfmt, json, not 'x'"):
        LogSettings(format="x")


# -- rate limiting ------------------------------------------------------------------------------


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limited(request: pytest.FixtureRequest) -> Iterator[tuple[logging.Logger, Collect, Clock]]:
    """A private logger whose handler is rate limited on a clock the test moves."""
    logger = logging.getLogger(f"test.ratelimit.{request.node.name}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = Collect()
    clock = Clock()
    handler.addFilter(RateLimitFilter(5, 1.0, max_keys=3, clock=clock))
    logger.addHandler(handler)
    yield logger, handler, clock
    logger.removeHandler(handler)


def test_flood_is_cut_to_the_burst_then_counted(
    limited: tuple[logging.Logger, Collect, Clock],
) -> None:
    log, out, clock = limited
    for i in range(100):
        log.warning("bad frame from %s", f"peer{i}")
    assert out.messages == [f"bad frame from peer{i}" for i in range(5)]
    clock.now += 0.5
    log.warning("bad frame from %s", "late")
    assert len(out.messages) == 5
    clock.now += 0.5
    log.warning("bad frame from %s", "next window")
    # The summary shows the last message held back, merged with its arguments: a reader
    # sees which peer, not the template ("bad frame from %s").
    assert out.messages[5:] == [
        "suppressed 96 similar messages, the last one: bad frame from late",
        "bad frame from next window",
    ]


def test_summary_shows_the_message_of_a_refusal_not_its_template(
    limited: tuple[logging.Logger, Collect, Clock],
) -> None:
    log, out, clock = limited
    for port in range(40_000, 40_020):
        log.warning("refused %s: %s", f"127.0.0.1:{port}", "max-connections")
    clock.now += 1.0
    (ratelimit,) = out.filters
    assert isinstance(ratelimit, RateLimitFilter)
    ratelimit.sweep()
    summary = out.messages[-1]
    assert "%s" not in summary
    assert summary == (
        "suppressed 15 similar messages, the last one: refused 127.0.0.1:40019: max-connections"
    )


def test_keys_are_per_logger_and_template(limited: tuple[logging.Logger, Collect, Clock]) -> None:
    log, out, _ = limited
    other = log.getChild("other")
    for _ in range(10):
        log.warning("one")
        log.warning("two")
        other.warning("one")
    assert out.messages.count("one") == 10  # 5 from each logger
    assert out.messages.count("two") == 5


def test_lower_levels_are_not_limited(limited: tuple[logging.Logger, Collect, Clock]) -> None:
    log, out, _ = limited
    for _ in range(50):
        log.info("chatty")
    assert out.messages == ["chatty"] * 50


def test_counts_are_reported_without_a_further_record(
    limited: tuple[logging.Logger, Collect, Clock],
) -> None:
    log, out, clock = limited
    (ratelimit,) = out.filters
    assert isinstance(ratelimit, RateLimitFilter)
    for _ in range(8):
        log.warning("flood")
    ratelimit.sweep()
    assert out.messages == ["flood"] * 5  # the window has not passed yet
    clock.now += 1.0
    ratelimit.sweep()
    assert out.messages[5:] == ["suppressed 3 similar messages, the last one: flood"]
    for _ in range(7):
        log.warning("flood")
    ratelimit.flush()
    assert out.messages[6:] == ["flood"] * 5 + [
        "suppressed 2 similar messages, the last one: flood"
    ]
    assert ratelimit.suppressed_total == 5


def test_key_table_is_bounded(limited: tuple[logging.Logger, Collect, Clock]) -> None:
    log, out, _ = limited
    (ratelimit,) = out.filters
    assert isinstance(ratelimit, RateLimitFilter)
    for _ in range(6):
        log.warning("first")
    for n in range(200):
        log.warning(f"distinct {n}")
    assert len(ratelimit._windows) == 3
    # "first" was evicted when a fourth key came, and its count reported then.
    assert out.messages[5:9] == [
        "distinct 0",
        "distinct 1",
        "suppressed 1 similar messages, the last one: first",
        "distinct 2",
    ]


# -- the pipeline -------------------------------------------------------------------------------


@pytest.fixture
def start() -> Iterator[Callable[..., LogRuntime]]:
    """``start(settings, **options)`` runs setup_logging; the root logger is restored after."""
    root = logging.getLogger()
    level = root.level
    runtimes: list[LogRuntime] = []

    def starter(settings: LogSettings, **options: int | float) -> LogRuntime:
        runtime = setup_logging(settings, **options)
        runtimes.append(runtime)
        return runtime

    yield starter
    for runtime in runtimes:
        runtime.close()
    root.setLevel(level)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def messages(path: Path) -> list[str]:
    return [json.loads(line)["msg"] for line in lines(path)]


def test_records_reach_the_file_with_context_and_traceback(
    start: Callable[..., LogRuntime], tmp_path: Path
) -> None:
    path = tmp_path / "app.log"
    runtime = start(LogSettings(format="json", file=str(path)))
    log = logging.getLogger("residentd.test")
    conn_log = logging.LoggerAdapter(log, {"conn": 3, "peer": "127.0.0.1:9"})
    conn_log.info("hello %s", "there")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("handler failed", extra={"app": "echo"})
    runtime.close()
    first, second = (json.loads(line) for line in lines(path))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first.pop("ts"))
    assert first == {
        "level": "info",
        "logger": "residentd.test",
        "msg": "hello there",
        "conn": 3,
        "peer": "127.0.0.1:9",
    }
    assert second["app"] == "echo"
    assert second["exc"].endswith("ValueError: boom")


def test_counts_are_reported_after_the_flood_under_other_traffic(
    start: Callable[..., LogRuntime], tmp_path: Path
) -> None:
    path = tmp_path / "after.log"
    start(LogSettings(format="json", file=str(path)), burst=2, period=0.1)
    log = logging.getLogger("residentd.after")
    for _ in range(10):
        log.warning("flood")
    deadline = time.monotonic() + 10
    while "suppressed 8 similar messages, the last one: flood" not in path.read_text():
        assert time.monotonic() < deadline, "the count was never reported"
        log.info("other traffic")  # keeps the writer busy, never idle for a whole period
        time.sleep(0.01)


def test_level_changes_at_run_time(start: Callable[..., LogRuntime], tmp_path: Path) -> None:
    path = tmp_path / "level.log"
    runtime = start(LogSettings(level="INFO", format="json", file=str(path)))
    log = logging.getLogger("residentd.level")
    log.debug("hidden 1")
    log.info("shown 1")
    runtime.set_level("DEBUG")
    assert logging.getLogger().level == logging.DEBUG
    log.debug("shown 2")
    runtime.apply(LogSettings(level="WARNING", format="json", file=str(path)))
    assert runtime.settings.level == "WARNING"
    log.info("hidden 2")
    log.warning("shown 3")
    runtime.close()
    assert messages(path) == ["shown 1", "shown 2", "shown 3"]


def test_format_and_file_change_in_order(start: Callable[..., LogRuntime], tmp_path: Path) -> None:
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    runtime = start(LogSettings(format="text", file=str(first)))
    log = logging.getLogger("residentd.switch")
    for i in range(300):
        log.info("a%d", i)
    runtime.apply(LogSettings(format="json", file=str(first)))
    for i in range(300):
        log.info("b%d", i)
    runtime.apply(LogSettings(format="json", file=str(second)))
    for i in range(300):
        log.info("c%d", i)
    runtime.close()
    written = lines(first)
    assert [line.rsplit(": ", 1)[1] for line in written[:300]] == [f"a{i}" for i in range(300)]
    assert [json.loads(line)["msg"] for line in written[300:]] == [f"b{i}" for i in range(300)]
    assert messages(second) == [f"c{i}" for i in range(300)]


def test_a_file_that_cannot_be_opened_keeps_the_old_one(
    start: Callable[..., LogRuntime], tmp_path: Path
) -> None:
    path = tmp_path / "kept.log"
    runtime = start(LogSettings(format="json", file=str(path)))
    bad = LogSettings(level="DEBUG", format="json", file=str(tmp_path / "missing" / "x.log"))
    with pytest.raises(FileNotFoundError):
        runtime.apply(bad)
    assert runtime.settings.file == str(path)
    assert logging.getLogger().level == logging.INFO
    logging.getLogger("residentd.kept").info("still here")
    runtime.close()
    assert messages(path) == ["still here"]


def test_reopen_after_rename_loses_nothing(
    start: Callable[..., LogRuntime], tmp_path: Path
) -> None:
    path, rotated = tmp_path / "app.log", tmp_path / "app.log.1"
    runtime = start(LogSettings(format="json", file=str(path)))
    log = logging.getLogger("residentd.rotate")
    for i in range(2000):
        log.info("line %d", i)
    os.rename(path, rotated)
    runtime.reopen()
    for i in range(2000, 4000):
        log.info("line %d", i)
    runtime.close()
    assert messages(rotated) == [f"line {i}" for i in range(2000)]
    assert messages(path) == [f"line {i}" for i in range(2000, 4000)]


def test_a_full_queue_drops_and_counts(start: Callable[..., LogRuntime], tmp_path: Path) -> None:
    # The log file is a FIFO nobody reads yet, so the writer blocks once the pipe is full.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    runtime = start(LogSettings(format="json", file=str(fifo)), queue_size=100)
    log = logging.getLogger("residentd.full")
    for i in range(20_000):
        log.info("line %d", i)
    assert runtime.dropped > 0

    received = bytearray()

    def drain() -> None:
        os.set_blocking(reader, True)
        while chunk := os.read(reader, 65536):
            received.extend(chunk)

    drainer = threading.Thread(target=drain)
    drainer.start()
    runtime.close()
    drainer.join()
    os.close(reader)
    shown = reported = 0
    for line in received.decode().splitlines():
        msg = json.loads(line)["msg"]
        if dropped := re.fullmatch(r"log queue full: dropped (\d+) records", msg):
            reported += int(dropped.group(1))
        else:
            shown += 1
    assert reported == runtime.dropped
    assert shown + reported == 20_000


LOG_SCRIPT = """
import logging, sys
from residentd.daemon.logs import LogSettings, setup_logging

file, count, level = sys.argv[1:] if len(sys.argv) > 1 else ("-", "1", "info")
setup_logging(LogSettings(format="logfmt", file=None if file == "-" else file))
log = logging.getLogger("burst")
for i in range(int(count)):
    log.log(logging.getLevelName(level.upper()), "line %d", i)
"""


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LOG_SCRIPT, *args], capture_output=True, text=True, check=True
    )


def logfmt_messages(path: Path) -> list[str]:
    return [json.loads(line.rsplit(" msg=", 1)[1]) for line in lines(path)]


def test_every_line_is_written_at_a_normal_exit(tmp_path: Path) -> None:
    path = tmp_path / "burst.log"
    run_script(str(path), "50000", "info")
    assert logfmt_messages(path) == [f"line {i}" for i in range(50_000)]


def test_a_flood_leaves_a_handful_of_lines_and_an_exact_count(tmp_path: Path) -> None:
    path = tmp_path / "flood.log"
    began = time.monotonic()
    run_script(str(path), "100000", "warning")
    windows = math.ceil(time.monotonic() - began) + 1  # the default period is 1 s
    shown = suppressed = 0
    for msg in logfmt_messages(path):
        if counted := re.fullmatch(
            r"suppressed (\d+) similar messages, the last one: line \d+", msg
        ):
            suppressed += int(counted.group(1))
        else:
            assert re.fullmatch(r"line \d+", msg)
            shown += 1
    assert shown <= 5 * windows
    assert shown + suppressed == 100_000


def test_stderr_is_the_default_output() -> None:
    assert re.fullmatch(
        r"ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info logger=burst "
        r'msg="line 0"\n',
        run_script().stderr,
    )


def test_mutable_arguments_are_merged_when_logged(
    start: Callable[..., LogRuntime], tmp_path: Path
) -> None:
    path = tmp_path / "mutable.log"
    runtime = start(LogSettings(format="json", file=str(path)))
    items = ["a"]
    logging.getLogger("residentd.mutable").info("items %s, count %d", items, 1)
    items.append("b")  # the writer may render the line only now
    runtime.close()
    assert messages(path) == ["items ['a'], count 1"]


def test_lean_records_have_every_stdlib_field() -> None:
    args = ("echo", 3)
    stdlib = logging.LogRecord("a.b", logging.INFO, "/x/y/mod.py", 7, "%s %d", args, None, "f")
    lean = LeanRecord("a.b", logging.INFO, "/x/y/mod.py", 7, "%s %d", args, None, "f")
    assert lean.__dict__.keys() == stdlib.__dict__.keys()
    same = ("name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module")
    assert all(getattr(lean, key) == getattr(stdlib, key) for key in same)
    assert lean.getMessage() == "echo 3"
    mapping = LeanRecord("a", logging.INFO, "", 0, "%(n)s", ({"n": 1},), None)
    assert mapping.getMessage() == "1"
    formatter = logging.Formatter("%(filename)s:%(lineno)d %(funcName)s %(thread)s %(message)s")
    assert formatter.format(lean) == "mod.py:7 f None echo 3"
