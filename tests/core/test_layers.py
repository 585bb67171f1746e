"""The layer order of docs/architecture.md, checked from the imports themselves.

Every ``import`` and ``from ... import`` under ``src/residentd`` is read with ``ast``: at the
top of a module, inside a function, and under ``if TYPE_CHECKING:`` alike, since a name used
only for typing is a dependency too. A module may import from its own layer and the ones below
it, never from one above; so no import cycle can join modules of different layers either.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import residentd

SRC = Path(residentd.__file__).parent

# Lowest first; a module belongs to the first entry that is a prefix of its dotted name. The
# same order, with what each layer holds, is the table in docs/architecture.md.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("errors", "settings", "limits", "speedups", "loop")),
    ("codecs", ("codecs",)),
    ("app API", ("app",)),
    ("net", ("net",)),
    ("state", ("state",)),
    ("daemon", ("daemon",)),
    ("apps", ("apps",)),
    ("tools", ("bots", "chat", "libevent", "loader", "cli", "demo", "__main__", "")),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def layer_of(module: str) -> int:
    inside = module.removeprefix("residentd").removeprefix(".")
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if inside == prefix or (prefix and inside.startswith(prefix + ".")):
                return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and the docs")


def imports_of(module: str) -> Iterator[tuple[int, str]]:
    """(line, module imported) for each residentd import in ``module``, at any depth."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # ``from residentd.net import connection`` imports a module, not a name; the
            # package's ``__version__`` is a constant that every layer may read.
            names = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source
                for alias in node.names
                if (source, alias.name) != ("residentd", "__version__")
            ]
        else:
            continue
        for name in names:
            if name == "residentd" or name.startswith("residentd."):
                yield node.lineno, name


def known(name: str) -> str:
    """The module an imported name lives in (``residentd.net.server.Server`` is in
    ``residentd.net.server``)."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


GRAPH = {module: {known(name) for _, name in imports_of(module)} for module in MODULES}


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_the_author_api_imports_nothing_of_the_network_layer() -> None:
    found = [
        f"line {line}: {name}"
        for line, name in imports_of("residentd.app")
        if name == "residentd.net" or name.startswith("residentd.net.")
    ]
    assert not found, f"app.py imports the network layer: {found}"


def test_each_layer_imports_only_from_itself_and_the_layers_below() -> None:
    upward = []
    for module in MODULES:
        own = layer_of(module)
        for line, name in imports_of(module):
            other = layer_of(known(name))
            if other > own:
                upward.append(
                    f"{module} ({LAYERS[own][0]}) line {line} imports {name} ({LAYERS[other][0]})"
                )
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: its strongly connected components of more than one
    module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in graph:
                    continue
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_import_cycle_joins_modules_of_different_layers() -> None:
    mixed = [
        component
        for component in cycles(GRAPH)
        if len({layer_of(module) for module in component}) > 1
    ]
    assert not mixed, f"import cycles across layers: {mixed}"


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set()}, []),
        ({"a": {"a"}}, []),
    ],
)
def test_cycles_finds_each_cycle_once(
    graph: dict[str, set[str]], expected: list[list[str]]
) -> None:
    assert cycles(graph) == expected
