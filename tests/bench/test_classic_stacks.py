"""The classic stacks of bench/classic_vs_resident.py answer the workload right: the WSGI app
over SQLite and over a real redis-server, the CGI handler run as a process per request behind
its HTTP front, the app under a short gunicorn run; and the load generator counts every
answer (its counts of ``incr`` equal the counters the servers end with).
"""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from residentd.apps.chat.tokens import make_token
from support import free_port, stop, wait_for_port

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from classic import load as L  # noqa: E402
from classic.app import ONLINE_FOR_MS, now_ms  # noqa: E402
from classic.sqlite_store import create  # noqa: E402
from classic.stores import open_store  # noqa: E402
from classic.wsgi import make_app  # noqa: E402

pytestmark = pytest.mark.same_either_way

Call = Callable[[str, str, Any], tuple[int, dict[str, Any]]]
REDIS = shutil.which("redis-server")
SECRET = "classic-test-secret"


def scenario(call: Call) -> None:
    """The workload's five operations and the app's refusals, checked answer by answer."""
    for user, room in (("ann", "a"), ("bob", "a"), ("cat", "b")):
        status, answer = call("POST", "/heartbeat", {"user": user, "room": room})
        assert status == 200 and answer["user"] == user and answer["room"] == room
        assert abs(answer["time"] - now_ms()) < 60_000
    status, answer = call("GET", "/who?room=a", None)
    assert status == 200 and answer["online"] == 2
    assert sorted(u["user"] for u in answer["users"]) == ["ann", "bob"]
    assert all(u["online"] for u in answer["users"])
    assert call("GET", "/who?room=b", None)[1]["users"] == [{"user": "cat", "online": True}]
    assert call("GET", "/who?room=empty", None)[1] == {"room": "empty", "online": 0, "users": []}

    seqs = [call("POST", "/post", {"user": "ann", "room": "a", "text": t})[1]["seq"]
            for t in ("one", "two", "three")]  # fmt: skip
    assert seqs == [1, 2, 3]
    status, answer = call("POST", "/post", {"user": "cat", "room": "b", "text": "hello b"})
    assert status == 200 and answer["room"] == "b" and answer["seq"] == 1
    status, answer = call("GET", "/history?room=a&limit=2", None)
    assert status == 200
    assert [(m["seq"], m["user"], m["text"]) for m in answer["messages"]] == [
        (2, "ann", "two"),
        (3, "ann", "three"),
    ]
    assert [m["text"] for m in call("GET", "/history?room=b&limit=20", None)[1]["messages"]] == [
        "hello b"
    ]

    assert call("POST", "/incr", {"user": "ann", "key": "visits"})[1]["value"] == 1
    assert call("POST", "/incr", {"user": "ann", "key": "visits", "by": 5})[1]["value"] == 6
    assert call("POST", "/incr", {"user": "bob", "key": "visits"})[1]["value"] == 1

    assert call("GET", "/post", None)[0] == 405
    assert call("GET", "/nowhere", None)[0] == 404
    status, answer = call("POST", "/post", {"user": "ann", "room": "a"})
    assert (status, answer["error"]) == (400, "invalid-value") and "text" in answer["detail"]
    assert call("POST", "/heartbeat", [1])[1]["error"] == "not-an-object"
    assert call("POST", "/heartbeat", b"{nope")[1]["error"] == "invalid-json"
    status, answer = call("POST", "/heartbeat", {"user": "no spaces", "room": "a"})
    assert (status, answer["error"]) == (400, "invalid-value") and "user" in answer["detail"]
    assert call("GET", "/history?room=a&limit=500", None)[0] == 400
    assert call("POST", "/incr", {"user": "ann", "key": "visits", "by": "1"})[0] == 400


