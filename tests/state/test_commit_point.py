"""The server's per-iteration flush runs the durable app's commit point before any output, and
holds the output of the connections whose records the disk refused until ``release_held``; a gate
may put the commit off to the next iteration, or make an iteration's output wait for the release
of its ticket."""

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


def one_iteration(loop: asyncio.AbstractEventLoop) -> None:
    """Run the callbacks ready now, once: what they schedule runs in the next iteration."""
    loop.call_soon(loop.stop)
    loop.run_forever()


class Conn:
    """A connection as the queue sees one: queued output, and a write that sends it."""

    def __init__(self, name: str, events: list[str]) -> None:
        self.name = name
        self.events = events
        self._out: list[bytes] = []
        self._flush_scheduled = False

    def say(self, queue: FlushQueue, data: bytes) -> None:
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            queue.add(self)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._write_now(b"".join(self._out))
        self._out.clear()

    def _write_now(self, data: bytes) -> None:
        self.events.append(f"{self.name} {data.decode()}")


def test_a_gated_iteration_s_output_waits_for_its_ticket_in_order() -> None:
    """An iteration's output waits for the release of its ticket (after a failed fsync, the one
    that covers it); what a connection sends later waits for its own, later ticket, and never
    goes out with, or ahead of, what was held first."""
    loop = asyncio.new_event_loop()
    try:
        events: list[str] = []
        queue = FlushQueue(loop)
        tickets = [10, 20, 0]
        queue.gate = lambda: ((), tickets.pop(0))
        a, b = Conn("a", events), Conn("b", events)
        a.say(queue, b"1")
        b.say(queue, b"x")
        loop.run_until_complete(asyncio.sleep(0))  # ticket 10
        a.say(queue, b"2")  # sent while the first ticket is held
        loop.run_until_complete(asyncio.sleep(0))  # ticket 20
        assert events == [] and queue.waiting == 3
        queue.release(15)
        assert events == ["a 1", "b x"]
        queue.release(20)
        assert events == ["a 1", "b x", "a 2"]
        a.say(queue, b"3")
        loop.run_until_complete(asyncio.sleep(0))  # ticket 0: everything is on disk
        assert events[-1] == "a 3" and queue.waiting == 0
    finally:
        loop.close()


def test_a_gate_that_answers_minus_one_holds_the_output_for_one_more_iteration() -> None:
    """``appendfsync always`` commits an iteration that brought records one iteration later: the
    first flush writes nothing, what is sent in the next iteration joins it, and the commit then
    runs once before all of it leaves, in order."""
    loop = asyncio.new_event_loop()
    try:
        events: list[str] = []
        queue = FlushQueue(loop)
        answers = [-1, 0]

        def gate() -> tuple[tuple[()], int]:
            events.append(f"gate {answers[0]}")
            return (), answers.pop(0)

        queue.gate = gate
        a, b = Conn("a", events), Conn("b", events)
        a.say(queue, b"1")
        one_iteration(loop)  # gate -1: nothing leaves
        assert events == ["gate -1"]
        b.say(queue, b"x")  # the next iteration's requests
        a.say(queue, b"2")
        one_iteration(loop)
        assert events == ["gate -1", "gate 0", "a 12", "b x"]
    finally:
        loop.close()


def test_without_gate_each_the_commit_runs_only_when_woken_or_while_output_is_held() -> None:
    """With no fsync before every reply (``gate_each`` False) a flush of replies alone does not
    call the app; a flush it woke does, and so does every flush while output is held for a
    refused write, which must not leave before the commit succeeds."""
    loop = asyncio.new_event_loop()
    try:
        events: list[str] = []
        queue = FlushQueue(loop)
        queue.gate_each = False
        a, b = Item("a", events), Item("b", events)
        refused: set[object] = set()

        def commit() -> set[object]:
            events.append("commit")
            return set(refused)

        queue.commit = commit
        queue.add(a)
        loop.run_until_complete(asyncio.sleep(0))
        assert events == ["flush a"]  # replies alone: no call

        events.clear()
        refused.add(a)
        queue.wake()  # records to write, which the disk refuses
        queue.add(a)
        queue.add(b)
        loop.run_until_complete(asyncio.sleep(0))
        assert events == ["commit", "flush b"]

        events.clear()
        queue.add(b)  # not woken, but a's output is held: the commit is tried again
        loop.run_until_complete(asyncio.sleep(0))
        assert events == ["commit", "flush b"]

        events.clear()
        refused.clear()
        queue.add(b)
        loop.run_until_complete(asyncio.sleep(0))
        assert events == ["commit", "flush b", "flush a"]

        events.clear()
        queue.add(b)
        loop.run_until_complete(asyncio.sleep(0))
        assert events == ["flush b"]
    finally:
        loop.close()
