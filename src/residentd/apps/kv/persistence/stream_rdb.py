"""Streams in Redis's RDB file: RDB_TYPE_STREAM_LISTPACKS_2, what Redis 7.0 writes
(``rdbSaveObject``), and the older RDB_TYPE_STREAM_LISTPACKS on load.

    nodes: count, then each node's key (its master ID, 16 bytes big-endian) and listpack
    length, last ID, first ID, max deleted ID (each as two lengths), entries added
    groups: count, then each: name, last ID, entries read (-1 as 2**64 - 1), its PEL (count,
    then a raw 16-byte ID, an 8-byte little-endian delivery time and a delivery count per
    entry) and its consumers (count, then name, 8-byte seen time, and the IDs of its PEL)

A node's listpack starts with the master entry (live count, deleted count, the master
fields, a 0), then each entry: flags, ms and seq deltas to the master ID, the values alone
(SAMEFIELDS) or the field count and the pairs, and the entry's element count. kv writes the
live entries of each node it holds (stream.py keeps the node layout Redis would have), so
a node's deleted entries are gone from the file, as after a Redis DEBUG RELOAD of a
defragmented stream; it reads a Redis node with its tombstones.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Protocol

from residentd.apps.kv import listpack
from residentd.apps.kv.persistence import encodings
from residentd.apps.kv.stream import (
    FLAG_DELETED,
    FLAG_SAMEFIELDS,
    U64,
    Consumer,
    Group,
    Node,
    Pending,
    Stream,
    StreamID,
    _signed_diff,
)


class Reader(Protocol):
    """What the stream loader reads with (rdb.py's ``Reader``)."""

    def take(self, size: int) -> bytes: ...
    def plain_length(self) -> int: ...
    def string(self) -> bytes: ...


STREAM_LISTPACKS, STREAM_LISTPACKS_2 = 15, 19


def _key(sid: StreamID) -> bytes:
    return struct.pack(">QQ", *sid)


def _node_listpack(stream: Stream, node: Node) -> bytes:
    items: list[bytes | int] = [node.live, 0, len(node.fields), *node.fields, 0]
    entries = stream.entries
    for sid in entries.irange(node.master, node.last):
        flat = entries[sid]
        same = tuple(flat[::2]) == node.fields
        items += [
            FLAG_SAMEFIELDS if same else 0,
            _signed_diff(sid[0], node.master[0]),
            _signed_diff(sid[1], node.master[1]),
        ]
        if same:
            items += flat[1::2]
            items.append(len(flat) // 2 + 3)
        else:
            items.append(len(flat) // 2)
            items += flat
            items.append(len(flat) + 1 + 3)
    return listpack.encode(items)


def dump(
    stream: Stream, save_string: Callable[[bytes], bytes], save_length: Callable[[int], bytes]
) -> bytes:
    """The value part of a stream key (after its type byte and key), with rdb.py's
    encoders of strings and lengths."""
    nodes = [node for node in stream.nodes.values() if node.live]
    out = [save_length(len(nodes))]
    for node in nodes:
        out.append(save_string(_key(node.master)))
        out.append(save_string(_node_listpack(stream, node)))
    out.append(save_length(stream.length))
    for sid in (stream.last_id, stream.first_id, stream.max_deleted_id):
        out += [save_length(sid[0]), save_length(sid[1])]
    out.append(save_length(stream.entries_added))
    out.append(save_length(len(stream.groups)))
    for name, group in sorted(stream.groups.items()):
        out.append(save_string(name))
        out += [save_length(group.last_id[0]), save_length(group.last_id[1])]
        out.append(save_length(U64 if group.entries_read is None else group.entries_read))
        out.append(save_length(len(group.pending)))
        for sid, nack in group.pending.items():
            out.append(_key(sid) + struct.pack("<q", nack.time) + save_length(nack.count))
        out.append(save_length(len(group.consumers)))
        for consumer_name, consumer in sorted(group.consumers.items()):
            out.append(save_string(consumer_name) + struct.pack("<q", consumer.seen))
            out.append(save_length(len(consumer.pending)))
            out += [_key(sid) for sid in consumer.pending]
    return b"".join(out)


def _read_node(stream: Stream, master: StreamID, blob: bytes) -> None:
    items = encodings.listpack(blob)
    live, deleted, field_count = int(items[0]), int(items[1]), int(items[2])
    fields = tuple(items[3 : 3 + field_count])
    node = Node(master, fields)
    node.live, node.deleted = live, deleted
    at = 4 + field_count  # past the master entry's terminating 0
    while at < len(items):
        flags = int(items[at])
        sid = ((master[0] + int(items[at + 1])) & U64, (master[1] + int(items[at + 2])) & U64)
        at += 3
        if flags & FLAG_SAMEFIELDS:
            flat = [
                x for pair in zip(fields, items[at : at + field_count], strict=True) for x in pair
            ]
            at += field_count
        else:
            count = int(items[at])
            flat = items[at + 1 : at + 1 + 2 * count]
            at += 1 + 2 * count
        at += 1  # the entry's element count
        node.last = sid
        if not flags & FLAG_DELETED:
            stream.entries[sid] = flat
    node.body = len(blob) - (node.size - node.body)
    stream.nodes[master] = node


def _id(r: Reader) -> StreamID:
    return r.plain_length(), r.plain_length()


def _raw_id(r: Reader) -> StreamID:
    ms, seq = struct.unpack(">QQ", r.take(16))
    return ms, seq


def load(r: Reader, kind: int) -> Stream:
    stream = Stream()
    for _ in range(r.plain_length()):
        key = r.string()
        if len(key) != 16:
            raise ValueError("stream node key is not 16 bytes")
        ms, seq = struct.unpack(">QQ", key)
        _read_node(stream, (ms, seq), r.string())
    r.plain_length()  # the length, which the entries say
    stream.last_id = _id(r)
    if kind == STREAM_LISTPACKS_2:
        stream.first_id = _id(r)
        stream.max_deleted_id = _id(r)
        stream.entries_added = r.plain_length()
    else:
        stream.first_id = stream.first_valid_id()
        stream.entries_added = stream.length
    for _ in range(r.plain_length()):
        name = r.string()
        last_id = _id(r)
        entries_read: int | None = None
        if kind == STREAM_LISTPACKS_2:
            read_count = r.plain_length()
            entries_read = None if read_count == U64 else read_count
        else:
            entries_read = stream.estimate_read(last_id)
        group = stream.groups[name] = Group(last_id, entries_read)
        for _ in range(r.plain_length()):
            sid = _raw_id(r)
            (when,) = struct.unpack("<q", r.take(8))
            group.pending[sid] = Pending(None, when, r.plain_length())
        for _ in range(r.plain_length()):
            consumer_name = r.string()
            (seen,) = struct.unpack("<q", r.take(8))
            consumer = group.consumers[consumer_name] = Consumer(consumer_name, seen)
            for _ in range(r.plain_length()):
                sid = _raw_id(r)
                nack = group.pending.get(sid)
                if nack is None:
                    raise ValueError("consumer PEL entry not in its group's PEL")
                nack.consumer = consumer
                consumer.pending[sid] = nack
        if any(nack.consumer is None for nack in group.pending.values()):
            raise ValueError("group PEL entry without a consumer")
    return stream
