"""A chat daemon with a ``state_dir``, as a real process that can be killed, and a plain blocking
JSON-lines client for it: the helpers of the durability tests (test_durable.py)."""

from __future__ import annotations

import itertools
import json
import os
import resource
import select
import signal
import socket
from typing import Any

from residentd.apps.chat.tokens import make_token
from support import (
    child_env,
    free_port,
    kill9,
    read_log,
    residentd_command,
    spawn,
    stop,
    wait_for_port,
)

SECRET = "durable-tests"


class DurableChat:
    """``residentd run chat --state-dir FOLDER`` on fresh loopback ports, started on creation."""

    def __init__(self, folder: str, *options: str, fsize: int | None = None) -> None:
        self.folder = folder
        self.port = free_port()
        self.http_port = free_port()
        self.log_path = os.path.join(folder, "daemon.log")
        command = residentd_command(
            "run", "chat",
            "--listen", f"127.0.0.1:{self.port}",
            "--http-listen", f"127.0.0.1:{self.http_port}",
            "--admin", "off", "--secret", SECRET, "--rate-limit", "0",
            "--state-dir", os.path.join(folder, "state"), *options,
        )  # fmt: skip

        def limit() -> None:  # files of at most fsize bytes: a disk that fills up
            if fsize is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))

        # The C speedups or the pure Python ones, as the test run itself.
        self.proc = spawn(command, self.log_path, env=child_env(), preexec_fn=limit)
        try:
            wait_for_port(self.port, self.proc, log=self.output)
        except AssertionError:
            self.kill()
            raise

    def output(self) -> str:
        return read_log(self.log_path)

    def client(self, user: str, guest: bool = False) -> Client:
        client = Client(self.port)
        token = None if guest else make_token(SECRET, user)
        reply = client.request("hello", v=1, user=user, token=token)
        assert reply["op"] == "hello", reply
        return client

    def kill(self) -> None:
        kill9(self.proc)

    def stop(self) -> int:
        return stop(self.proc)

    def state_files(self) -> dict[str, bytes]:
        """Every file under the state folder, by path, with its bytes."""
        found = {}
        for root, _, names in os.walk(os.path.join(self.folder, "state")):
            for name in names:
                with open(os.path.join(root, name), "rb") as file:
                    found[os.path.join(root, name)] = file.read()
        return found


class Client:
    """One TCP connection: requests with ids; pushes are set aside in ``pushes``."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""
        self.ids = itertools.count(1)
        self.pushes: list[dict[str, Any]] = []

    def send(self, op: str, **fields: Any) -> int:
        request_id = next(self.ids)
        fields = {k: v for k, v in fields.items() if v is not None}
        self.sock.sendall(json.dumps({"op": op, "id": request_id, **fields}).encode() + b"\n")
        return request_id

    def receive(self) -> dict[str, Any]:
        """The next reply (skipping pushes); raises ConnectionError at the end of the stream."""
        while True:
            while b"\n" not in self.buffer:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed")
                self.buffer += data
            line, _, self.buffer = self.buffer.partition(b"\n")
            message: dict[str, Any] = json.loads(line)
            if "id" in message:
                return message
            self.pushes.append(message)

    def quiet(self, seconds: float) -> bool:
        """True if nothing at all (no reply, no push) arrives within ``seconds``."""
        return not self.buffer and not select.select([self.sock], [], [], seconds)[0]

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        request_id = self.send(op, **fields)
        reply = self.receive()
        assert reply["id"] == request_id, reply
        return reply

    def ok(self, op: str, **fields: Any) -> dict[str, Any]:
        reply = self.request(op, **fields)
        assert reply["op"] == op, reply
        return reply

    def history(self, room: str) -> list[dict[str, Any]]:
        """Every kept message of ``room``, oldest first."""
        messages: list[dict[str, Any]] = []
        before = None
        while True:
            page = self.ok("history", room=room, before=before, limit=200)
            messages[:0] = page["messages"]
            if not page["more"] or not page["messages"]:
                return messages
            before = page["messages"][0]["seq"]

    def close(self) -> None:
        self.sock.close()