def short_scenario(call: Call) -> None:
    """One request of each operation, and a refusal (for the slow stack)."""
    assert call("POST", "/heartbeat", {"user": "ann", "room": "a"})[0] == 200
    assert call("GET", "/who?room=a", None)[1]["users"] == [{"user": "ann", "online": True}]
    assert call("POST", "/post", {"user": "ann", "room": "a", "text": "hi"})[1]["seq"] == 1
    messages = call("GET", "/history?room=a&limit=20", None)[1]["messages"]
    assert [(m["seq"], m["user"], m["text"]) for m in messages] == [(1, "ann", "hi")]
    assert call("POST", "/incr", {"user": "ann", "key": "visits", "by": 2})[1]["value"] == 2
    assert call("GET", "/post", None)[0] == 405


def stale_presence(store_spec: str, call: Call) -> None:
    """A user whose last heartbeat is older than ONLINE_FOR is listed offline, with it."""
    store = open_store(store_spec)
    old = now_ms() - ONLINE_FOR_MS - 1000
    store.heartbeat("dan", "a", old)
    store.close()
    users = {u["user"]: u for u in call("GET", "/who?room=a", None)[1]["users"]}
    assert users["dan"] == {"user": "dan", "online": False, "last_seen": old}
    assert call("GET", "/who?room=a", None)[1]["online"] == 2


def encode(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def wsgi_caller(application: Callable[..., Any]) -> Call:
    def call(method: str, target: str, body: Any) -> tuple[int, dict[str, Any]]:
        path, _, query = target.partition("?")
        data = encode(body) if body is not None else b""
        environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path,
                                   "QUERY_STRING": query, "CONTENT_LENGTH": str(len(data)),
                                   "wsgi.input": io.BytesIO(data)}  # fmt: skip
        setup_testing_defaults(environ)
        started: list[str] = []
        out = b"".join(application(environ, lambda status, headers: started.append(status)))
        return int(started[0].split()[0]), json.loads(out)

    return call


def http_caller(port: int) -> tuple[Call, list[http.client.HTTPConnection]]:
    """Requests over one kept-alive connection, a new one whenever the server closed it."""
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=10)]

    def call(method: str, target: str, body: Any) -> tuple[int, dict[str, Any]]:
        conn = conns[-1]
        data = encode(body) if body is not None else None
        conn.request(method, target, body=data)
        response = conn.getresponse()
        answer = json.loads(response.read())
        if response.will_close:
            conn.close()
            conns.append(http.client.HTTPConnection("127.0.0.1", port, timeout=10))
        return response.status, answer

    return call, conns


@pytest.fixture
def sqlite_spec(tmp_path: Path) -> str:
    create(str(tmp_path / "app.db"))
    return f"sqlite:{tmp_path / 'app.db'}"


@pytest.fixture
def redis_spec(tmp_path: Path) -> Iterator[str]:
    if REDIS is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)], stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, process)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(process)


def test_wsgi_app_over_sqlite(sqlite_spec: str) -> None:
    call = wsgi_caller(make_app(sqlite_spec))
    scenario(call)
    stale_presence(sqlite_spec, call)


def test_wsgi_app_over_redis(redis_spec: str) -> None:
    call = wsgi_caller(make_app(redis_spec))
    scenario(call)
    stale_presence(redis_spec, call)


def test_wsgi_refuses_a_body_over_the_limit(sqlite_spec: str) -> None:
    call = wsgi_caller(make_app(sqlite_spec))
    text = "x" * 20_000
    status, answer = call("POST", "/post", {"user": "ann", "room": "a", "text": text})
    assert (status, answer["error"]) == (413, "too-large")


def test_history_keeps_the_last_hundred(sqlite_spec: str, redis_spec: str) -> None:
    for spec in (sqlite_spec, redis_spec):
        store = open_store(spec)
        for i in range(130):
            store.post("a", "ann", f"m{i}", now_ms())
        messages = store.history("a", 100)
        assert [m["text"] for m in messages] == [f"m{i}" for i in range(30, 130)]
        assert [m["seq"] for m in store.history("a", 3)] == [128, 129, 130]
        store.close()


