"""The classic stacks' state in SQLite: presence, messages and counters in three tables.

WAL journal with ``synchronous=NORMAL`` (a commit writes the log without an fsync), a busy
timeout so that concurrent writers wait instead of failing. ``create`` makes the schema once;
each ``SQLiteStore`` is one connection (per request under CGI, per worker under gunicorn).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .app import HISTORY_KEPT

SCHEMA = """
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS presence (
    room TEXT NOT NULL, user TEXT NOT NULL, last_seen INTEGER NOT NULL,
    PRIMARY KEY (room, user)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    room TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, user TEXT NOT NULL,
    text TEXT NOT NULL, PRIMARY KEY (room, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
    user TEXT NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (user, key)) WITHOUT ROWID;
"""


def create(path: str) -> None:
    """Make the database file and its tables (idempotent)."""
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA)
    db.close()


class SQLiteStore:
    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
        self.db.execute("PRAGMA synchronous = NORMAL")

    def close(self) -> None:
        self.db.close()

    def heartbeat(self, user: str, room: str, now: int) -> None:
        self.db.execute(
            "INSERT INTO presence (room, user, last_seen) VALUES (?, ?, ?)"
            " ON CONFLICT (room, user) DO UPDATE SET last_seen = excluded.last_seen",
            (room, user, now),
        )

    def who(self, room: str) -> list[tuple[str, int]]:
        rows = self.db.execute(
            "SELECT user, last_seen FROM presence WHERE room = ? ORDER BY last_seen DESC",
            (room,),
        )
        return [(user, last_seen) for user, last_seen in rows]

    def post(self, room: str, user: str, text: str, now: int) -> int:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            (last,) = db.execute(
                "SELECT coalesce(max(seq), 0) FROM messages WHERE room = ?", (room,)
            ).fetchone()
            seq = int(last) + 1
            db.execute(
                "INSERT INTO messages (room, seq, ts, user, text) VALUES (?, ?, ?, ?, ?)",
                (room, seq, now, user, text),
            )
            db.execute(
                "DELETE FROM messages WHERE room = ? AND seq <= ?", (room, seq - HISTORY_KEPT)
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return seq

    def history(self, room: str, limit: int) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT seq, ts, user, text FROM messages WHERE room = ? ORDER BY seq DESC LIMIT ?",
            (room, limit),
        ).fetchall()
        return [{"seq": s, "ts": ts, "user": u, "text": t} for s, ts, u, t in reversed(rows)]

    def incr(self, user: str, key: str, by: int) -> int:
        (value,) = self.db.execute(
            "INSERT INTO state (user, key, value) VALUES (?, ?, ?)"
            " ON CONFLICT (user, key) DO UPDATE SET value = value + excluded.value"
            " RETURNING value",
            (user, key, by),
        ).fetchone()
        return int(value)
