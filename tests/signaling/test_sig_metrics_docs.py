"""/metrics byte counters (process-wide and per swarm, bounded) and /docs off by default, on a
real server with real WebSocket clients."""

from __future__ import annotations

import asyncio

from tests.signaling.sig_support import Client, ServerFactory, connect, pid


async def stats(client: Client, info_hash: str, down: int, up: int, cdn: int) -> None:
    await client.send(
        {
            "action": "stats",
            "info_hash": info_hash,
            "peer_id": client.peer_id,
            "bytes_p2p_down": down,
            "bytes_p2p_up": up,
            "bytes_cdn": cdn,
        }
    )


async def test_docs_pages_are_off_by_default(start_server: ServerFactory) -> None:
    server = await start_server()
    assert (await server.get("/docs")).status_code == 404
    assert (await server.get("/redoc")).status_code == 404
    assert (await server.get("/openapi.json")).status_code == 200  # local, always there
    with_docs = await start_server(api_docs=True)
    page = await with_docs.get("/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()


async def test_metrics_export_bytes_per_source_and_per_swarm(start_server: ServerFactory) -> None:
    server = await start_server(metrics_max_swarms=1)
    first, second = pid("swarm-one"), pid("swarm-two")
    a = await connect(server.url, "bytes-a")
    b = await connect(server.url, "bytes-b")
    try:
        await a.announce(first)
        await b.announce(first)
        await stats(a, first, 1000, 10, 300)
        await stats(b, first, 500, 20, 100)
        await stats(a, first, 1500, 10, 300)  # +500 from peers
        await stats(b, first, 0, 0, 50)  # b restarted its counters: 50 new CDN bytes
        await b.announce(second)
        await stats(b, second, 7, 7, 7)
        cdn = 0.0
        for _ in range(100):  # stats have no reply: wait until the server has counted them
            cdn = await server.metric("p2p_signaling_peer_bytes_total", source="cdn")
            if cdn == 300 + 100 + 50 + 7:
                break
            await asyncio.sleep(0.02)
        assert cdn == 457
        assert await server.metric("p2p_signaling_peer_bytes_total", source="p2p_down") == 2007
        assert await server.metric("p2p_signaling_peer_bytes_total", source="p2p_up") == 37
        text = (await server.get("/metrics")).text
        swarm_lines = [x for x in text.splitlines() if x.startswith("p2p_signaling_swarm_bytes")]
        assert len(swarm_lines) == 3  # metrics_max_swarms=1: one swarm, three sources
        hex_first = first.encode("latin-1").hex()
        cdn_first = await server.metric(
            "p2p_signaling_swarm_bytes_total", info_hash=hex_first, source="cdn"
        )
        assert cdn_first == 300 + 100 + 50  # what /api/swarms reports for it
        swarms = (await server.get("/api/swarms")).json()["swarms"]
        assert {s["info_hash"]: s["bytes_cdn"] for s in swarms}[hex_first] == cdn_first
        types = [x for x in text.splitlines() if x.startswith("# TYPE p2p_signaling_swarm_bytes")]
        assert len(types) == 1 and types[0].endswith(" counter")
    finally:
        await a.close()
        await b.close()


async def test_metrics_max_swarms_zero_exports_no_swarm_series(
    start_server: ServerFactory,
) -> None:
    server = await start_server(metrics_max_swarms=0)
    a = await connect(server.url, "bytes-zero")
    try:
        await a.announce(pid("swarm-zero"))
        await stats(a, pid("swarm-zero"), 1, 1, 1)
        text = (await server.get("/metrics")).text
        assert "p2p_signaling_swarm_bytes" not in text
        assert "p2p_signaling_peer_bytes_total" in text
    finally:
        await a.close()
