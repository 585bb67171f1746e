"""Run by test_daemonize.py: daemonize, then behave as the first argument says.

    python daemon_helper.py MODE STATE_DIR [PORT]

The daemon works in STATE_DIR, where it writes ``daemon.pid`` (for the test to clean up),
``info.json`` (what daemonize set up) and, in ``serve`` mode, ``port``. Modes: ``serve`` binds a
port, then reports ready and accepts until killed; ``fail`` reports that PORT cannot be bound;
``crash`` dies before reporting anything; ``silent`` never reports.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

from residentd.daemon.daemonize import daemonize


def main() -> None:
    mode, state_dir = sys.argv[1], sys.argv[2]
    stdio_to = os.path.join(state_dir, "stdio.log") if mode == "serve" else None
    timeout = float(os.environ.get("READY_TIMEOUT", "20"))
    channel = daemonize(workdir=state_dir, umask=0o027, stdio_to=stdio_to, timeout=timeout)

    with open("daemon.pid", "w") as file:
        file.write(f"{os.getpid()}\n")
    umask = os.umask(0)
    os.umask(umask)
    info = {
        "pid": os.getpid(),
        "sid": os.getsid(0),
        "cwd": os.getcwd(),
        "umask": umask,
        "stdio": [os.readlink(f"/proc/self/fd/{fd}") for fd in (0, 1, 2)],
    }
    with open("info.json", "w") as file:
        json.dump(info, file)

    if mode == "serve":
        time.sleep(0.3)  # a starter that returned before ready() would find nothing listening
        server = socket.create_server(("127.0.0.1", 0))
        with open("port", "w") as file:
            file.write(str(server.getsockname()[1]))
        print("hello from the daemon", flush=True)
        channel.ready()
        while True:
            conn, _ = server.accept()
            conn.sendall(b"hi\n")
            conn.close()
    elif mode == "fail":
        port = int(sys.argv[3])
        try:
            socket.socket().bind(("127.0.0.1", port))
        except OSError as exc:
            channel.failed(f"bind 127.0.0.1:{port}: {exc.strerror}")
            sys.exit(1)
    elif mode == "crash":
        raise RuntimeError("crashed before ready")
    elif mode == "silent":
        time.sleep(60)


if __name__ == "__main__":
    main()
