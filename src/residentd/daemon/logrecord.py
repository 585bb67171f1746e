"""A leaner :class:`logging.LogRecord` for the daemon: the same fields, made in half the time.

Every log call, whoever makes it (the daemon, an app, a third-party library), builds a record
before any handler sees it, and the stdlib's ``LogRecord.__init__`` does work our formats never
show: it splits the source path for ``filename`` and ``module``, looks up the thread and the
process, and tests its argument against the ``Mapping`` ABC. :func:`use_lean_records` turns off
the caller's frame, thread and process lookups, as the logging HOWTO's "Optimization" section
advises, and installs :class:`LeanRecord` with :func:`logging.setLogRecordFactory`, which
applies to every logger, those made before the call included.

A lean record has every attribute a stdlib record has, in its ``__dict__`` as there, so any
handler or ``%(filename)s``-style format keeps working; the fields that were turned off hold
what the stdlib puts there when they are off.
"""

from __future__ import annotations

import collections.abc
import logging
import os
import time
from typing import Any

__all__ = ["LeanRecord", "use_lean_records"]

_time = time.time
_level_name = logging.getLevelName
_Mapping = collections.abc.Mapping
_SCALARS = frozenset({int, str, float, bytes, bool, type(None)})
_start_time: float = logging._startTime  # type: ignore[attr-defined]
_HAS_TASK_NAME = hasattr(logging, "logAsyncioTasks")  # Python 3.12 added ``taskName``
_file_names: dict[str, tuple[str, str]] = {}


def _file_and_module(pathname: str) -> tuple[str, str]:
    """``filename`` and ``module`` for a source path, as the stdlib derives them; cached."""
    names = _file_names.get(pathname)
    if names is None:
        try:
            filename = os.path.basename(pathname)
            names = (filename, os.path.splitext(filename)[0])
        except (TypeError, ValueError, AttributeError):
            names = (pathname, "Unknown module")
        if len(_file_names) < 1000:
            _file_names[pathname] = names
    return names


class LeanRecord(logging.LogRecord):
    """A :class:`~logging.LogRecord` without the thread, process and path lookups.

    The attributes are set one by one, in the stdlib's order: on CPython that keeps the
    instance dict compact and is faster than building a dict.
    """

    def __init__(
        self,
        name: str,
        level: int,
        pathname: str,
        lineno: int,
        msg: object,
        args: Any,
        exc_info: Any,
        func: str | None = None,
        sinfo: str | None = None,
        **kwargs: object,
    ) -> None:
        ct = _time()
        self.name = name
        self.msg = msg
        # As the stdlib: a lone non-empty mapping argument is the mapping for %(key)s formats.
        if args and len(args) == 1:
            first = args[0]
            if type(first) not in _SCALARS and isinstance(first, _Mapping) and first:
                args = first
        self.args = args
        self.levelname = _level_name(level)
        self.levelno = level
        self.pathname = pathname
        self.filename, self.module = _file_and_module(pathname)
        self.exc_info = exc_info
        self.exc_text = None
        self.stack_info = sinfo
        self.lineno = lineno
        self.funcName = func  # type: ignore[assignment]  # None, as the stdlib allows
        self.created = ct
        self.msecs = int((ct - int(ct)) * 1000) + 0.0
        self.relativeCreated = (ct - _start_time) * 1000
        self.thread = None
        self.threadName = None
        self.processName = None
        self.process = None
        if _HAS_TASK_NAME:
            self.taskName = None


def use_lean_records() -> None:
    """Make every record a :class:`LeanRecord` and skip the caller's frame lookup; the thread
    and process fields stay None for any handler that shows them."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if _HAS_TASK_NAME:
        setattr(logging, "logAsyncioTasks", False)  # noqa: B010 (absent before 3.12)
    logging.setLogRecordFactory(LeanRecord)
