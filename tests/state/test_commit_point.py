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


def test_wake_shares_the_iteration_s_one_flush_callback() -> None:
    """The journal's records and the replies of an iteration cost one loop callback and one
    commit, whether the app wakes the queue before or after the connections join it."""
    loop = asyncio.new_event_loop()
    try:
        events: list[str] = []
        queue = FlushQueue(loop)
        a = Item("a", events)

        def commit() -> set[object]:
            events.append("commit")
            return set()

        queue.commit = commit
        queue.wake()  # records appended while a handles its pipeline
        queue.add(a)  # then a's replies
        queue.wake()
        assert len(loop._ready) == 1  # type: ignore[attr-defined]
        loop.run_until_complete(asyncio.sleep(0))
        assert events == ["commit", "flush a"]

        events.clear()
        queue.wake()  # records from a timer, no output pending: still committed
        loop.run_until_complete(asyncio.sleep(0))
        assert events == ["commit"]
    finally:
        loop.close()
