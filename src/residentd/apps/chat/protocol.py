"""The chat protocol, version 1: every message a client or the server may send, as typed structs.

A message is one JSON object. Its ``op`` field names it and selects the struct it decodes into
(a msgspec tagged union), so a request is validated while it is parsed: an unknown ``op``, a
missing or wrong-typed field or an over-long value becomes a ``BadRequest`` with an error code,
never a half-read dict. ``BadRequest`` is a recoverable ``ProtocolError``: the connection answers
with an ``error`` message and reads on, and closes only after ``max_bad_messages`` of them. The
``id`` of a bad request is still echoed: the line is decoded a second time, loosely, to find it.

Three kinds of message go to the client:

* replies: ``op`` is the request's (``join`` answers ``join``; ``pong`` answers ``ping``) and
  ``id`` echoes the request's ``id`` when it had one;
* errors: ``{"op": "error", "id": ..., "code": ..., "detail": ...}``, codes in ``ErrorCode``
  (errors.py);
* pushes: events with ``op`` names of their own (``message``, ``joined``, ``presence``, ...) and
  no ``id``.

docs/chat-protocol.md describes each message; this module is its source of truth.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Annotated, Any

import msgspec

from residentd.apps.chat import names
from residentd.apps.chat.errors import ErrorCode
from residentd.apps.chat.explain import explain
from residentd.errors import ProtocolError

VERSION = 1

# -- field types ---------------------------------------------------------------------------------

ID_MAX = 64
TOPIC_MAX = 200
TEXT_MAX = 65_536  # the hard ceiling of a text; the ``max_text`` option sets the limit in force
TOKEN_MAX = 256
WHO_MAX = 1000
HISTORY_MAX = 200
EPOCH_MAX = 32
RESUME_ROOMS_MAX = 100  # rooms one hello may resume
SEQ_MAX = 2**53 - 1  # the largest integer a JavaScript number holds exactly

Id = int | Annotated[str, msgspec.Meta(max_length=ID_MAX)] | None
# A room name, or a token user's name (see names.py).
Name = Annotated[
    str, msgspec.Meta(min_length=1, max_length=names.NAME_MAX, pattern=names.NAME_PATTERN)
]
# A field that names a user: a token user's name or a guest's ``~`` name.
UserName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=names.NAME_MAX + 1, pattern=names.USER_PATTERN)
]
Topic = Annotated[str, msgspec.Meta(max_length=TOPIC_MAX)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=TEXT_MAX)]
Key = Annotated[
    str, msgspec.Meta(min_length=1, max_length=names.KEY_MAX, pattern=names.NAME_PATTERN)
]
Token = Annotated[str, msgspec.Meta(max_length=TOKEN_MAX)]
WhoLimit = Annotated[int, msgspec.Meta(ge=1, le=WHO_MAX)]
HistoryLimit = Annotated[int, msgspec.Meta(ge=1, le=HISTORY_MAX)]
Seq = Annotated[int, msgspec.Meta(ge=0)]
ResumeSeq = Annotated[int, msgspec.Meta(ge=0, le=SEQ_MAX)]
Epoch = Annotated[str, msgspec.Meta(max_length=EPOCH_MAX)]

# The rule of each field, as error details state it (``op.field`` where ops differ).
RULES = {
    "user": names.GUEST_RULE,
    "to": names.GUEST_RULE,
    "room": names.ROOM_RULE,
    "key": names.KEY_RULE,
    "id": f"an id is an integer or a string of at most {ID_MAX} characters",
    "v": f"v is the protocol version: {VERSION}",
    "token": f"a token is at most {TOKEN_MAX} characters",
    "topic": f"a topic is at most {TOPIC_MAX} characters",
    "text": "a text is 1 character or more, and at most max_text",
    "who.limit": f"limit is 1-{WHO_MAX}",
    "history.limit": f"limit is 1-{HISTORY_MAX}",
    "before": "before is a message's seq: an integer, 0 or more",
    "seq": f"seq is the last seq seen: an integer, 0-{SEQ_MAX}",
    "epoch": f"an epoch is a string of at most {EPOCH_MAX} characters",
    "resume[key]": f"resume maps room names: {names.ROOM_RULE}",
    "resume": f"resume maps at most {RESUME_ROOMS_MAX} room names to {{seq, epoch}}",
}


class Request(msgspec.Struct, tag_field="op", kw_only=True):
    """A message from the client. Every request may carry an ``id``, echoed in its reply."""

    id: Id = None


class ResumePoint(msgspec.Struct):
    """Where a client stopped reading a room: the last ``seq`` it saw, in history ``epoch``."""

    seq: ResumeSeq
    epoch: Epoch


class Hello(Request, tag="hello"):
    """Sign in: the first request of a connection. ``token`` may be left out in guest mode.
    ``resume`` asks for the messages missed since a dropped connection, per room."""

    v: int
    user: UserName
    token: Token | None = None
    resume: Annotated[dict[Name, ResumePoint], msgspec.Meta(max_length=RESUME_ROOMS_MAX)] | None = (
        None
    )


class Ping(Request, tag="ping"):
    """Are you there? Answered with ``pong``."""


class Pong(Request, tag="pong"):
    """The answer to the server's ``ping``; it gets no reply."""


