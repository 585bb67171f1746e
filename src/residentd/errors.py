"""Typed errors shared by every layer, and the core's close codes.

Every exception residentd raises derives from ``ResidentdError`` (one that callers also catch
as a built-in kind, say ``OSError``, derives from both), so ``except ResidentdError`` catches
residentd's own failures and nothing else; tests/core/test_errors.py checks every module.

A ``ProtocolError`` is what a codec raises when input breaks the protocol or a limit; it carries
a machine-readable ``code`` (kebab-case, stable: a codec's own, or a ``CloseCode``) and a human
``detail``. The connection that sees one answers in the codec's own error form, when the codec
has one, and closes with the code as its reason; a *recoverable* one is answered and the
connection goes on (codecs/base.py has the whole contract).

``CloseCode`` lists the reasons the core itself closes a connection for. They are what
``Session.on_close`` receives, what ``residentd status`` counts under ``closed`` and what the
logs print: each member is its kebab-case string (a ``StrEnum``), so ``CloseCode.IDLE_TIMEOUT
== "idle-timeout"``. Apps and codecs add their own codes as plain strings.
"""

from __future__ import annotations

from enum import StrEnum


class ResidentdError(Exception):
    """Base class of residentd's own exceptions."""


class CloseCode(StrEnum):
    """Why the core closed a connection (docs/protocol.md's table says when each happens)."""

    CLOSED = "closed"  # Session.close() without a reason
    CLOSED_BY_PEER = "closed-by-peer"
    CONNECTION_RESET = "connection-reset"
    ABORTED = "aborted"  # Session.abort() without a reason
    INPUT_BUFFER_FULL = "input-buffer-full"
    OUTPUT_BUFFER_FULL = "output-buffer-full"
    IDLE_TIMEOUT = "idle-timeout"
    HANDSHAKE_TIMEOUT = "handshake-timeout"
    TOO_MANY_BAD_MESSAGES = "too-many-bad-messages"
    INTERNAL_ERROR = "internal-error"
    MAX_CONNECTIONS = "max-connections"
    MAX_CONNECTIONS_PER_IP = "max-connections-per-ip"
    SERVER_SHUTDOWN = "server-shutdown"
    SHUTDOWN_TIMEOUT = "shutdown-timeout"


class ProtocolError(ResidentdError):
    """Input broke the wire protocol or one of its limits."""

    def __init__(self, code: str, detail: str = "", *, recoverable: bool = False) -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
        self.recoverable = recoverable


class ConfigError(ResidentdError):
    """A configuration key or value is not allowed; the message says which and why."""
