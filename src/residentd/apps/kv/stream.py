"""kv's stream value (Redis 7.0's ``t_stream.c``): entries ordered by ID, consumer groups.

An ID is a pair ``(ms, seq)`` of unsigned 64-bit integers, compared as a tuple. The entries
live in a ``SortedDict`` from ID to the entry's flat list of fields and values, so a range is
a bisection and a walk (O(log n + k)), and deleting or trimming is O(log n) per entry.

Redis keeps a stream as a radix tree of listpacks ("nodes", each at most
``stream-node-max-entries`` entries and ``stream-node-max-bytes`` bytes). That layout is
visible: ``XINFO STREAM`` counts the nodes, and approximate trimming (``MAXLEN ~``) removes
only whole nodes. So ``Node`` keeps, per listpack, what decides those answers: its master ID
and fields, its live and deleted entry counts, and its exact size in bytes (listpack.py),
and a stream cuts its nodes where Redis would.

A consumer group holds its last delivered ID, its entries-read counter (``None`` when
unknown, Redis's SCG_INVALID_ENTRIES_READ), a pending entries list (PEL: ID to ``Pending``)
and its consumers, each with a PEL of its own sharing the same ``Pending`` records.
"""

from __future__ import annotations

from sortedcontainers import SortedDict

from residentd.apps.kv import listpack

StreamID = tuple[int, int]

U64 = (1 << 64) - 1
MIN_ID: StreamID = (0, 0)
MAX_ID: StreamID = (U64, U64)
NODE_MAX_ENTRIES = 100  # stream-node-max-entries
NODE_MAX_BYTES = 4096  # stream-node-max-bytes
FLAG_DELETED = 1
FLAG_SAMEFIELDS = 2

#: What the last stream command changed, as the commands Redis propagates for it: filled by
#: the stream commands (commands/streams.py), read by the journal's rules (persistence/aof.py)
#: right after the handler returns.
effects: list[list[bytes]] = []


def format_id(sid: StreamID) -> bytes:
    return b"%d-%d" % sid


def next_id(sid: StreamID) -> StreamID | None:
    """streamIncrID: the ID just after ``sid``, ``None`` past the last possible one."""
    ms, seq = sid
    if seq < U64:
        return ms, seq + 1
    return (ms + 1, 0) if ms < U64 else None


def previous_id(sid: StreamID) -> StreamID | None:
    """streamDecrID."""
    ms, seq = sid
    if seq > 0:
        return ms, seq - 1
    return (ms - 1, U64) if ms > 0 else None


def _signed_diff(a: int, b: int) -> int:
    """``(int64_t)(a - b)`` on unsigned 64-bit values, as a listpack stores ID deltas."""
    d = (a - b) & U64
    return d - (1 << 64) if d >> 63 else d


