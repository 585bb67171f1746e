"""The manifest of a journal directory: which base snapshot and which incremental journal files,
in order, make up the state (Redis 7's multi-part AOF).

The text format is Redis 7.0's, one file a line, so that kv's directory is one a real
``redis-server`` loads::

    file appendonly.aof.2.base.rdb seq 2 type b
    file appendonly.aof.2.incr.aof seq 2 type i

``Layout`` says where the files live and how they are named; ``Layout.redis()`` gives Redis's
``appendonlydir/appendonly.aof.*`` names. A manifest is replaced atomically (temporary file,
fsync, rename, directory fsync), so a crash leaves either the old one or the new one.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field

from residentd.state.api import StateError
from residentd.state.fsync import write_atomically


class BadManifest(StateError):
    """A manifest that does not parse: the file and line are in the message."""


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    seq: int
    kind: str  # "b" base, "h" history (to delete), "i" incremental


@dataclass(slots=True)
class Manifest:
    base: Part | None = None
    incrs: list[Part] = field(default_factory=list)
    history: list[Part] = field(default_factory=list)

    def render(self) -> bytes:
        lines = []
        for part in [*([self.base] if self.base else []), *self.history, *self.incrs]:
            name = (
                part.name if part.name.isprintable() and " " not in part.name else repr(part.name)
            )
            lines.append(f"file {name} seq {part.seq} type {part.kind}\n")
        return "".join(lines).encode()

    @classmethod
    def parse(cls, text: bytes, path: str = "manifest") -> Manifest:
        manifest = cls()
        for number, raw in enumerate(text.decode("utf-8", "replace").splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                words = shlex.split(line)
                if len(words) % 2:
                    raise ValueError("odd number of words")
                pairs = dict(zip(words[::2], words[1::2], strict=True))
                part = Part(pairs["file"], int(pairs["seq"]), pairs["type"])
                if part.kind not in ("b", "h", "i") or part.seq < 1 or "/" in part.name:
                    raise ValueError("bad type, seq or name")
            except (ValueError, KeyError) as exc:
                raise BadManifest(f"{path}: line {number}: invalid manifest line ({exc})") from None
            if part.kind == "b":
                if manifest.base is not None:
                    raise BadManifest(f"{path}: line {number}: a second base file")
                manifest.base = part
            elif part.kind == "i":
                if manifest.incrs and part.seq <= manifest.incrs[-1].seq:
                    raise BadManifest(f"{path}: line {number}: incremental files out of order")
                manifest.incrs.append(part)
            else:
                manifest.history.append(part)
        return manifest


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a journal directory lives under ``dir`` and how its files are named."""

    subdir: str = "journal"
    basename: str = "state"
    base_ext: str = "snap"
    incr_ext: str = "log"

    @classmethod
    def redis(cls, appendfilename: str = "appendonly.aof", base_ext: str = "rdb") -> Layout:
        """Redis 7.0's names: ``appendonlydir/appendonly.aof.N.base.rdb`` and so on."""
        return cls("appendonlydir", appendfilename, base_ext, "aof")

    def folder(self, root: str) -> str:
        return os.path.join(root, self.subdir)

    def manifest_path(self, root: str) -> str:
        return os.path.join(self.folder(root), f"{self.basename}.manifest")

    def base_name(self, seq: int) -> str:
        return f"{self.basename}.{seq}.base.{self.base_ext}"

    def incr_name(self, seq: int) -> str:
        return f"{self.basename}.{seq}.incr.{self.incr_ext}"

    def temp_name(self, pid: int) -> str:
        return f"temp-rewrite-{pid}.{self.base_ext}"


def read_manifest(layout: Layout, root: str) -> Manifest | None:
    """The manifest under ``root``, or None when there is none yet."""
    path = layout.manifest_path(root)
    try:
        with open(path, "rb") as file:
            return Manifest.parse(file.read(), path)
    except FileNotFoundError:
        return None


def write_manifest(layout: Layout, root: str, manifest: Manifest) -> None:
    write_atomically(layout.manifest_path(root), manifest.render())
