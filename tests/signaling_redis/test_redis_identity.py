"""Issue 10 item 2 on a cluster: keyed peer_ids across two real `p2p-signaling` processes and a
real Redis. An attacker on another process, or first after both processes restart, is refused;
the victim's proven reconnect to the other process takes its peer_id over (the old process drops
its stale socket's membership) and offers reach the new socket."""

from __future__ import annotations

from signaling.peerkey import derive_peer_id
from tests.signaling.sig_support import Client, connect, pid
from tests.signaling_redis.conftest import NodeFactory

SWARM = pid("identity-cluster")
KEY = "ClusterVictimKey0123456789abcdef"
VICTIM = derive_peer_id(KEY)


async def as_victim(url: str, name: str) -> Client:
    client = await connect(url, name)
    client.peer_id = VICTIM
    return client


async def test_keyed_peer_id_across_processes_and_restarts(start_nodes: NodeFactory) -> None:
    n1, n2 = await start_nodes(2)
    old = await as_victim(n1.url, "victim-old")
    assert "failure reason" not in await old.announce(SWARM, peer_key=KEY)
    await n2.wait_health(lambda h: h.get("peers") == 1)
    attacker = await as_victim(n2.url, "attacker")
    for extra in ({}, {"peer_key": "AttackerOwnKey0123456789"}):
        assert (await attacker.announce(SWARM, offers=1, **extra))["reason"] == "peer_id_unproven"
    # the victim reconnects to the other process while its old socket lingers on n1
    new = await as_victim(n2.url, "victim-new")
    reply = await new.announce(SWARM, peer_key=KEY)
    assert "failure reason" not in reply, reply
    await n1.wait_health(lambda h: h.get("local_peers") == 0 and h.get("peers") == 1)
    assert await n1.metric("p2p_signaling_peer_id_takeovers_total", where="remote") == 1
    honest = await connect(n1.url, "honest")
    await honest.announce(SWARM, offers=1, sdp="v=0 cross")
    offer = await new.next_offer()
    assert offer["peer_id"] == honest.peer_id
    await new.answer(offer, sdp="v=0 cross-answer")
    assert (await honest.next_answer())["peer_id"] == VICTIM
    assert old.inbox == [] and attacker.inbox == []
    # both processes restart (new node ids; Redis keeps the old bindings until their TTL)
    for node in (n1, n2):
        await node.stop()
    m1, m2 = await start_nodes(2)
    attacker = await as_victim(m1.url, "attacker")
    assert (await attacker.announce(SWARM, offers=1))["reason"] == "peer_id_unproven"
    back = await as_victim(m2.url, "victim-back")
    assert "failure reason" not in await back.announce(SWARM, peer_key=KEY)
    await m1.wait_health(lambda h: h.get("peers") == 1)
    honest = await connect(m1.url, "honest-2")
    await honest.announce(SWARM, offers=1, sdp="v=0 after")
    assert (await back.next_offer())["offer"]["sdp"] == "v=0 after"
    assert await m1.metric("p2p_signaling_rejections_total", reason="peer_id_unproven") == 1
