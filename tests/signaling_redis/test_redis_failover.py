"""Failover with real processes: a process killed mid-swarm (its peers heal on another behind the
same front), a process leaving gracefully, and Redis stopped and restarted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from tests.signaling.sig_support import Client, connect, pid
from tests.signaling_redis.conftest import NodeFactory
from tests.signaling_redis.redis_support import (
    Front,
    RedisServer,
    SignalingProcess,
    require_redis_server,
)

SWARM = pid("failover-swarm")
PEER_TTL_S = 300.0  # the default: FAST_ENV leaves it


@pytest.fixture
async def front() -> AsyncIterator[Front]:
    f = Front([])
    await f.start()
    yield f
    await f.stop()


async def join_until_accepted(url: str, name: str, timeout_s: float) -> Client:
    """What a tracker client does after its socket drops: reconnect, re-announce; a refusal is
    retried at the next announce (here sooner, to measure how soon it heals)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        client = await connect(url, name)
        reply = await client.announce(SWARM)
        if "interval" in reply:
            return client
        assert reply["reason"] == "peer_id_spoofed", reply
        await client.close()
        assert asyncio.get_running_loop().time() < deadline, "not healed in time"
        await asyncio.sleep(0.2)


async def exchange(offerer: Client, answerers: list[Client], offers: int = 0) -> None:
    """The offerer sends ``offers`` offers (default: one per answerer); each answerer (every
    other member of the swarm) must receive exactly one, and its answer must come back."""
    await offerer.announce(SWARM, offers=offers or len(answerers), sdp="v=0 heal")
    got = await asyncio.gather(*(c.next_offer(30.0) for c in answerers))
    for client, offer in zip(answerers, got, strict=True):
        assert offer["peer_id"] == offerer.peer_id
        await client.answer(offer)
    answers = [await offerer.next_answer(30.0) for _ in answerers]
    assert {m["peer_id"] for m in answers} == {c.peer_id for c in answerers}


@pytest.mark.slow
async def test_killed_process_peers_heal_on_another(
    start_nodes: NodeFactory, front: Front, redis_server: RedisServer
) -> None:
    n1, n2 = await start_nodes(2)
    dead_id, live_id = (await n1.health())["node_id"], (await n2.health())["node_id"]
    front.backends = [n1.port, n2.port]  # the front prefers n1 while it lives
    a = await connect(front.url, "heal-a")
    b = await connect(front.url, "heal-b")
    c = await connect(n2.url, "heal-c")
    for client in (a, b, c):
        await client.announce(SWARM)
    await n2.wait_health(lambda h: h["peers"] == 3 and h["local_peers"] == 1)
    n1.kill()  # SIGKILL mid-swarm: no goodbye
    killed_at = asyncio.get_running_loop().time()
    assert await a.closed_with(30.0) is None and await b.closed_with(30.0) is None
    # its peers leave pairing on n2 once node_ttl_s (6 s) has passed, without waiting for
    # peer_ttl_s (300 s); the bounds are generous next to the first, far below the second
    await n2.wait_health(lambda h: h["peers"] == 1 and h["nodes"] == 1, 60.0)
    a2 = await join_until_accepted(front.url, "heal-a", 60.0)
    b2 = await join_until_accepted(front.url, "heal-b", 60.0)
    healed_s = asyncio.get_running_loop().time() - killed_at
    assert healed_s < PEER_TTL_S / 2, healed_s
    health = await n2.health()
    assert (health["peers"], health["local_peers"], health["connections"]) == (3, 3, 3)
    # the swarm is whole: c pairs with the healed peers, and they with c
    await exchange(c, [a2, b2])
    await exchange(a2, [b2, c])
    body = (await n2.get("/api/swarms")).json()
    assert body["peer_count"] == 3
    # nothing of the dead process lingers in Redis: its keys are gone, its bindings taken over
    client = redis.Redis.from_url(redis_server.url)
    try:
        prefix = "p2p-signaling:"
        assert client.smembers(prefix + "nodes") == {live_id.encode()}
        assert not client.exists(prefix + "alive:" + dead_id, prefix + "members:" + dead_id)
        assert client.hlen(prefix + "members:" + live_id) == 3
        for peer in (a2, b2, c):
            owner = client.get(prefix + "bind:" + peer.peer_id.encode("latin-1").hex())
            assert owner is not None and owner.decode().startswith(live_id + "|")
    finally:
        client.close()


