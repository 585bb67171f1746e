"""The master's listening sockets for its worker slots (daemon/slots.py), with real sockets."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest

from residentd.daemon import slots as slots_module
from residentd.daemon.metrics import merge_expositions
from residentd.daemon.slots import bind_slots
from support import free_port


def test_a_socket_per_slot_on_one_port_and_the_kernel_spreads_connections() -> None:
    bound = bind_slots({"echo": ["127.0.0.1:0"]}, 3, 128)
    try:
        assert bound.reuse_port
        socks = [slot["echo"][0] for slot in bound.sockets]
        assert len({id(sock) for sock in socks}) == 3
        port = socks[0].getsockname()[1]
        assert {sock.getsockname()[1] for sock in socks} == {port}
        assert [str(address) for address in bound.addresses()] == [f"127.0.0.1:{port}"]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(60)]
        accepted = []
        for sock in socks:
            sock.setblocking(False)
            count = 0
            while True:
                try:
                    sock.accept()[0].close()
                except BlockingIOError:
                    break
                count += 1
            accepted.append(count)
        assert sum(accepted) == 60 and all(accepted), accepted  # each slot got some
        for client in clients:
            client.close()
    finally:
        bound.close()


def test_without_reuse_port_every_slot_shares_one_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slots_module, "reuse_port_available", lambda: False)
    bound = bind_slots({"echo": ["127.0.0.1:0"]}, 2, 128)
    try:
        assert not bound.reuse_port
        assert bound.sockets[0]["echo"][0] is bound.sockets[1]["echo"][0]
    finally:
        bound.close()


def test_a_unix_address_is_one_socket_removed_at_close(tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"
    bound = bind_slots({"echo": [f"unix:{path}"]}, 2, 128)
    assert bound.sockets[0]["echo"][0] is bound.sockets[1]["echo"][0]
    assert path.exists()
    bound.close()
    assert not path.exists()


def test_a_port_taken_by_reuse_port_sockets_is_refused() -> None:
    port = free_port()
    other = bind_slots({"echo": [f"127.0.0.1:{port}"]}, 2, 128)  # another master
    try:
        with pytest.raises(OSError) as error:
            bind_slots({"echo": [f"127.0.0.1:{port}"]}, 2, 128)
        assert error.value.errno == errno.EADDRINUSE
    finally:
        other.close()


def test_merged_metrics_label_each_worker_and_keep_one_head_per_family() -> None:
    text = (
        '# HELP a_total A.\n# TYPE a_total counter\na_total{app="x"} 1\n'
        "# HELP b B.\n# TYPE b gauge\nb 2\n"
    )
    merged = merge_expositions({"0": text, "1": text.replace("} 1", "} 5")}, "worker")
    assert merged.splitlines() == [
        "# HELP a_total A.",
        "# TYPE a_total counter",
        'a_total{worker="0",app="x"} 1',
        'a_total{worker="1",app="x"} 5',
        "# HELP b B.",
        "# TYPE b gauge",
        'b{worker="0"} 2',
        'b{worker="1"} 2',
    ]
