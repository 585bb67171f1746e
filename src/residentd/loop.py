"""Event loop selection.

residentd runs on uvloop (libuv) when it is installed and on the stdlib asyncio loop otherwise,
or when the caller asks for ``asyncio`` explicitly. Everything else in the package talks to the
loop through the asyncio API only, so both loops run the same code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

LoopKind = Literal["auto", "uvloop", "asyncio"]
LOOP_KINDS: tuple[str, ...] = ("auto", "uvloop", "asyncio")

T = TypeVar("T")


def uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def resolve(kind: str = "auto") -> str:
    """Return the loop that ``kind`` means here: ``"uvloop"`` or ``"asyncio"``."""
    if kind not in LOOP_KINDS:
        raise ValueError(f"loop must be one of {', '.join(LOOP_KINDS)}, not {kind!r}")
    if kind == "asyncio":
        return "asyncio"
    if uvloop_available():
        return "uvloop"
    if kind == "uvloop":
        raise RuntimeError("loop 'uvloop' was asked for but uvloop is not installed")
    return "asyncio"


def new_event_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """Create a fresh event loop of the given kind (not set as the current loop)."""
    if resolve(kind) == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(main: Coroutine[Any, Any, T], kind: str = "auto") -> T:
    """Run ``main`` to completion on a new loop of the given kind, like ``asyncio.run``."""
    with asyncio.Runner(loop_factory=lambda: new_event_loop(kind)) as runner:
        return runner.run(main)


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``"uvloop"`` or ``"asyncio"`` for a running loop object."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
