"""Every chat connection is released: after many sign-in, join, post and disconnect cycles over
both transports, the hub holds no connection, no room keeps a sink, no session object lives on,
and the process has the file descriptors it started with."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any

from core.helpers import wait_until
from residentd.apps.chat.session import ChatSession
from support import open_fds

from .helpers import chat_server

Run = Callable[[Coroutine[Any, Any, Any]], Any]


def live_sessions() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, ChatSession))


def test_connections_are_released(run: Run) -> None:
    async def main() -> None:
        async with chat_server() as chat:
            hub = chat.app.hub
            assert hub is not None
            fds = open_fds()
            for cycle in range(20):
                peers = []
                for index, transport in enumerate(("tcp", "ws", "tcp")):
                    peer = await chat.signed_in(transport, f"u{cycle}-{index}")
                    await peer.request("join", room="lobby")
                    await peer.request("post", room="lobby", text="hi")
                    peers.append(peer)
                guest = await chat.guest("ws", f"g{cycle}")
                await guest.request("join", room="lobby")
                await guest.request("create", room=f"den{cycle}", private=True)
                await guest.request("state.set", key="k", value="v")
                unsigned = await chat.peer("ws")  # connects and leaves without a hello
                for peer in [*peers, guest, unsigned]:
                    await peer.close()
            await wait_until(lambda: not chat.server.connections, what="every connection gone")
            await asyncio.sleep(0.05)
            assert set(hub.connections.values()) == {0} and not hub.pending
            assert not hub.presence.online
            lobby = hub.rooms["lobby"]
            assert lobby.online == 0 and not any(lobby.sinks.values())
            # A token user's membership outlives its connections, by design; a guest's does not,
            # nor does the guest, nor a private room it was alone in.
            assert len(lobby.members) == 60
            assert not [name for name in hub.presence.users if name.startswith("~")]
            assert list(hub.rooms) == ["lobby"]
            assert live_sessions() == 0
            assert open_fds() <= fds

    run(main())
