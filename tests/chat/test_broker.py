"""Chat across nodes: three ``residentd run chat`` processes sharing one real redis-server.

Users on different nodes, over TCP and WebSocket, see each other online, talk in rooms and in
direct messages, read the same history and state, and every member on every node sees a
room's messages in one order, while several posters on different nodes post at once; each
node publishes once per message (INFO commandstats) and holds one subscription (PUBSUB
NUMSUB). A node killed with SIGKILL has its users offline on the others within the documented
bound, with ``last_seen``; a redis-server stopped and started again is reconnected to, with
``broker-unavailable`` in between and presence registered again after. A master with two
workers behind one port is one server to its users, and a worker killed with SIGKILL is one
node lost: its users go offline for the others, and the worker that replaces it serves them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from lifecycle.upgrading import Generations
from residentd.apps.chat.brokered import BEAT, DEAD_AFTER
from residentd.apps.chat.tokens import make_token
from residentd.daemon.control import ControlError, admin_json
from support import (
    child_env,
    free_port,
    kill9,
    port_answers,
    residentd_command,
    run_residentd,
    spawn,
    stop,
    wait_until,
)

from .broker import Node, RedisServer
from .helpers import SECRET, Peer, TcpPeer, WsPeer

pytestmark = [pytest.mark.slow, pytest.mark.same_either_way]

POSTS = 30  # per poster, all sent at once
# A dead node's users are offline within DEAD_AFTER + BEAT after its last heartbeat, which is
# at most BEAT before it died; one more second for a loaded machine.
OFFLINE_BOUND = DEAD_AFTER + 2 * BEAT + 1.0


class Cluster:
    def __init__(self, redis: RedisServer, nodes: list[Node]) -> None:
        self.redis = redis
        self.nodes = nodes


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    redis = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        with ExitStack() as stack:
            nodes = [stack.enter_context(Node(redis.url, f"node{i}")) for i in (1, 2, 3)]
            yield Cluster(redis, nodes)
    finally:
        redis.stop()


async def sign_in(node: Node | int, transport: str, user: str) -> Peer:
    """``user`` signed in on ``node`` (or a TCP port). A node listens before its link to the
    broker is up, and answers ``broker-unavailable`` until it is: the hello is sent again."""
    if isinstance(node, int):
        peer: Peer = await TcpPeer.open("127.0.0.1", node)
    elif transport == "tcp":
        peer = await TcpPeer.open("127.0.0.1", node.tcp_port)
    else:
        peer = await WsPeer.open(f"ws://127.0.0.1:{node.http_port}/ws")
    for _ in range(100):
        reply = await peer.request("hello", v=1, user=user, token=make_token(SECRET, user))
        if reply.get("code") != "broker-unavailable":
            break
        await asyncio.sleep(0.05)
    assert reply["op"] == "hello" and reply["user"] == user, reply
    return peer


async def three_users(cluster: Cluster) -> tuple[Peer, Peer, Peer]:
    """ann on node 1 over TCP, bob on node 2 over WebSocket, cid on node 3 over TCP."""
    one, two, three = cluster.nodes
    ann = await sign_in(one, "tcp", "ann")
    bob = await sign_in(two, "ws", "bob")
    cid = await sign_in(three, "tcp", "cid")
    return ann, bob, cid


async def push_about(peer: Peer, op: str, user: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next push of kind ``op`` about ``user`` (a member's own join or presence may come
    first: with a broker, a change's push reaches its own node through Redis too)."""
    while True:
        push = await peer.push(op, timeout)
        if push["user"] == user:
            return push


async def post_at_once(peer: Peer, room: str, tag: str) -> list[int]:
    """Send POSTS posts without waiting; the ids of the requests."""
    return [await peer.send("post", room=room, text=f"{tag}{i}") for i in range(POSTS)]


async def collect(peer: Peer, messages: int, replies: set[int]) -> tuple[list[Any], list[Any]]:
    """Read until ``messages`` message pushes and the replies to ``replies`` came."""
    seen: list[Any] = []
    answered: list[Any] = []
    while len(seen) < messages or len(answered) < len(replies):
        message = await peer.receive()
        if message.get("id") in replies:
            answered.append(message)
        elif message["op"] == "message":
            seen.append((message["seq"], message["user"], message["text"]))
    return seen, answered


