"""Generator processes: the load split over ``--processes`` P, their results merged here.

The controller (the ``residentd bots`` process) never runs bots itself. It starts P generator
processes (``spawn``: a clean interpreter each), hands each a ``GeneratorSpec`` with its share
of the load (users, rates and request budget divided as evenly as integers allow, and the
index of its first bot, so bot indices are unique over the run) and reads what they send over
a pipe: an ``Interval`` every second, then ``done``, or ``error`` with a traceback. Between
messages it calls back once a second (the controller samples the server and redraws there).

All generators share one wall-clock start a moment in the future, so their seconds line up
and the controller can merge the same second from all of them.

Each process raises its open-files soft limit to the hard one. Bot ``i`` connects from source
address ``sources[i % len(sources)]``, 127.0.0.2, 127.0.0.3, ...: the kernel keeps one
ephemeral port range per source address, and per-address connection limits on the server
apply per address, so the default is one address per ``PER_SOURCE`` bots.

A run always ends: the controller waits at most the run's duration plus a grace period for the
generators, then terminates the ones still there (only its own children, by their pid).
"""

from __future__ import annotations

import ipaddress
import math
import multiprocessing
import resource
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from typing import Any

from residentd.bots.load import Plan, run_generator
from residentd.bots.scenario import Context, load_scenario
from residentd.bots.stats import Interval, Recorder
from residentd.errors import ResidentdError

PER_SOURCE = 1000  # bots per source address by default (below the daemons' per-IP default)
START_DELAY = 1.0  # seconds between spawning the generators and the common start
GRACE = 15.0  # seconds past the duration (and drain) before generators are terminated


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def source_addresses(host: str, count: int) -> list[str]:
    """``count`` loopback source addresses from 127.0.0.2 on, for an IPv4 loopback target
    (none for IPv6: ``::1`` is the only loopback address there)."""
    if count <= 0 or ":" in host:
        return []
    first = int(ipaddress.IPv4Address("127.0.0.2"))
    return [str(ipaddress.IPv4Address(first + n)) for n in range(min(count, 16_000_000))]


def default_source_count(users: int) -> int:
    return max(1, math.ceil(users / PER_SOURCE))


def split(total: int, parts: int) -> list[int]:
    """``total`` divided into ``parts`` integers that differ by at most one."""
    base, extra = divmod(total, parts)
    return [base + (1 if n < extra else 0) for n in range(parts)]


@dataclass(frozen=True)
class GeneratorSpec:
    """Everything one generator process needs, picklable."""

    index: int
    scenario: str
    targets: list[tuple[str, int]]
    transport: str
    path: str
    plan: Plan
    start: float  # wall-clock time the load begins
    options: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    timeout: float = 10.0
    seed: int | None = None
    loop: str = "auto"


def plan_shares(plan: Plan, processes: int) -> list[Plan]:
    """One plan per generator: users, rates and the request budget divided among them."""
    users = split(plan.users, processes)
    requests = split(plan.requests, processes) if plan.requests else [0] * processes
    shares = []
    first = plan.first_index
    for n in range(processes):
        shares.append(
            replace(
                plan,
                users=users[n],
                spawn_rate=plan.spawn_rate / processes,
                rate=plan.rate / processes,
                requests=requests[n],
                first_index=first,
            )
        )
        first += users[n]
    return shares


def generator_main(spec: GeneratorSpec, pipe: Connection) -> None:
    """The body of one generator process."""
    from residentd import loop as loops

    try:
        raise_open_files_limit()
        scenario = load_scenario(spec.scenario)
        context = Context(
            targets=spec.targets,
            transport=spec.transport,
            recorder=Recorder(spec.index),
            options=spec.options,
            path=spec.path,
            sources=spec.sources,
            timeout=spec.timeout,
            seed=None if spec.seed is None else spec.seed + spec.index * 1_000_003,
        )
        if spec.plan.users > 0 or spec.plan.model == "sessions":
            loops.run(run_generator(scenario, context, spec.plan, pipe.send, spec.start), spec.loop)
        pipe.send(("done", spec.index))
    except BaseException:
        pipe.send(("error", spec.index, traceback.format_exc()))
    finally:
        pipe.close()


class GeneratorError(ResidentdError, RuntimeError):
    """A generator process failed; the message holds its traceback."""


def run_generators(
    specs: list[GeneratorSpec],
    on_interval: Callable[[Interval], None],
    on_second: Callable[[], None],
    limit: float,
) -> list[str]:
    """Start one process per spec, feed their intervals to ``on_interval``, call ``on_second``
    about once a second, and return when all are done (or ``limit`` seconds from now have
    passed: stragglers are terminated). Returns the generators' error reports."""
    context = multiprocessing.get_context("spawn")
    processes = []
    pipes: dict[Connection, int] = {}
    for spec in specs:
        reader, writer = context.Pipe(duplex=False)
        process = context.Process(
            target=generator_main, args=(spec, writer), name=f"bots-generator-{spec.index}"
        )
        process.start()
        writer.close()
        processes.append(process)
        pipes[reader] = spec.index
    errors: list[str] = []
    deadline = time.monotonic() + limit
    next_second = time.monotonic() + 1.0
    try:
        while pipes and time.monotonic() < deadline:
            for ready in wait(list(pipes), timeout=max(0.0, next_second - time.monotonic())):
                assert isinstance(ready, Connection)
                try:
                    message = ready.recv()
                except (EOFError, OSError):
                    index = pipes.pop(ready)
                    errors.append(f"generator {index} exited without finishing")
                    continue
                if isinstance(message, Interval):
                    on_interval(message)
                elif message[0] == "done":
                    pipes.pop(ready)
                elif message[0] == "error":
                    pipes.pop(ready)
                    errors.append(f"generator {message[1]} failed:\n{message[2]}")
            if time.monotonic() >= next_second:
                next_second += 1.0
                on_second()
        if pipes:
            errors.append(f"{len(pipes)} generator(s) did not finish in time and were stopped")
    finally:
        for process in processes:
            process.join(timeout=2.0)
            if process.is_alive():
                process.terminate()
                process.join(timeout=2.0)
            if process.is_alive():
                process.kill()
                process.join()
        for pipe in pipes:
            pipe.close()
    return errors
