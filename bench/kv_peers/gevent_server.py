"""A minimal Redis on gevent: a ``StreamServer`` with a greenlet per client doing blocking-
style recv/parse/sendall."""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from gevent.server import StreamServer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import answer, new_reader, port_from_args  # noqa: E402


def client(sock: Any, address: Any) -> None:
    parser = new_reader()
    try:
        while chunk := sock.recv(65536):
            replies = answer(parser, chunk)
            if replies:
                sock.sendall(replies)
    except OSError:
        pass
    finally:
        sock.close()


if __name__ == "__main__":
    StreamServer(("127.0.0.1", port_from_args(__doc__ or "")), client, backlog=1024).serve_forever()
