"""Lingering close: how a stopping server closes a connection without resetting it.

Closing a TCP socket that still has unread input makes Linux answer with a reset (RST) instead
of a FIN, and a reset throws away whatever the peer had not acknowledged yet: replies still in
the kernel's send queue are lost, and many clients drop the replies they had received but not
yet handed to their caller once they see the reset. A pipelining client always has requests
in flight, so a plain close at stop destroys replies to requests the server has executed.

So a stopping server closes the way nginx's lingering close does: it stops reading requests,
sends what is queued, shuts down its writing side (``write_eof``: ``shutdown(SHUT_WR)`` once
the transport's buffer is written), then reads the peer's input and throws it away until the
peer closes its side too, and closes. ``done`` decides when a connection whose peer has not
closed may be closed anyway, and only once the peer has acknowledged every byte (``SIOCOUTQ``
is zero, so a reset can no longer destroy a reply in the kernel): when the peer has sent
nothing for ``LINGER_QUIET`` seconds (an idle client, a pool that will notice the EOF on its
next use; nginx's ``lingering_timeout``), or after ``LINGER_TIME`` seconds of lingering, so
that a peer that sends on and never closes cannot hold the stop (nginx's ``lingering_time``).
Output the peer has not taken is never cut here: a peer that does not read keeps its
connection until the stop's own deadline.

Both are shorter than nginx's (5 and 30 s), as a stop should not wait long, and long enough
that a client busy reading its last replies sends its next requests or closes before them: a
client that has not read all of its replies yet and sends again after the close gets a reset,
and most client libraries drop the replies they had not handed over yet when they see one.
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import sys
import termios

# Seconds without input from the peer after which a lingering connection whose output was all
# acknowledged is closed.
LINGER_QUIET = 1.0
# Seconds a connection lingers at most once its output was all acknowledged, for a peer that
# keeps sending and never closes.
LINGER_TIME = 3.0

_ON_LINUX = sys.platform.startswith("linux")
# SIOCOUTQ has the number of TIOCOUTQ on Linux: bytes sent but not acknowledged, plus unsent.
_SIOCOUTQ = getattr(termios, "TIOCOUTQ", 0x5411)
_INT = struct.Struct("i")


def unacknowledged(transport: asyncio.BaseTransport) -> int | None:
    """Bytes the kernel still holds for the peer (sent but not acknowledged, or not yet sent);
    None where that cannot be known (not Linux, no socket). A Unix socket's output is in the
    peer's queue once written, and closing it never resets: 0."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    if sock.family == socket.AF_UNIX:
        return 0
    if not _ON_LINUX:
        return None
    try:
        data = fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0" * _INT.size)
    except OSError:
        return None
    return int(_INT.unpack(data)[0])


def done(transport: asyncio.WriteTransport, lingered: float, quiet: float) -> bool:
    """Whether a lingering connection may be closed now, after ``lingered`` seconds of
    lingering and ``quiet`` seconds since the peer last sent something."""
    if transport.get_write_buffer_size():
        return False  # still writing: the stop's deadline is the limit for a peer not reading
    if quiet < LINGER_QUIET and lingered < LINGER_TIME:
        return False  # too soon to ask the kernel (one system call per connection and tick)
    left = unacknowledged(transport)
    if left is None:
        return lingered >= LINGER_TIME
    return left == 0
