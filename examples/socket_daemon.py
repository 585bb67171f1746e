"""The socket daemon from the talk, ported from PHP's libevent extension to residentd.libevent.

The original kept users online in one resident PHP process: a non-blocking listening socket, an
accept event with EV_READ|EV_PERSIST on an event base, and for each connection a buffer event
with read, write and failure callbacks. This port keeps that shape, step for step, and drops the
three workarounds the talk described:

- timers: the original hung a persistent event on a tmpfile descriptor because the standard
  timer did not work; here ``Timer(base, on_tick, persist=True).add(tick)`` simply ticks;
- signals: EV_SIGNAL was unreliable there; here SIGTERM and SIGHUP are ``SignalEvent``s that see
  every delivery;
- big input: reading more than the buffer needed a loop of ``event_buffer_read`` calls glued
  together by hand; here input accumulates in the buffer event and ``readln`` hands out whole
  lines, however many reads of ``--read-size`` bytes a line took.

Protocol: one command per line, ended by "\\n" or "\\r\\n"; every answer is one line ended by "\\n".

    PING            PONG
    ONLINE          the number of connections open now
    ECHO <text>     <text>
    STATS           ticks=<timer ticks> reloads=<SIGHUPs> online=<connections>
    QUIT            BYE, then the server closes the connection
    anything else   ERR unknown command
    a line longer than --max-line bytes: ERR line too long, then the server closes the connection

Signals: SIGHUP counts and logs a reload (where a real daemon would re-read its configuration).
SIGTERM stops accepting, tells every client "BYE shutting down", and exits with status 0 once
their answers are sent (after --grace seconds at most). A client idle for --idle seconds is closed.

Once it accepts connections, the daemon prints ``listening on HOST:PORT`` on stdout; logs go to
stderr. Run it as:

    python examples/socket_daemon.py --listen 127.0.0.1:8000 --tick 1 --loop uvloop
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys

from residentd.libevent import (
    BEV_EVENT_EOF,
    BEV_EVENT_ERROR,
    BEV_EVENT_TIMEOUT,
    BEV_OPT_CLOSE_ON_FREE,
    EV_PERSIST,
    EV_READ,
    EVBUFFER_EOL_CRLF,
    BufferEvent,
    Event,
    EventBase,
    SignalEvent,
    Timer,
)

log = logging.getLogger("socket_daemon")

# Connections accepted per readiness of the listening socket, so a burst does not starve the rest.
ACCEPT_BATCH = 64
# Answers waiting for a client that does not read, past which it is dropped (a slow consumer).
MAX_OUTPUT = 8 * 1024 * 1024


class SocketDaemon:
    def __init__(self, base: EventBase, listener: socket.socket, args: argparse.Namespace) -> None:
        self.base = base
        self.listener = listener
        self.args = args
        self.clients: dict[int, BufferEvent] = {}
        self.closing: set[int] = set()
        self.last_id = 0
        self.ticks = 0
        self.reloads = 0
        self.accept_event = Event(base, listener, EV_READ | EV_PERSIST, self.on_accept)
        self.timer = Timer(base, self.on_tick, persist=True)
        self.signals = [
            SignalEvent(base, signal.SIGTERM, self.on_sigterm),
            SignalEvent(base, signal.SIGHUP, self.on_sighup),
        ]

    def start(self) -> None:
        self.accept_event.add()
        self.timer.add(self.args.tick)
        for event in self.signals:
            event.add()
        # Announce readiness from inside the loop: from here on signals are being watched.
        Timer(self.base, self.on_ready).add(0)

    def on_ready(self, fd: int, what: int, arg: object) -> None:
        host, port = self.listener.getsockname()[:2]
        print(f"listening on {host}:{port}", flush=True)

    # Connections.

    def on_accept(self, fd: int, what: int, arg: object) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # Out of descriptors, for one: try again on the next event.
                log.warning("accept failed: %s", exc)
                return
            self.last_id += 1
            bev = BufferEvent(self.base, conn, BEV_OPT_CLOSE_ON_FREE, read_size=self.args.read_size)
            bev.setcb(self.on_read, self.on_write, self.on_failure, self.last_id)
            # Reading stops once a line's worth is waiting: input never grows past a line.
            bev.setwatermark(EV_READ, 0, self.args.max_line + 2)
            idle = self.args.idle or None
            bev.set_timeouts(idle, idle)
            bev.enable(EV_READ)
            self.clients[self.last_id] = bev

    def on_read(self, bev: BufferEvent, client: int) -> None:
        # The read loop: every complete line, however many reads it took to arrive.
        while client not in self.closing:
            line = bev.input.readln(EVBUFFER_EOL_CRLF)
            if line is None:
                break
            self.answer(bev, client, line)
        if client in self.closing:
            return
        if len(bev.input) > self.args.max_line:
            self.close_after_output(bev, client, b"ERR line too long\n")
        elif len(bev.output) > MAX_OUTPUT:
            log.warning("client %d does not read its answers: closing", client)
            self.close(client)

    def on_write(self, bev: BufferEvent, client: int) -> None:
        # The output has been sent: a connection that was saying goodbye can close now.
        if client in self.closing:
            self.close(client)

    def on_failure(self, bev: BufferEvent, events: int, client: int) -> None:
        if events & BEV_EVENT_ERROR:
            log.info("client %d: %s", client, bev.error)
        elif events & BEV_EVENT_TIMEOUT:
            log.info("client %d idle for %ss: closing", client, self.args.idle)
        elif not events & BEV_EVENT_EOF:
            return
        self.close(client)

    def answer(self, bev: BufferEvent, client: int, line: bytes) -> None:
        command, _, text = line.partition(b" ")
        match command.upper():
            case b"PING":
                bev.write(b"PONG\n")
            case b"ONLINE":
                bev.write(b"%d\n" % len(self.clients))
            case b"ECHO":
                bev.write(text)
                bev.write(b"\n")
            case b"STATS":
                stats = f"ticks={self.ticks} reloads={self.reloads} online={len(self.clients)}\n"
                bev.write(stats.encode())
            case b"QUIT":
                self.close_after_output(bev, client, b"BYE\n")
            case _:
                bev.write(b"ERR unknown command\n")

    def close_after_output(self, bev: BufferEvent, client: int, farewell: bytes) -> None:
        bev.disable(EV_READ)
        self.closing.add(client)
        bev.write(farewell)

    def close(self, client: int) -> None:
        self.closing.discard(client)
        bev = self.clients.pop(client, None)
        if bev is not None:
            bev.free()

    # Timer and signals.

    def on_tick(self, fd: int, what: int, arg: object) -> None:
        self.ticks += 1

    def on_sighup(self, signum: int, what: int, arg: object) -> None:
        self.reloads += 1
        log.info("SIGHUP: reload #%d", self.reloads)

    def on_sigterm(self, signum: int, what: int, arg: object) -> None:
        log.info("SIGTERM: shutting down, %d clients online", len(self.clients))
        self.accept_event.delete()
        self.listener.close()
        self.timer.delete()
        for event in self.signals:
            event.delete()
        for client, bev in list(self.clients.items()):
            if client not in self.closing:
                self.close_after_output(bev, client, b"BYE shutting down\n")
        # The loop ends when the last goodbye is sent (no events left), or after the grace time.
        self.base.loopexit(self.args.grace)

    def stop(self) -> None:
        for client in list(self.clients):
            self.close(client)
        for event in (self.accept_event, self.timer, *self.signals):
            event.free()
        self.listener.close()


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, not {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, not {value!r}")
    return number


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 8000))
    parser.add_argument("--tick", type=positive, default=1.0, help="timer period, seconds")
    parser.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    parser.add_argument("--read-size", type=int, default=4096, help="bytes per read")
    parser.add_argument("--max-line", type=int, default=1024 * 1024, help="longest line, bytes")
    parser.add_argument("--idle", type=float, default=300.0, help="idle timeout, 0 for none")
    parser.add_argument("--grace", type=positive, default=5.0, help="seconds to say goodbye")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    host, port = args.listen
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family, backlog=1024)
    listener.setblocking(False)
    with EventBase(kind=args.loop) as base:
        daemon = SocketDaemon(base, listener, args)
        daemon.start()
        base.dispatch()
        daemon.stop()
    log.info("stopped after %d ticks and %d reloads", daemon.ticks, daemon.reloads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
