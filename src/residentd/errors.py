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
    HANDED_OVER = "handed-over"  # a live upgrade passed the connection on
    REFUSED_AT_HANDOVER = "refused-at-handover"  # the new generation's limits refused it


class ProtocolErrorCode(StrEnum):
    """The codecs' own error codes (docs/protocol.md's table says which codec raises each, and
    what the peer hears). The core's are ``CloseCode``; an app's are its own."""

    # lines, JSON lines, length-prefixed frames
    LINE_TOO_LONG = "line-too-long"
    INVALID_JSON = "invalid-json"
    NOT_AN_OBJECT = "not-an-object"
    INVALID_MESSAGE = "invalid-message"
    FRAME_TOO_LARGE = "frame-too-large"
    # WebSocket (RFC 6455)
    BAD_FRAME = "bad-frame"
    INVALID_UTF8 = "invalid-utf8"
    MESSAGE_TOO_LARGE = "message-too-large"
    UNSUPPORTED_FRAME = "unsupported-frame"
    # HTTP/1.1 requests (RFC 9112)
    BAD_REQUEST = "bad-request"
    BODY_TOO_LARGE = "body-too-large"
    HEAD_TOO_LARGE = "head-too-large"
    URI_TOO_LONG = "uri-too-long"
    LENGTH_REQUIRED = "length-required"
    NOT_IMPLEMENTED = "not-implemented"
    VERSION_NOT_SUPPORTED = "version-not-supported"
    # RESP (Redis's protocol errors, with Redis's text as the detail)
    INVALID_MULTIBULK_LENGTH = "invalid-multibulk-length"
    INVALID_BULK_LENGTH = "invalid-bulk-length"
    UNEXPECTED_TYPE = "unexpected-type"
    UNBALANCED_QUOTES = "unbalanced-quotes"
    INLINE_TOO_BIG = "inline-too-big"
    MULTIBULK_COUNT_TOO_BIG = "multibulk-count-too-big"
    BULK_COUNT_TOO_BIG = "bulk-count-too-big"


class ProtocolError(ResidentdError):
    """Input broke the wire protocol or one of its limits."""

    def __init__(self, code: str, detail: str = "", *, recoverable: bool = False) -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
        self.recoverable = recoverable


class ConfigError(ResidentdError):
    """A configuration key or value is not allowed; the message says which and why."""
