"""Issue 10 item 2: keyed peer_ids (docs/signaling.md "peer_id ownership"). An attacker who
announces a victim's keyed peer_id, before or after a restart or a reconnect, is refused
(`peer_id_unproven`) and gets nothing of the victim's; the victim's proven reconnect takes its
peer_id over from its own stale socket and keeps working. Real sockets, a real `p2p-signaling`
process restarted on its port; the Redis variant is in tests/signaling_redis/test_redis_identity.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from signaling.peerkey import derive_peer_id, proves, valid_peer_key
from tests.signaling.sig_support import Client, ServerFactory, connect, exchange_works, pid
from tests.signaling_redis.redis_support import SignalingProcess

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "docs/vectors/signaling/peer_key.json").read_text()
)
SWARM = pid("identity-swarm")
VICTIM_KEY = "VictimSecretKey0123456789abcdefg"
VICTIM_ID = derive_peer_id(VICTIM_KEY)


def test_peer_key_vectors() -> None:
    for case in VECTORS["derive"]:
        assert derive_peer_id(case["peer_key"]) == case["peer_id"]
        assert proves(case["peer_id"], case["peer_key"])
        assert len(case["peer_id"]) == 20 and case["peer_id"].startswith(VECTORS["prefix"])
    for bad in VECTORS["invalid_keys"]:
        assert not valid_peer_key(bad)


async def keyed(url: str, name: str, key: str = VICTIM_KEY) -> Client:
    client = await connect(url, name)
    client.peer_id = derive_peer_id(key)
    return client


async def offer_reaches(target: Client, offerer: Client, sdp: str) -> None:
    reply = await offerer.announce(SWARM, offers=1, sdp=sdp)
    assert "failure reason" not in reply, reply
    offer = await target.next_offer()
    assert offer["peer_id"] == offerer.peer_id and offer["offer"]["sdp"] == sdp
    await target.answer(offer, sdp=sdp + "-answer")
    assert (await offerer.next_answer())["answer"]["sdp"] == sdp + "-answer"


async def refused_as_unproven(attacker: Client, **extra: str) -> None:
    reply = await attacker.announce(SWARM, offers=1, **extra)
    assert reply["reason"] == "peer_id_unproven", reply


async def test_attacker_after_a_restart_gets_nothing(tmp_path: Path) -> None:
    node = SignalingProcess(None, {})
    await node.start()
    try:
        victim = await keyed(node.url, "victim")
        assert "failure reason" not in await victim.announce(SWARM, peer_key=VICTIM_KEY)
        attacker = await connect(node.url, "attacker")
        attacker.peer_id = VICTIM_ID
        await refused_as_unproven(attacker)
        await refused_as_unproven(attacker, peer_key="AttackerOwnKey0123456789")
        await node.stop()
        await node.start()  # same port: a restart, nothing remembered
        # the attacker is first after the restart
        attacker = await connect(node.url, "attacker")
        attacker.peer_id = VICTIM_ID
        await refused_as_unproven(attacker)
        victim = await keyed(node.url, "victim")
        assert "failure reason" not in await victim.announce(SWARM, peer_key=VICTIM_KEY)
        honest = await connect(node.url, "honest")
        await offer_reaches(victim, honest, "v=0 after-restart")
        assert attacker.inbox == []
        assert await node.metric("p2p_signaling_rejections_total", reason="peer_id_unproven") == 1
    finally:
        await node.stop()


async def test_reconnect_takes_over_from_the_stale_socket(start_server: ServerFactory) -> None:
    server = await start_server()
    old = await keyed(server.url, "victim-old")
    await old.announce(SWARM, peer_key=VICTIM_KEY)
    # the victim reconnects while its old socket is still open (half-open after a network change)
    new = await keyed(server.url, "victim-new")
    reply = await new.announce(SWARM, peer_key=VICTIM_KEY)
    assert reply["incomplete"] == 1, reply  # one victim, not two
    honest = await connect(server.url, "honest")
    await offer_reaches(new, honest, "v=0 to-new")
    assert old.inbox == []
    assert await server.metric("p2p_signaling_peer_id_takeovers_total", where="local") == 1
    # an attacker cannot take it over: no key, a wrong key
    attacker = await connect(server.url, "attacker")
    attacker.peer_id = VICTIM_ID
    await refused_as_unproven(attacker)
    await refused_as_unproven(attacker, peer_key="AttackerOwnKey0123456789")
    await offer_reaches(new, await connect(server.url, "honest-2"), "v=0 still-new")
    # standard clients keep the per-connection binding
    plain = await connect(server.url, "plain")
    await plain.announce(SWARM)
    spoof = await connect(server.url, "plain")
    assert (await spoof.announce(SWARM))["reason"] == "peer_id_spoofed"
    await exchange_works(server)


@pytest.mark.parametrize("field", [None, "short"])
async def test_keyed_ids_need_a_well_formed_key(
    start_server: ServerFactory, field: str | None
) -> None:
    server = await start_server()
    client = await keyed(server.url, "victim")
    extra = {} if field is None else {"peer_key": field}
    reply = await client.announce(SWARM, **extra)
    assert reply["reason"] == ("peer_id_unproven" if field is None else "bad_peer_key")
