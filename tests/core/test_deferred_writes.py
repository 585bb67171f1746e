"""Sessions with ``defer_writes``: replies wait for the end of the loop iteration and are
written with every other connection's, in order, errors included."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from residentd.app import Session
from residentd.codecs.jsonlines import JsonLinesCodec
from residentd.net.connection import Connection

from .helpers import Client, serving, wait_until

Run = Callable[[Coroutine[Any, Any, Any]], Any]


class Deferred(Session):
    __slots__ = ()
    defer_writes = True

    def on_message(self, message: Any) -> None:
        self.send(message)


def test_replies_to_many_clients_and_chunks_arrive_whole_and_in_order(run: Run) -> None:
    async def main() -> None:
        async with serving(Deferred) as server:
            clients = [await Client.connect(server) for _ in range(20)]
            for round_ in range(5):
                for number, client in enumerate(clients):
                    client.write(b"".join(b"%d.%d.%d\n" % (number, round_, i) for i in range(8)))
            for number, client in enumerate(clients):
                expected = b"".join(
                    b"%d.%d.%d\n" % (number, round_, i) for round_ in range(5) for i in range(8)
                )
                assert await client.read(len(expected)) == expected
                client.close()

    run(main())


def test_chunks_handled_in_one_iteration_go_out_in_one_flush(run: Run) -> None:
    async def main() -> None:
        async with serving(Deferred) as server:
            client = await Client.connect(server)
            await wait_until(lambda: server.connections, what="the server to accept")
            conn: Connection = next(iter(server.connections.values()))
            conn.data_received(b"a\n")
            conn.data_received(b"b\n")
            # Both replies wait for the end of the iteration, in one entry of the flush queue.
            assert conn.write_buffer_size == 4
            assert server.flushes._pending == [conn]
            assert await client.read(4) == b"a\nb\n"
            client.close()

    run(main())


def test_an_error_reply_follows_the_replies_before_it(run: Run) -> None:
    async def main() -> None:
        async with serving(Deferred, codec=JsonLinesCodec) as server:
            client = await Client.connect(server)
            client.write(b'{"n": 1}\nnot json\n{"n": 2}\n')
            first = await client.readline()
            error = await client.readline()
            second = await client.readline()
            assert first == b'{"n":1}'
            assert b'"code":"invalid-json"' in error
            assert second == b'{"n":2}'
            client.close()
            await asyncio.sleep(0)

    run(main())
