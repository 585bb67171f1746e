"""kv's modules form layers: the import graph of residentd.apps.kv has no cycle (imports made
only for type checking count too), and kv reaches the network layer through nothing but the
author API (residentd.app): it imports nothing from residentd.net, never reaches through a
connection to its server, and calls no connection method per reply (the session binds the
transport's ``send_bytes`` once). Every exception kv defines derives from ResidentdError."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import residentd.apps.kv
from residentd.errors import ResidentdError

ROOT = Path(residentd.apps.kv.__file__).parent
PACKAGE = "residentd.apps.kv"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join([PACKAGE, *parts])] = path
    return modules


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement, TYPE_CHECKING blocks and function bodies
    included; ``from package import module`` names the module, ``from module import name``
    the module."""
    modules = _modules()
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import"
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                named.add(submodule if submodule in modules else node.module)
    return named


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {other for other in _imports(path) if other in modules and other != name}
        for name, path in modules.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                return [*path[path.index(other) :], other]
            if other not in state:
                found = visit(other)
                if found:
                    return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


def test_the_import_graph_of_kv_has_no_cycle() -> None:
    graph = _graph()
    assert len(graph) > 20  # the walk found kv's modules
    assert _cycle(graph) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle(graph) == ["a", "b", "c", "a"]


def test_kv_imports_nothing_from_the_network_layer() -> None:
    for name, path in _modules().items():
        network = {
            m for m in _imports(path) if m == "residentd.net" or m.startswith("residentd.net.")
        }
        assert not network, f"{name} imports {network}"
        source = path.read_text()
        # Reading the time of last input is the author API's; kv once rewrote it.
        for reach in ("conn.server", "conn.send_bytes(", "conn.last_active ="):
            assert reach not in source, f"{name} reaches {reach}"


def test_every_kv_exception_derives_from_residentd_error() -> None:
    found = []
    for name in _modules():
        module = importlib.import_module(name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == name:
                found.append(value)
                assert issubclass(value, ResidentdError), value
    assert {cls.__name__ for cls in found} >= {"KvError", "Quit", "RdbError", "Torn"}
