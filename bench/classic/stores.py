"""Open the store a stack is configured with: ``sqlite:PATH`` or a ``redis://`` URL.

The store module is imported only when asked for, so that the CGI handler loads SQLite and
never redis-py.
"""

from __future__ import annotations

from typing import Any


def open_store(spec: str) -> Any:
    if spec.startswith("sqlite:"):
        from .sqlite_store import SQLiteStore

        return SQLiteStore(spec.removeprefix("sqlite:"))
    if spec.startswith("redis://"):
        from .redis_store import RedisStore

        return RedisStore(spec)
    raise ValueError(f"unknown store {spec!r}: sqlite:PATH or redis://HOST:PORT/DB")
