"""Two and three real signaling processes on one real Redis: offers and answers cross processes,
swarms split over processes, and /api/swarms and /metrics add up."""

from __future__ import annotations

import asyncio

from signaling.messages import id_hex
from tests.signaling.sig_support import connect, pid
from tests.signaling_redis.conftest import NodeFactory

SWARM = pid("cross-swarm")
OTHER = pid("cross-other")


async def wait_peers(node, count: int, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    await node.wait_health(lambda h: h.get("peers") == count, timeout_s)


async def completed_seen(node) -> bool:  # type: ignore[no-untyped-def]
    body = (await node.get("/api/admin/swarms")).json()
    return any(s["info_hash"] == id_hex(OTHER) and s["complete"] == 1 for s in body["swarms"])


async def test_offer_and_answer_cross_processes(start_nodes: NodeFactory) -> None:
    n1, n2 = await start_nodes(2)
    a = await connect(n1.url, "alice")
    b = await connect(n2.url, "bob")
    assert (await a.announce(SWARM))["incomplete"] == 1
    await wait_peers(n2, 1)
    reply = await b.announce(SWARM, offers=2, sdp="v=0 bob-offer")
    assert reply["incomplete"] == 2
    offer = await a.next_offer()
    assert offer["peer_id"] == b.peer_id and offer["offer"]["sdp"] == "v=0 bob-offer"
    await a.answer(offer, sdp="v=0 alice-answer")
    answer = await b.next_answer()
    assert answer == {
        "action": "announce",
        "info_hash": SWARM,
        "peer_id": a.peer_id,
        "offer_id": offer["offer_id"],
        "answer": {"type": "answer", "sdp": "v=0 alice-answer"},
    }
    assert await n2.metric("p2p_signaling_relays_total", kind="offer") == 1
    assert await n1.metric("p2p_signaling_relays_total", kind="answer") == 1
    assert await n2.metric("p2p_signaling_bus_messages_total", direction="out", kind="offer") == 1
    assert await n1.metric("p2p_signaling_bus_messages_total", direction="in", kind="offer") == 1


async def test_two_swarms_split_over_three_processes(start_nodes: NodeFactory) -> None:
    n1, n2, n3 = await start_nodes(3)
    a = await connect(n1.url, "s1-a")
    b = await connect(n2.url, "s1-b")
    c = await connect(n2.url, "s2-c")
    d = await connect(n3.url, "s2-d")
    await a.announce(SWARM)
    await c.announce(OTHER)
    for node in (n1, n2, n3):
        await wait_peers(node, 2)
    # b (SWARM, on n2) can only be paired with a (n1), never with c (OTHER, same process)
    assert (await b.announce(SWARM, offers=3, sdp="v=0 b"))["incomplete"] == 2
    offer = await a.next_offer()
    assert offer["peer_id"] == b.peer_id and offer["info_hash"] == SWARM
    await a.answer(offer, sdp="v=0 a")
    assert (await b.next_answer())["peer_id"] == a.peer_id
    # d (OTHER, on n3) can only be paired with c (n2)
    assert (await d.announce(OTHER, offers=3, sdp="v=0 d"))["incomplete"] == 2
    offer = await c.next_offer()
    assert offer["peer_id"] == d.peer_id and offer["info_hash"] == OTHER
    await c.answer(offer)
    assert (await d.next_answer())["peer_id"] == c.peer_id
    await d.announce(OTHER, event="completed")
    for node in (n1, n2, n3):
        await wait_peers(node, 4)
        # the completion's record reaches every process (over Redis: not within a fixed time)
        deadline = asyncio.get_running_loop().time() + 30.0
        while not await completed_seen(node):
            assert asyncio.get_running_loop().time() < deadline, "completion never seen"
            await asyncio.sleep(0.05)
    # Every process answers /api/swarms for the whole cluster.
    for node in (n1, n2, n3):
        body = (await node.get("/api/admin/swarms")).json()
        assert body["peer_count"] == 4 and body["swarm_count"] == 2
        by_hash = {s["info_hash"]: s for s in body["swarms"]}
        one, two = by_hash[id_hex(SWARM)], by_hash[id_hex(OTHER)]
        assert (one["peer_count"], one["complete"]) == (2, 0)
        assert (two["peer_count"], two["complete"], two["downloaded"]) == (2, 1, 1)
        assert {p["peer_id"] for p in two["peers"]} == {id_hex(c.peer_id), id_hex(d.peer_id)}
    # a scrape on any process counts the whole swarm
    await a.send({"action": "scrape", "info_hash": [SWARM, OTHER]})
    files = (await a.recv_where(lambda m: m.get("action") == "scrape"))["files"]
    assert files[OTHER] == {"complete": 1, "incomplete": 1, "downloaded": 1}
    # per-process gauges add up; cluster gauges are the same everywhere
    local = [await n.metric("p2p_signaling_peers") for n in (n1, n2, n3)]
    assert local == [1, 2, 1]
    for node in (n1, n2, n3):
        assert await node.metric("p2p_signaling_cluster_peers") == 4
        assert await node.metric("p2p_signaling_cluster_nodes") == 3
        assert await node.metric("p2p_signaling_cluster_degraded") == 0


async def test_limits_and_stats_are_cluster_wide(start_nodes: NodeFactory) -> None:
    n1, n2 = await start_nodes(2, P2P_SIGNALING_MAX_PEERS_PER_SWARM="2")
    a = await connect(n1.url, "lim-a")
    b = await connect(n2.url, "lim-b")
    c = await connect(n1.url, "lim-c")
    await a.announce(SWARM)
    await b.announce(SWARM)
    await wait_peers(n1, 2)
    reply = await c.announce(SWARM)
    assert reply["reason"] == "swarm_full"
    await b.send({"action": "stats", "info_hash": SWARM, "peer_id": b.peer_id,
                  "bytes_p2p_down": 300, "bytes_p2p_up": 10, "bytes_cdn": 100})  # fmt: skip
    await a.send({"action": "stats", "info_hash": SWARM, "peer_id": a.peer_id,
                  "bytes_p2p_down": 100, "bytes_p2p_up": 300, "bytes_cdn": 500})  # fmt: skip
    for _ in range(100):
        swarm = (await n1.get("/api/swarms")).json()["swarms"][0]
        if swarm["bytes_p2p_down"] == 400:
            break
        await asyncio.sleep(0.05)
    assert (swarm["bytes_p2p_down"], swarm["bytes_p2p_up"], swarm["bytes_cdn"]) == (400, 310, 600)
    assert swarm["p2p_ratio"] == 400 / 1000