@pytest.mark.slow
async def test_graceful_stop_drops_its_peers_at_once(
    start_nodes: NodeFactory, redis_server: RedisServer
) -> None:
    n1, n2 = await start_nodes(2)
    gone_id = (await n1.health())["node_id"]
    a = await connect(n1.url, "bye-a")
    c = await connect(n2.url, "bye-c")
    await a.announce(SWARM)
    await c.announce(SWARM)
    await n2.wait_health(lambda h: h["peers"] == 2)
    await n1.stop()  # SIGTERM: 1001 to its sockets, then goodbye on the bus
    assert await a.closed_with(30.0) == 1001
    # It said goodbye before it exited: it is out of the node set already (the others would
    # only drop it node_ttl_s after its last heartbeat), not after a time measured here.
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert gone_id.encode() not in client.smembers("p2p-signaling:nodes")
    finally:
        client.close()
    await n2.wait_health(lambda h: h["peers"] == 1 and h["nodes"] == 1)
    # the peer_id is free at once on the other process (no dead binding to wait out)
    a2 = await connect(n2.url, "bye-a")
    assert "interval" in await a2.announce(SWARM)
    await exchange(c, [a2])


@pytest.mark.slow
async def test_redis_stopped_and_restarted(
    start_nodes: NodeFactory, redis_server: RedisServer
) -> None:
    n1, n2 = await start_nodes(2)
    a = await connect(n1.url, "rd-a")
    b = await connect(n1.url, "rd-b")
    c = await connect(n2.url, "rd-c")
    for client in (a, b, c):
        await client.announce(SWARM)
    for node in (n1, n2):
        await node.wait_health(lambda h: h["peers"] == 3)
    redis_server.stop()
    for node in (n1, n2):
        health = await node.wait_health(lambda h: h["status"] == "degraded")
        assert health["redis"] == "unreachable"
        assert await node.metric("p2p_signaling_cluster_degraded") == 1
    # each process keeps pairing its own peers (and only those)
    assert (await n1.health())["peers"] == 2 and (await n2.health())["peers"] == 1
    await exchange(a, [b], offers=2)  # c (on n2) is out of reach: one offer finds a target
    reply = await c.announce(SWARM, offers=1)
    assert reply["incomplete"] == 1
    # a peer joining while Redis is away is published when it returns
    d = await connect(n2.url, "rd-d")
    await d.announce(SWARM)
    redis_server.start()  # empty: it kept nothing
    for node in (n1, n2):
        await node.wait_health(
            lambda h: h["status"] == "ok" and h["nodes"] == 2 and h["peers"] == 4, 60.0
        )
        assert await node.metric("p2p_signaling_redis_failures_total") == 1
    # the cluster is whole again: offers cross processes, bindings are cluster-wide again
    await exchange(d, [a, b, c])
    await exchange(b, [a, c, d])
    spoofer = await connect(n2.url, "rd-a")
    assert (await spoofer.announce(SWARM))["reason"] == "peer_id_spoofed"


async def test_alone_without_redis_url_runs_in_memory() -> None:
    node = SignalingProcess(None, {})
    await node.start()
    try:
        health = await node.health()
        assert health == {"status": "ok", "connections": 0, "peers": 0, "swarms": 0}
        assert "p2p_signaling_cluster" not in (await node.get("/metrics")).text
    finally:
        await node.stop()


@pytest.mark.slow
async def test_starts_alone_when_redis_is_down_and_joins_when_it_comes(tmp_path: Path) -> None:
    redis_server = RedisServer(require_redis_server(), tmp_path)  # not started yet
    # The node must know Redis's address before Redis listens, and redis-server may have to
    # move to another port if the one it was given is taken meanwhile: a front on a port bound
    # now stands for it (closing connections until it has a backend).
    redis_front = Front([])
    await redis_front.start()
    node = SignalingProcess(f"redis://127.0.0.1:{redis_front.port}/0", {})
    await node.start()
    try:
        health = await node.wait_health(lambda h: h["status"] == "degraded")
        assert health["redis"] == "unreachable"
        a = await connect(node.url, "early-a")
        b = await connect(node.url, "early-b")
        await a.announce(SWARM)
        await exchange(b, [a])  # alone, it pairs its own peers
        redis_server.start()
        redis_front.backends = [redis_server.port]
        await node.wait_health(lambda h: h["status"] == "ok" and h["peers"] == 2, 60.0)
        assert await node.metric("p2p_signaling_bus_dropped_total", kind="member") >= 2
        client = redis.Redis.from_url(redis_server.url)
        try:
            members = client.hlen("p2p-signaling:members:" + (await node.health())["node_id"])
        finally:
            client.close()
        assert members == 2  # published once Redis answered
    finally:
        await node.stop()
        await redis_front.stop()
        redis_server.stop()