class Who(Request, tag="who"):
    """Who is online on the server, or the members of ``room`` (online ones first)."""

    room: Name | None = None
    limit: WhoLimit = 100


class Seen(Request, tag="seen"):
    """Is ``user`` online, and if not, when were they last seen?"""

    user: UserName


class Rooms(Request, tag="rooms"):
    """The rooms this user may see: public ones and private ones they belong or are invited to."""


class Create(Request, tag="create"):
    """Create a room and join it."""

    room: Name
    private: bool = False
    topic: Topic = ""


class Join(Request, tag="join"):
    room: Name


class Leave(Request, tag="leave"):
    room: Name


class Invite(Request, tag="invite"):
    """Let ``user`` join the private ``room`` (only its members may invite)."""

    room: Name
    user: UserName


class SetTopic(Request, tag="topic"):
    room: Name
    topic: Topic


class Post(Request, tag="post"):
    """Send ``text`` to everyone in ``room``, the sender's own connections included."""

    room: Name
    text: Text


class Direct(Request, tag="dm"):
    """Send ``text`` to every connection of ``to`` (and to the sender's other connections)."""

    to: UserName
    text: Text


class History(Request, tag="history"):
    """The room's messages before sequence number ``before`` (default: the newest), oldest
    first, at most ``limit`` of them."""

    room: Name
    before: Seq | None = None
    limit: HistoryLimit = 50


class StateSet(Request, tag="state.set"):
    """Set ``key`` of this user's state document to any JSON ``value``."""

    key: Key
    value: msgspec.Raw


class StateGet(Request, tag="state.get"):
    """One key of the state document, or the whole document when ``key`` is left out."""

    key: Key | None = None


class StateIncr(Request, tag="state.incr"):
    """Add ``by`` to the integer at ``key`` (a missing key counts as 0)."""

    key: Key
    by: int = 1


class StateDel(Request, tag="state.del"):
    key: Key


AnyRequest = (
    Hello
    | Ping
    | Pong
    | Who
    | Seen
    | Rooms
    | Create
    | Join
    | Leave
    | Invite
    | SetTopic
    | Post
    | Direct
    | History
    | StateSet
    | StateGet
    | StateIncr
    | StateDel
)


# -- replies -------------------------------------------------------------------------------------


class Reply(msgspec.Struct, tag_field="op", kw_only=True, omit_defaults=True):
    """An answer to one request; ``id`` is the request's, left out when it had none."""

    id: Id = None


class Resumed(msgspec.Struct, omit_defaults=True):
    """One room of a ``hello``'s ``resume``: with ``recovered``, ``messages`` are all those
    after the client's seq, oldest first; without it, the client reloads the room's history
    (``code`` says why when the user is no member of the room)."""

    room: str
    recovered: bool
    messages: list[msgspec.Raw]
    epoch: str | None = None
    last: int | None = None
    code: str | None = None


