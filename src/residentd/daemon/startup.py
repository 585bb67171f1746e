"""Checks made before a daemon starts, so that what would fail later is a clear message now.

``residentd run`` calls :func:`check_start` once the configuration is resolved and before it
detaches: the log file must open for appending, the pidfile's folder must exist, and the admin
socket's path (the default one too) must be usable, each error naming the key and the path,
so the command exits with code 2 and a sentence instead of a traceback, or a daemon that died
in the background. The warnings it returns (``--daemon`` with nowhere for the logs to go) are
printed by the caller.
"""

from __future__ import annotations

import os

from residentd.daemon.admin import default_admin_path, prepare_admin_socket
from residentd.daemon.config import Config
from residentd.errors import ConfigError

__all__ = ["check_start"]


def check_start(config: Config, app_name: str) -> list[str]:
    """Raise ConfigError for a log file or admin path the daemon could not use; return the
    warnings to show."""
    settings = config.daemon
    log_file = settings.log_file
    if log_file:
        try:
            with open(log_file, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise ConfigError(
                f"log_file = {log_file!r} (from {config.sources['log_file']}) cannot be opened "
                f"for writing: {exc.strerror or exc}"
            ) from None
    pidfile = settings.pidfile
    if pidfile and not os.path.isdir(os.path.dirname(os.path.abspath(pidfile))):
        raise ConfigError(
            f"pidfile = {pidfile!r} (from {config.sources['pidfile']}) cannot be made: folder "
            f"{os.path.dirname(os.path.abspath(pidfile))} does not exist"
        )
    admin = settings.admin or default_admin_path(app_name, pidfile)
    if admin != "off":
        try:
            prepare_admin_socket(admin)
        except ConfigError as exc:
            source = config.sources["admin"] if settings.admin else "the default"
            raise ConfigError(f"admin = {admin!r} (from {source}): {exc}") from None
    warnings = []
    if settings.daemon and not log_file:
        warnings.append(
            "--daemon without --log-file: the daemon's logs go nowhere (stdout and stderr "
            "become /dev/null); give --log-file to keep them"
        )
    return warnings
