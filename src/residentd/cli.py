"""The ``residentd`` command.

    residentd run APP [--config FILE] [settings...]   run a daemon (built-in name or module:app)
    residentd config APP [--config FILE] [settings...] print its effective configuration
    residentd status  (--pidfile F | --admin A) [--json]
    residentd reload  (--pidfile F | --admin A)
    residentd stop    (--pidfile F | --admin A) [--timeout S]
    residentd loglevel LEVEL (--pidfile F | --admin A)
    residentd upgrade (--pidfile F | --admin A) [--timeout S]  live upgrade to the code on disk
    residentd repair FILE [--app APP] [--yes]         cut a journal at its first bad record
    residentd bots [--scenario S] [--users N] ...    load a loopback server with bots
    residentd APP ...                                   a built-in app's own commands

Settings come from defaults, the TOML file, ``RESIDENTD_*`` variables and flags, flags winning.
A bad setting stops the start with exit code 2 and a message naming the key and what is allowed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from residentd import __version__
from residentd.apps import BUILTIN
from residentd.daemon.config import DaemonSettings, Schema
from residentd.daemon.control import (
    ControlError,
    admin_json,
    admin_request,
    daemon_admin_address,
    daemon_pid,
    format_status,
    send_signal,
    stop,
)
from residentd.daemon.logs import LEVELS
from residentd.daemon.startup import check_start
from residentd.errors import ConfigError
from residentd.limits import Limits
from residentd.loader import load_app
from residentd.settings import add_flags, settings_of

EXIT_CONFIG = 2
#: Seconds ``residentd reload`` waits for the answer (a rolling restart of every worker).
RELOAD_TIMEOUT = 600.0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "bots":
            from residentd.bots.cli import main as bots_main

            return bots_main(argv[1:])
        if argv and argv[0] == "repair":
            from residentd.state.repair import main as repair_main

            return repair_main(argv[1:], load_app)
        if argv and argv[0] in ("run", "config"):
            return _run_or_config(argv[0], argv[1:])
        if argv and argv[0] in BUILTIN:
            return _app_command(argv[0], argv[1:])
        return _control(argv)
    except ConfigError as exc:
        print(f"residentd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ControlError as exc:
        print(f"residentd: {exc}", file=sys.stderr)
        return 1


def _run_or_config(command: str, argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        if argv[:1] in (["-h"], ["--help"]):
            _core_parser(command).print_help()
            return 0
        names = ", ".join(sorted(BUILTIN))
        print(
            f"usage: residentd {command} APP [options]  (built-in apps: {names}; "
            f"residentd {command} APP --help lists the settings)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    app = load_app(argv[0])
    schema = Schema(app)
    parser = argparse.ArgumentParser(
        prog=f"residentd {command} {argv[0]}",
        description=app.description or None,
    )
    parser.add_argument("--config", metavar="FILE", help="TOML file of settings")
    schema.add_flags(parser)
    args = parser.parse_args(argv[1:])
    flags = {name: value for name, value in vars(args).items() if name != "config"}
    config_file = os.path.abspath(args.config) if args.config else None
    config = schema.resolve(config_file, os.environ, flags)
    if command == "config":
        sys.stdout.write(config.to_toml())
        return 0
    # pidfile and log_file were made absolute by the schema; the state folder is the app's.
    if app.persistence is not None:
        name = app.persistence.names.get("dir", "dir")
        if config[name]:
            config.values[name] = os.path.abspath(config[name])
    for warning in check_start(config, app.name):
        print(f"residentd: warning: {warning}", file=sys.stderr)
    from residentd.daemon.runner import run_daemon

    return run_daemon(app, schema, config, dict(os.environ), flags)


def _core_parser(command: str) -> argparse.ArgumentParser:
    """``residentd run --help``: the settings every app has, with their defaults."""
    parser = argparse.ArgumentParser(
        prog=f"residentd {command} APP",
        description=f"APP is a built-in app ({', '.join(sorted(BUILTIN))}) or module:app. "
        f"Besides these, each app has listen addresses and settings of its own: "
        f"residentd {command} APP --help lists them all, with the app's defaults.",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML file of settings")
    group = parser.add_argument_group("settings (also in --config and RESIDENTD_* env)")
    add_flags(group, settings_of(DaemonSettings) + settings_of(Limits))
    return parser


def _app_command(name: str, argv: list[str]) -> int:
    """``residentd APP ...``: a built-in app's own commands, from its module's ``command``."""
    module = importlib.import_module(BUILTIN[name].partition(":")[0])
    command = getattr(module, "command", None)
    if command is None:
        print(
            f"residentd: {name} has no commands of its own; see residentd run {name} --help",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    return int(command(argv))


def _control(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="residentd", description="resident network daemons")
    parser.add_argument("--version", action="version", version=f"residentd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "run", help="run a daemon: residentd run --help (every app's settings), run APP --help"
    )
    commands.add_parser("config", help="print a daemon's effective configuration")
    commands.add_parser("repair", help="cut a journal at its first bad record: repair --help")
    # Dispatched by main() before this parser; listed so that --help shows every command.
    commands.add_parser("bots", help="load a loopback server with bots: residentd bots --help")
    if not argv or "-h" in argv or "--help" in argv:
        for name, text in _app_commands():
            commands.add_parser(name, help=f"{text}: residentd {name} --help")
    for name, text in (
        ("status", "show a running daemon's counters"),
        ("reload", "reload a running daemon's config and say what changed"),
        ("stop", "stop a running daemon gracefully and wait for it"),
        ("loglevel", "change a running daemon's log level"),
        ("upgrade", "start a new generation that takes over connections and state"),
    ):
        sub = commands.add_parser(name, help=text)
        if name == "loglevel":
            sub.add_argument("level", choices=LEVELS, type=str.upper)
        where = sub.add_mutually_exclusive_group(required=True)
        where.add_argument("--pidfile", help="the daemon's pidfile")
        where.add_argument("--admin", help="the daemon's admin address (unix:/PATH or HOST:PORT)")
        sub.add_argument(
            "--token",
            default=os.environ.get("RESIDENTD_ADMIN_TOKEN"),
            help="admin token (default: $RESIDENTD_ADMIN_TOKEN)",
        )
        if name == "status":
            sub.add_argument("--json", action="store_true", help="print JSON")
        if name == "stop":
            sub.add_argument(
                "--timeout",
                type=_seconds,
                default=30.0,
                help="seconds to wait for the exit (default: 30)",
            )
        if name == "upgrade":
            # The daemon's upgrade_timeout bounds the upgrade itself; this only bounds the wait.
            sub.add_argument(
                "--timeout",
                type=_seconds,
                default=600.0,
                help="seconds to wait for the outcome (default: 600)",
            )
    args = parser.parse_args(argv)
    admin = args.admin or daemon_admin_address(args.pidfile)
    if args.command == "status":
        status = admin_json(admin, "GET", "/status", args.token)
        print(json.dumps(status, indent=2) if args.json else format_status(status))
    elif args.command == "reload":
        return _reload(admin, args.pidfile, args.token)
    elif args.command == "stop":
        if args.pidfile:
            print(stop(args.pidfile, args.timeout))
        else:
            admin_json(admin, "POST", "/stop", args.token)
            print("stop requested")
    elif args.command == "upgrade":
        return _upgrade(admin, args.pidfile, args.token, args.timeout)
    elif args.command == "loglevel":
        admin_json(admin, "POST", f"/loglevel?level={args.level}", args.token)
        print(f"log level set to {args.level}")
    return 0


def _app_commands() -> list[tuple[str, str]]:
    """(name, first line of its doc) of each built-in app that has commands of its own."""
    found = []
    for name, target in sorted(BUILTIN.items()):
        command = getattr(importlib.import_module(target.partition(":")[0]), "command", None)
        if command is not None:
            doc = (command.__doc__ or f"the {name} app's own commands").strip().splitlines()[0]
            found.append((name, doc.rstrip(".")))
    return found


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return value


def _reload(admin: str, pidfile: str | None, token: str | None) -> int:
    """POST /reload and print its answer; exit 1 when the reload failed. Only a daemon with no
    admin socket where ``--pidfile`` points it is sent SIGHUP, whose outcome is in its log."""
    if pidfile and admin.startswith("unix:") and not os.path.exists(admin[5:]):
        pid = send_signal(pidfile, signal.SIGHUP)
        print(f"sent SIGHUP to pid {pid} (no admin socket at {admin[5:]}: see its log)")
        return 0
    # With workers, the answer comes once the rolling restart has replaced every one.
    result = _post_for_json(admin, "/reload", token, timeout=RELOAD_TIMEOUT)
    print(json.dumps(result))
    if not result.get("ok"):
        print(f"residentd: reload failed: {result.get('error', 'unknown error')}", file=sys.stderr)
        return 1
    return 0


def _post_for_json(
    admin: str, path: str, token: str | None, timeout: float = 5.0
) -> dict[str, Any]:
    """POST ``path`` and return its JSON answer (whatever the status: the answer says)."""
    status, body = admin_request(admin, "POST", path, token, timeout=timeout)
    try:
        result = json.loads(body)
    except ValueError:
        result = None
    if not isinstance(result, dict):
        text = body.decode(errors="replace").strip()
        raise ControlError(f"POST {path} at {admin}: {status} {text}")
    return result


def _upgrade(admin: str, pidfile: str | None, token: str | None, timeout: float) -> int:
    """POST /upgrade and wait for its outcome; exit 1 with the new generation's error when it
    failed. A daemon with no admin socket is sent SIGUSR2, and its pidfile watched."""
    if pidfile and admin.startswith("unix:") and not os.path.exists(admin[5:]):
        return _upgrade_by_signal(pidfile, timeout)
    result = _post_for_json(admin, "/upgrade", token, timeout)
    if not result.get("ok"):
        print(f"residentd: {result.get('error', 'upgrade failed')}", file=sys.stderr)
        return 1
    workers = result.get("workers")
    if workers:  # a master: each slot's worker handed over, then the master executes again
        print(f"upgraded: master pid {result['pid']} runs the new code once its workers did:")
        for row in workers:
            print(f"  worker {row['slot']}: pid {row['old_pid']} handed over to pid {row['pid']}")
    else:
        print(f"upgraded: pid {result.get('old_pid')} handed over to pid {result['pid']}")
    return 0


def _upgrade_by_signal(pidfile: str, timeout: float) -> int:
    old = send_signal(pidfile, signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            pid = daemon_pid(pidfile)
        except ControlError:
            continue  # between the two generations' writes
        if pid != old:
            print(f"upgraded: pid {old} handed over to pid {pid}")
            return 0
    print(
        f"residentd: sent SIGUSR2 to pid {old}, still in charge after {timeout:g} s: the upgrade "
        "failed or is slow; see its log",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