def test_three_nodes_serve_one_world(cluster: Cluster) -> None:
    _, two, three = cluster.nodes
    redis = cluster.redis

    async def main() -> None:
        ann, bob, cid = await three_users(cluster)
        # Presence is cluster-wide.
        who = await cid.request("who")
        assert who["online"] == 3 and {u["user"] for u in who["users"]} == {"ann", "bob", "cid"}
        seen = await bob.request("seen", user="ann")
        assert seen["online"] is True and "last_seen" not in seen
        # A room made on one node is joined from the others; joins reach every member.
        created = await ann.request("create", room="ops", topic="deploys")
        assert created["room"]["members"] == 1, created
        for peer in (bob, cid):
            joined = await peer.request("join", room="ops")
            assert joined["op"] == "join", joined
        assert [(await ann.push("joined"))["user"] for _ in range(3)] == ["ann", "bob", "cid"]
        rooms = [(await peer.request("rooms"))["rooms"] for peer in (ann, bob, cid)]
        assert rooms[0] == rooms[1] == rooms[2] and {"ops", "lobby"} <= {
            r["room"] for r in rooms[0]
        }
        # Three posters on three nodes at once: every member sees one order, seqs 1..N, and
        # the broker carries each message once per node (one PUBLISH, three subscribers).
        assert redis.client().pubsub_numsub("chat:events") == [(b"chat:events", 3)]
        published = redis.calls("publish")
        ids = {
            peer: set(await post_at_once(peer, "ops", tag))
            for peer, tag in ((ann, "a"), (bob, "b"), (cid, "c"))
        }
        results = [await collect(peer, 3 * POSTS, ids[peer]) for peer in (ann, bob, cid)]
        orders = [order for order, _ in results]
        assert orders[0] == orders[1] == orders[2]
        assert [seq for seq, _, _ in orders[0]] == list(range(1, 3 * POSTS + 1))
        for tag, user in (("a", "ann"), ("b", "bob"), ("c", "cid")):
            mine = [text for _, who_, text in orders[0] if who_ == user]
            assert mine == [f"{tag}{i}" for i in range(POSTS)]  # each poster's own order kept
        for _, replies in results:
            assert all(reply["op"] == "post" for reply in replies)
        assert redis.calls("publish") - published == 3 * POSTS
        # Any node answers history the same.
        pages = [await peer.request("history", room="ops", limit=100) for peer in (ann, bob, cid)]
        assert pages[0]["messages"] == pages[1]["messages"] == pages[2]["messages"]
        assert [m["seq"] for m in pages[0]["messages"]] == list(range(1, 3 * POSTS + 1))
        # Direct messages cross nodes; the sender's connections get a copy.
        dm = await ann.request("dm", to="bob", text="psst")
        assert dm["op"] == "dm", dm
        got = await bob.push("direct")
        assert (got["from"], got["to"], got["text"], got["msg"]) == (
            "ann",
            "bob",
            "psst",
            dm["msg"],
        )
        assert (await ann.push("direct"))["msg"] == dm["msg"]
        # A topic change reaches every node.
        await cid.request("topic", room="ops", topic="frozen")
        for peer in (ann, bob, cid):
            assert (await peer.push("topic-changed"))["topic"] == "frozen"
        # One user on two nodes: state written on one is read on the other; presence counts
        # the user once.
        ann_too = await sign_in(three, "ws", "ann")
        assert (await ann.request("state.set", key="theme", value={"dark": True}))["size"] > 0
        assert (await ann_too.request("state.incr", key="n", by=2))["value"] == 2
        got_state = await ann_too.request("state.get")
        assert got_state["value"] == {"theme": {"dark": True}, "n": 2}
        assert (await bob.request("who"))["online"] == 3
        # Requests sent at once are answered in order, the ones after a hello once it is in.
        eager = await TcpPeer.open("127.0.0.1", two.tcp_port)
        token = make_token(SECRET, "dan")
        await eager.send_raw(
            f'{{"op":"who","id":1}}\n{{"op":"hello","v":1,"user":"dan","token":"{token}","id":2}}\n'
            '{"op":"join","room":"ops","id":3}\n{"op":"ping","id":4}\n'
            '{"op":"post","room":"ops","text":"hi","id":5}\n{"op":"who","id":6}\n'
        )
        answers: list[dict[str, Any]] = []
        while len(answers) < 6:  # pushes (joined, message) come in between
            answer = await eager.receive()
            if "id" in answer:
                answers.append(answer)
        assert [a["id"] for a in answers] == [1, 2, 3, 4, 5, 6], answers
        assert answers[0]["code"] == "not-signed-in"
        assert [a["op"] for a in answers[1:]] == ["hello", "join", "pong", "post", "who"]
        assert answers[4]["seq"] == 3 * POSTS + 1 and answers[5]["online"] == 4
        await eager.close()
        # Refusals come from the one world: a room made on one node exists for the others.
        exists = await bob.request("create", room="ops")
        assert exists["code"] == "room-exists", exists
        for peer in (ann, ann_too, bob, cid):
            await peer.close()

    asyncio.run(main())


