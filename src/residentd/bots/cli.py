"""``residentd bots``: the command line of the load generator.

    residentd bots --scenario chat --users 5000 --spawn-rate 500 --duration 30 \\
        --server-admin unix:/run/chat.pid.sock --report out/

It checks the arguments (a target that is not a loopback address is refused; several targets,
``--target A,B`` or ``--target`` repeated, spread the users over them in turn, so one run drives a
cluster of nodes), takes the
server's idle baseline, starts the generator processes, merges what they report while the live
view shows it, then prints the table and writes the files asked for.

Exit status: 0 when the run went through with errors within ``--max-error-rate`` (default 0:
any error fails the run, as in Locust); 1 when it did not (errors, no connection, a generator
that failed); 2 for a usage error.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from residentd.bots import report, workers
from residentd.bots.live import LiveView
from residentd.bots.load import Model, Plan, Think
from residentd.bots.scenario import Scenario, load_scenario
from residentd.bots.scenarios import BUILTIN
from residentd.bots.server import ProbeError, ServerProbe, ServerSample
from residentd.bots.stats import RunStats
from residentd.bots.transports import TRANSPORTS
from residentd.errors import ResidentdError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(ResidentdError):
    pass


def parse_target(text: str | None, default_port: int) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST``, ``:PORT``, ``PORT`` or ``[::1]:PORT``; the host must be a
    loopback address (``localhost`` means 127.0.0.1)."""
    host, port = "127.0.0.1", default_port
    if text:
        if text.isdigit():
            port = int(text)
        elif text.startswith("["):
            inside, _, rest = text[1:].partition("]")
            host = inside
            if rest.startswith(":"):
                port = int(rest[1:])
        elif text.count(":") == 1:
            name, _, number = text.partition(":")
            host = name or host
            port = int(number) if number else port
        else:
            host = text
    if host == "localhost":
        host = "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(
            f"target {host!r} is not a loopback address: bots only load servers on this "
            "machine (127.0.0.0/8, ::1 or localhost)"
        )
    if not 0 < port < 65536:
        raise UsageError(f"target port {port} is out of range")
    return host, port


def parse_targets(texts: Sequence[str], default_port: int) -> list[tuple[str, int]]:
    """Every ``--target`` (each may list several, comma-separated), in order, as parse_target
    reads one; none gives the scenario's default. All must be of one address family, since
    the generators' source addresses are chosen for it."""
    items = [item.strip() for text in texts for item in text.split(",") if item.strip()]
    targets = [parse_target(item, default_port) for item in items] or [
        parse_target(None, default_port)
    ]
    if len({":" in host for host, _ in targets}) > 1:
        raise UsageError("targets mix IPv4 and IPv6 addresses: give one family")
    return targets


