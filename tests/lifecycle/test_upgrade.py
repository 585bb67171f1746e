"""Live upgrade: a new generation takes over listeners, state and connections while clients
keep talking (real processes, sockets, signals; counted at the client)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis

from residentd.daemon.control import admin_request

from .helpers import residentd
from .upgrading import (
    Generations,
    Load,
    assert_clean,
    dataset,
    same_dataset,
    upgrade_under_load,
)


def echo_exchange(index: int, n: int) -> tuple[bytes, bytes]:
    line = b"client %d request %d\n" % (index, n)
    return line, line


def incr_exchange(index: int, n: int) -> tuple[bytes, bytes]:
    key = b"load:%d" % index
    return b"*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n" % (len(key), key), b":%d\r\n" % n


@pytest.mark.slow
def test_echo_under_load_survives_five_upgrades(tmp_path: Path) -> None:
    with Generations(tmp_path, "echo") as daemon:
        counts = upgrade_under_load(daemon, Load(daemon.port, 200, echo_exchange), times=5)
        assert_clean(counts)
        status = json.loads(residentd("status", "--pidfile", daemon.pidfile, "--json").stdout)
        assert status["pid"] == daemon.pid
    assert "upgraded: pid" in daemon.log()


def fill(client: redis.Redis) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(500):
        pipe.set(f"s:{i}", f"value {i}" * (i % 7))
        pipe.rpush(f"l:{i % 50}", i)
        pipe.hset(f"h:{i % 40}", f"f{i}", i)
        pipe.sadd(f"z:{i % 30}", i)
    for i in range(0, 500, 5):
        pipe.expire(f"s:{i}", 1000 + i)
    pipe.pexpire("l:3", 123_456)
    pipe.execute()


@pytest.mark.slow
def test_kv_under_load_keeps_every_key_and_connection_over_five_upgrades(
    tmp_path: Path,
) -> None:
    with Generations(tmp_path, "kv") as daemon:
        client = redis.Redis(protocol=2, port=daemon.port)
        fill(client)

        def skip(key: bytes) -> bool:
            return key.startswith(b"load:") or key == b"m"

        before = dataset(client, skip)
        client.close()
        # Connection state across upgrades: a name, a MULTI queue, subscriptions.
        named = redis.Redis(protocol=2, port=daemon.port, single_connection_client=True)
        named.client_setname("kept")
        subscriber = redis.Redis(protocol=2, port=daemon.port).pubsub()
        subscriber.subscribe("news")
        subscriber.psubscribe("al*")
        assert subscriber.get_message(timeout=5)["type"] == "subscribe"
        assert subscriber.get_message(timeout=5)["type"] == "psubscribe"
        multi = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
        multi.sendall(b"MULTI\r\nSET m 1\r\nINCR m\r\n")
        assert _read_until(multi, b"+QUEUED\r\n+QUEUED\r\n") == b"+OK\r\n+QUEUED\r\n+QUEUED\r\n"

        counts = upgrade_under_load(daemon, Load(daemon.port, 200, incr_exchange), times=5)
        assert_clean(counts)

        multi.sendall(b"EXEC\r\n")
        assert _read_until(multi, b":2\r\n") == b"*2\r\n+OK\r\n:2\r\n"
        multi.close()
        assert named.client_getname() == "kept"
        named.close()
        publisher = redis.Redis(protocol=2, port=daemon.port)
        assert publisher.publish("news", "one") == 1
        assert publisher.publish("alpha", "two") == 1
        got = [subscriber.get_message(timeout=5) for _ in range(2)]
        assert [(m["type"], m["data"]) for m in got] == [("message", b"one"), ("pmessage", b"two")]
        subscriber.close()
        after = dataset(publisher, skip)
        same_dataset(before, after)
        # Every INCR of every client was applied once: its last reply was its count.
        # Every client's key is there (each INCR reply was checked: none lost, none twice).
        assert publisher.dbsize() == len(before) + 1 + counts.connects
        publisher.close()


def _read_until(sock: socket.socket, end: bytes) -> bytes:
    data = b""
    while not data.endswith(end):
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed after {data!r}")
        data += chunk
    return data


def test_half_a_line_at_the_handover_arrives_whole(tmp_path: Path, loop_kind: str) -> None:
    with Generations(tmp_path, "echo", loop=loop_kind) as daemon:
        sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
        sock.sendall(b"first\nhal")
        assert _read_until(sock, b"\n") == b"first\n"
        daemon.upgrade_ok(cli=True)
        sock.sendall(b"f of it\n")
        assert _read_until(sock, b"\n") == b"half of it\n"
        sock.close()


def test_half_a_command_at_the_handover_arrives_whole(tmp_path: Path) -> None:
    with Generations(tmp_path, "kv") as daemon:
        sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
        # Cut inside the third argument: the parser holds two arguments and part of one.
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$11\r\nhello")
        time.sleep(0.2)
        daemon.upgrade_ok()
        sock.sendall(b" worl")
        time.sleep(0.05)
        sock.sendall(b"d\r\n*2\r\n$3\r\nGET\r\n$4\r\nhalf\r\n")
        assert _read_until(sock, b"hello world\r\n") == b"+OK\r\n$11\r\nhello world\r\n"
        sock.close()


def test_a_kv_clients_database_and_watched_keys_cross_the_handover(tmp_path: Path) -> None:
    with Generations(tmp_path, "kv") as daemon:
        watcher = redis.Redis(
            port=daemon.port, db=3, socket_timeout=10, single_connection_client=True
        )
        other = redis.Redis(
            port=daemon.port, db=3, socket_timeout=10, single_connection_client=True
        )
        watcher.set("k", "v")
        watcher.execute_command("WATCH", "k")
        daemon.upgrade_ok()
        assert watcher.get("k") == b"v"  # still database 3, its keys carried
        other.set("k", "touched")  # a new-generation write touches the old watch
        watcher.execute_command("MULTI")
        watcher.execute_command("SET", "k", "mine")
        assert watcher.execute_command("EXEC") is None
        assert other.get("k") == b"touched"
        watcher.close()
        other.close()


def test_sigusr2_upgrades(tmp_path: Path) -> None:
    with Generations(tmp_path, "echo") as daemon:
        sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
        old = daemon.pid
        assert daemon.first is not None and old == daemon.first.pid
        daemon.first.send_signal(signal.SIGUSR2)
        assert daemon.first.wait(timeout=30) == 0
        assert daemon.pid not in (None, old)
        sock.sendall(b"still here\n")
        assert _read_until(sock, b"\n") == b"still here\n"
        assert "SIGUSR2: live upgrade" in daemon.log()


def _listening(daemon: Generations) -> list[str]:
    status, body = admin_request(f"unix:{daemon.pidfile}.sock", "GET", "/status")
    assert status == 200
    return sorted(json.loads(body)["listening"])


def _chat_line(sock: socket.socket, buffer: bytearray) -> dict[str, object]:
    while b"\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("chat connection closed")
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return dict(json.loads(line))


@pytest.mark.slow
def test_chat_users_keep_their_rooms_and_every_message_once(tmp_path: Path) -> None:
    # 300 signed-in members of one room, and a poster that keeps posts in flight through five
    # upgrades: every member gets every seq once, in order, and every post its reply.
    state = str(tmp_path / "state")  # its journal goes on in each new generation
    chat_args = ("--rate-limit", "0", "--http-listen", "127.0.0.1:0", "--state-dir", state)
    with Generations(tmp_path, "chat", *chat_args) as d:
        members = []
        for i in range(300):
            sock = socket.create_connection(("127.0.0.1", d.port), timeout=30)
            buffer = bytearray()
            sock.sendall(b'{"op":"hello","v":1,"user":"u%d","id":1}\n' % i)
            sock.sendall(b'{"op":"join","room":"lobby","id":2}\n')
            members.append((sock, buffer))
        poster = socket.create_connection(("127.0.0.1", d.port), timeout=30)
        poster.sendall(b'{"op":"hello","v":1,"user":"poster","id":1}\n')
        poster.sendall(b'{"op":"join","room":"lobby","id":2}\n')
        pbuf = bytearray()
        posted = 0
        stop = threading.Event()

        def post() -> None:  # one post every 5 ms, whatever the server is doing
            nonlocal posted
            while not stop.is_set():
                posted += 1
                poster.sendall(
                    b'{"op":"post","room":"lobby","text":"m%d","id":%d}\n' % (posted, 100 + posted)
                )
                time.sleep(0.005)

        listening = _listening(d)  # the web port was 0: the same one it got goes on
        pids = {d.pid}
        thread = threading.Thread(target=post)
        thread.start()
        try:
            for _ in range(5):
                time.sleep(0.1)
                pids.add(d.upgrade_ok())
        finally:
            stop.set()
            thread.join()
        assert len(pids) == 6, "a new pid each time"
        assert _listening(d) == listening
        replied: set[int] = set()
        while len(replied) < posted:  # every post is answered, none twice
            reply = _chat_line(poster, pbuf)
            assert reply["op"] not in ("bye", "error"), reply
            if reply["op"] == "post":
                assert int(reply["id"]) not in replied  # type: ignore[call-overload]
                replied.add(int(reply["id"]))  # type: ignore[call-overload]
        seqs: list[list[int]] = [[] for _ in members]
        for index, (sock, buffer) in enumerate(members):
            while len(seqs[index]) < posted:
                message = _chat_line(sock, buffer)
                if message["op"] == "message":
                    seqs[index].append(int(message["seq"]))  # type: ignore[call-overload]
                assert message["op"] not in ("bye", "error", "left"), message
        first = seqs[0][0]
        for got in seqs:
            assert got == list(range(first, first + posted))
        poster.sendall(b'{"op":"ping","id":9}\n')
        while (reply := _chat_line(poster, pbuf)).get("id") != 9:
            pass
        assert reply["op"] == "pong"
        for sock, _ in members:
            sock.close()
        poster.close()


@pytest.mark.slow
def test_a_persisted_kv_journals_on_after_an_upgrade(tmp_path: Path) -> None:
    # The new generation takes the state from the socket, then appends to the same journal:
    # a cold start from the files afterwards has every write, from before and after.
    data = tmp_path / "data"
    args = ("--dir", str(data), "--appendonly", "yes", "--appendfsync", "always")
    with Generations(tmp_path, "kv", *args) as daemon:
        client = redis.Redis(protocol=2, port=daemon.port)
        fill(client)
        daemon.upgrade_ok()
        client.set("after", "the upgrade")
        client.rpush("l:1", "more")
        before = dataset(client)
        client.close()
    (tmp_path / "output").unlink()
    with Generations(tmp_path, "kv", *args) as again:
        client = redis.Redis(protocol=2, port=again.port)
        same_dataset(before, dataset(client))
        client.close()


GOODBYE_APP = """
from residentd.app import App, Session
from residentd.codecs.lines import LineCodec

