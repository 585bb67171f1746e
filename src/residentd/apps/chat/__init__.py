"""chat: the reference "users online" daemon, over TCP and WebSocket, with a web page.

Users sign in with a name and an HMAC token (or as guests), see who is online, create and join
public or private rooms, post to them and send direct messages, and keep a small state document;
everything lives in memory. ``residentd run chat`` serves it; docs/chat-protocol.md is the
protocol. The modules, one concern each:

    protocol   the messages as msgspec structs, decoding
    errors     the error codes (ErrorCode) and ChatError
    names      user, guest and room names, state keys    explain  error details for people
    tokens     HMAC sign-in tokens            ratelimit  the per-user token bucket
    presence   users, online and last seen    rooms      membership and fan-out sinks
    history    a room's last messages         state      the per-user key-value document
    wire       a push framed for TCP lines or WebSocket text frames
    hub        the world: users, rooms, fan-out, liveness, and every change to them
    handlers   the dispatcher: sign-in gate, rate charge, one handler per request
    brokered   the hub of a node sharing its world through Redis (``broker``), its requests
    broker     the link to Redis: commands pipelined, the event channel, reconnects
    scripts    the changes as Lua scripts: check, change and publish in one step
    session    a connection's requests and replies, whatever the transport
    tcp / ws   JSON lines on TCP; WebSocket (and the web pages) on the HTTP port
    http       the page, the dashboard, /stats     metrics   the dashboard's samples
    api        the backend's HTTP API, /api/v1/    openapi   its OpenAPI document
    settings   the options                    daemon     the App: services and hooks
    cli        ``residentd chat token USER``
"""

from residentd.apps.chat.cli import command
from residentd.apps.chat.daemon import ChatApp, app, build_app

__all__ = ["ChatApp", "app", "build_app", "command"]
