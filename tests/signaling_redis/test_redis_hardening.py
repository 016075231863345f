"""Hostile inputs from the single-process suite, now crossing processes: still refused."""

from __future__ import annotations

import asyncio

from tests.signaling.sig_support import connect, pid
from tests.signaling_redis.conftest import NodeFactory

SWARM = pid("hostile-swarm")


async def test_spoofed_peer_id_on_another_process_is_refused(start_nodes: NodeFactory) -> None:
    n1, n2 = await start_nodes(2)
    victim = await connect(n1.url, "victim")
    await victim.announce(SWARM)
    spoofer = await connect(n2.url, "victim")  # the same peer_id, on another process
    reply = await spoofer.announce(SWARM, offers=1)
    assert reply["reason"] == "peer_id_spoofed" and reply["info_hash"] == SWARM
    reply = await spoofer.announce(pid("another-swarm"))  # in any swarm
    assert reply["reason"] == "peer_id_spoofed"
    # stats in the victim's name from the other process
    await spoofer.send({"action": "stats", "info_hash": SWARM, "peer_id": victim.peer_id,
                        "bytes_p2p_down": 1, "bytes_p2p_up": 1, "bytes_cdn": 1})  # fmt: skip
    reply = await spoofer.recv_where(lambda m: "failure reason" in m)
    assert reply["reason"] == "peer_id_spoofed"
    assert await n2.metric("p2p_signaling_rejections_total", reason="peer_id_spoofed") == 3
    health = await n1.health()
    assert health["peers"] == 1 and health["local_peers"] == 1


async def test_answers_in_another_peers_name_or_unsolicited_are_refused(
    start_nodes: NodeFactory,
) -> None:
    n1, n2 = await start_nodes(2)
    a = await connect(n1.url, "alice")
    b = await connect(n2.url, "bob")
    mallory = await connect(n2.url, "mallory")
    await a.announce(SWARM)
    await mallory.announce(pid("mallory-swarm"))
    await n2.wait_health(lambda h: h["peers"] == 2)
    await b.announce(SWARM, offers=1, sdp="v=0 bob")
    offer = await a.next_offer()
    # an answer made up by a peer the offer was not relayed to (on the offerer's process)
    forged = dict(offer, peer_id=mallory.peer_id)
    await mallory.answer(forged)
    reply = await mallory.recv_where(lambda m: "failure reason" in m)
    assert reply["reason"] == "unsolicited_answer"
    # an answer in alice's name from another process
    await mallory.send({"action": "announce", "info_hash": SWARM, "peer_id": a.peer_id,
                        "to_peer_id": b.peer_id, "offer_id": offer["offer_id"],
                        "answer": {"type": "answer", "sdp": "v=0 forged"}})  # fmt: skip
    reply = await mallory.recv_where(lambda m: "failure reason" in m)
    assert reply["reason"] == "peer_id_spoofed"
    # an unknown offer_id from the right peer, across processes
    await a.answer(dict(offer, offer_id="never-relayed"))
    reply = await a.recv_where(lambda m: "failure reason" in m)
    assert reply["reason"] == "unsolicited_answer"
    # the real answer crosses once, and only once
    await a.answer(offer, sdp="v=0 real")
    assert (await b.next_answer())["answer"]["sdp"] == "v=0 real"
    await a.answer(offer, sdp="v=0 replay")
    reply = await a.recv_where(lambda m: "failure reason" in m)
    assert reply["reason"] == "unsolicited_answer"
    assert await n1.metric("p2p_signaling_rejections_total", reason="unsolicited_answer") == 2
    assert await n2.metric("p2p_signaling_rejections_total", reason="unsolicited_answer") == 1
    assert await n1.metric("p2p_signaling_relays_total", kind="answer") == 1


async def test_answer_after_offer_ttl_is_unsolicited_across_processes(
    start_nodes: NodeFactory,
) -> None:
    n1, n2 = await start_nodes(
        2, P2P_SIGNALING_OFFER_TTL_S="0.3", P2P_SIGNALING_SWEEP_INTERVAL_S="0.1"
    )
    a = await connect(n1.url, "alice")
    b = await connect(n2.url, "bob")
    await a.announce(SWARM)
    await n2.wait_health(lambda h: h["peers"] == 1)
    await b.announce(SWARM, offers=1)
    offer = await a.next_offer()
    await asyncio.sleep(0.5)
    await a.answer(offer)
    reply = await a.recv_where(lambda m: "failure reason" in m)
    assert reply["reason"] == "unsolicited_answer"


async def test_a_peer_moving_to_another_process_keeps_its_peer_id(
    start_nodes: NodeFactory,
) -> None:
    n1, n2 = await start_nodes(2)
    a = await connect(n1.url, "mover")
    other = await connect(n2.url, "stayer")
    await a.announce(SWARM)
    await other.announce(SWARM)
    await n2.wait_health(lambda h: h["peers"] == 2)
    await a.close()  # leaves n1 (alive), and comes back at once on n2
    # n1's release crosses Redis: usually within milliseconds, later on a busy machine
    deadline = asyncio.get_running_loop().time() + 30.0
    while True:
        moved = await connect(n2.url, "mover")
        reply = await moved.announce(SWARM)
        if "interval" in reply:
            break
        assert reply["reason"] == "peer_id_spoofed"  # n1's release not through yet
        await moved.close()
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    assert reply["incomplete"] == 2
    await n1.wait_health(lambda h: h["peers"] == 2 and h["local_peers"] == 0)
    await other.announce(SWARM, offers=1)
    offer = await moved.next_offer()
    await moved.answer(offer)
    assert (await other.next_answer())["peer_id"] == moved.peer_id
