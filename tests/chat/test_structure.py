"""The chat's structure holds: every request has a handler, the world imports no dispatcher, the
modules import each other without a cycle, fan-out frames a push once per wire, and every error
code is one enum member that the protocol document names."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

import msgspec
import pytest

from residentd.apps.chat import handlers
from residentd.apps.chat import protocol as p
from residentd.apps.chat.errors import ChatError, ErrorCode
from residentd.apps.chat.hub import Hub
from residentd.apps.chat.settings import ChatSettings
from residentd.apps.chat.wire import LINES, TEXT_FRAMES, WIRES
from residentd.codecs.websocket import text_frame
from residentd.errors import ResidentdError

CHAT = Path(handlers.__file__).parent
PACKAGE = "residentd.apps.chat"
DOCS = Path(__file__).parents[2] / "docs" / "chat-protocol.md"


# -- the handler table ---------------------------------------------------------------------------


def test_every_request_has_a_handler_and_every_handler_a_request() -> None:
    assert set(handlers.HANDLERS) == set(get_args(p.AnyRequest))
    assert {p.Hello, p.Ping, p.Pong} == handlers.BEFORE_HELLO
    assert {p.Ping, p.Pong} == handlers.UNCHARGED
    # What a journal keeps changes: refused with storage-error while the disk refuses it.
    writes = {p.Create, p.Join, p.Leave, p.Invite, p.SetTopic, p.Post}
    assert writes | {p.StateSet, p.StateIncr, p.StateDel} == handlers.WRITES


def test_the_table_check_names_what_is_missing_and_what_is_extra() -> None:
    class Stray(p.Request, tag="stray"):
        pass

    table = dict(handlers.HANDLERS)
    del table[p.Post]
    with pytest.raises(handlers.HandlerTableError, match="no handler of Post"):
        handlers.check_table(table)
    table = {**handlers.HANDLERS, Stray: handlers.HANDLERS[p.Ping]}
    with pytest.raises(handlers.HandlerTableError, match="handlers of Stray, not in protocol"):
        handlers.check_table(table)
    assert issubclass(handlers.HandlerTableError, ResidentdError)


def test_a_request_without_a_handler_fails_at_import() -> None:
    """A request added to the protocol union with no handler stops the daemon from loading,
    instead of closing the first connection that sends it with internal-error."""
    script = (
        "import importlib\n"
        "from residentd.apps.chat import handlers, protocol as p\n"
        "class Shout(p.Request, tag='shout'):\n"
        "    text: str\n"
        "p.AnyRequest = p.AnyRequest | Shout\n"
        "importlib.reload(handlers)  # as imported with Shout in the union\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert "HandlerTableError: no handler of Shout" in done.stderr


# -- imports -------------------------------------------------------------------------------------


def runtime_imports(path: Path) -> set[str]:
    """The chat modules ``path`` imports when it runs: at module level or in a function, but
    not under ``if TYPE_CHECKING:`` (type-only)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test) == "TYPE_CHECKING":
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.ImportFrom) and child.module is not None:
                if child.module == PACKAGE:
                    found.update(alias.name for alias in child.names)
                elif child.module.startswith(PACKAGE + "."):
                    found.add(child.module.removeprefix(PACKAGE + ".").partition(".")[0])
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith(PACKAGE + "."):
                        found.add(alias.name.removeprefix(PACKAGE + ".").partition(".")[0])
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {path.stem: path for path in CHAT.glob("*.py")}
    return {name: runtime_imports(path) & set(modules) for name, path in modules.items()}


def test_the_chat_modules_import_each_other_without_a_cycle() -> None:
    graph = import_graph()
    assert graph["session"] >= {"handlers", "wire"}  # the scan sees imports
    done: set[str] = set()

    def walk(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for imported in sorted(graph[module]):
            walk(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        walk(module, [])


def test_the_world_imports_no_dispatcher_and_no_transport() -> None:
    """The world (rooms, presence, fan-out) knows nothing of the dispatcher or the transports,
    not even for typing; it names ``ChatSession`` only as a type."""
    world = {"hub", "rooms", "presence", "history", "state", "wire"}
    outside = {"handlers", "tcp", "ws", "api", "daemon", "http"}
    for module in world:
        text = (CHAT / f"{module}.py").read_text()
        names = set(re.findall(r"from residentd\.apps\.chat\.(\w+) import", text))
        names |= set(re.findall(r"from residentd\.apps\.chat import (\w+)", text))
        assert not names & outside, (module, names & outside)


def test_chat_reaches_the_server_through_its_app_and_session() -> None:
    for path in CHAT.glob("*.py"):
        text = path.read_text()
        for banned in ("conn.server", ".conn.send_bytes", 'cast("ChatApp"'):
            assert banned not in text, (path.name, banned)


# -- wires ---------------------------------------------------------------------------------------


class FakeSession:
    """A signed-in session of one wire: what it was asked to send, as objects."""

    def __init__(self, wire: object) -> None:
        self.wire = wire
        self.sent: list[bytes] = []

    def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)


def test_fanout_frames_a_push_once_per_wire() -> None:
    hub = Hub(ChatSettings())
    room = hub.rooms["lobby"]
    lines = [FakeSession(LINES) for _ in range(3)]
    frames = [FakeSession(TEXT_FRAMES) for _ in range(2)]
    for session in [*lines, *frames]:
        room.sinks[session.wire][session] = session.send_bytes  # type: ignore[index]
    payload = p.encode(p.Message(room="lobby", seq=1, ts=2, user="ann", text="hi"))
    hub.fanout(room.sinks, payload)
    [line] = {id(s.sent[0]): s.sent[0] for s in lines}.values()  # one object for all
    [frame] = {id(s.sent[0]): s.sent[0] for s in frames}.values()
    assert line == payload + b"\n"
    assert frame == text_frame(payload)
    assert hub.stats.deliveries == 5
    assert [wire.ping for wire in WIRES] == [
        b'{"op":"ping"}\n',
        text_frame(b'{"op":"ping"}'),
    ]


# -- error codes ---------------------------------------------------------------------------------


def test_error_codes_are_one_enum_with_the_wire_values() -> None:
    text = DOCS.read_text()
    documented = set(re.findall(r"`([a-z][a-z0-9-]*)`", text))
    for code in ErrorCode:
        assert code.value in documented, code
        assert code.description and str(code) == code.value
    # Every code of the protocol's error table is the chat's, or a core limit told in its form.
    table = text.split("## Error codes")[1].split("\n## ")[0]
    listed = set(re.findall(r"^\| `([a-z0-9-]+)`", table, re.MULTILINE))
    assert len(listed) > 25
    assert listed <= {code.value for code in ErrorCode} | set(p._CORE_LIMITS)
    error = ChatError(ErrorCode.RATE_LIMITED, "slow down", 0.5)
    assert isinstance(error, ResidentdError) and str(error) == "rate-limited: slow down"
    encoded = p.encode(p.Error(code=ErrorCode.RATE_LIMITED, retry_after=0.5))
    assert msgspec.json.decode(encoded) == {
        "op": "error",
        "code": "rate-limited",
        "retry_after": 0.5,
    }
