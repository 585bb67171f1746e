"""kv's persistence in Redis's own formats: the RDB snapshot (rdb.py, with its CRC64 in
crc64.py and the small encodings Redis packs values in, encodings.py) and the AOF journal
(aof.py): what to log for each write command, and how to read a log back.

The framework's residentd.state runs the files (fsync policies, fork snapshots, the
multi-part manifest, start-up); machine.py is kv's state machine for it (dump, load,
replay), and wiring.py declares kv's Redis-named settings and attaches the two.
"""
