"""Latency as measured: a known server delay shows in the percentiles, a stall shows in the
open model's p99, timeouts and source addresses behave."""

from __future__ import annotations

from typing import Any

import pytest

from residentd.bots.load import Plan, Think
from residentd.bots.scenarios.echo import Echo

from .helpers import LineServer, closed, run_load

pytestmark = pytest.mark.same_either_way


def test_injected_delay_shows_in_percentiles(run: Any) -> None:
    async def main() -> Any:
        server = await LineServer(delay=0.050).start()
        try:
            return await run_load(Echo, server.port, closed(users=8, duration=1.5))
        finally:
            await server.stop()

    stats, _ = run(main())
    echo = stats.steps["echo"].summary(1.5)
    assert echo["errors"] == 0
    # 8 bots, 50 ms per request: about 160 requests a second.
    assert 80 <= echo["count"] <= 400
    for key in ("p50_ms", "p90_ms", "p99_ms"):
        assert 50.0 <= echo[key] < 500.0, (key, echo)
    assert stats.steps["connect"].count == 8
    assert stats.peak_users == 8


def test_think_time_paces_a_closed_model(run: Any) -> None:
    async def main() -> Any:
        server = await LineServer().start()
        try:
            return await run_load(Echo, server.port, closed(4, 1.5, think="0.25"))
        finally:
            await server.stop()

    stats, _ = run(main())
    # Four bots, one request per 0.25 s each: about 24 in 1.5 s, never thousands.
    assert 8 <= stats.steps["echo"].count <= 40


def test_open_model_reports_a_stall_in_p99(run: Any) -> None:
    """200 requests/s for 3 s; the server answers nothing for one second in the middle. Timed
    from the intended send times, a fifth or more of all requests saw up to a second of delay:
    p99 shows the stall, where a closed-loop measurement would show one slow request per bot."""

    async def main() -> Any:
        import asyncio

        server = await LineServer().start()
        loop = asyncio.get_running_loop()

        def stall() -> None:
            server.stall_until = loop.time() + 1.0

        loop.call_later(1.0, stall)
        plan = Plan("open", 4, 1000.0, Think.parse("0"), 3.0, rate=200.0)
        try:
            return await run_load(Echo, server.port, plan)
        finally:
            await server.stop()

    stats, _ = run(main())
    echo = stats.steps["echo"].summary(3.0)
    assert echo["errors"] == 0
    assert echo["p99_ms"] >= 700.0, echo
    assert echo["max_ms"] >= 900.0, echo
    assert echo["p50_ms"] < 300.0, echo
    assert stats.late > 50  # requests that wanted to go out during the stall went late
    assert 400 <= echo["count"] <= 700


def test_open_model_counts_dropped_requests_of_a_silent_server(run: Any) -> None:
    async def main() -> Any:
        server = await LineServer().start()
        server.replies = False
        plan = Plan("open", 2, 1000.0, Think.parse("0"), 1.5, rate=100.0, drain=0.2)
        try:
            return await run_load(Echo, server.port, plan, timeout=0.5)
        finally:
            await server.stop()

    stats, _ = run(main())
    echo = stats.steps["echo"]
    assert echo.ok == 0
    assert echo.errors.get("timeout", 0) >= 2
    # 150 requests were due; each bot could send one every half second at best.
    assert stats.dropped >= 100


def test_connections_leave_from_several_source_addresses(run: Any) -> None:
    async def main() -> Any:
        server = await LineServer().start()
        try:
            await run_load(
                Echo, server.port, closed(6, 0.6), sources=["127.0.0.2", "127.0.0.3", "127.0.0.4"]
            )
        finally:
            await server.stop()
        return server.peers

    assert run(main()) == {"127.0.0.2", "127.0.0.3", "127.0.0.4"}


def test_requests_bound_stops_the_run_early(run: Any) -> None:
    import time

    async def main() -> Any:
        server = await LineServer().start()
        try:
            return await run_load(Echo, server.port, closed(4, 30.0, requests=200))
        finally:
            await server.stop()

    started = time.monotonic()
    stats, _ = run(main())
    assert 200 <= stats.steps["echo"].count <= 204
    assert time.monotonic() - started < 20.0


def test_session_model_times_whole_sessions_and_drops_over_the_cap(run: Any) -> None:
    """40 sessions a second, 3 tasks each, against 100 ms replies: a session takes about
    0.4 s (connect, three echoes), so about 16 run at once; with a cap of 8 the rest are
    dropped, and every session is timed from its intended arrival."""

    async def main() -> Any:
        server = await LineServer(delay=0.100).start()
        plan = Plan("sessions", 8, 0.0, Think.parse("0"), 2.0, rate=40.0, iterations=3)
        try:
            return await run_load(Echo, server.port, plan)
        finally:
            await server.stop()

    stats, _ = run(main())
    session = stats.steps["session"].summary(2.0)
    assert session["errors"] == 0
    assert session["p50_ms"] >= 300.0, session
    assert stats.steps["echo"].count >= 3 * session["count"]
    assert stats.dropped >= 10
    assert session["count"] + stats.dropped >= 60  # 80 arrivals were due, a few at the end
    assert stats.peak_users <= 8


class Closer(LineServer):
    """Closes every connection after its third line."""

    async def _serve(self, reader: Any, writer: Any) -> None:
        for _ in range(3):
            line = await reader.readline()
            if not line:
                break
            writer.write(line)
        writer.close()


def test_bots_reconnect_when_the_server_closes_and_count_it(run: Any) -> None:
    async def main() -> Any:
        server = await Closer().start()
        try:
            return await run_load(Echo, server.port, closed(3, 2.5, think="0.05"))
        finally:
            await server.stop()

    stats, _ = run(main())
    # Each bot: three echoes, the close, a second's pause, then a new connection.
    assert stats.steps["connect"].ok >= 5
    assert stats.steps["echo"].ok >= 12
    # A close seen while waiting for a reply fails that echo; one seen while thinking is
    # counted under "connection".
    closes = [stats.steps[name].errors.get("closed-by-peer", 0) for name in ("echo", "connection")
              if name in stats.steps]  # fmt: skip
    assert sum(closes) >= 3


def test_the_last_second_counts_the_users_online_at_the_stop(run: Any) -> None:
    """The run stops at 1.5 s while every bot waits on a reply the server holds until 2.5 s.
    The draining bots sign out after the reporter's whole second 2 has passed: that second
    must still count the four users online at the stop, and hold the replies of the drain."""

    async def main() -> Any:
        import asyncio

        server = await LineServer().start()
        loop = asyncio.get_running_loop()

        def stall() -> None:
            server.stall_until = loop.time() + 1.5

        loop.call_later(1.0, stall)
        try:
            return await run_load(Echo, server.port, closed(4, 1.5))
        finally:
            await server.stop()

    stats, intervals = run(main())
    assert [interval.second for interval in intervals] == [1, 2]
    assert [point.users for point in stats.timeline] == [4, 4]
    assert intervals[-1].steps["echo"].ok >= 4  # with the held replies, answered in the drain
    assert stats.steps["echo"].errors == {}
