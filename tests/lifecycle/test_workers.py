"""``workers > 1``: a master and its workers as real processes, sent real signals from here,
with real clients counting what they get (daemon/supervisor.py, daemon/worker.py)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from residentd.daemon.control import admin_request
from support import free_port, port_answers, wait_until

from .helpers import residentd
from .pipelining import Echo, stop_under_load
from .upgrading import Load, assert_clean
from .workers import Master, ShortClients, log_lines

pytestmark = pytest.mark.same_either_way

APPS = str(Path(__file__).with_name("apps.py"))


def echo_once(port: int, line: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(line)
        return sock.makefile("rb").readline()


@pytest.mark.slow
def test_two_workers_serve_one_port_with_status_and_metrics(tmp_path: Path) -> None:
    master = Master(tmp_path).start()
    try:
        pids = master.wait_ready()
        assert len(set(pids.values())) == 2 and master.pid not in pids.values()
        for n in range(200):
            assert echo_once(master.port, b"line %d\n" % n) == b"line %d\n" % n

        # (the start's probe of the port is a connection without a message)
        wait_until(lambda: master.admin()["messages_out"] == 200, what="every reply counted")
        status = master.admin()
        assert status["role"] == "master" and status["pid"] == master.pid
        assert status["messages_in"] == status["messages_out"] == 200
        assert all(row["messages_in"] > 20 for row in status["workers"])  # the kernel spread them
        assert sum(row["messages_in"] for row in status["workers"]) == 200
        assert status["connections_total"] >= 200

        text = residentd("status", "--pidfile", master.pidfile)
        assert text.returncode == 0, text.stderr
        for slot, pid in pids.items():
            assert re.search(rf"^\s*{slot}\s+{pid}\s+ready\b", text.stdout, re.M), text.stdout

        code, body = admin_request(f"unix:{master.admin_path}", "GET", "/metrics")
        assert code == 200
        families = {family.name: family for family in text_string_to_metric_families(body.decode())}
        names = [
            line.split()[2] for line in body.decode().splitlines() if line.startswith("# TYPE")
        ]
        assert len(names) == len(set(names))  # one TYPE per family
        served = {
            sample.labels["worker"]: sample.value
            for sample in families["residentd_messages_in"].samples
        }
        assert set(served) == {"0", "1"} and sum(served.values()) == 200
        workers = families["residentd_workers"].samples
        assert {s.labels["state"]: s.value for s in workers}["ready"] == 2

        # a second master on the same port is refused, SO_REUSEPORT or not
        second = residentd("run", "echo", "--workers", "2", "--listen", f"127.0.0.1:{master.port}")
        assert second.returncode == 1 and "Address already in use" in second.stderr

        master.signal(signal.SIGUSR1)  # a row per worker in the log
        for slot, pid in pids.items():
            row = f"SIGUSR1: worker {slot}, pid {pid}, ready"
            wait_until(lambda: log_lines(master.log(), row), what=row)  # noqa: B023
    finally:
        master.stop()
    assert master.process is not None and master.process.returncode == 0
    master.wait_gone(list(pids.values()))


def unix_echo(path: Path, line: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(line)
        return sock.makefile("rb").readline()


@pytest.mark.slow
def test_a_killed_or_silent_worker_is_replaced(tmp_path: Path) -> None:
    unix = tmp_path / "echo.sock"  # one socket every worker shares
    master = Master(
        tmp_path, "echo", "--worker-heartbeat-timeout", "2", "--listen", f"unix:{unix}"
    ).start()
    try:
        first = master.wait_ready()
        assert unix_echo(unix, b"unix\n") == b"unix\n"
        os.kill(first[0], signal.SIGKILL)
        second = master.wait_ready(exclude={first[0]})
        assert second[1] == first[1]  # the other slot was left alone
        died = log_lines(master.log(), f"pid {first[0]} died")
        assert len(died) == 1 and "signal SIGKILL" in died[0] and "worker 0:" in died[0]
        for n in range(50):  # reconnecting clients are served
            assert echo_once(master.port, b"again %d\n" % n) == b"again %d\n" % n

        os.kill(second[1], signal.SIGSTOP)  # alive, but answering nothing
        third = master.wait_ready(exclude={second[1]})
        assert third[0] == second[0]
        log = master.log()
        assert log_lines(log, f"pid {second[1]} has not answered the heartbeat")
        assert "signal SIGKILL" in log_lines(log, f"pid {second[1]} died")[0]
        assert master.admin()["worker_restarts"] == 2
        assert echo_once(master.port, b"last\n") == b"last\n"
        for n in range(20):  # the shared Unix socket outlived both deaths
            assert unix_echo(unix, b"unix %d\n" % n) == b"unix %d\n" % n
    finally:
        master.stop()
    assert master.process is not None and master.process.returncode == 0
    assert not unix.exists()  # the master removed it


@pytest.mark.slow
def test_a_worker_that_crashes_at_start_backs_off(tmp_path: Path) -> None:
    master = Master(tmp_path, f"{APPS}:crashy").start()
    try:

        def deaths() -> list[float]:
            lines = log_lines(master.log(), "worker 0: pid")
            return [
                float(m.group(1))
                for line in lines
                if (
                    m := re.search(
                        r"exit code 3\) after [\d.]+ s; starting another in ([\d.]+) s", line
                    )
                )
            ]

        delays = wait_until(lambda: len(deaths()) >= 4 and deaths(), timeout=40, what="4 deaths")
        assert delays[:4] == [0.0, 0.1, 0.2, 0.4]
        assert master.process is not None and master.process.poll() is None  # the master stays
        assert master.admin()["worker_restarts"] >= 4
    finally:
        master.stop()
    assert master.process is not None and master.process.returncode == 0


@pytest.mark.slow
def test_rolling_restart_refuses_and_loses_nothing(tmp_path: Path) -> None:
    config = tmp_path / "echo.toml"
    config.write_text("max_line = 1000\n")
    master = Master(tmp_path, "echo", "--config", str(config)).start()
    clients = None
    try:
        first = master.wait_ready()
        clients = ShortClients(master.port).start()
        os.kill(master.pid, signal.SIGHUP)
        second = master.wait_ready(exclude=set(first.values()))
        master.wait_gone(set(first.values()))
        replies = clients.tally.replies
        wait_until(lambda: clients.tally.replies > replies + 50, what="more replies")

        # reload through the admin endpoint: it answers once every slot was replaced
        config.write_text("max_line = 2000\n")
        result = residentd("reload", "--pidfile", master.pidfile, timeout=90)
        assert result.returncode == 0, result.stdout + result.stderr
        answer = json.loads(result.stdout)
        assert (answer["applied"], answer["needs_restart"]) == ({"max_line": 2000}, {})
        assert answer["ok"] and [row["old_pid"] for row in answer["workers"]] == [
            second[0],
            second[1],
        ]
        third = master.wait_ready(exclude=set(second.values()))
        assert {row["pid"] for row in answer["workers"]} == set(third.values())

        config.write_text("max_line = 'many'\n")  # refused: the workers stay
        result = residentd("reload", "--pidfile", master.pidfile, timeout=30)
        assert result.returncode == 1 and "max_line" in result.stderr
        assert master.wait_ready() == third
        tally = clients.stop()
        clients = None
    finally:
        if clients is not None:
            clients.stop()
        master.stop()
    assert_clean(tally)
    assert tally.replies == tally.connects > 100
    assert len(log_lines(master.log(), "replaced by pid")) == 4


def test_sigterm_to_the_master_under_load_loses_no_reply(tmp_path: Path) -> None:
    master = Master(tmp_path, "echo", "--log-format", "json").start()
    pids = master.wait_ready()
    try:
        tallies = asyncio.run(stop_under_load(master.port, master.pid, Echo(), clients=100))
        assert master.wait(20) == 0
    finally:
        master.stop()
    master.wait_gone(list(pids.values()))
    lines = [json.loads(line) for line in master.log().splitlines()]
    stopped = [line for line in lines if line["msg"] == "stopped"]
    assert sorted(line["worker"] for line in stopped) == [0, 1]
    received = sum(tally.received for tally in tallies)
    assert [tally.ended for tally in tallies] == ["eof"] * 100
    assert sum(line["messages_in"] for line in stopped) == received
    assert sum(line["messages_out"] for line in stopped) == received
    assert all(line["dropped_connections"] == 0 for line in stopped)
    assert received < sum(tally.sent for tally in tallies)


def test_workers_end_when_the_master_is_killed(tmp_path: Path) -> None:
    master = Master(tmp_path).start()
    try:
        pids = master.wait_ready()
        os.kill(master.pid, signal.SIGKILL)
        master.wait_gone(list(pids.values()))
    finally:
        master.stop()
    wait_until(lambda: not port_answers(master.port), what="nothing listening")


def test_kv_refuses_workers(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    result = residentd("run", "kv", "--workers", "2", "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert "workers = '2'" in result.stderr and "one process's memory" in result.stderr
    assert time.monotonic() - started < 20 and not port_answers(port)
    echo = residentd("config", "echo", "--workers", "auto")
    assert echo.returncode == 0 and 'workers = "auto"' in echo.stdout
    bad = residentd("config", "echo", "--workers", "0")
    assert bad.returncode == 2 and "workers = '0'" in bad.stderr


def echo_exchange(index: int, n: int) -> tuple[bytes, bytes]:
    line = b"client %d request %d\n" % (index, n)
    return line, line


@pytest.mark.slow
def test_upgrade_with_workers_keeps_every_connection(tmp_path: Path) -> None:
    master = Master(tmp_path).start()
    load = None
    try:
        pids = master.wait_ready()
        load = Load(master.port, 60, echo_exchange).start()
        for execs in range(2):
            replies = load.counts.replies
            if execs == 0:  # the admin endpoint's answer
                code, body = admin_request(
                    f"unix:{master.admin_path}", "POST", "/upgrade", timeout=120
                )
                answer = json.loads(body)
                assert code == 200 and answer["ok"], answer
                assert answer["pid"] == master.pid  # the master keeps its pid, and runs anew
                handed = {(row["old_pid"], row["pid"]) for row in answer["workers"]}
            else:  # what the command says
                done = residentd("upgrade", "--pidfile", master.pidfile)
                assert done.returncode == 0, done.stderr
                assert f"upgraded: master pid {master.pid} runs the new code" in done.stdout
                found = re.findall(r"worker \d: pid (\d+) handed over to pid (\d+)", done.stdout)
                handed = {(int(old), int(new)) for old, new in found}
            wait_until(lambda: master.admin()["master_execs"] == execs + 1, what="the exec")  # noqa: B023
            assert {old for old, _ in handed} == {pids[0], pids[1]}
            new = master.wait_ready(exclude=set(pids.values()))
            assert {pid for _, pid in handed} == set(new.values())
            master.wait_gone(set(pids.values()))
            pids = new
            wait_until(lambda: load.counts.replies > replies + 300, what="replies")  # noqa: B023
        counts = load.stop()
        load = None
        assert master.process is not None and master.process.poll() is None
    finally:
        if load is not None:
            load.stop()
        master.stop()
    assert_clean(counts)
    assert len(log_lines(master.log(), "upgraded from pid")) == 4
    assert len(log_lines(master.log(), "2 workers adopted")) == 2
    assert master.process is not None and master.process.returncode == 0
    master.wait_gone(list(pids.values()))  # the adopted workers were stopped too


VERSIONED = """
import os
from residentd.app import App, Session
from residentd.codecs.lines import LineCodec

