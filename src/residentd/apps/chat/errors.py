"""The chat's error codes, each defined once with what it means, and the error it raises.

``ErrorCode`` holds every ``code`` the chat puts in an error: the socket protocol's ``error``
replies (docs/chat-protocol.md, "Errors") and the backend API's error bodies. A member is its
wire string (a ``StrEnum``), so it is sent, compared and logged as the text itself; its
``description`` is the one-line meaning. Codes of the core and the codecs (``line-too-long``,
``too-many-bad-messages``, ...) are theirs, not listed here; they reach a chat client through
``protocol.protocol_error_payload``.

``ChatError`` is a request the world refuses: the session answers it with an ``error`` reply,
the backend API with an error body. ``CLOSING`` are the codes after which the session closes
the connection.
"""

from __future__ import annotations

from enum import StrEnum

from residentd.errors import ResidentdError


class ErrorCode(StrEnum):
    description: str

    def __new__(cls, value: str, description: str) -> ErrorCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    # A request that does not decode; recoverable, counted toward max_bad_messages.
    INVALID_JSON = (
        "invalid-json",
        "the message is not valid JSON, not UTF-8, or has op more than once",
    )
    NOT_AN_OBJECT = "not-an-object", "the message is JSON but not an object"
    UNKNOWN_OP = "unknown-op", "no request has this op"
    MISSING_FIELD = "missing-field", "a required field is missing"
    WRONG_TYPE = "wrong-type", "a field has the wrong JSON type"
    TOO_LONG = "too-long", "a value is longer than allowed"
    INVALID_VALUE = "invalid-value", "a value is out of range or does not match its pattern"
    UNSUPPORTED_FRAME = "unsupported-frame", "a WebSocket binary frame; messages go in text frames"
    # A request that decodes but cannot be done; the connection stays open.
    NOT_SIGNED_IN = "not-signed-in", "only hello and ping are allowed before hello"
    ALREADY_SIGNED_IN = "already-signed-in", "hello was already accepted on this connection"
    UNSUPPORTED_VERSION = "unsupported-version", "the server does not speak this protocol version"
    BAD_TOKEN = (
        "bad-token",
        "the token is missing, malformed, expired, not for this user, or for a guest",
    )
    NAME_TAKEN = "name-taken", "a guest of that name is online"
    NO_SUCH_ROOM = "no-such-room", "the room does not exist"
    ROOM_EXISTS = "room-exists", "a room of that name exists already"
    NOT_A_MEMBER = "not-a-member", "only members may do this in the room"
    NOT_INVITED = "not-invited", "the room is private and this user was not invited"
    TOO_MANY_ROOMS = "too-many-rooms", "the user is a member of max_rooms_per_user rooms already"
    ROOMS_FULL = "rooms-full", "the server holds max_rooms rooms already"
    NO_SUCH_USER = "no-such-user", "the server does not know this user"
    USER_OFFLINE = "user-offline", "a direct message needs its recipient online"
    RATE_LIMITED = "rate-limited", "more requests than the per-user rate allows; see retry_after"
    STATE_FULL = "state-full", "the state document would pass state_max_keys or state_max_bytes"
    NOT_A_NUMBER = "not-a-number", "state.incr on a value that is not an integer"
    STORAGE_ERROR = (
        "storage-error",
        "the disk refuses state_dir's journal: changes wait, reads work; retry_after",
    )
    BROKER_UNAVAILABLE = (
        "broker-unavailable",
        "the broker (Redis) that nodes share does not answer: retry later",
    )
    # Sent before the server closes the connection.
    TOO_MANY_CONNECTIONS = (
        "too-many-connections",
        "the user has max_connections_per_user connections already",
    )
    SERVER_FULL = "server-full", "the server knows max_users users and none can be forgotten"
    HELLO_TIMEOUT = "hello-timeout", "no accepted hello within hello_timeout seconds"
    DEAD_PEER = "dead-peer", "no answer to ping within ping_timeout seconds"
    KICKED = "kicked", "the application's backend closed this user's connections (detail: why)"
    # The backend API's own (HTTP status in the answer).
    BAD_REQUEST = "bad-request", "a body, query or path value does not fit (field names it)"
    UNAUTHORIZED = "unauthorized", "no API key, or not one of api_keys"
    NOT_FOUND = "not-found", "no such path under the API"
    API_OFF = "api-off", "the API is off: no api_keys or api_keys_file"
    METHOD_NOT_ALLOWED = "method-not-allowed", "the path does not take this method (see Allow)"
    NO_SECRET = "no-secret", "the server has no secret, so it can sign no tokens"


# Errors after which the session closes the connection.
CLOSING = frozenset(
    {
        ErrorCode.TOO_MANY_CONNECTIONS,
        ErrorCode.SERVER_FULL,
        ErrorCode.HELLO_TIMEOUT,
        ErrorCode.DEAD_PEER,
    }
)


class ChatError(ResidentdError):
    """A request that cannot be done; the session answers it with an ``error`` reply."""

    def __init__(self, code: ErrorCode, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
        self.retry_after = retry_after


__all__ = ["CLOSING", "ChatError", "ErrorCode"]
