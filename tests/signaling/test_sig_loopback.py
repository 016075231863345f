"""End-to-end over loopback: a real uvicorn server and `websockets` clients."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from signaling.app import create_app
from signaling.config import SignalingConfig
from signaling.messages import id_hex
from tests.signaling.sig_support import RunningServer, ServerFactory, connect, exchange_works, pid

SWARM = pid("swarm-one")
OTHER = pid("swarm-two")


async def test_join_reply_has_interval_and_counts(start_server: ServerFactory) -> None:
    server = await start_server(announce_interval_s=30)
    a = await connect(server.url, "alice")
    reply = await a.announce(SWARM)
    assert reply == {
        "action": "announce",
        "interval": 30,
        "info_hash": SWARM,
        "complete": 0,
        "incomplete": 1,
    }
    b = await connect(server.url, "bob")
    reply = await b.announce(SWARM, left=0)
    assert (reply["complete"], reply["incomplete"]) == (1, 1)


async def test_offer_and_answer_relay(server: RunningServer) -> None:
    a = await connect(server.url, "alice")
    b = await connect(server.url, "bob")
    await a.announce(SWARM)
    await b.announce(SWARM, offers=3, sdp="v=0 bob-offer")
    offer = await a.next_offer()
    assert offer["peer_id"] == b.peer_id and offer["info_hash"] == SWARM
    assert offer["offer"] == {"type": "offer", "sdp": "v=0 bob-offer"}
    assert "to_peer_id" not in offer
    await a.answer(offer, sdp="v=0 alice-answer")
    answer = await b.next_answer()
    assert answer == {
        "action": "announce",
        "info_hash": SWARM,
        "peer_id": a.peer_id,
        "offer_id": offer["offer_id"],
        "answer": {"type": "answer", "sdp": "v=0 alice-answer"},
    }
    assert await server.metric("p2p_signaling_relays_total", kind="offer") == 1
    assert await server.metric("p2p_signaling_relays_total", kind="answer") == 1
    assert await server.metric("p2p_signaling_relay_latency_seconds_count", kind="offer") == 1


async def test_stopped_leaves_the_swarm(server: RunningServer) -> None:
    a = await connect(server.url, "alice")
    b = await connect(server.url, "bob")
    await a.announce(SWARM)
    await b.announce(SWARM)
    reply = await a.announce(SWARM, event="stopped")
    assert reply["incomplete"] == 1
    # bob's offers now find nobody
    await b.announce(SWARM, offers=2)
    body = (await server.get("/api/admin/swarms")).json()
    assert body["peer_count"] == 1
    assert [p["peer_id"] for p in body["swarms"][0]["peers"]] == [id_hex(b.peer_id)]
    assert await server.metric("p2p_signaling_relays_total", kind="offer") == 0


async def test_two_swarms_on_one_socket(server: RunningServer) -> None:
    a = await connect(server.url, "alice")
    b = await connect(server.url, "bob")
    c = await connect(server.url, "carol")
    assert (await a.announce(SWARM))["info_hash"] == SWARM
    assert (await a.announce(OTHER))["info_hash"] == OTHER
    await b.announce(SWARM)
    await c.announce(OTHER, offers=1, sdp="v=0 carol")
    offer = await a.next_offer()
    assert offer["info_hash"] == OTHER and offer["peer_id"] == c.peer_id
    await a.answer(offer)
    assert (await c.next_answer())["info_hash"] == OTHER
    scrape = {"action": "scrape", "info_hash": [SWARM, OTHER]}
    await a.send(scrape)
    files = (await a.recv_where(lambda m: m.get("action") == "scrape"))["files"]
    assert files[SWARM]["incomplete"] == 2 and files[OTHER]["incomplete"] == 2
    # leaving one swarm keeps the other
    await a.announce(SWARM, event="stopped")
    body = (await server.get("/api/swarms")).json()
    sizes = {s["info_hash"]: s["peer_count"] for s in body["swarms"]}
    assert sizes == {id_hex(SWARM): 1, id_hex(OTHER): 2}


async def test_reannounce_keeps_peers_and_silent_peers_expire(
    start_server: ServerFactory,
) -> None:
    # The TTL is long next to bob's re-announce period (0.2 s plus a round trip) so that only a
    # stall of seconds on a busy machine could expire him; alice's expiry is waited for, not
    # assumed to have happened after a fixed time.
    server = await start_server(peer_ttl_s=3.0, sweep_interval_s=0.1)
    a = await connect(server.url, "alice")
    b = await connect(server.url, "bob")
    await a.announce(SWARM)
    reply = await b.announce(SWARM)
    assert reply["incomplete"] == 2
    deadline_s = asyncio.get_running_loop().time() + 60.0
    while await server.metric("p2p_signaling_expired_peers_total") == 0:
        assert asyncio.get_running_loop().time() < deadline_s, "alice never expired"
        await asyncio.sleep(0.2)  # bob re-announces on interval; alice goes quiet
        reply = await b.announce(SWARM)
    reply = await b.announce(SWARM)
    assert (reply["complete"], reply["incomplete"]) == (0, 1)
    body = (await server.get("/api/admin/swarms")).json()
    assert [p["peer_id"] for p in body["swarms"][0]["peers"]] == [id_hex(b.peer_id)]
    assert await server.metric("p2p_signaling_expired_peers_total") == 1
    # alice's socket is still open: a re-announce brings her back
    assert (await a.announce(SWARM))["incomplete"] == 2


async def test_pairing_by_playback_position(server: RunningServer) -> None:
    peers = []
    for n in range(8):
        c = await connect(server.url, f"viewer{n}")
        await c.announce(SWARM, position_s=float(n * 60), region="eu")
        peers.append(c)
    late = await connect(server.url, "newcomer")
    await late.announce(SWARM, offers=2, position_s=185.0, region="eu", max_peers=8)
    # positions 180 and 240 are closest to 185 (120 is the next): they get the two offers
    for n in (3, 4):
        assert (await peers[n].next_offer())["peer_id"] == late.peer_id
    for n in (0, 1, 2, 5, 6, 7):
        await peers[n].announce(SWARM, position_s=float(n * 60), region="eu")
        assert not any("offer" in m for m in peers[n].inbox)


async def test_stats_are_summed_per_swarm(server: RunningServer) -> None:
    a = await connect(server.url, "alice")
    b = await connect(server.url, "bob")
    await a.announce(SWARM)
    await b.announce(SWARM)
    for client, counters in ((a, (300, 100, 700)), (b, (100, 300, 0))):
        await client.send(
            {
                "action": "stats",
                "info_hash": SWARM,
                "peer_id": client.peer_id,
                "bytes_p2p_down": counters[0],
                "bytes_p2p_up": counters[1],
                "bytes_cdn": counters[2],
            }
        )
    await a.announce(SWARM)  # round trip: both stats were handled before this reply
    await b.announce(SWARM)
    swarm = (await server.get("/api/swarms")).json()["swarms"][0]
    assert (swarm["bytes_p2p_down"], swarm["bytes_p2p_up"], swarm["bytes_cdn"]) == (400, 400, 700)
    assert swarm["p2p_ratio"] == 400 / 1100
    assert await server.metric("p2p_signaling_messages_total", action="stats") == 2


async def test_http_endpoints(server: RunningServer) -> None:
    a = await connect(server.url, "alice")
    await a.announce(SWARM)
    health = (await server.get("/healthz")).json()
    assert health == {"status": "ok", "connections": 1, "peers": 1, "swarms": 1}
    schema = (await server.get("/openapi.json")).json()
    assert "SwarmsResponse" in schema["components"]["schemas"]
    ok = schema["paths"]["/api/swarms"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("SwarmsResponse")
    text = (await server.get("/metrics")).text
    for name in (
        "p2p_signaling_peers 1.0",
        "p2p_signaling_swarms 1.0",
        "p2p_signaling_connections 1.0",
        'p2p_signaling_messages_total{action="announce"} 1.0',
    ):
        assert name in text


async def test_scrape_all_swarms(server: RunningServer) -> None:
    a = await connect(server.url, "alice")
    await a.announce(SWARM)
    await a.announce(OTHER, event="completed")
    await a.send({"action": "scrape"})
    files = (await a.recv_where(lambda m: m.get("action") == "scrape"))["files"]
    assert files == {
        SWARM: {"complete": 0, "incomplete": 1, "downloaded": 0},
        OTHER: {"complete": 1, "incomplete": 0, "downloaded": 1},
    }


async def test_disconnect_removes_peers(server: RunningServer) -> None:
    a = await connect(server.url, "alice")
    await a.announce(SWARM)
    await a.announce(OTHER)
    await a.close()
    for _ in range(100):
        if (await server.get("/healthz")).json()["peers"] == 0:
            break
        await asyncio.sleep(0.02)
    assert (await server.get("/healthz")).json() == {
        "status": "ok",
        "connections": 0,
        "peers": 0,
        "swarms": 0,
    }
    await exchange_works(server)


async def test_graceful_shutdown_closes_sockets_with_1001(start_server: ServerFactory) -> None:
    server = await start_server(shutdown_grace_s=2.0)
    clients = [await connect(server.url, f"c{n}") for n in range(3)]
    for c in clients:
        await c.announce(SWARM)
    server.server.should_exit = True
    codes = await asyncio.gather(*(c.closed_with(5.0) for c in clients))
    assert codes == [1001, 1001, 1001]
    await asyncio.wait_for(server.task, 10.0)


async def test_shutdown_cancels_sockets_that_ignore_the_close(start_server: ServerFactory) -> None:
    server = await start_server(shutdown_grace_s=0.3)
    polite = await connect(server.url, "polite")
    await polite.announce(SWARM)
    # A raw client that completes the handshake and then never reads or answers a close frame.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /announce HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    assert (await server.get("/healthz")).json()["connections"] == 2
    started = asyncio.get_running_loop().time()
    server.server.should_exit = True
    assert await polite.closed_with(5.0) == 1001
    await asyncio.wait_for(server.task, 10.0)
    assert asyncio.get_running_loop().time() - started < 5.0
    assert server.runtime.router.all_closed.is_set()
    # the raw client was sent a close frame too
    assert b"\x88" in await asyncio.wait_for(reader.read(64), 2.0)
    writer.close()


async def test_shutdown_cancels_sessions_still_running_after_grace() -> None:
    """ASGI level: a socket whose send blocks forever is cancelled once the grace period ends."""
    app = create_app(SignalingConfig(shutdown_grace_s=0.2))
    runtime = app.state.signaling
    incoming: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    incoming.put_nowait({"type": "websocket.connect"})
    blocked = asyncio.Event()

    async def receive() -> dict[str, object]:
        return await incoming.get()

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "websocket.close":
            blocked.set()
            await asyncio.Event().wait()  # a transport that never drains

    scope = {"type": "websocket", "path": "/announce", "headers": [], "query_string": b""}
    session = asyncio.get_running_loop().create_task(runtime.endpoint(scope, receive, send))
    for _ in range(100):
        if len(runtime.router):
            break
        await asyncio.sleep(0.01)
    assert len(runtime.router) == 1
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("signaling.ws").addHandler(handler)
    try:
        await asyncio.wait_for(runtime.shutdown(), 5.0)
    finally:
        logging.getLogger("signaling.ws").removeHandler(handler)
    assert blocked.is_set()
    assert any("cancelling 1 connections" in r for r in records), records
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(session, 2.0)
    assert session.done() and len(runtime.router) == 0


async def test_split_offers_carry_drop_and_unused_offers_are_listed(server: RunningServer) -> None:
    """docs/signaling.md "Making room": two full members linked to each other, both able to
    make room, each get one of a newcomer's offers naming the other; the offer left over is
    listed in the reply's unused_offers."""
    info_hash = pid("split-swarm")
    a = await connect(server.url, "split-a")
    b = await connect(server.url, "split-b")
    n = await connect(server.url, "split-n")
    try:
        for me, other in ((a, b), (b, a)):
            reply = await me.announce(
                info_hash, max_peers=1, caps=["split"], connected=[other.peer_id]
            )
            assert "unused_offers" not in reply
        reply = await n.announce(info_hash, offers=3, max_peers=8)
        got_a, got_b = await a.next_offer(), await b.next_offer()
        assert (got_a["drop"], got_b["drop"]) == (b.peer_id, a.peer_id)
        sent = {got_a["offer_id"], got_b["offer_id"]}
        assert len(reply["unused_offers"]) == 1 and reply["unused_offers"][0] not in sent
        # A standard client (no hints) is never split for: full members stay skipped, so of
        # its two offers one goes to the newcomer (free slots), the other to nobody.
        plain = await connect(server.url, "split-plain")
        try:
            reply = await plain.announce(info_hash, offers=2)
            assert len(reply["unused_offers"]) == 1
            offer = await n.next_offer()
            assert offer["peer_id"] == plain.peer_id and "drop" not in offer
        finally:
            await plain.close()
    finally:
        for c in (a, b, n):
            await c.close()