def show_target(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_options(pairs: list[str], defaults: dict[str, Any]) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs, each value converted to its default's type."""
    options = dict(defaults)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--set {pair!r}: expected KEY=VALUE")
        default = defaults.get(key)
        if default is None:
            known = ", ".join(sorted(defaults)) or "none"
            raise UsageError(f"--set {key}: the scenario has no such option (it has: {known})")
        try:
            if isinstance(default, bool):
                options[key] = value.lower() in ("1", "true", "yes", "on")
            else:
                options[key] = type(default)(value)
        except ValueError:
            raise UsageError(
                f"--set {key}={value!r}: expected a {type(default).__name__}"
            ) from None
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="residentd bots",
        description="Bots that imitate users online: load a loopback server, measure latency "
        "per step and the server's memory per user.",
    )
    what = parser.add_argument_group("what to run")
    what.add_argument(
        "-s",
        "--scenario",
        default="echo",
        help=f"built-in ({', '.join(BUILTIN)}) or module:Class (default: echo)",
    )
    what.add_argument(
        "-t",
        "--target",
        action="append",
        default=[],
        help="HOST:PORT on loopback (default: the scenario's); several, comma-separated or "
        "repeated, take the users in turn",
    )
    what.add_argument("--transport", choices=TRANSPORTS, help="override the scenario's")
    what.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a scenario option (repeatable)",
    )
    load = parser.add_argument_group("load model (closed unless --rate or --session-rate)")
    load.add_argument(
        "-u",
        "--users",
        metavar="N",
        type=int,
        help="bots (closed, open) [10]; most sessions at once (sessions) [10000]",
    )
    load.add_argument(
        "-r",
        "--spawn-rate",
        metavar="R",
        type=float,
        default=1000.0,
        help="bots started per second [1000]",
    )
    load.add_argument(
        "--think",
        metavar="T",
        help="think time: SECONDS, uniform:MIN:MAX, exp:MEAN (default: the scenario's)",
    )
    load.add_argument(
        "--rate",
        metavar="R",
        type=float,
        default=0.0,
        help="open model: tasks per second over all bots, from intended times",
    )
    load.add_argument(
        "--session-rate",
        metavar="R",
        type=float,
        default=0.0,
        help="open model: new sessions per second",
    )
    load.add_argument(
        "--iterations", metavar="K", type=int, default=1, help="tasks per session [1]"
    )
    bounds = parser.add_argument_group("bounds (the run always stops by itself)")
    bounds.add_argument(
        "-d", "--duration", metavar="S", type=float, default=10.0, help="seconds [10]"
    )
    bounds.add_argument(
        "-n", "--requests", metavar="N", type=int, default=0, help="stop after N tasks"
    )
    bounds.add_argument(
        "--timeout", metavar="S", type=float, default=10.0, help="reply timeout, s [10]"
    )
    bounds.add_argument(
        "--drain",
        metavar="S",
        type=float,
        default=2.0,
        help="seconds tasks in flight get to finish at the end [2]",
    )
    scale = parser.add_argument_group("scale")
    scale.add_argument(
        "-p",
        "--processes",
        metavar="P",
        type=int,
        default=os.cpu_count() or 1,
        help="generator processes [the cores]",
    )
    scale.add_argument(
        "--source-addresses",
        metavar="N",
        type=int,
        default=0,
        help=f"loopback source addresses from 127.0.0.2 [one per {workers.PER_SOURCE} users]",
    )
    scale.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    scale.add_argument("--seed", metavar="N", type=int, help="random seed, for repeatable bots")
    server = parser.add_argument_group("server side")
    where = server.add_mutually_exclusive_group()
    where.add_argument(
        "--server-pid", metavar="PID", type=int, help="sample this process every second"
    )
    where.add_argument(
        "--server-admin",
        metavar="ADDRESS",
        help="a residentd daemon's admin endpoint (unix:PATH or HOST:PORT)",
    )
    server.add_argument(
        "--admin-token",
        metavar="TOKEN",
        default=os.environ.get("RESIDENTD_ADMIN_TOKEN"),
        help="admin token (default: $RESIDENTD_ADMIN_TOKEN)",
    )
    server.add_argument(
        "--soak", action="store_true", help="judge RSS and fd trends for leaks at the end"
    )
    out = parser.add_argument_group("output")
    out.add_argument("--json", metavar="FILE", help="write the results document")
    out.add_argument("--csv", metavar="PREFIX", help="write PREFIX_steps.csv, PREFIX_timeline.csv")
    out.add_argument("--report", metavar="DIR", help="write DIR/index.html")
    out.add_argument("--no-live", action="store_true", help="no live view")
    out.add_argument(
        "--max-error-rate",
        metavar="F",
        type=float,
        default=0.0,
        help="errors per request and connect allowed before exit status 1 [0]",
    )
    return parser


