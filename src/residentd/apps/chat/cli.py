"""``residentd chat ...``: the chat's own commands.

    residentd chat token USER [--secret S | --config FILE] [--ttl SECONDS]

prints a sign-in token for USER. The secret is found as the daemon finds it: ``--secret``, else
the ``secret`` key of the TOML file, else ``RESIDENTD_SECRET``; so the same file that runs the
daemon makes its tokens.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from residentd.apps.chat.names import USER_RULE, is_name
from residentd.apps.chat.tokens import make_token
from residentd.errors import ConfigError

EXIT_USAGE = 2


def command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="residentd chat", description="chat daemon commands")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    token = commands.add_parser("token", help="print a sign-in token for USER")
    token.add_argument("user", metavar="USER")
    where = token.add_mutually_exclusive_group()
    where.add_argument("--secret", help="the server secret")
    where.add_argument("--config", metavar="FILE", help="the daemon's TOML file, for its secret")
    token.add_argument(
        "--ttl", type=float, default=0, help="seconds the token is good for (default: no expiry)"
    )
    args = parser.parse_args(list(argv))
    if not is_name(args.user):
        print(f"residentd chat: {args.user!r} is not a user name: {USER_RULE}", file=sys.stderr)
        return EXIT_USAGE
    try:
        secret = args.secret or _configured_secret(args.config)
    except ConfigError as exc:
        print(f"residentd chat: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not secret:
        print(
            'residentd chat: no secret: give --secret, --config FILE with secret = "...", '
            "or set RESIDENTD_SECRET",
            file=sys.stderr,
        )
        return EXIT_USAGE
    print(make_token(secret, args.user, args.ttl))
    return 0


def _configured_secret(config_file: str | None) -> str | None:
    """The secret the daemon would use with this file and this environment."""
    from residentd.apps.chat.daemon import build_app
    from residentd.daemon.config import Schema

    config = Schema(build_app()).resolve(config_file, os.environ, {})
    secret: str | None = config["secret"]
    return secret
