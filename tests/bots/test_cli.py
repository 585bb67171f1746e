"""``residentd bots`` as a command: every documented field in the JSON, CSV and HTML outputs,
a clear failure against a dead target, targets off loopback refused, users spread over several
targets."""

from __future__ import annotations

import csv
import json
import re
import socketserver
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from residentd.bots.cli import UsageError, parse_target, parse_targets
from support import free_port

from .helpers import Daemon, bots

pytestmark = pytest.mark.same_either_way

DOCS = Path(__file__).resolve().parents[2] / "docs" / "bots.md"


def documented_fields() -> list[str]:
    """The field paths of the results-document table in docs/bots.md."""
    text = DOCS.read_text()
    section = text.split("### The results document", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z0-9_.\[\]]+)` \|", section, flags=re.MULTILINE)


def lookup(document: Any, path: str) -> list[Any]:
    """Every value at ``path`` (``a.b``, ``list[].c``); raises KeyError when one is missing."""
    values = [document]
    for part in path.split("."):
        listed = part.endswith("[]")
        key = part[:-2] if listed else part
        found = []
        for value in values:
            if not isinstance(value, dict) or key not in value:
                raise KeyError(path)
            item = value[key]
            if listed:
                assert isinstance(item, list) and item, f"{path}: {key} is an empty list"
                found.extend(item)
            else:
                found.append(item)
        values = found
    return values


@pytest.fixture(scope="module")
def echo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("bots-echo")
    port = free_port()
    daemon = Daemon(tmp, "echo", "--listen", f"127.0.0.1:{port}")
    try:
        daemon.wait_port(port)
        done = bots(
            "--scenario", "echo", "--target", f"127.0.0.1:{port}", "--users", "6",
            "--duration", "5", "--processes", "2", "--server-pid", str(daemon.pid), "--soak",
            "--json", str(tmp / "results.json"), "--csv", str(tmp / "run"),
            "--report", str(tmp / "report"),
        )  # fmt: skip
    finally:
        daemon.stop()
    return {"done": done, "tmp": tmp}


def test_the_run_succeeds_and_prints_the_step_table(echo_run: dict[str, Any]) -> None:
    done = echo_run["done"]
    assert done.returncode == 0, done.stderr
    for heading in ("step", "count", "errors", "rps", "p50 ms", "p99.9 ms", "max ms"):
        assert heading in done.stdout
    assert re.search(r"^│ echo\s+│", done.stdout, flags=re.MULTILINE)
    assert "per online user" in done.stdout


def test_json_has_every_documented_field(echo_run: dict[str, Any]) -> None:
    fields = documented_fields()
    assert len(fields) > 80  # the table was found
    results = json.loads((echo_run["tmp"] / "results.json").read_text())
    missing = []
    for field in fields:
        try:
            lookup(results, field)
        except KeyError:
            missing.append(field)
    assert missing == []
    assert results["status"] == {"exit_code": 0, "ok": True, "reason": ""}
    assert results["load"]["processes"] == 2
    echo = next(step for step in results["steps"] if step["name"] == "echo")
    assert echo["count"] == results["summary"]["requests"] > 100
    assert echo["errors"] == 0
    assert 0 < echo["p50_ms"] <= echo["p90_ms"] <= echo["p99_ms"] <= echo["max_ms"]
    assert results["summary"]["users_peak"] == 6
    assert results["server"]["baseline_rss_bytes"] > 0
    assert results["server"]["soak"]["verdict"] in ("no leak", "leak suspected")
    assert [row["t"] for row in results["timeline"]] == list(range(1, 6))


def test_csv_files_hold_the_steps_and_the_timeline(echo_run: dict[str, Any]) -> None:
    tmp = echo_run["tmp"]
    with open(tmp / "run_steps.csv") as file:
        steps = list(csv.DictReader(file))
    assert [row["name"] for row in steps] == ["connect", "echo", "requests"]
    assert int(steps[1]["count"]) > 100
    with open(tmp / "run_timeline.csv") as file:
        timeline = list(csv.DictReader(file))
    assert len(timeline) == 5
    assert {"t", "rps", "p99_ms", "users", "server_rss_bytes"} <= set(timeline[0])
    assert int(timeline[0]["server_rss_bytes"]) > 0


def test_html_report_is_self_contained_with_its_charts(echo_run: dict[str, Any]) -> None:
    page = (echo_run["tmp"] / "report" / "index.html").read_text()
    for title in ("throughput (per second)", "latency (ms)", "users online", "server RSS (MiB)"):
        assert f">{title}</text>" in page
    assert page.count("<svg") == 4
    assert page.count("<polyline") >= 8
    assert "memory per online user" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "<td>echo</td>" in page


def test_a_dead_target_fails_with_connection_errors() -> None:
    port = free_port()  # nothing listens there
    done = bots("--target", f"127.0.0.1:{port}", "--users", "3", "--duration", "2",
                "--processes", "1")  # fmt: skip
    assert done.returncode == 1
    assert f"could not connect to 127.0.0.1:{port}" in done.stderr
    assert "connection-refused" in done.stderr
    assert "connect: connection-refused" in done.stdout


def test_targets_off_loopback_are_refused() -> None:
    done = bots("--target", "192.0.2.1:7007", "--duration", "1")
    assert done.returncode == 2
    assert "not a loopback address" in done.stderr
    with pytest.raises(UsageError):
        parse_target("example.com:80", 1)
    assert parse_target("localhost", 7007) == ("127.0.0.1", 7007)
    assert parse_target(":7100", 7007) == ("127.0.0.1", 7100)
    assert parse_target("[::1]:7100", 7007) == ("::1", 7100)
    assert parse_target("127.0.0.9", 6380) == ("127.0.0.9", 6380)


class CountingEcho(socketserver.ThreadingTCPServer):
    """A line echo server that counts the connections it accepted."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), EchoLines)
        self.accepted = 0
        self.lock = threading.Lock()


class EchoLines(socketserver.StreamRequestHandler):
    server: CountingEcho

    def handle(self) -> None:
        with self.server.lock:
            self.server.accepted += 1
        for line in self.rfile:
            self.wfile.write(line)


@pytest.fixture
def two_servers() -> Iterator[list[CountingEcho]]:
    servers = [CountingEcho(), CountingEcho()]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def test_several_targets_take_the_users_in_turn(two_servers: list[CountingEcho]) -> None:
    first, second = (server.server_address[1] for server in two_servers)
    done = bots("--scenario", "echo", "--target", f"127.0.0.1:{first},127.0.0.1:{second}",
                "--users", "6", "--duration", "2", "--processes", "2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [server.accepted for server in two_servers] == [3, 3]
    assert f"127.0.0.1:{first}, 127.0.0.1:{second}" in done.stdout


def test_targets_are_read_from_every_flag_in_order() -> None:
    assert parse_targets([], 7007) == [("127.0.0.1", 7007)]
    assert parse_targets(["7100,:7101", "127.0.0.2"], 7007) == [
        ("127.0.0.1", 7100),
        ("127.0.0.1", 7101),
        ("127.0.0.2", 7007),
    ]
    assert Counter(port for _, port in parse_targets(["1,2,1"], 9)) == {1: 2, 2: 1}
    with pytest.raises(UsageError, match="mix IPv4 and IPv6"):
        parse_targets(["127.0.0.1:1,[::1]:2"], 9)
    with pytest.raises(UsageError, match="not a loopback"):
        parse_targets(["127.0.0.1:1,192.0.2.1:2"], 9)


def test_usage_errors_name_what_is_wrong(tmp_path: Path) -> None:
    done = bots("--scenario", "no_such_module:Nope", "--duration", "1")
    assert done.returncode == 2 and "no_such_module" in done.stderr
    done = bots("--think", "sometimes", "--duration", "1")
    assert done.returncode == 2 and "think time" in done.stderr
    done = bots("--set", "colour=red", "--duration", "1")
    assert done.returncode == 2 and "no such option" in done.stderr


def test_a_user_scenario_from_a_file(tmp_path: Path) -> None:
    """The example of docs/bots.md, run against the echo daemon through ``file.py:Class``."""
    source = DOCS.read_text().split("# shout.py", 1)[1].split("```", 1)[0]
    scenario = tmp_path / "shout.py"
    # Against echo nothing is upper-cased: expect the text back as it was sent.
    scenario.write_text("#" + source.replace("self.text.upper()", "self.text"))
    port = free_port()
    daemon = Daemon(tmp_path, "echo", "--listen", f"127.0.0.1:{port}")
    try:
        daemon.wait_port(port)
        done = bots("--scenario", f"{scenario}:Shouter", "--target", str(port), "--users", "4",
                    "--duration", "2", "--processes", "1", "--think", "0.01",
                    "--json", str(tmp_path / "r.json"))  # fmt: skip
    finally:
        daemon.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "r.json").read_text())
    names = {step["name"] for step in results["steps"]}
    assert {"shout", "two-lines", "connect"} <= names
    assert results["scenario"] == "shout"
