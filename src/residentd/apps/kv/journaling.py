"""Running a write command while kv persists: the one path the session, EXEC and scripts share.

The command is refused with -MISCONF while the disk refuses data; otherwise it runs and what
Redis would propagate for it (persistence/aof.py's ``propagate``) is appended to the journal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv.errors import KvError
from residentd.apps.kv.persistence.aof import encode, propagate

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client, Handler


def run_journaled(client: Client, handler: Handler, argv: list[bytes], journal: bytearray) -> bytes:
    """Run ``handler`` for ``argv`` as ``client`` and journal its effect; its reply."""
    refusal = client.state.misconf()
    if refusal is not None:
        return refusal
    db = client.db
    existed = len(argv) > 1 and argv[1] in db.data
    try:
        reply = handler(client, argv)
    except KvError as exc:
        return exc.reply
    for logged in propagate(db, argv, reply, existed):
        journal += encode(logged)
    return reply