class HelloReply(Reply, tag="hello"):
    v: int
    user: str
    guest: bool
    conn: int
    time: int
    online: int
    rooms: list[str]
    ping_interval: float
    resumed: list[Resumed] | None = None


class PongReply(Reply, tag="pong"):
    pass


class UserInfo(msgspec.Struct, omit_defaults=True):
    user: str
    online: bool
    last_seen: int | None = None


class WhoReply(Reply, tag="who"):
    online: int
    users: list[UserInfo]
    room: str | None = None


class SeenReply(Reply, tag="seen"):
    user: str
    online: bool
    last_seen: int | None = None


class RoomInfo(msgspec.Struct):
    room: str
    topic: str
    private: bool
    members: int
    online: int
    # Defaults only so that clients (residentd.chat.client) read older daemons' answers.
    epoch: str = ""  # the numbering of the room's seqs: a new one starts them again at 1
    last: int = 0  # the seq of the room's newest message, 0 when none was posted


class RoomsReply(Reply, tag="rooms"):
    rooms: list[RoomInfo]


class CreateReply(Reply, tag="create"):
    room: RoomInfo


class JoinReply(Reply, tag="join"):
    room: RoomInfo
    last: int


class LeaveReply(Reply, tag="leave"):
    room: str


class InviteReply(Reply, tag="invite"):
    room: str
    user: str


class TopicReply(Reply, tag="topic"):
    room: str
    topic: str


class PostReply(Reply, tag="post"):
    room: str
    seq: int
    ts: int


class DirectReply(Reply, tag="dm"):
    to: str
    msg: int
    ts: int


class HistoryReply(Reply, tag="history"):
    room: str
    messages: list[msgspec.Raw]
    more: bool


class StateSetReply(Reply, tag="state.set"):
    key: str
    size: int


class StateGetReply(Reply, tag="state.get"):
    value: msgspec.Raw | None
    key: str | None = None


class StateIncrReply(Reply, tag="state.incr"):
    key: str
    value: int


class StateDelReply(Reply, tag="state.del"):
    key: str
    deleted: bool


class Error(Reply, tag="error"):
    code: str
    detail: str = ""
    retry_after: float | None = None


# -- pushes --------------------------------------------------------------------------------------


class Push(msgspec.Struct, tag_field="op", kw_only=True, omit_defaults=True):
    """An event the server sends on its own; it never has an ``id``."""


class Message(Push, tag="message"):
    room: str
    seq: int
    ts: int
    user: str
    text: str


class DirectMessage(Push, tag="direct"):
    msg: int
    ts: int
    to: str
    text: str
    sender: str = msgspec.field(name="from")


class Joined(Push, tag="joined"):
    room: str
    user: str


class Left(Push, tag="left"):
    room: str
    user: str


class Presence(Push, tag="presence"):
    room: str
    user: str
    online: bool
    last_seen: int | None = None


class TopicChanged(Push, tag="topic-changed"):
    room: str
    topic: str
    by: str


class Invited(Push, tag="invited"):
    room: str
    by: str


class ServerPing(Push, tag="ping"):
    pass


class Bye(Push, tag="bye"):
    reason: str


# -- errors --------------------------------------------------------------------------------------


def setting(name: str, value: float) -> str:
    """A limit in an error detail, written the one way they all are: ``max_text = 2000``."""
    return f"{name} = {int(value) if value == int(value) else value}"


def retry_after(wait: float) -> float:
    """Seconds to wait, as ``retry_after`` says them: rounded up to the millisecond, never 0."""
    return max(math.ceil(wait * 1000), 1) / 1000


class BadRequest(ProtocolError):
    """A message that does not decode into a request; recoverable, carries the request id."""

    def __init__(self, code: ErrorCode, detail: str, request_id: Id = None) -> None:
        super().__init__(code, detail, recoverable=True)
        self.request_id = request_id


