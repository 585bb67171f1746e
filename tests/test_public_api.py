"""The public names and what the docstrings promise of them: every name in an ``__all__`` is
there, every name a package's docstring shows exists, and the package docstring's example runs
as written, a real daemon on a real socket."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import residentd
from support import child_env, free_port, run_residentd, stop, wait_for_port

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(residentd.__path__, "residentd.")
    if not info.name.endswith("__main__")  # running the CLI is all it does
)
#: The packages of the public API: the top one and every one with an ``__all__`` of its own.
PACKAGES = ["residentd"] + [
    name
    for name in MODULES
    if hasattr(module := importlib.import_module(name), "__path__") and hasattr(module, "__all__")
]
# An identifier in double backquotes: the name of something, in these docstrings.
NAME = re.compile(r"``([A-Za-z_][A-Za-z0-9_]*)``")


def test_every_name_in_the_top_level_all_is_importable() -> None:
    assert len(set(residentd.__all__)) == len(residentd.__all__)
    namespace: dict[str, object] = {}
    exec("from residentd import *", namespace)
    assert set(residentd.__all__) <= namespace.keys()
    for name in residentd.__all__:
        assert getattr(residentd, name) is namespace[name]


@pytest.mark.parametrize("name", MODULES)
def test_every_module_imports_and_its_all_is_there(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", [])
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    assert [e for e in exported if not hasattr(module, e)] == [], f"{name}.__all__"


@pytest.mark.parametrize("name", PACKAGES)
def test_every_name_a_package_docstring_shows_exists(name: str) -> None:
    package = importlib.import_module(name)
    missing = [
        word
        for word in sorted(set(NAME.findall(package.__doc__ or "")))
        if not hasattr(package, word) and importlib.util.find_spec(f"{name}.{word}") is None
    ]
    assert missing == [], f"{name}'s docstring names what it does not have"


def test_the_package_docstring_names_everything_it_exports() -> None:
    """It says "the names a daemon author needs are importable from here": all of them."""
    assert set(residentd.__all__) <= set(NAME.findall(residentd.__doc__ or ""))


def docstring_example(module: ModuleType) -> str:
    """The indented code block after the docstring's first ``::``."""
    doc = module.__doc__ or ""
    assert "::\n" in doc, f"{module.__name__} shows no example"
    block = []
    for line in doc.split("::\n", 1)[1].splitlines():
        if line and not line.startswith(" "):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block)).strip() + "\n"


def test_the_package_docstrings_example_serves_and_stops(tmp_path: Path) -> None:
    """The example of ``residentd``'s docstring, run as a program of its own on a free port:
    every line comes back in order, a pipelined burst too, and SIGTERM stops it gracefully
    (exit status 0, the connection ended by the server)."""
    code = docstring_example(residentd)
    assert code.count("127.0.0.1:7007") == 1
    port = free_port()
    program = tmp_path / "echo_example.py"
    program.write_text(code.replace("127.0.0.1:7007", f"127.0.0.1:{port}"))
    log = tmp_path / "example.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(program)], stdout=output, stderr=subprocess.STDOUT,
            env=child_env(),
        )  # fmt: skip
    try:
        wait_for_port(port, process, log=log.read_text)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            reader = sock.makefile("rb")
            sock.sendall(b"hello\n")
            assert reader.readline() == b"hello\n"
            lines = [b"line %d\n" % n for n in range(200)]
            sock.sendall(b"".join(lines))
            assert [reader.readline() for _ in lines] == lines
            process.send_signal(signal.SIGTERM)
            assert reader.read() == b""  # the server closed the connection
        assert process.wait(15) == 0, log.read_text()
    finally:
        stop(process)
    assert log.read_text() == ""  # nothing printed, no traceback


def test_an_app_option_is_a_top_level_config_key_not_an_app_table(tmp_path: Path) -> None:
    """``Option``'s docstring: an app's option is set like the core's settings, as a top-level
    key of the config file; a table (``[app]``, say) is refused with a message."""
    top_level = tmp_path / "top.toml"
    top_level.write_text("max_line = 100\n")
    shown = run_residentd("config", "echo", "--config", str(top_level), env=child_env())
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^max_line = 100\b", shown.stdout, re.M), shown.stdout
    table = tmp_path / "table.toml"
    table.write_text("[app]\nmax_line = 100\n")
    refused = run_residentd("config", "echo", "--config", str(table), env=child_env())
    assert refused.returncode == 2
    assert "app" in refused.stderr and "Traceback" not in refused.stderr
