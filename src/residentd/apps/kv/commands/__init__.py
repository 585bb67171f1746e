"""kv's commands, one module per group as in Redis's source, gathered into ``DISPATCH``.

Importing a module registers its handlers in ``registry.COMMANDS``; ``DISPATCH`` is then built
once, keyed by each name in lower and in upper case, which is what clients send.
"""

from residentd.apps.kv.commands import (
    connection,
    hashes,
    introspection,
    keys,
    lists,
    pubsub,
    server,
    sets,
    strings,
    transactions,
)
from residentd.apps.kv.commands.registry import COMMANDS, dispatch_table

DISPATCH = dispatch_table()

__all__ = [
    "COMMANDS",
    "DISPATCH",
    "connection",
    "hashes",
    "introspection",
    "keys",
    "lists",
    "pubsub",
    "server",
    "sets",
    "strings",
    "transactions",
]
