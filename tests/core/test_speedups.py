"""The C speedups are built wherever a C compiler is at hand, and RESIDENTD_PURE_PYTHON turns
every one of them off.

setup.py marks them optional: an install without a compiler falls back to hiredis and Python
and still works. On a machine with one, a missing extension is a broken build, not a fallback
to accept quietly. `make test` runs the whole suite twice, with the speedups and without
them, so both versions of each module are tested.
"""

from __future__ import annotations

import importlib
import re
import shutil
from pathlib import Path

import pytest

from residentd import speedups
from residentd.apps.kv import session as kv_session  # noqa: F401  (loads the kv fast path)
from residentd.codecs import http, lines, resp
from residentd.net import connection, connection_core

MODULES = [
    "residentd.codecs._lines",
    "residentd.codecs._resp_reader",
    "residentd.codecs._http_head",
    "residentd.net._connection_core",
    "residentd.apps.kv._fastpath",
    "residentd.apps.kv._hyperloglog",
    "residentd.apps.kv._zorder",
]
has_compiler = shutil.which("cc") is not None


@pytest.mark.skipif(not has_compiler, reason="no C compiler: the speedups are optional")
@pytest.mark.parametrize("module", MODULES)
def test_speedup_is_built(module: str) -> None:
    importlib.import_module(module)


@pytest.mark.skipif(not has_compiler, reason="no C compiler: the speedups are optional")
def test_the_switch_picks_one_version_everywhere() -> None:
    python_core = connection_core.ConnectionCore
    if speedups.DISABLED:
        assert python_core in connection.Connection.__mro__
        assert lines.LineCodec is lines.PyLineCodec
        assert resp.read_commands is None
        assert http.read_head is http.read_head_py
        assert speedups.loaded == []
    else:
        assert python_core not in connection.Connection.__mro__
        assert lines.LineCodec is not lines.PyLineCodec
        assert resp.read_commands is not None
        assert http.read_head is not http.read_head_py
        assert sorted(speedups.loaded) == sorted(m.rpartition("._")[2] for m in MODULES)


def test_every_module_picks_its_version_through_speedups_choose() -> None:
    """One way to choose C or Python: no module imports a C extension itself, each names it in
    ``speedups.choose`` (or ``native``), so ``RESIDENTD_PURE_PYTHON`` is the one switch."""
    root = Path(speedups.__file__).parent
    extensions = sorted(path.stem for path in root.rglob("*.c"))
    assert {module.rpartition(".")[2] for module in MODULES} == set(extensions)
    imported = re.compile(r"^\s*(from|import)\s.*\b(" + "|".join(extensions) + r")\b", re.M)
    named = re.compile(r"\"residentd\.[\w.]*\.(" + "|".join(extensions) + r")\"")
    strays = []
    for path in root.rglob("*.py"):
        text = path.read_text()
        if imported.search(text):
            strays.append(f"{path.name}: imports a C extension")
        for match in named.finditer(text):
            call = text[max(0, match.start() - 40) : match.start()]  # the call it is given to
            if "choose(" not in call and "native(" not in call:
                strays.append(f"{path.name}: {match.group()}")
    assert strays == []
