"""The C speedups are built wherever a C compiler is at hand, so the test suite exercises them.

setup.py marks them optional: an install without a compiler falls back to hiredis and Python
and still works. On a machine with one, a missing extension is a broken build, not a fallback
to accept quietly.
"""

from __future__ import annotations

import importlib
import shutil

import pytest


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler: the speedups are optional")
@pytest.mark.parametrize("module", ["residentd.codecs._resp_reader", "residentd.apps.kv._fastpath"])
def test_speedup_is_built(module: str) -> None:
    importlib.import_module(module)
