"""kv's persistence in Redis's own formats: the RDB snapshot (rdb.py, with its CRC64 in
crc64.py and the small encodings Redis packs values in, encodings.py) and the AOF journal
(aof.py): what to log for each write command, and how to replay a log into a keyspace.

The framework's residentd.state runs the files (fsync policies, fork snapshots, the
multi-part manifest, start-up); kv.persist wires the two together.
"""
