"""Typed errors shared by every layer.

A ``ProtocolError`` is what a codec raises when input breaks the protocol or a limit; it carries a
machine-readable ``code`` (kebab-case, stable, documented in docs/protocol.md) and a human
``detail``. The connection that sees one answers in the codec's own error form, when the codec
has one, and closes with the code as its reason.
"""

from __future__ import annotations

from typing import Any


class ResidentdError(Exception):
    """Base class of residentd's own exceptions."""


class ProtocolError(ResidentdError):
    """Input broke the wire protocol or one of its limits."""

    def __init__(
        self,
        code: str,
        detail: str = "",
        messages: list[Any] | None = None,
        *,
        recoverable: bool = False,
    ) -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
        self.messages: list[Any] = messages if messages is not None else []
        self.recoverable = recoverable


class ConfigError(ResidentdError):
    """A configuration key or value is not allowed; the message says which and why."""
