"""Issue 10 item 2 (API side): the public API lists no peer_id; per-peer detail and /metrics need
the admin credential (or, without one configured, a direct request on loopback). Real server,
real HTTP."""

from __future__ import annotations

import httpx

from signaling.messages import id_hex
from tests.signaling.sig_support import ServerFactory, connect, exchange_works, pid

SWARM = pid("admin-swarm")
TOKEN = "admin-token-0123456789abcdef"


async def get(server, path: str, **headers: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(base_url=server.http, timeout=5.0) as client:
        return await client.get(path, headers=headers)


async def test_public_api_lists_no_peer_id_and_admin_needs_the_token(
    start_server: ServerFactory,
) -> None:
    server = await start_server(admin_token=TOKEN)
    a = await connect(server.url, "admin-alice")
    b = await connect(server.url, "admin-bob")
    await a.announce(SWARM)
    await b.announce(SWARM)
    public = await get(server, "/api/swarms")
    assert public.status_code == 200
    body = public.json()
    assert body["peer_count"] == 2 and body["swarms"][0]["peer_count"] == 2
    assert "peers" not in body["swarms"][0]
    for peer in (a, b):
        assert id_hex(peer.peer_id) not in public.text and peer.peer_id not in public.text
    # the old per-peer query parameter gives nothing more
    assert "peers" not in (await get(server, "/api/swarms?peers_limit=100")).json()["swarms"][0]

    for path in ("/metrics", "/api/admin/swarms"):
        missing = await get(server, path)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert (await get(server, path, authorization="Bearer wrong-token")).status_code == 401
        assert (await get(server, path, authorization=TOKEN)).status_code == 401
    detail = await get(server, "/api/admin/swarms", authorization="Bearer " + TOKEN)
    assert detail.status_code == 200
    peers = {p["peer_id"] for p in detail.json()["swarms"][0]["peers"]}
    assert peers == {id_hex(a.peer_id), id_hex(b.peer_id)}
    metrics = await get(server, "/metrics", authorization="Bearer " + TOKEN)
    assert metrics.status_code == 200
    assert 'p2p_signaling_rejections_total{reason="admin_unauthorized"} 6.0' in metrics.text
    await exchange_works(server)


async def test_without_a_token_only_direct_loopback_is_admin(start_server: ServerFactory) -> None:
    server = await start_server()
    a = await connect(server.url, "admin-carol")
    await a.announce(SWARM)
    assert (await get(server, "/metrics")).status_code == 200
    assert (await get(server, "/api/admin/swarms")).json()["swarms"][0]["peers"]
    for header in ("x-forwarded-for", "forwarded", "x-real-ip"):
        # what a reverse proxy on the same host adds: not direct, so not admin
        refused = await get(server, "/metrics", **{header: "203.0.113.7"})
        assert refused.status_code == 403 and "admin-token" in refused.json()["detail"]
        assert (
            await get(server, "/api/admin/swarms", **{header: "203.0.113.7"})
        ).status_code == 403
    assert await server.rejections("admin_forbidden") == 6
    assert (
        await get(server, "/api/swarms", **{"x-forwarded-for": "203.0.113.7"})
    ).status_code == 200
