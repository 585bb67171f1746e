"""The optional C speedups, and the switch that turns them off.

Some hot modules have a C version beside the Python one (see docs/architecture.md): setup.py
builds them when a compiler is at hand, and residentd runs without them, only slower. ``load``
imports one by name and gives None when it was not built, or when ``RESIDENTD_PURE_PYTHON`` is
set (to anything but ``0``): then every part of residentd runs its Python version, which is how
the test suite checks both and how to rule the C code out when debugging.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

DISABLED = os.environ.get("RESIDENTD_PURE_PYTHON", "0") not in ("", "0")

# The C modules this process loaded, by short name (kv's INFO reports them).
loaded: list[str] = []


def load(module: str) -> ModuleType | None:
    """Import ``module`` (e.g. ``residentd.codecs._lines``) if the speedups are on and it was
    built; None otherwise."""
    if DISABLED:
        return None
    try:
        found = importlib.import_module(module)
    except ImportError:
        return None
    name = module.rpartition(".")[2].lstrip("_")
    if name not in loaded:
        loaded.append(name)
    return found
