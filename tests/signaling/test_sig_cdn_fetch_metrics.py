"""/metrics counts the CDN fetches by phase (join ramp, steady) that peers report in the
optional fields of ``stats`` (docs/signaling.md), on a real server with real WebSocket clients;
bad values are rejected and counted like any malformed message."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.signaling.sig_support import Client, ServerFactory, connect, pid


async def stats(client: Client, info_hash: str, **fields: Any) -> None:
    await client.send(
        {
            "action": "stats",
            "info_hash": info_hash,
            "peer_id": client.peer_id,
            "bytes_p2p_down": 0,
            "bytes_p2p_up": 0,
            "bytes_cdn": 0,
            **fields,
        }
    )


async def test_cdn_fetches_by_phase(start_server: ServerFactory) -> None:
    server = await start_server()
    swarm = pid("swarm-fetches")
    a = await connect(server.url, "fetch-a")
    b = await connect(server.url, "fetch-b")
    try:
        await a.announce(swarm)
        await b.announce(swarm)
        assert await server.metric("p2p_signaling_peer_cdn_fetches_total", phase="steady") == 0
        await stats(a, swarm, cdn_fetches_join_ramp=4, cdn_fetches_steady=1)
        await stats(b, swarm, cdn_fetches_join_ramp=3, cdn_fetches_steady=0)
        await stats(a, swarm, cdn_fetches_join_ramp=4, cdn_fetches_steady=6)  # +5 steady
        await stats(b, swarm, cdn_fetches_join_ramp=1, cdn_fetches_steady=2)  # restarted: all new
        await stats(a, swarm)  # without the fields: counts nothing, forgets nothing
        steady = 0.0
        for _ in range(100):  # stats have no reply: wait until the server has counted them
            steady = await server.metric("p2p_signaling_peer_cdn_fetches_total", phase="steady")
            if steady == 6 + 2:
                break
            await asyncio.sleep(0.02)
        assert steady == 8
        ramp = await server.metric("p2p_signaling_peer_cdn_fetches_total", phase="join_ramp")
        assert ramp == 4 + 3 + 1
        # A negative count is malformed: rejected, counted, nothing added.
        before = await server.rejections("out_of_range")
        await stats(a, swarm, cdn_fetches_join_ramp=-1, cdn_fetches_steady=9)
        for _ in range(100):
            if await server.rejections("out_of_range") == before + 1:
                break
            await asyncio.sleep(0.02)
        assert await server.rejections("out_of_range") == before + 1
        assert await server.metric("p2p_signaling_peer_cdn_fetches_total", phase="steady") == 8
    finally:
        await a.close()
        await b.close()
