"""Redis's own tools against a kv daemon: redis-cli piped, interactive (on a pty) and in
--pipe mode, and redis-benchmark's default tests for kv's commands."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import time

import pytest

from .helpers import KvProcess, Raw

REDIS_CLI = shutil.which("redis-cli")
REDIS_BENCHMARK = shutil.which("redis-benchmark")
needs_cli = pytest.mark.skipif(
    REDIS_CLI is None, reason="redis-cli is not installed (Debian: apt-get install redis-tools)"
)
needs_benchmark = pytest.mark.skipif(
    REDIS_BENCHMARK is None,
    reason="redis-benchmark is not installed (Debian: apt-get install redis-tools)",
)


def cli(port: int, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    assert REDIS_CLI is not None
    return subprocess.run(
        [REDIS_CLI, "-p", str(port), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@needs_cli
def test_redis_cli_piped_commands(kv_process: KvProcess) -> None:
    Raw(kv_process.port).call("FLUSHALL")
    script = "\n".join(
        [
            "SET greeting 'hello world'",
            "GET greeting",
            "INCR counter",
            "RPUSH list a b c",
            "LRANGE list 0 -1",
            "HSET hash field value",
            "HGETALL hash",
            "GET missing",
            "NOSUCH arg",
            "DBSIZE",
        ]
    )
    done = cli(kv_process.port, "--no-raw", stdin=script + "\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "OK",
        '"hello world"',
        "(integer) 1",
        "(integer) 3",
        '1) "a"',
        '2) "b"',
        '3) "c"',
        "(integer) 1",
        '1) "field"',
        '2) "value"',
        "(nil)",
        "(error) ERR unknown command 'NOSUCH', with args beginning with: 'arg' ",
        "(integer) 4",
    ]


@needs_cli
def test_redis_cli_arguments_and_pipe_mode(kv_process: KvProcess) -> None:
    assert cli(kv_process.port, "FLUSHALL").stdout == "OK\n"
    assert cli(kv_process.port, "SET", "k", "v", "EX", "100").stdout == "OK\n"
    assert cli(kv_process.port, "TTL", "k").stdout == "100\n"
    mass = "".join(f"SET key:{i} {i}\r\n" for i in range(5000))
    done = cli(kv_process.port, "--pipe", stdin=mass)
    assert done.returncode == 0, done.stderr
    assert "errors: 0, replies: 5000" in done.stdout
    assert cli(kv_process.port, "DBSIZE").stdout == "5001\n"


@needs_cli
def test_redis_cli_interactive_session(kv_process: KvProcess) -> None:
    assert REDIS_CLI is not None
    Raw(kv_process.port).call("FLUSHALL")
    pid, fd = pty.fork()
    if pid == 0:  # the child: redis-cli on the pty, line editing off (no cursor queries)
        os.execve(
            REDIS_CLI, [REDIS_CLI, "-p", str(kv_process.port)], {**os.environ, "TERM": "dumb"}
        )
    screen = b""

    def expect(text: bytes) -> None:
        nonlocal screen
        deadline = time.monotonic() + 10
        while text not in screen:
            assert time.monotonic() < deadline, f"{text!r} not in {screen!r}"
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                screen += os.read(fd, 4096)

    try:
        prompt = b"127.0.0.1:%d> " % kv_process.port
        expect(prompt)
        os.write(fd, b"SET name kv\r")
        expect(b"OK")
        os.write(fd, b"GET name\r")
        expect(b'"kv"')
        os.write(fd, b"SADD s a\r")
        expect(b"(integer) 1")
        os.write(fd, b"quit\r")
        deadline = time.monotonic() + 10
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            assert time.monotonic() < deadline, "redis-cli did not quit"
            time.sleep(0.05)
    finally:
        os.close(fd)
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


@needs_benchmark
def test_redis_benchmark_default_run_completes_without_errors(kv_process: KvProcess) -> None:
    """redis-benchmark without -t runs its whole default list, in order; every test must run
    (an unknown command, SPOP or ZADD say, stops the whole run)."""
    assert REDIS_BENCHMARK is not None
    for pipeline in ("1", "16"):
        done = subprocess.run(
            [REDIS_BENCHMARK, "-p", str(kv_process.port), "-n", "1000", "-c", "20",
             "-r", "1000", "-P", pipeline, "-q", "--csv"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "rror" not in done.stdout + done.stderr, done.stdout + done.stderr
        names = [line.split(",")[0].strip('"') for line in done.stdout.splitlines()[1:]]
        assert names == [
            "PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "LPUSH", "RPUSH", "LPOP", "RPOP",
            "SADD", "HSET", "SPOP", "ZADD", "ZPOPMIN", "LPUSH (needed to benchmark LRANGE)",
            "LRANGE_100 (first 100 elements)", "LRANGE_300 (first 300 elements)",
            "LRANGE_500 (first 500 elements)", "LRANGE_600 (first 600 elements)",
            "MSET (10 keys)",
        ]  # fmt: skip
        for line in done.stdout.splitlines()[1:]:
            assert float(line.split(",")[1].strip('"')) > 0