# -- decoding and encoding -----------------------------------------------------------------------


def now_ms() -> int:
    """A server timestamp: Unix time in milliseconds, as every ``ts`` and ``time`` field."""
    return int(time.time() * 1000)


_decoder: msgspec.json.Decoder[AnyRequest] = msgspec.json.Decoder(AnyRequest)
_encoder = msgspec.json.Encoder()
_DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


class _Envelope(msgspec.Struct):
    """What is read of a request that failed to decode: its ``id`` and ``op``."""

    id: Any = None
    op: Any = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_REPEATED_OP = "the key op is in the message more than once"


def decode_request(data: bytes) -> AnyRequest:
    """Decode one message into its request struct, or raise ``BadRequest``."""
    try:
        request = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        request_id, op = _envelope(data)
        if _repeats_op(data):
            raise BadRequest(ErrorCode.INVALID_JSON, _REPEATED_OP, request_id) from None
        code, detail = explain(str(exc), op if type(op) is str else None, RULES)
        raise BadRequest(code, detail, request_id) from None
    except _DECODE_ERRORS as exc:
        raise BadRequest(ErrorCode.INVALID_JSON, f"the message is not JSON: {exc}") from None
    # msgspec takes the first ``op`` as the tag; another one with the same value passes it.
    # Such a message is as ambiguous as one with two different ops (which msgspec refuses, as
    # an invalid op), and is refused the same way. The byte count is only a cheap first look.
    if data.count(b'"op"') > 1 and _repeats_op(data):
        raise BadRequest(ErrorCode.INVALID_JSON, _REPEATED_OP, request.id)
    return request


def _repeats_op(data: bytes) -> bool:
    """Does the message's object have the key ``op`` more than once? (Slow: a second parse.)"""
    outermost: list[tuple[str, Any]] = []

    def pairs(items: list[tuple[str, Any]]) -> None:
        nonlocal outermost
        outermost = items  # objects are built inside out: the last one is the message

    try:
        json.loads(data, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return False
    return sum(1 for key, _ in outermost if key == "op") > 1


def _envelope(data: bytes) -> tuple[Id, Any]:
    """The ``id`` (when it is a valid one) and ``op`` of a request that did not decode."""
    try:
        envelope = _envelope_decoder.decode(data)
    except (msgspec.ValidationError, *_DECODE_ERRORS):
        return None, None
    found = envelope.id
    if type(found) is int or (type(found) is str and len(found) <= ID_MAX):
        return found, envelope.op
    return None, envelope.op


def encode(message: Reply | Push) -> bytes:
    """A message as JSON bytes, without a line end or a frame around it."""
    return _encoder.encode(message)


def error_payload(code: str, detail: str = "", request_id: Id = None) -> bytes:
    return _encoder.encode(Error(id=request_id, code=code, detail=detail))


# The core and the codecs state a limit as ``limit=N`` (``limit=10s``); the chat states every
# limit one way, ``(option = value)``, so their details are rewritten on the way out.
_CORE_LIMITS = {
    "line-too-long": ("the line is longer than allowed", "max_message"),
    "too-many-bad-messages": ("too many messages that did not decode", "max_bad_messages"),
    "input-buffer-full": ("too much input not yet read", "max_input_buffer"),
    "idle-timeout": ("silent for too long", "idle_timeout"),
    "handshake-timeout": ("the connection did not start in time", "handshake_timeout"),
}
_CORE_LIMIT = re.compile(r"limit=([0-9]+(?:\.[0-9]+)?)s?")


def protocol_error_payload(error: ProtocolError) -> bytes:
    """A codec or core ``ProtocolError`` as a chat ``error`` message."""
    request_id = error.request_id if isinstance(error, BadRequest) else None
    detail = error.detail
    known = _CORE_LIMITS.get(error.code)
    found = _CORE_LIMIT.fullmatch(detail) if known is not None else None
    if known is not None and found is not None:
        detail = f"{known[0]} ({setting(known[1], float(found[1]))})"
    return error_payload(error.code, detail, request_id)
