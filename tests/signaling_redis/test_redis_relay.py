"""Two and three real signaling processes on one real Redis: offers and answers cross processes,
swarms split over processes, and /api/swarms and /metrics add up."""

from __future__ import annotations

from tests.signaling.sig_support import connect, pid
from tests.signaling_redis.conftest import NodeFactory

SWARM = pid("cross-swarm")
OTHER = pid("cross-other")


async def wait_peers(node, count: int, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    await node.wait_health(lambda h: h.get("peers") == count, timeout_s)


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
