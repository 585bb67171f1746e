"""The optional C speedups, and the one way every module chooses between C and Python.

Some hot modules have a C version beside the Python one (see docs/architecture.md): setup.py
builds them when a compiler is at hand, and residentd runs without them, only slower. A module
picks its version with ``choose``: the C one when it was built and the speedups are on, else
the Python reference. ``RESIDENTD_PURE_PYTHON`` set (to anything but ``0``) turns every C
version off: every part of residentd then runs its Python version, which is how the test suite
checks both and how to rule the C code out when debugging.

    LineCodec = choose("residentd.codecs._lines", "LineCodec", PyLineCodec)
"""

from __future__ import annotations

import importlib
import os
from typing import Any, TypeVar

__all__ = ["DISABLED", "choose", "loaded", "native"]

T = TypeVar("T")

DISABLED = os.environ.get("RESIDENTD_PURE_PYTHON", "0") not in ("", "0")

# The C modules this process loaded, by short name (kv's INFO reports them).
loaded: list[str] = []


def native(module: str, name: str) -> Any | None:
    """``module.name`` from a C extension (e.g. ``residentd.codecs._lines``, ``LineCodec``) if
    the speedups are on and it was built; None otherwise. Differential tests use it to reach
    the C version beside the Python one."""
    if DISABLED:
        return None
    try:
        found = importlib.import_module(module)
    except ImportError:
        return None
    short = module.rpartition(".")[2].lstrip("_")
    if short not in loaded:
        loaded.append(short)
    return getattr(found, name)


def choose(module: str, name: str, python: T) -> T:
    """The C version ``module.name`` when there is one (see ``native``), else ``python``: the
    Python reference, or None where the caller has no Python version of a fast path."""
    found = native(module, name)
    return python if found is None else found
