"""``residentd repair FILE``: cut a journal file at its first bad or incomplete record.

As ``redis-check-aof --fix``: the file is scanned with the app's record framing (the default
length + CRC32 framing, or ``--app APP``'s own), what would be dropped is shown (offset, bytes,
the reason), and the file is truncated there once the user says yes (``--yes`` to skip the
question). A whole file is left alone. Exit status: 0 whole or repaired, 1 not repaired.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from residentd.app import App
from residentd.errors import ConfigError
from residentd.state import recovery
from residentd.state.api import RecordReader
from residentd.state.framing import LengthCrcRecords
from residentd.state.persistence import Persistence


def _reader(app_name: str | None, load_app: Callable[[str], App]) -> RecordReader:
    if app_name is None:
        return LengthCrcRecords()
    persistence = load_app(app_name).persistence
    if not isinstance(persistence, Persistence):
        raise ConfigError(f"app {app_name!r} keeps no durable state")
    return persistence.machine.records


def main(argv: Sequence[str], load_app: Callable[[str], App]) -> int:
    """``load_app`` finds the app that ``--app`` names (the command line's loader)."""
    parser = argparse.ArgumentParser(
        prog="residentd repair", description="cut a journal file at its first bad record"
    )
    parser.add_argument("file", help="the journal file")
    parser.add_argument("--app", help="read records with this app's framing (default: length+CRC)")
    parser.add_argument("--yes", action="store_true", help="do not ask before truncating")
    args = parser.parse_args(list(argv))
    reader = _reader(args.app, load_app)
    try:
        result = recovery.scan(args.file, reader)
    except OSError as exc:
        print(f"residentd repair: {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    if not result.dropped:
        print(f"{args.file}: whole ({result.records} records, {result.size} bytes); nothing to do")
        return 0
    why = result.error or "incomplete last record"
    print(
        f"{args.file}: {why} at byte {result.end}; repair keeps the first {result.records} "
        f"records ({result.end} bytes) and drops {result.dropped} bytes "
        f"({100 * result.dropped / result.size:.1f}% of the file)"
    )
    if not args.yes:
        answer = input("Continue? [y/N]: ") if sys.stdin.isatty() else sys.stdin.readline()
        if answer.strip().lower() not in ("y", "yes"):
            print("not repaired")
            return 1
    recovery.repair(args.file, reader)
    print(f"{args.file}: truncated to {result.end} bytes")
    return 0
