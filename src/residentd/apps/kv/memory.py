"""Used memory, as Redis's ``used_memory`` means it: the bytes the allocators hand out now,
without their fragmentation or the pages they keep.

Redis asks its allocator (``zmalloc_used_memory``). A Python process has two: pymalloc,
which serves the objects of at most 512 bytes from 1 MiB arenas it maps itself, and the C
library's malloc, which serves everything larger (and what extension modules allocate). So:

* pymalloc's share is the "bytes in allocated blocks" that CPython's
  ``_PyObject_DebugMallocStats`` (exported in CPython 3.11) prints, written here into an
  ``open_memstream`` buffer: it walks the arenas' pool headers, not the objects, and takes
  about 0.05 ms with a million keys (100 arenas);
* malloc's share is glibc's ``mallinfo2()``: ``uordblks`` (bytes in use in the heap) plus
  ``hblkhd`` (bytes in blocks it mapped on its own).

Both fall when objects are freed, which is what eviction needs: the process's RSS does not
(freed blocks stay in the arenas and in malloc's heap), so a loop that evicts until RSS falls
under the limit would evict everything. The sum includes the interpreter's own heap (modules,
code; some 20-30 MB for kv), as Redis's includes its own startup bytes.

Both calls are reached through ctypes, so the pure-Python mode measures the same way. Where
either is missing (another libc, another interpreter), the measure falls back to the RSS and
says so in ``exact``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from typing import Any

import psutil

_ALLOCATED = b"# bytes in allocated blocks"

log = logging.getLogger("residentd.kv.memory")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in [
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        ]
    ]


def _bind() -> tuple[ctypes.CDLL, Any] | None:
    """libc with ``open_memstream`` and ``mallinfo2``, and CPython's stats printer, typed."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        stats = ctypes.pythonapi._PyObject_DebugMallocStats
        libc.open_memstream.restype = ctypes.c_void_p
        libc.open_memstream.argtypes = [
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.POINTER(ctypes.c_size_t),
        ]
        libc.mallinfo2.restype = _MallInfo2
    except (AttributeError, OSError):
        return None
    libc.fclose.argtypes = [ctypes.c_void_p]
    libc.free.argtypes = [ctypes.c_void_p]
    stats.argtypes = [ctypes.c_void_p]
    stats.restype = ctypes.c_int
    return libc, stats


class UsedMemory:
    """The process's used memory, measured on demand, with its peak."""

    __slots__ = ("_libc", "_stats", "cost", "exact", "last", "peak", "startup")

    def __init__(self) -> None:
        bound = _bind()
        self._libc: ctypes.CDLL | None = bound[0] if bound is not None else None
        self._stats: Any = bound[1] if bound is not None else None
        self.exact = bound is not None  # False: the RSS stands in
        if not self.exact:
            log.warning("no pymalloc statistics or mallinfo2 here: used_memory is the RSS")
        self.last = 0  # bytes at the last measure
        self.peak = 0
        self.cost = 0.0  # seconds the last measure took
        self.startup = self.measure()  # INFO's used_memory_startup

    def measure(self) -> int:
        """Measure now; the bytes in use (also kept as ``last``, and in ``peak``)."""
        started = time.perf_counter()
        used = self._allocated() if self.exact else psutil.Process().memory_info().rss
        self.cost = time.perf_counter() - started
        self.last = used
        self.peak = max(self.peak, used)
        return used

    def _allocated(self) -> int:
        libc, stats = self._libc, self._stats
        assert libc is not None and stats is not None
        buffer = ctypes.c_char_p()
        size = ctypes.c_size_t()
        stream = libc.open_memstream(ctypes.byref(buffer), ctypes.byref(size))
        if not stream:
            raise MemoryError("open_memstream failed")
        try:
            stats(stream)
        finally:
            libc.fclose(stream)
        try:
            text = ctypes.string_at(buffer, size.value)
        finally:
            libc.free(buffer)
        start = text.find(_ALLOCATED)
        pymalloc = 0
        if start >= 0:
            line = text[text.index(b"=", start) + 1 : text.index(b"\n", start)]
            pymalloc = int(line.replace(b",", b""))
        info = libc.mallinfo2()
        return pymalloc + info.uordblks + info.hblkhd
