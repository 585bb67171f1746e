"""``GET /metrics`` of a real daemon, read by prometheus_client's parser of the text format."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

import residentd
from residentd.daemon.control import admin_request
from residentd.daemon.metrics import CLOSE_REASONS, ERROR_KINDS, REFUSE_REASONS
from support import wait_until

from .helpers import Daemon
from .helpers import residentd as run_residentd


def scrape(admin: str) -> tuple[str, dict[str, dict[tuple[tuple[str, str], ...], float]]]:
    status, body = admin_request(admin, "GET", "/metrics")
    assert status == 200
    text = body.decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        assert family.documentation, f"{family.name} has no HELP"
        assert family.type in ("counter", "gauge"), f"{family.name} has no TYPE"
        for sample in family.samples:
            assert isinstance(sample, Sample)
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return text, samples


def declared_before_use(text: str) -> None:
    """Every sample follows its family's ``# HELP`` and ``# TYPE``; no family twice."""
    helped: set[str] = set()
    typed: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in helped, f"HELP {name} twice"
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in helped and name not in typed, line
            typed[name] = kind
        else:
            name = line.split("{")[0].split(" ")[0]
            assert name in typed, f"sample before its TYPE: {line}"
            value = line.rsplit(" ", 1)[1]
            float(value)
            if typed[name] == "counter":
                assert name.endswith("_total"), name


def test_metrics_are_complete_from_the_start(tmp_path: Path) -> None:
    admin = f"unix:{tmp_path / 'a.sock'}"
    config = tmp_path / "echo.toml"
    config.write_text("max_connections_per_ip = 1\n")
    before = time.time()
    daemon = Daemon(tmp_path, "echo", "--config", str(config), "--admin", admin)
    with daemon:
        wait_until(lambda: Path(admin[5:]).exists(), what="admin socket")
        text, samples = scrape(admin)
        declared_before_use(text)
        app = ("app", "echo")
        refused = samples["residentd_refused_total"]
        assert {dict(k)["reason"] for k in refused} == set(REFUSE_REASONS)
        assert set(refused.values()) == {0}
        closed = {dict(k)["reason"] for k in samples["residentd_closed_total"]}
        assert closed == set(CLOSE_REASONS)
        errors = {dict(k)["kind"] for k in samples["residentd_errors_total"]}
        assert errors == set(ERROR_KINDS)
        assert samples["residentd_reloads_total"] == {
            (app, ("result", "failed")): 0,
            (app, ("result", "ok")): 0,
        }
        assert set(samples["residentd_log_records_dropped_total"]) == {
            (app, ("why", "queue-full")),
            (app, ("why", "rate-limited")),
        }
        (start,) = samples["process_start_time_seconds"].values()
        assert before - 5 <= start <= time.time()
        ((labels, value),) = samples["residentd_build_info"].items()
        assert value == 1
        assert dict(labels)["version"] == residentd.__version__
        assert dict(labels)["loop"] in ("uvloop", "asyncio")

        # A flood of refusals: counted, and the rate limit holds most of their log lines back.
        held = socket.create_connection(("127.0.0.1", daemon.port))
        for _ in range(30):
            with socket.create_connection(("127.0.0.1", daemon.port)) as sock:
                sock.makefile("rb").read()
        held.close()
        assert run_residentd("reload", "--admin", admin).returncode == 0
        config.write_text("max_connections_per_ip = many\n")
        assert run_residentd("reload", "--admin", admin).returncode == 1
        _, samples = scrape(admin)
        assert samples["residentd_refused_total"][(app, ("reason", "max-connections-per-ip"))] == 30
        assert samples["residentd_reloads_total"] == {
            (app, ("result", "failed")): 1,
            (app, ("result", "ok")): 1,
        }
        dropped = samples["residentd_log_records_dropped_total"]
        assert dropped[(app, ("why", "rate-limited"))] >= 20
        assert dropped[(app, ("why", "queue-full"))] == 0
