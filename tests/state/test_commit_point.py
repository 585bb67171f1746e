"""The server's per-iteration flush runs the durable app's commit point before any output, and
holds the output of the connections whose records the disk refused until ``release_held``."""

from __future__ import annotations

import asyncio

from residentd.net.flushing import FlushQueue


class Item:
    def __init__(self, name: str, events: list[str]) -> None:
        self.name = name
        self.events = events

    def _flush(self) -> None:
        self.events.append(f"flush {self.name}")


def test_commit_runs_first_and_held_items_wait() -> None:
    loop = asyncio.new_event_loop()
    try:
        events: list[str] = []
        queue = FlushQueue(loop)
        a, b = Item("a", events), Item("b", events)
        refused = {a}

        def commit() -> set[object]:
            events.append("commit")
            return set(refused)

        queue.commit = commit
        queue.add(a)
        queue.add(b)
        loop.run_until_complete(asyncio.sleep(0))
        assert events == ["commit", "flush b"]  # a's reply waits for the disk

        refused.clear()  # the disk accepts the records again
        events.clear()
        queue.release_held()
        loop.run_until_complete(asyncio.sleep(0))
        assert events == ["commit", "flush a"]
    finally:
        loop.close()
