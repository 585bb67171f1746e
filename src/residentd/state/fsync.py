"""Durable file operations: fsync of a file and of its directory, and atomic replacement.

A rename is durable only once the directory holding it is fsynced; a file's new contents only
once the file is. ``replace_durably`` does both around a temporary file in the same folder, so
a reader (or a crash) sees either the old contents or the new ones, never a mix.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any, BinaryIO


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(path: str, write: Callable[[BinaryIO], Any]) -> int:
    """Replace ``path`` with what ``write(file)`` writes: temporary file in the same folder,
    fsync, rename, directory fsync. Returns the new file's size."""
    temp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temp, "wb", buffering=1 << 20) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
            size = file.tell()
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fsync_dir(os.path.dirname(path) or ".")
    return size


def write_atomically(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` durably (``replace_durably``)."""
    replace_durably(path, lambda file: file.write(data))