def test_a_killed_node_takes_its_users_offline_everywhere(cluster: Cluster) -> None:
    one, two, _ = cluster.nodes
    with Node(cluster.redis.url, "doomed") as doomed:

        async def main() -> None:
            ann = await sign_in(one, "tcp", "ann")
            bob = await sign_in(two, "ws", "bob")
            for peer in (ann, bob):
                await peer.request("join", room="lobby")
            dave = await sign_in(doomed, "tcp", "dave")
            await dave.request("join", room="lobby")
            await push_about(ann, "joined", "dave")
            assert (await bob.request("seen", user="dave"))["online"] is True
            killed_at = time.time() * 1000
            kill9(doomed.process)  # type: ignore[arg-type]
            offline = await push_about(ann, "presence", "dave", OFFLINE_BOUND)
            took = time.time() * 1000 - killed_at
            assert (offline["user"], offline["online"]) == ("dave", False), offline
            assert took <= OFFLINE_BOUND * 1000
            # last_seen is the dead node's last heartbeat: at most one beat before the kill.
            assert killed_at - (BEAT + 1.0) * 1000 <= offline["last_seen"] <= killed_at
            seen = await bob.request("seen", user="dave")
            assert seen == {**seen, "online": False, "last_seen": offline["last_seen"]}
            who = await bob.request("who", room="lobby")
            assert {u["user"]: u["online"] for u in who["users"]}["dave"] is False
            # The others keep serving.
            await bob.request("post", room="lobby", text="still here")
            assert (await ann.push("message"))["text"] == "still here"
            for peer in (ann, bob):
                await peer.close()

        asyncio.run(main())
        swept = "node doomed missed its heartbeats"
        # (the log writer thread may not have written it yet)
        wait_until(
            lambda: swept in "".join(n.log() for n in cluster.nodes), 5.0, "the sweep logged"
        )


def test_a_live_upgrade_keeps_its_users_online_everywhere(cluster: Cluster, tmp_path: Path) -> None:
    two = cluster.nodes[1]
    options = ("--secret", SECRET, "--rate-limit", "0", "--http-listen", "127.0.0.1:0")
    with Generations(tmp_path, "chat", *options, "--broker", cluster.redis.url) as upgraded:

        async def main() -> None:
            ann = await sign_in(upgraded.port, "tcp", "ann")
            bob = await sign_in(two, "ws", "bob")
            for peer in (ann, bob):
                await peer.request("join", room="lobby")
            await asyncio.get_running_loop().run_in_executor(None, upgraded.upgrade_ok)
            # ann's connection lives on in the new generation, which took over its presence.
            await bob.request("post", room="lobby", text="after")
            await push_about(ann, "message", "bob")
            # The old generation's heartbeats have stopped: once it is swept, ann is still
            # online, and nobody was told otherwise.
            await asyncio.sleep(DEAD_AFTER + 2 * BEAT)
            assert (await bob.request("seen", user="ann"))["online"] is True
            await bob.request("post", room="lobby", text="later")
            assert (await push_about(ann, "message", "bob"))["text"] == "later"
            flaps = [m for m in bob.pushes if m["op"] == "presence" and m["user"] == "ann"]
            assert flaps == []
            for peer in (ann, bob):
                await peer.close()

        asyncio.run(main())


