"""A tiny HTTP/1.1 front that serves each request by running ``cgi_handler.py`` in a fresh
Python process, CGI-style: the request in the environment and on stdin, the answer on stdout.

    python cgi_front.py --listen 127.0.0.1:8080 --store sqlite:/path/to/app.db

It keeps connections alive, answers a connection's requests in order, and runs at most
``--max-children`` handler processes at once (a CGI server's or PHP-FPM's ``max_children``);
further requests wait for a free one. The front reaps every child, so the children's CPU time
adds up in the front's own ``RUSAGE_CHILDREN`` (psutil's ``children_user``/``children_system``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

HANDLER = str(Path(__file__).resolve().with_name("cgi_handler.py"))
MAX_HEAD = 16_384
MAX_BODY = 16_384


class Front:
    def __init__(self, store: str, max_children: int) -> None:
        self.slots = asyncio.Semaphore(max_children)
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CLASSIC_STORE": store,
                    "GATEWAY_INTERFACE": "CGI/1.1"}  # fmt: skip

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self.one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    async def one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the connection is to close."""
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ")
        except ValueError:
            writer.write(response(400, b'{"error":"bad-request"}', close=True))
            return False
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            writer.write(response(413, b'{"error":"too-large"}', close=True))
            return False
        body = await reader.readexactly(length) if length else b""
        path, _, query = target.partition("?")
        env = {**self.env, "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
               "CONTENT_LENGTH": str(length), "SERVER_PROTOCOL": version}  # fmt: skip
        if "content-type" in headers:
            env["CONTENT_TYPE"] = headers["content-type"]
        status, answer = await self.run_handler(env, body)
        close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
        writer.write(response(status, answer, close))
        await writer.drain()
        return not close

    async def run_handler(self, env: dict[str, str], body: bytes) -> tuple[int, bytes]:
        async with self.slots:
            child = await asyncio.create_subprocess_exec(
                sys.executable, HANDLER, env=env,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await child.communicate(body)
        head, _, answer = out.partition(b"\r\n\r\n")
        status = 500
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"status:"):
                status = int(line[7:].split()[0])
        if child.returncode != 0:
            return 500, b'{"error":"handler-failed"}'
        return status, answer


def response(status: int, body: bytes, close: bool) -> bytes:
    head = (
        f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    )
    return head.encode() + body


async def main(listen: str, store: str, max_children: int) -> None:
    host, _, port = listen.rpartition(":")
    front = Front(store, max_children)
    server = await asyncio.start_server(front.serve, host, int(port), limit=MAX_HEAD)
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    async with server:
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:8080")
    parser.add_argument("--store", required=True, help="sqlite:PATH")
    parser.add_argument("--max-children", type=int, default=4)
    options = parser.parse_args()
    run = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        run = uvloop.run
    run(main(options.listen, options.store, options.max_children))
