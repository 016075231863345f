"""TrackerClient with a keyed peer_id (issue 10 item 2) against the real signaling server: after a
server restart an attacker who announces the agent's peer_id first is refused, and the agent's
reconnect proves its key and gets its offers. The key never reaches the logs."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest
import websockets

from peer_agent.agent.agent import make_ids
from peer_agent.net.peer_key import derive_peer_id, key_for, make_keyed_identity, valid_peer_key
from peer_agent.net.tracker import TrackerClient
from tests.net.conftest import ServerFactory, ident, wait_until
from tests.net.test_tracker import Probe

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "docs/vectors/signaling/peer_key.json").read_text()
)


def test_peer_key_vectors_and_identity() -> None:
    for case in VECTORS["derive"]:
        assert derive_peer_id(case["peer_key"]) == case["peer_id"]
    for bad in VECTORS["invalid_keys"]:
        assert not valid_peer_key(bad)
    peer_id, key = make_keyed_identity()
    assert derive_peer_id(key) == peer_id and key_for(peer_id) == key and len(key) == 32
    _, agent_id = make_ids("http://o/x.m3u8", random.Random(1))
    assert agent_id.startswith(VECTORS["prefix"]) and key_for(agent_id) is not None
    with pytest.raises(ValueError, match="needs its peer_key"):
        TrackerClient("ws://x/announce", ident("s"), derive_peer_id("k" * 20))
    with pytest.raises(ValueError, match="does not derive"):
        TrackerClient("ws://x/announce", ident("s"), peer_id, peer_key="z" * 32)


async def test_keyed_agent_keeps_its_peer_id_across_a_restart(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await start_server()
    port = server.port
    peer_id, key = make_keyed_identity()
    pa = Probe(answer="v=0 answer")
    a = TrackerClient(
        server.url,
        ident("swarm-t"),
        peer_id,
        config=pa.client(server, "unused").config,
        on_offer=pa.on_offer,
        on_announce_reply=pa.on_reply,
        on_failure=pa.on_failure,
    )
    await a.start()
    try:
        await wait_until(lambda: pa.replies, pa.changed)
        await server.stop()
        n = len(pa.replies)
        restarted = await start_server(port=port)
        # the attacker is first on the restarted server
        async with websockets.connect(restarted.url) as attacker:
            await attacker.send(
                json.dumps(
                    {
                        "action": "announce",
                        "info_hash": ident("swarm-t"),
                        "peer_id": peer_id,
                        "numwant": 1,
                        "offers": [],
                    }
                )  # fmt: skip
            )
            refused = json.loads(await attacker.recv())
            assert refused["reason"] == "peer_id_unproven"
            await wait_until(lambda: len(pa.replies) > n, pa.changed)
            assert pa.failures == []
            pb = Probe(offers=[("offer-b", "v=0 offer-b")])
            b = pb.client(restarted, "honest")
            await b.start()
            try:
                await wait_until(lambda: pb.answers_in, pb.changed)
                assert pa.offers_in[-1].peer_id == b.peer_id
                assert pb.answers_in[-1].peer_id == peer_id
            finally:
                await b.stop()
    finally:
        await a.stop()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert key not in text
