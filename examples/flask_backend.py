"""A Flask backend beside the chat daemon: the classic web stack, with a resident daemon next to
it that answers from memory.

The web app keeps doing what it does (its own sign-in, its own pages) and asks the chat daemon
through ``residentd.chat.client``, one line per call:

    GET  /          who is online, from the daemon, and the rooms
    GET  /signin    the app's own sign-in form
    POST /signin    checks the app's own password; on success mints a chat token for the user
                    (the chat keeps no passwords) and opens the chat page with it, in the URL
                    fragment (``#user=...&token=...``), which never reaches a server's log;
                    the page signs in with them and takes them out of the address bar
    POST /announce  posts a message to a room as the system user ``announcer``

Run it beside a chat daemon that has an API key and a token secret:

    residentd run chat --api-keys "$KEY" --secret "$SECRET" &
    CHAT_API_KEY="$KEY" flask --app examples/flask_backend.py run --port 5000

``CHAT_URL`` (default http://127.0.0.1:7780) is where this app reaches the daemon's API;
``CHAT_PAGE_URL`` (default: CHAT_URL) is where browsers reach the chat page.
"""

from __future__ import annotations

import hmac
import os
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, redirect, render_template_string, request

from residentd.chat.client import ChatApiError, ChatClient, ChatUnavailable

# The app's own users: a real backend has its user table and password hashes.
USERS = {"ann": "wonderland", "bob": "builder"}

HOME = """<!doctype html>
<title>Backend beside the chat</title>
<h1>{{ online.online }} online</h1>
<ul>{% for user in online.users %}<li>{{ user }}</li>{% endfor %}</ul>
<h2>Rooms</h2>
<ul>{% for room in rooms %}<li>{{ room.room }}: {{ room.online }} of {{ room.members }} online
</li>{% endfor %}</ul>
<p><a href="/signin">Sign in to the chat</a></p>
"""

SIGNIN = """<!doctype html>
<title>Sign in</title>
{% if error %}<p role="alert">{{ error }}</p>{% endif %}
<form method="post" action="/signin">
  <input name="user" placeholder="user" autocomplete="username">
  <input name="password" type="password" placeholder="password">
  <button>Sign in</button>
</form>
"""


def create_app(chat: ChatClient, page_url: str) -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def home() -> str:
        return render_template_string(HOME, online=chat.online(), rooms=chat.rooms())

    @app.get("/signin")
    def signin_form() -> str:
        return render_template_string(SIGNIN, error=None)

    @app.post("/signin")
    def signin() -> Any:
        user = request.form.get("user", "")
        password = request.form.get("password", "")
        known = USERS.get(user)
        if known is None or not hmac.compare_digest(password.encode(), known.encode()):
            return render_template_string(SIGNIN, error="wrong user or password"), 401
        # The app's user names are chat user names (names.py's rule), so the chat can take them
        # with a token; a guest's "~" name is never one of them.
        token = chat.token(user, ttl=3600).token
        fragment = urlencode({"user": user, "token": token})
        return redirect(f"{page_url.rstrip('/')}/#{fragment}", 303)

    @app.post("/announce")
    def announce() -> Any:
        text = request.form.get("text", "")
        try:
            posted = chat.post(request.form.get("room", "lobby"), text, user="announcer")
        except ChatApiError as error:
            return {"error": error.code, "detail": error.detail}, error.status
        return {"room": posted.room, "seq": posted.seq}

    @app.errorhandler(ChatUnavailable)
    def chat_down(error: ChatUnavailable) -> Response:
        return Response("the chat is not answering; try again soon\n", 503)

    return app


def from_environment() -> Flask:
    url = os.environ.get("CHAT_URL", "http://127.0.0.1:7780")
    chat = ChatClient(url, os.environ["CHAT_API_KEY"], timeout=2.0)
    return create_app(chat, os.environ.get("CHAT_PAGE_URL", url))


if __name__ == "__main__":
    from_environment().run(port=5000)
else:
    app = from_environment() if "CHAT_API_KEY" in os.environ else None
