"""``push_all``, a fan-out's loop, in C against its Python reference.

The C version runs a connection core's own ``send_bytes`` in place instead of calling it; what
it leaves must be what the calls leave: the same bytes queued on each open connection, the
same message counts, each connection added to the flush queue once, closing connections
skipped, other pushes called in the dict's order, and the same error when a push changes the
dict or raises.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest

from residentd.net import connection_core
from residentd.speedups import native

NATIVE_CORE = native("residentd.net._connection_core", "ConnectionCore")
NATIVE_PUSH_ALL = native("residentd.net._connection_core", "push_all")
VERSIONS = [(connection_core.ConnectionCore, connection_core.push_all)]
if NATIVE_CORE is not None:
    VERSIONS.append((NATIVE_CORE, NATIVE_PUSH_ALL))


class RecordingFlushes:
    def __init__(self, events: list[Any]) -> None:
        self.events = events

    def add(self, item: Any) -> None:
        self.events.append(("flushes.add", item.name))


class Server:
    def __init__(self, events: list[Any]) -> None:
        self.flushes = RecordingFlushes(events)


def make_core(base: type, name: str, server: Server, closing: bool = False) -> Any:
    class Core(base):  # type: ignore[misc, valid-type]
        __slots__ = ("name",)

    core = Core()
    core.name = name
    core.server = server
    core._out = None
    core._closing = closing
    core._dispatching = False
    core._flush_scheduled = False
    core.messages_out = 0
    return core


def state(cores: list[Any]) -> list[Any]:
    return [(c.name, c._out, c.messages_out, c._flush_scheduled) for c in cores]


def run(base: type, push_all: Any, script: Any) -> list[Any]:
    events: list[Any] = []
    server = Server(events)
    cores = [make_core(base, name, server, closing=name == "closing") for name in "ab"]
    cores.append(make_core(base, "closing", server, closing=True))
    script(push_all, cores, events)
    return [*events, ("state", state(cores))]


def agree(script: Any) -> list[Any]:
    logs = [run(base, push_all, script) for base, push_all in VERSIONS]
    for other in logs[1:]:
        assert other == logs[0]
    return logs[0]


def test_one_message_is_queued_on_every_open_connection_and_counted() -> None:
    def script(push_all: Any, cores: list[Any], events: list[Any]) -> None:
        a, b, closing = cores
        other = lambda data: events.append(("other", data))  # noqa: E731
        pushes = {a: a.send_bytes, "x": other, closing: closing.send_bytes, b: b.send_bytes}
        push_all(pushes, b"one\n")
        push_all(pushes, b"two\n")

    log = agree(script)
    assert log == [
        ("flushes.add", "a"),
        ("other", b"one\n"),
        ("flushes.add", "b"),
        ("other", b"two\n"),
        (
            "state",
            [
                ("a", [b"one\n", b"two\n"], 2, True),
                ("b", [b"one\n", b"two\n"], 2, True),
                ("closing", None, 0, False),
            ],
        ),
    ]


def test_a_mapping_that_is_not_a_dict_is_read_through_its_values() -> None:
    def script(push_all: Any, cores: list[Any], events: list[Any]) -> None:
        a, b, _ = cores
        push_all(OrderedDict([(b, b.send_bytes), (a, a.send_bytes)]), b"m\n")

    log = agree(script)
    assert log[:2] == [("flushes.add", "b"), ("flushes.add", "a")]


def test_a_push_that_changes_the_dict_stops_the_loop_as_iterating_would() -> None:
    def script(push_all: Any, cores: list[Any], events: list[Any]) -> None:
        a, b, _ = cores
        pushes: dict[Any, Any] = {}

        def leave(data: bytes) -> None:
            events.append(("leave", data))
            del pushes[a]

        pushes.update({"leaver": leave, a: a.send_bytes, b: b.send_bytes})
        with pytest.raises(RuntimeError, match="changed size during iteration"):
            push_all(pushes, b"m\n")

    log = agree(script)
    assert log[0] == ("leave", b"m\n")
    assert log[-1][1][0][1] is None  # nothing queued after the change


def test_a_push_that_raises_stops_the_loop_with_its_error() -> None:
    def script(push_all: Any, cores: list[Any], events: list[Any]) -> None:
        a, b, _ = cores

        def broken(data: bytes) -> None:
            raise ValueError("broken push")

        with pytest.raises(ValueError, match="broken push"):
            push_all({a: a.send_bytes, "broken": broken, b: b.send_bytes}, b"m\n")

    log = agree(script)
    assert log == [
        ("flushes.add", "a"),
        ("state", [("a", [b"m\n"], 1, True), ("b", None, 0, False), ("closing", None, 0, False)]),
    ]