def test_cgi_handler_speaks_cgi(sqlite_spec: str) -> None:
    body = json.dumps({"user": "ann", "room": "a", "text": "by cgi"}).encode()
    env = {"PATH": os.environ["PATH"], "CLASSIC_STORE": sqlite_spec, "REQUEST_METHOD": "POST",
           "PATH_INFO": "/post", "QUERY_STRING": "", "CONTENT_LENGTH": str(len(body))}  # fmt: skip
    done = subprocess.run([sys.executable, str(BENCH / "classic" / "cgi_handler.py")],
                          input=body, env=env, capture_output=True, check=True)  # fmt: skip
    head, _, answer = done.stdout.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [b"Status: 200 OK", b"Content-Type: application/json"]
    assert json.loads(answer)["seq"] == 1
    env.update(REQUEST_METHOD="GET", PATH_INFO="/history", QUERY_STRING="room=a", CONTENT_LENGTH="")
    done = subprocess.run([sys.executable, str(BENCH / "classic" / "cgi_handler.py")],
                          env=env, capture_output=True, check=True)  # fmt: skip
    assert json.loads(done.stdout.partition(b"\r\n\r\n")[2])["messages"][0]["text"] == "by cgi"


def test_cgi_front_runs_a_process_per_request(sqlite_spec: str) -> None:
    port = free_port()
    front = subprocess.Popen(
        [sys.executable, str(BENCH / "classic" / "cgi_front.py"), "--listen",
         f"127.0.0.1:{port}", "--store", sqlite_spec, "--max-children", "2"],
    )  # fmt: skip
    try:
        wait_for_port(port, front)
        call, conns = http_caller(port)
        short_scenario(call)
        assert len(conns) == 1  # all over one kept-alive connection
        import psutil

        reaped = psutil.Process(front.pid).cpu_times()
        # Every handler process has been waited for: their CPU time is the front's children's.
        assert reaped.children_user + reaped.children_system > 0
    finally:
        stop(front)


def test_gunicorn_serves_the_app(sqlite_spec: str) -> None:
    pytest.importorskip("gunicorn")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--chdir", str(BENCH), "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--log-level", "warning", "classic.wsgi:app"],
        env={**os.environ, "CLASSIC_STORE": sqlite_spec},
    )  # fmt: skip
    try:
        wait_for_port(port, server)
        call, conns = http_caller(port)
        scenario(call)
        assert len(conns) > 1  # sync workers close after each answer
    finally:
        stop(server)


# -- the load generator counts every answer ------------------------------------------------------


def run_load(port: int, framing: Callable[[L.Client], L.Conn],
             clients: list[tuple[list[bytes], list[tuple[str, bytes]]]],
             seconds: float) -> L.Tally:  # fmt: skip
    async def main() -> L.Tally:
        load = L.Load("127.0.0.1", port, framing)
        for index, (setup, cycle) in enumerate(clients):
            load.add(setup, cycle, f"127.0.0.{2 + index}")
        await load.start(timeout=20)
        await asyncio.sleep(seconds)
        return await load.stop(timeout=20)

    return asyncio.run(main())


