"""kv's commands, one module per group as in Redis's source, gathered into ``DISPATCH``.

Importing a module registers its handlers in ``registry.COMMANDS``; ``DISPATCH`` is then built
once, keyed by each name in lower and in upper case, which is what clients send.
"""

from residentd.apps.kv.commands import (
    bits,
    connection,
    dump,
    geo,
    hashes,
    hyperloglog,
    introspection,
    keys,
    lists,
    objects,
    persistence,
    pubsub,
    scripting,
    server,
    sets,
    sort,
    stream_groups,
    streams,
    strings,
    substrings,
    transactions,
    zsets,
)
from residentd.apps.kv.commands.registry import COMMANDS, dispatch_table

DISPATCH = dispatch_table()
# The handlers of the commands that may change the keyspace (a container, XGROUP, when one of
# its subcommands may): journaled while kv persists.
WRITES = frozenset(
    cmd.handler
    for cmd in COMMANDS.values()
    if "write" in cmd.flags or any("write" in sub.flags for sub in cmd.subcommands.values())
)

__all__ = [
    "COMMANDS",
    "DISPATCH",
    "WRITES",
    "bits",
    "connection",
    "dump",
    "geo",
    "hashes",
    "hyperloglog",
    "introspection",
    "keys",
    "lists",
    "objects",
    "persistence",
    "pubsub",
    "scripting",
    "server",
    "sets",
    "sort",
    "stream_groups",
    "streams",
    "strings",
    "substrings",
    "transactions",
    "zsets",
]