app = App("goodbye")


class Plain(Session):
    def on_message(self, line: bytes) -> None:
        self.send(line)

    def on_shutdown(self) -> None:
        self.send(b"goodbye")


app.service("main", Plain, codec=LineCodec, listen=["127.0.0.1:0"])
"""


def test_a_session_that_does_not_opt_in_gets_the_apps_goodbye(tmp_path: Path) -> None:
    module = tmp_path / "goodbye.py"
    module.write_text(GOODBYE_APP)
    with Generations(tmp_path, f"{module}:app") as daemon:
        sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
        sock.sendall(b"hi\n")
        assert _read_until(sock, b"hi\n") == b"hi\n"
        daemon.upgrade_ok()
        assert _read_until(sock, b"goodbye\n") == b"goodbye\n"
        assert sock.recv(100) == b""  # then closed, gracefully
        sock.close()
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as fresh:
            fresh.sendall(b"new\n")
            assert _read_until(fresh, b"\n") == b"new\n"


def test_a_daemonized_daemon_upgrades_from_its_start_folder(tmp_path: Path) -> None:
    # --daemon moves to /: the new generation must still find the app given by a relative
    # path, as the command line said it from the folder it was started in.
    (tmp_path / "goodbye.py").write_text(GOODBYE_APP)
    daemon = Generations(tmp_path, "goodbye.py:app", "--daemon")
    started = subprocess.run(daemon.command, cwd=tmp_path, capture_output=True, timeout=60)
    assert started.returncode == 0, started.stderr
    try:
        sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
        old = daemon.upgrade_ok()
        assert daemon.upgrade_ok() != old
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as fresh:
            fresh.sendall(b"new\n")
            assert _read_until(fresh, b"\n") == b"new\n"
        # The first connection did not opt in: it got its goodbye at the first upgrade.
        assert _read_until(sock, b"goodbye\n") == b"goodbye\n"
        sock.close()
    finally:
        daemon.stop()


# A session whose own methods fail (the one that read one line) against one that works.
FAILING_SESSIONS = {
    # export_state returns what is not plain data: that session stays behind, with the goodbye.
    "export-not-plain-data": (
        "    def export_state(self) -> object:\n"
        "        return {'odd': object()} if self.conn.messages_in == 1 else {}\n\n",
        b"goodbye\n",
        "export_state failed",
    ),
    # import_state raises in the new generation: that connection gets an error, then a close.
    "import-raises": (
        "    def export_state(self) -> object:\n"
        "        return {'n': self.conn.messages_in}\n\n"
        "    def import_state(self, state: dict) -> None:\n"
        "        if state['n'] == 1:\n"
        "            raise RuntimeError('cannot take this one')\n\n",
        b"ERR internal-error the server failed to handle a message\n",
        "import_state raised",
    ),
}


@pytest.mark.parametrize("case", sorted(FAILING_SESSIONS))
def test_a_session_that_fails_its_handover_fails_alone(tmp_path: Path, case: str) -> None:
    methods, heard, logged = FAILING_SESSIONS[case]
    module = tmp_path / "failing.py"
    module.write_text(
        GOODBYE_APP.replace("    def on_shutdown(self)", methods + "    def on_shutdown(self)")
    )
    with Generations(tmp_path, f"{module}:app") as daemon:
        failing = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
        fine = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
        failing.sendall(b"one\n")
        fine.sendall(b"one\ntwo\n")
        assert _read_until(failing, b"one\n") == b"one\n"
        assert _read_until(fine, b"two\n") == b"one\ntwo\n"
        daemon.upgrade_ok()
        assert _read_until(failing, b"\n") == heard
        assert failing.recv(100) == b""  # then closed
        fine.sendall(b"three\n")
        assert _read_until(fine, b"three\n") == b"three\n"
        failing.close()
        fine.close()
    assert logged in daemon.log()