def test_load_counts_every_http_answer(sqlite_spec: str) -> None:
    """Against a server that closes after every answer (wsgiref, HTTP/1.0-style), so clients
    connect again for each request: the incr answers counted equal the counters kept."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    import threading

    server = make_server("127.0.0.1", 0, make_app(sqlite_spec), handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        clients = []
        for index in range(3):
            requests = L.classic_requests(f"u{index}", "room0")
            clients.append(([requests["heartbeat"]], [(op, requests[op]) for op in L.OPS]))
        tally = run_load(server.server_port, L.HttpConn, clients, 0.5)
    finally:
        server.shutdown()
        server.server_close()
    assert tally.errors == 0, tally.first_error
    assert tally.requests == sum(tally.per_op.values()) > 10
    store = open_store(sqlite_spec)
    counters = sum(store.incr(f"u{index}", L.COUNTER, 0) for index in range(3))
    assert counters == tally.per_op["incr"]
    assert len(store.history("room0", 100)) == min(100, tally.per_op["post"])
    store.close()
    assert tally.latency.get_total_count() == tally.requests


def test_load_counts_every_chat_answer(tmp_path: Path) -> None:
    """Against residentd's chat: pushes are told from answers, every answer is counted, and
    the incr answers counted equal the counters the daemon ends with."""
    port = free_port()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "residentd", "run", "chat", "--listen", f"127.0.0.1:{port}",
         "--http-listen", f"127.0.0.1:{free_port()}", "--admin", "off", "--log-level",
         "WARNING", "--rate-limit", "0", "--rooms", "room0", "--secret", SECRET],
    )  # fmt: skip
    try:
        wait_for_port(port, daemon)
        clients = []
        for index in range(3):
            requests = L.chat_requests(f"u{index}", "room0")
            setup = [*L.chat_sign_in(f"u{index}", "room0", SECRET)]
            clients.append((setup, [(op, requests[op]) for op in L.OPS]))
        tally = run_load(port, L.ChatConn, clients, 0.5)
        assert tally.errors == 0, tally.first_error
        assert tally.requests == sum(tally.per_op.values()) > 10
        # Every post reaches the three members: pushes counted at the clients.
        assert tally.pushes >= 3 * tally.per_op["post"]
        total = 0
        for index in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                reader = sock.makefile("rb")
                token = make_token(SECRET, f"u{index}")  # the same token user: its state
                sock.sendall(L.chat_line("hello", 1, v=1, user=f"u{index}", token=token))
                sock.sendall(L.chat_line("state.get", 2, key=L.COUNTER))
                # Pushes (presence of the load's users leaving) may come between the answers.
                answer = json.loads(reader.readline())
                while answer.get("id") != 2:
                    answer = json.loads(reader.readline())
                total += answer["value"]
        assert total == tally.per_op["incr"]
    finally:
        stop(daemon)


# -- the bench's accounting --------------------------------------------------------------------


def test_server_cpu_counts_reaped_children() -> None:
    """A CGI handler's CPU time is the server's even after the process is gone: a parent that
    ran and waited for a busy child carries the child's time in its tree's CPU."""
    import psutil

    from classic_vs_resident import tree_cpu

    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    parent = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys, time\n"
         f"subprocess.run([sys.executable, '-c', {burn!r}])\n"
         f"print('reaped', flush=True)\ntime.sleep(30)"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline() == b"reaped\n"
        root = psutil.Process(parent.pid)
        assert root.children() == []
        assert tree_cpu([root]) >= 0.3
    finally:
        parent.kill()
        parent.wait()


def test_summary_takes_medians_and_ratios() -> None:
    from classic_vs_resident import Window, summary

    def window(stack: str, requests: int, cpu: float) -> Window:
        return Window(
            stack=stack,
            workload="mix",
            seconds=2.0,
            requests=requests,
            errors=0,
            pushes=0,
            server_cpu=cpu,
            front_cpu=0.0,
            client_cpu=0.0,
            other_cpu=0.0,
            rss=10_000_000,
            users=100,
            p50_us=1000,
            p99_us=5000,
            first_error="",
        )

    windows = [window("gunicorn-sqlite", n, 1.0) for n in (1000, 3000, 2000)]
    windows += [window("resident-tcp", n, 0.5) for n in (20_000, 10_000, 30_000)]
    rows = {r["stack"]: r for r in summary(windows, ["mix"], ["gunicorn-sqlite", "resident-tcp"])}
    assert rows["gunicorn-sqlite"]["per_cpu_second"] == 2000
    assert rows["gunicorn-sqlite"]["cpu_us_per_request"] == 500
    assert rows["resident-tcp"]["per_cpu_second"] == 40_000
    assert rows["gunicorn-sqlite"]["resident-tcp_ratio"] == 20
    assert rows["gunicorn-sqlite"]["rps"] == 1000
    assert rows["gunicorn-sqlite"]["bytes_per_user"] == 100_000
    assert rows["gunicorn-sqlite"]["resident-http_ratio"] == 0.0