app = App("versioned")


class Versioned(Session):
    def on_message(self, line: bytes) -> None:
        self.send(b"{version} " + line)

    def export_state(self) -> dict[str, object]:
        return {{}}

    def import_state(self, state: dict[str, object]) -> None:
        pass


app.service("main", Versioned, codec=LineCodec, listen=["127.0.0.1:0"])
"""
CRASHING = VERSIONED + "\n\n@app.on_start\ndef boom() -> None:\n    os._exit(3)\n"


@pytest.mark.slow
def test_a_new_worker_that_fails_leaves_the_old_ones_serving(tmp_path: Path) -> None:
    source = tmp_path / "versioned.py"
    source.write_text(VERSIONED.format(version="v1"))
    master = Master(tmp_path, f"{source}:app").start()
    try:
        pids = master.wait_ready()
        with socket.create_connection(("127.0.0.1", master.port), timeout=20) as sock:
            lines = sock.makefile("rb")
            sock.sendall(b"a\n")
            assert lines.readline() == b"v1 a\n"

            source.write_text(CRASHING.format(version="v9"))
            result = residentd("reload", "--pidfile", master.pidfile, timeout=90)
            assert result.returncode == 1
            assert "did not start (exit code 3)" in result.stderr
            assert master.wait_ready() == pids

            code, body = admin_request(f"unix:{master.admin_path}", "POST", "/upgrade", timeout=120)
            answer = json.loads(body)
            assert code == 500 and not answer["ok"]
            assert "worker 0: upgrade failed" in answer["error"], answer
            assert master.wait_ready() == pids
            sock.sendall(b"b\n")
            assert lines.readline() == b"v1 b\n"  # served on by the same worker

            source.write_text(VERSIONED.format(version="v2"))
            code, body = admin_request(f"unix:{master.admin_path}", "POST", "/upgrade", timeout=120)
            assert code == 200 and json.loads(body)["ok"], body
            sock.sendall(b"c\n")
            assert lines.readline() == b"v2 c\n"  # the same connection, the new code
        assert not set(master.wait_ready().values()) & set(pids.values())
    finally:
        master.stop()