def test_nodes_ride_out_a_redis_restart(cluster: Cluster) -> None:
    one, two, _ = cluster.nodes
    redis = cluster.redis

    async def main() -> None:
        ann, bob, cid = await three_users(cluster)
        for peer in (ann, bob, cid):
            await peer.request("join", room="lobby")
        redis.stop()
        # Local work goes on; what needs the broker is refused at once, with its own code.
        assert (await ann.request("ping"))["op"] == "pong"
        for peer in (ann, bob):
            refused = await peer.request("post", room="lobby", text="lost?")
            assert refused["code"] == "broker-unavailable", refused
        assert (await cid.request("who"))["code"] == "broker-unavailable"
        await cid.close()  # a sign-out while the broker is down is not lost
        await asyncio.sleep(1.0)
        redis.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15.0
        while True:
            posted = await ann.request("post", room="lobby", text="back")
            if posted["op"] == "post" or loop.time() > deadline:
                break
            assert posted["code"] == "broker-unavailable", posted
            await asyncio.sleep(0.2)
        assert posted["op"] == "post", posted
        got = await bob.push("message", timeout=10.0)  # bob's node subscribed again
        while got["text"] != "back":
            got = await bob.push("message", timeout=10.0)
        for _ in range(100):  # node three registers again once it is back too
            who = await bob.request("who")
            if who.get("online") == 2:
                break
            await asyncio.sleep(0.1)
        assert {u["user"] for u in who["users"]} == {"ann", "bob"}, who
        assert (await ann.request("seen", user="cid"))["online"] is False
        for peer in (ann, bob):
            await peer.close()

    asyncio.run(main())
    for node in (one, two):
        log = node.log()
        assert "lost" in log and "retrying in" in log and "back" in log, log


def test_two_workers_behind_one_port_are_one_world(cluster: Cluster, tmp_path: Path) -> None:
    admin = f"unix:{tmp_path / 'admin.sock'}"
    with Node(cluster.redis.url, "pair", "--workers", "2", "--admin", admin) as pair:

        def workers() -> list[dict[str, Any]]:
            try:
                rows: list[dict[str, Any]] = admin_json(admin, "GET", "/status")["workers"]
            except ControlError:  # the admin endpoint starts after the listeners
                return []
            return sorted(rows, key=lambda row: row["slot"])

        wait_until(lambda: [row["state"] for row in workers()] == ["ready"] * 2, 40.0, "workers")

        async def main() -> int:
            names = [f"u{n}" for n in range(12)]
            peers = {name: await sign_in(pair.tcp_port, "tcp", name) for name in names}
            # the kernel spread the connections of one port over both workers (the status
            # rows are as fresh as the last heartbeat)
            spread = [0, 0]

            def counted() -> bool:
                spread[:] = [row["connections_open"] for row in workers()]
                return sum(spread) == len(names)

            await asyncio.to_thread(wait_until, counted, 10.0, "every connection counted")
            assert min(spread) > 0, spread
            for peer in peers.values():
                await peer.request("join", room="lobby")
            who = await peers["u0"].request("who", room="lobby")
            assert {u["user"] for u in who["users"] if u["online"]} >= set(names)
            # every member sees the room's messages in one order, whichever worker holds it
            ids = {
                name: set(await post_at_once(peer, "lobby", name)) for name, peer in peers.items()
            }
            orders = [
                (await collect(peer, POSTS * len(peers), ids[name]))[0]
                for name, peer in peers.items()
            ]
            assert all(order == orders[0] for order in orders)
            # a direct message between any two users
            dm = await peers["u1"].request("dm", to="u2", text="hi")
            assert (await peers["u2"].push("direct"))["msg"] == dm["msg"]

            # SIGKILL one worker: its users' connections end, the others see them go offline
            # within the bound, and the worker that replaces it serves them again.
            victim = workers()[0]["pid"]
            os.kill(victim, signal.SIGKILL)
            lost = []
            for name, peer in peers.items():
                try:
                    await asyncio.wait_for(peer.request("ping"), 3.0)
                except Exception:  # Closed, or the reset of a dead process
                    lost.append(name)
            kept = [name for name in names if name not in lost]
            assert lost and kept, (lost, kept)
            watcher = peers[kept[0]]
            for name in lost:
                offline = await push_about(watcher, "presence", name, OFFLINE_BOUND)
                assert offline["online"] is False
            wait_until(
                lambda: (
                    [row["state"] for row in workers()] == ["ready"] * 2
                    and victim not in {row["pid"] for row in workers()}
                ),
                40.0,
                "the killed worker replaced",
            )
            for name in lost:
                peers[name] = await sign_in(pair.tcp_port, "tcp", name)
                await peers[name].request("join", room="lobby")
            who = await watcher.request("who", room="lobby")
            assert {u["user"] for u in who["users"] if u["online"]} >= set(names)
            for peer in peers.values():
                await peer.close()
            return victim

        victim = asyncio.run(main())
        assert f"worker 0: pid {victim} died (signal SIGKILL)" in pair.log(), pair.log()


