"""The app as a CGI script: run once per request, by ``cgi_front`` (or any CGI server).

Like a PHP script under CGI without an opcode cache, each request starts a fresh Python,
imports the app, opens the database, answers and exits. The request comes as CGI does it:
``REQUEST_METHOD``, ``PATH_INFO``, ``QUERY_STRING``, ``CONTENT_LENGTH`` and the body on stdin;
the store is named by ``CLASSIC_STORE`` (``sqlite:PATH``). The answer goes to stdout as
``Status:`` and ``Content-Type:`` headers, a blank line and the JSON body.
"""

from __future__ import annotations

import json
import os
import sys

sys.path[0] = os.path.dirname(sys.path[0])  # the folder that holds the classic package
from classic.app import REASONS, handle  # noqa: E402
from classic.stores import open_store  # noqa: E402


def main() -> None:
    env = os.environ
    length = int(env.get("CONTENT_LENGTH") or 0)
    body = sys.stdin.buffer.read(length) if length else b""
    store = open_store(env["CLASSIC_STORE"])
    try:
        status, answer = handle(
            store, env["REQUEST_METHOD"], env.get("PATH_INFO", "/"), env.get("QUERY_STRING", ""),
            body,
        )  # fmt: skip
    finally:
        store.close()
    out = sys.stdout.buffer
    out.write(f"Status: {status} {REASONS.get(status, '')}\r\n".encode())
    out.write(b"Content-Type: application/json\r\n\r\n")
    out.write(json.dumps(answer).encode())


if __name__ == "__main__":
    main()