class Node:
    """One of Redis's listpacks: the master entry and the byte size of what follows it."""

    __slots__ = ("body", "deleted", "fields", "last", "live", "master", "master_bytes")

    def __init__(self, master: StreamID, fields: tuple[bytes, ...]) -> None:
        self.master = master
        self.fields = fields
        self.live = 0
        self.deleted = 0
        self.last = master  # the ID of the last entry appended, deleted or not
        self.master_bytes = (
            listpack.int_size(len(fields))
            + sum(listpack.string_size(f) for f in fields)
            + listpack.int_size(0)
        )
        self.body = 0  # the entries' bytes

    @property
    def size(self) -> int:
        return (
            listpack.HEADER
            + listpack.int_size(self.live)
            + listpack.int_size(self.deleted)
            + self.master_bytes
            + self.body
        )

    def entry_size(self, sid: StreamID, flat: list[bytes]) -> int:
        same = tuple(flat[::2]) == self.fields
        ms, seq = sid
        size = listpack.int_size(FLAG_SAMEFIELDS if same else 0)
        size += listpack.int_size(_signed_diff(ms, self.master[0]))
        size += listpack.int_size(_signed_diff(seq, self.master[1]))
        if same:
            size += sum(listpack.string_size(v) for v in flat[1::2])
            count = len(flat) // 2
        else:
            size += listpack.int_size(len(flat) // 2)
            size += sum(listpack.string_size(x) for x in flat)
            count = len(flat) + 1
        return size + listpack.int_size(count + 3)


class Pending:
    """A delivered, unacknowledged entry (Redis's streamNACK)."""

    __slots__ = ("consumer", "count", "time")

    def __init__(self, consumer: Consumer | None, time: int, count: int = 1) -> None:
        self.consumer = consumer
        self.time = time  # last delivery, Unix ms
        self.count = count  # deliveries


class Consumer:
    __slots__ = ("name", "pending", "seen")

    def __init__(self, name: bytes, seen: int) -> None:
        self.name = name
        self.seen = seen  # Unix ms of its last read or claim
        self.pending: SortedDict[StreamID, Pending] = SortedDict()


class Group:
    __slots__ = ("consumers", "entries_read", "last_id", "pending")

    def __init__(self, last_id: StreamID, entries_read: int | None) -> None:
        self.last_id = last_id
        self.entries_read = entries_read  # None: unknown (SCG_INVALID_ENTRIES_READ)
        self.pending: SortedDict[StreamID, Pending] = SortedDict()
        self.consumers: dict[bytes, Consumer] = {}

    def consumer(self, name: bytes, now: int) -> tuple[Consumer, bool]:
        """The consumer ``name``, created if needed (and whether it was), seen ``now``."""
        found = self.consumers.get(name)
        if found is not None:
            found.seen = now
            return found, False
        created = self.consumers[name] = Consumer(name, now)
        return created, True

    def delete_consumer(self, consumer: Consumer) -> None:
        for sid in consumer.pending:
            del self.pending[sid]
        del self.consumers[consumer.name]

    def acknowledge(self, sid: StreamID) -> bool:
        nack = self.pending.pop(sid, None)
        if nack is None:
            return False
        if nack.consumer is not None:
            del nack.consumer.pending[sid]
        return True

    def claim(self, sid: StreamID, nack: Pending, consumer: Consumer) -> None:
        """Move ``nack`` (in this group's PEL) to ``consumer``'s PEL."""
        if nack.consumer is not consumer:
            if nack.consumer is not None:
                del nack.consumer.pending[sid]
            consumer.pending[sid] = nack
            nack.consumer = consumer


class Stream:
    """A stream: its entries, the node layout Redis would give them, and its groups."""

    __slots__ = (
        "entries",
        "entries_added",
        "first_id",
        "groups",
        "last_id",
        "max_deleted_id",
        "nodes",
    )

    def __init__(self) -> None:
        self.entries: SortedDict[StreamID, list[bytes]] = SortedDict()
        self.nodes: SortedDict[StreamID, Node] = SortedDict()
        self.last_id: StreamID = MIN_ID
        self.first_id: StreamID = MIN_ID  # recorded-first-entry-id
        self.max_deleted_id: StreamID = MIN_ID
        self.entries_added = 0
        self.groups: dict[bytes, Group] = {}

    @property
    def length(self) -> int:
        return len(self.entries)

    # -- entries ---------------------------------------------------------------------------

    def append(self, sid: StreamID, flat: list[bytes]) -> None:
        """Add an entry whose ID is above ``last_id`` (streamAppendItem)."""
        node = self.nodes.peekitem(-1)[1] if self.nodes else None
        if node is not None:
            payload = sum(len(x) for x in flat)
            if (
                node.size + payload >= NODE_MAX_BYTES
                or node.live + node.deleted >= NODE_MAX_ENTRIES
            ):
                node = None
        if node is None:
            node = self.nodes[sid] = Node(sid, tuple(flat[::2]))
        node.body += node.entry_size(sid, flat)
        node.live += 1
        node.last = sid
        self.entries[sid] = flat
        self.last_id = sid
        self.entries_added += 1
        if len(self.entries) == 1:
            self.first_id = sid

    def node_of(self, sid: StreamID) -> Node:
        nodes = self.nodes
        return nodes.peekitem(nodes.bisect_right(sid) - 1)[1]

    def delete(self, sid: StreamID) -> bool:
        """Delete one entry (streamDeleteItem): its node forgets it, or goes when emptied."""
        if sid not in self.entries:
            return False
        node = self.node_of(sid)
        del self.entries[sid]
        node.live -= 1
        if node.live == 0:
            del self.nodes[node.master]
        else:
            node.deleted += 1
        return True

    def last_valid_id(self) -> StreamID:
        """streamLastValidID: the last entry's ID, or 0-0."""
        return self.entries.peekitem(-1)[0] if self.entries else MIN_ID

    def first_valid_id(self) -> StreamID:
        return self.entries.peekitem(0)[0] if self.entries else MIN_ID

    def range(
        self, start: StreamID, end: StreamID, count: int = 0, reverse: bool = False
    ) -> list[tuple[StreamID, list[bytes]]]:
        """Entries from ``start`` to ``end`` (both included), at most ``count`` (0: all)."""
        if start > end:
            return []
        entries = self.entries
        ids = entries.irange(start, end, reverse=reverse)
        out = []
        for sid in ids:
            out.append((sid, entries[sid]))
            if len(out) == count:
                break
        return out

    def trim(self, maxlen: int | None, minid: StreamID | None, approx: bool, limit: int) -> int:
        """streamTrim: delete entries from the head, whole nodes first; with ``approx``,
        only whole nodes and at most ``limit`` entries (0: no limit)."""
        deleted = 0
        while self.nodes:
            if maxlen is not None and len(self.entries) <= maxlen:
                break
            node = self.nodes.peekitem(0)[1]
            if limit and deleted + node.live > limit:
                break
            if maxlen is not None:
                remove_node = len(self.entries) - node.live >= maxlen
            else:
                assert minid is not None
                remove_node = node.last < minid
            if remove_node:
                for sid in list(self.entries.irange(node.master, node.last)):
                    del self.entries[sid]
                del self.nodes[node.master]
                deleted += node.live
                continue
            if approx:
                break
            for sid in list(self.entries.irange(node.master, node.last)):
                if maxlen is not None and len(self.entries) <= maxlen:
                    break
                if minid is not None and sid >= minid:
                    break
                del self.entries[sid]
                node.live -= 1
                node.deleted += 1
                deleted += 1
            break
        if deleted:
            self.first_id = self.first_valid_id()
        return deleted

    # -- consumer-group bookkeeping (Redis 7.0's lag and entries-read estimates) -----------

    def has_tombstones(self, start: StreamID | None) -> bool:
        """streamRangeHasTombstones from ``start`` to the end."""
        if not self.entries or self.max_deleted_id == MIN_ID:
            return False
        if self.first_id > self.max_deleted_id:
            return False
        return (start or MIN_ID) <= self.max_deleted_id

    def estimate_read(self, sid: StreamID) -> int | None:
        """streamEstimateDistanceFromFirstEverEntry."""
        if not self.entries_added:
            return 0
        if not self.entries and sid <= self.last_id:
            return self.entries_added
        if sid == self.last_id:
            return self.entries_added
        if sid > self.last_id:
            return None
        if self.max_deleted_id == MIN_ID or self.max_deleted_id < self.first_id:
            if sid < self.first_id:
                return self.entries_added - len(self.entries)
            if sid == self.first_id:
                return self.entries_added - len(self.entries) + 1
        return None

    def lag(self, group: Group) -> int | None:
        if not self.entries_added:
            return 0
        if group.entries_read is not None and not self.has_tombstones(group.last_id):
            return self.entries_added - group.entries_read
        read = self.estimate_read(group.last_id)
        return None if read is None else self.entries_added - read

    def delivered(self, group: Group, sid: StreamID) -> None:
        """Move ``group``'s last delivered ID forward to ``sid`` (streamReplyWithRange)."""
        if sid > group.last_id:
            if group.entries_read is not None and not self.has_tombstones(sid):
                group.entries_read += 1
            elif self.entries_added:
                group.entries_read = self.estimate_read(sid)
            group.last_id = sid

    def radix_tree_nodes(self) -> int:
        """How many nodes Redis's radix tree of the node keys (16-byte big-endian IDs) has:
        a compressed trie, each key ending in a leaf node."""
        keys = [ms.to_bytes(8, "big") + seq.to_bytes(8, "big") for ms, seq in self.nodes]
        return _trie_nodes(keys, 0) if keys else 1


def _trie_nodes(keys: list[bytes], depth: int) -> int:
    """Nodes of the rax holding ``keys`` (sorted, distinct, all of one length) from
    ``depth``: the node at this position plus those below it."""
    if len(keys) == 1:
        return 1 if depth == len(keys[0]) else 2  # a compressed node and the leaf
    first, last = keys[0], keys[-1]
    common = depth
    while first[common] == last[common]:
        common += 1
    count = 1 if common == depth else 2  # a compressed node before the branching one
    start = 0
    for i in range(1, len(keys) + 1):
        if i == len(keys) or keys[i][common] != keys[start][common]:
            count += _trie_nodes(keys[start:i], common + 1)
            start = i
    return count
