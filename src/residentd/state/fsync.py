"""Durable file operations: fsync of a file and of its directory, and atomic replacement.

A rename is durable only once the directory holding it is fsynced; a file's new contents only
once the file is. ``write_atomically`` does both around a temporary file in the same folder, so
a reader (or a crash) sees either the old contents or the new ones, never a mix.
"""

from __future__ import annotations

import contextlib
import os


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data``: temporary file, fsync, rename, directory fsync."""
    temp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temp, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fsync_dir(os.path.dirname(path) or ".")