def start_refused(*options: str) -> str:
    """``residentd run chat OPTIONS``, which must fail to start: its error output."""
    result = run_residentd(
        "run", "chat", "--listen", f"127.0.0.1:{free_port()}",
        "--http-listen", f"127.0.0.1:{free_port()}", "--admin", "off", *options,
        env=child_env(),
    )  # fmt: skip
    assert result.returncode != 0, result.stderr
    return result.stderr


def test_start_needs_the_broker_unless_told_to_wait(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    # Not reachable: the start fails, naming the address.
    assert f"broker {redis.url} is not reachable" in start_refused("--broker", redis.url)
    # state_dir and broker together: refused.
    both = start_refused("--broker", redis.url, "--state-dir", str(tmp_path / "state"))
    assert "state_dir and broker cannot go together" in both
    # kv speaks RESP and runs the chat's Lua scripts: a handy broker for development.
    kv_port = free_port()
    kv = spawn(residentd_command("run", "kv", "--listen", f"127.0.0.1:{kv_port}", "--admin", "off"))
    try:
        wait_until(lambda: port_answers(kv_port), 20.0, "kv")
        with Node(f"redis://127.0.0.1:{kv_port}/0", "on-kv", "--rooms", "lobby") as node:

            async def on_kv() -> None:
                token = make_token(SECRET, "kim")
                for _ in range(100):  # the node listens before its link to kv is up
                    peer = await TcpPeer.open("127.0.0.1", node.tcp_port)
                    reply = await peer.request("hello", v=1, user="kim", token=token)
                    if reply["op"] == "hello":
                        break
                    assert reply["code"] == "broker-unavailable", reply
                    await peer.close()
                    await asyncio.sleep(0.1)
                assert reply["op"] == "hello"
                assert (await peer.request("join", room="lobby"))["op"] == "join"
                assert (await peer.request("post", room="lobby", text="hi"))["seq"] == 1
                history = await peer.request("history", room="lobby")
                assert [m["text"] for m in history["messages"]] == ["hi"]
                await peer.close()

            asyncio.run(on_kv())
    finally:
        stop(kv)
    # broker_wait: the node waits for Redis, then serves.
    with Node(redis.url, "patient", "--broker-wait") as node:
        wait_until(lambda: "retrying in" in node.log(), 10.0, "the node to retry")
        redis.start()
        try:

            async def main() -> None:
                for _ in range(100):
                    peer = await TcpPeer.open("127.0.0.1", node.tcp_port)
                    reply = await peer.request(
                        "hello", v=1, user="eve", token=make_token(SECRET, "eve")
                    )
                    await peer.close()
                    if reply["op"] == "hello":
                        return
                    assert reply["code"] == "broker-unavailable", reply
                    await asyncio.sleep(0.1)
                raise AssertionError("never signed in")

            asyncio.run(main())
        finally:
            redis.stop()


def test_unreachable_broker_exits_2(tmp_path: Path) -> None:
    result = run_residentd(
        "run", "chat", "--listen", f"127.0.0.1:{free_port()}",
        "--http-listen", f"127.0.0.1:{free_port()}", "--admin", "off",
        "--broker", RedisServer(tmp_path).url, env=child_env(),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