def make_plan(args: argparse.Namespace, scenario: type[Scenario]) -> Plan:
    if args.rate and args.session_rate:
        raise UsageError("give --rate or --session-rate, not both")
    if args.users is None:
        args.users = 10_000 if args.session_rate else 10
    for name in ("users", "duration"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name} must be above 0")
    for name in ("spawn_rate", "rate", "session_rate", "requests", "timeout", "drain"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must not be negative")
    if args.iterations < 1:
        raise UsageError("--iterations must be at least 1")
    try:
        think = Think.parse(args.think if args.think is not None else scenario.think)
    except ValueError as exc:
        raise UsageError(f"--think: {exc}") from None
    model: Model = "open" if args.rate else "sessions" if args.session_rate else "closed"
    return Plan(
        model=model,
        users=args.users,
        spawn_rate=args.spawn_rate,
        think=think,
        duration=args.duration,
        rate=args.rate or args.session_rate,
        requests=args.requests,
        iterations=args.iterations,
        drain=args.drain,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return run(args)
    except UsageError as exc:
        print(f"residentd bots: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ProbeError as exc:
        print(f"residentd bots: cannot observe the server: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("residentd bots: interrupted", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.scenario)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    transport = args.transport or scenario.transport
    targets = parse_targets(args.target, scenario.default_port(transport))
    options = parse_options(args.set, scenario.options)
    plan = make_plan(args, scenario)
    if args.processes < 1:
        raise UsageError("--processes must be at least 1")
    processes = args.processes if plan.model == "sessions" else min(args.processes, plan.users)
    sources = workers.source_addresses(
        targets[0][0], args.source_addresses or workers.default_source_count(plan.users)
    )
    probe = None
    if args.server_pid is not None or args.server_admin is not None:
        probe = ServerProbe(args.server_pid, args.server_admin, args.admin_token)
    workers.raise_open_files_limit()

    settings = {
        "scenario": scenario.display_name(),
        "scenario_spec": args.scenario,
        "transport": transport,
        "target": ", ".join(show_target(host, port) for host, port in targets),
        "load": {
            "model": plan.model,
            "users": plan.users,
            "spawn_rate": plan.spawn_rate,
            "think": str(plan.think),
            "rate": plan.rate if plan.model == "open" else None,
            "session_rate": plan.rate if plan.model == "sessions" else None,
            "iterations": plan.iterations if plan.model == "sessions" else None,
            "duration": plan.duration,
            "requests": plan.requests or None,
            "timeout": args.timeout,
            "processes": processes,
            "source_addresses": len(sources),
            "options": options,
        },
    }
    baseline = probe.sample(-workers.START_DELAY) if probe else None
    samples: list[ServerSample] = []
    stats = RunStats(processes)
    start = time.time() + workers.START_DELAY + 0.2 * processes
    specs = [
        workers.GeneratorSpec(
            index=n,
            scenario=args.scenario,
            targets=targets,
            transport=transport,
            path=scenario.path,
            plan=share,
            start=start,
            options=options,
            sources=sources,
            timeout=args.timeout,
            seed=args.seed,
            loop=args.loop,
        )
        for n, share in enumerate(workers.plan_shares(plan, processes))
    ]
    title = f"{settings['scenario']} -> {settings['target']}"
    with LiveView(title, plan.duration, enabled=not args.no_live) as live:

        def on_second() -> None:
            elapsed = time.time() - start
            sample = None
            if probe is not None and elapsed >= 0:
                sample = probe.sample(elapsed, stats.users)
                if sample is not None:
                    samples.append(sample)
            live.update(max(0.0, elapsed), stats, sample)

        limit = (start - time.time()) + plan.duration + 2 * plan.drain + workers.GRACE
        errors = workers.run_generators(specs, stats.add, on_second, limit)
    stats.finish()
    elapsed = max(0.001, min(time.time() - start, plan.duration))
    results = report.build_results(
        settings=settings,
        stats=stats,
        elapsed=elapsed,
        started=start,
        probe=probe.describe() if probe else None,
        baseline=baseline,
        samples=samples,
        soak=args.soak,
        generator_errors=errors,
    )
    status, reason = judge(results, args.max_error_rate)
    results["status"] = {"exit_code": status, "ok": status == EXIT_OK, "reason": reason}
    report.print_summary(results)
    written = []
    if args.json:
        report.write_json(results, args.json)
        written.append(args.json)
    if args.csv:
        written.extend(report.write_csv(results, args.csv))
    if args.report:
        written.append(report.write_html(results, args.report))
    for path in written:
        print(f"wrote {path}")
    if status != EXIT_OK:
        print(f"residentd bots: {reason}", file=sys.stderr)
    return status


def judge(results: dict[str, Any], max_error_rate: float) -> tuple[int, str]:
    """The exit status and, when it is not 0, why."""
    summary = results["summary"]
    if results["generator_errors"]:
        return EXIT_FAILED, f"{len(results['generator_errors'])} generator(s) failed"
    connects, connect_errors = summary["connects"], summary["connect_errors"]
    if connect_errors and connect_errors == connects:
        kinds: dict[str, int] = next(
            (step["error_kinds"] for step in results["steps"] if step["name"] == "connect"), {}
        )
        why = ", ".join(f"{kind} x{n:,}" for kind, n in kinds.items())
        return EXIT_FAILED, (
            f"could not connect to {results['target']} ({why}): is the server running there?"
        )
    attempts = summary["requests"] + connects
    if summary["errors"] and summary["errors"] > max_error_rate * max(1, attempts):
        return EXIT_FAILED, (
            f"{summary['errors']:,} errors in {attempts:,} requests and connects "
            f"({summary['errors'] / max(1, attempts):.2%}), over --max-error-rate "
            f"{max_error_rate:g}"
        )
    if summary["requests"] == 0 and connects == 0:
        return EXIT_FAILED, "no bot connected and no request was made"
    return EXIT_OK, ""


if __name__ == "__main__":
    sys.exit(main())
