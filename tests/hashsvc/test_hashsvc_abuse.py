"""Issue 10 item 6: the hash service under hostile upstreams and clients. Each case uses a real
misbehaving HTTP upstream (upstream_support: trickling, ignoring Range) or many clients/variants,
asserts the clear error and its counter, and that an unrelated legitimate playlist from the real
test origin keeps working meanwhile."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import httpx
import pytest
from hashsvc_support import FakeClock, hashsvc_config, wait_for
from upstream_support import (
    Upstream,
    ignores_range,
    media_playlist,
    pattern_bytes,
    playlist,
    static,
    trickle,
)

from peer_agent.origin.server import RunningOrigin
from signaling.hashsvc import RunningHashService, run_hash_service

LEGIT = "/hls/vod-ts/lo/index.m3u8"


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream({})
    await up.start()
    yield up
    await up.stop()


def config(origin: RunningOrigin, upstream: Upstream, **changes: object):  # type: ignore[no-untyped-def]
    base = hashsvc_config(origin.url("/hls/"), **changes)
    return base.with_changes(allow_prefixes=(origin.url("/hls/"), upstream.base + "/"))


def client_at(address: str) -> httpx.AsyncClient:
    """An HTTP client whose requests come from ``address`` (any 127.x.y.z works on loopback)."""
    return httpx.AsyncClient(
        timeout=30.0, transport=httpx.AsyncHTTPTransport(local_address=address)
    )


async def legit_works(svc: RunningHashService, origin: RunningOrigin, path: str = LEGIT) -> None:
    async with client_at("127.0.0.9") as http:
        response = await http.get(svc.manifest_url(origin.url(path)))
        assert response.status_code == 200, response.text
        own = (await http.get(origin.url(path.replace("index.m3u8", "manifest.json")))).json()
        assert response.json() == own and own


async def test_a_trickling_upstream_holds_one_slot_not_all(
    origin: RunningOrigin, upstream: Upstream
) -> None:
    segs = [f"s{n}.ts" for n in range(4)]
    upstream.routes["/slow/index.m3u8"] = playlist(upstream, media_playlist(segs))
    for name in segs:
        upstream.routes[f"/slow/{name}"] = trickle(upstream, 10_000, 1.0)
    cfg = config(
        origin,
        upstream,
        max_concurrent_fetches=2,
        max_fetches_per_upstream=1,
        min_rate_bps=0,
        fetch_deadline_s=60.0,
    )
    async with run_hash_service(cfg) as svc, client_at("127.0.0.2") as http:
        slow = asyncio.ensure_future(http.get(svc.manifest_url(upstream.base + "/slow/index.m3u8")))
        await wait_for(lambda: any(p.endswith(".ts") for p in upstream.requests))
        # the slow upstream's 4 segments queue behind its one slot; the origin's go on
        await legit_works(svc, origin)
        assert not slow.done()
        assert sum(p.endswith(".ts") for p in upstream.requests) == 1
        slow.cancel()


async def test_too_slow_and_past_deadline_fetches_are_abandoned(
    origin: RunningOrigin, upstream: Upstream
) -> None:
    upstream.routes["/t/index.m3u8"] = playlist(upstream, media_playlist(["crawl.ts", "long.ts"]))
    upstream.routes["/t/crawl.ts"] = trickle(upstream, 10_000, 0.5)  # 2 bytes/s
    # fast enough for min_rate_bps but 100 kB at ~5 kB/s never ends within the deadline; in
    # 1000-byte steps (each buys 5 s at 200 bytes/s), not one byte per 0.8 ms: a busy machine
    # slowed that below 200 bytes/s, which made it a second too_slow instead of a deadline
    upstream.routes["/t/long.ts"] = trickle(upstream, 100_000, 0.2, chunk_bytes=1000)
    upstream.routes["/t/ok.ts"] = static(upstream, b"fine")
    cfg = config(origin, upstream, min_rate_bps=200, min_rate_grace_s=0.5, fetch_deadline_s=2.0)
    async with run_hash_service(cfg) as svc, client_at("127.0.0.2") as http:
        response = await http.get(svc.manifest_url(upstream.base + "/t/index.m3u8"))
        assert response.status_code == 200 and response.json() == {}
        stats = (await http.get(svc.url("/stats"))).json()
        assert stats["fetch_errors"]["segment_too_slow"] == 1  # not retried
        assert stats["fetch_errors"]["segment_deadline"] == 1
        await legit_works(svc, origin)


async def test_a_trickling_playlist_is_a_clear_502(
    origin: RunningOrigin, upstream: Upstream
) -> None:
    upstream.routes["/p/index.m3u8"] = trickle(upstream, 5_000, 0.5)
    cfg = config(origin, upstream, min_rate_bps=200, min_rate_grace_s=0.5)
    async with run_hash_service(cfg) as svc, client_at("127.0.0.2") as http:
        response = await http.get(svc.manifest_url(upstream.base + "/p/index.m3u8"))
        assert response.status_code == 502
        assert response.json()["reason"] == "upstream" and "bytes/s" in response.json()["error"]
        stats = (await http.get(svc.url("/stats"))).json()
        assert stats["fetch_errors"] == {"playlist_too_slow": 1}
        assert stats["rejections"] == {"upstream": 1}
        await legit_works(svc, origin)


async def test_query_variants_share_one_slot(origin: RunningOrigin, upstream: Upstream) -> None:
    cfg = config(origin, upstream, max_playlists=4, identity_query_params=("v",))
    async with run_hash_service(cfg) as svc, client_at("127.0.0.2") as http:
        urls = [svc.manifest_url(origin.url(f"{LEGIT}?cb={n}")) for n in range(70)]
        answers = [await http.get(u) for u in urls]  # (concurrently: client_busy past 8)
        assert {r.status_code for r in answers} == {200}
        assert len({r.text for r in answers}) == 1
        assert svc.service.tracked() == [origin.url(LEGIT)]
        # a parameter named in identity_query_params does make another playlist
        assert (
            await http.get(svc.manifest_url(origin.url(f"{LEGIT}?v=2&cb=1")))
        ).status_code == 200
        assert len(svc.service.tracked()) == 2
        await legit_works(svc, origin, "/hls/vod-fmp4/hi/index.m3u8")


async def test_full_slots_evict_the_greediest_idle_client_fairly(origin: RunningOrigin) -> None:
    clock = FakeClock()
    cfg = hashsvc_config(
        origin.url("/hls/"), max_playlists=3, max_playlists_per_client=2, evict_idle_s=10.0
    )
    greedy, other = client_at("127.0.0.2"), client_at("127.0.0.3")
    async with run_hash_service(cfg, clock=clock) as svc, greedy, other:
        for path in ("/hls/vod-ts/lo/index.m3u8", "/hls/vod-ts/hi/index.m3u8"):
            assert (await greedy.get(svc.manifest_url(origin.url(path)))).status_code == 200
        third = await greedy.get(svc.manifest_url(origin.url("/hls/vod-fmp4/lo/index.m3u8")))
        assert third.status_code == 429 and third.json()["reason"] == "client_playlists"
        assert third.headers["retry-after"] == "5"
        assert (
            await other.get(svc.manifest_url(origin.url("/hls/vod-fmp4/lo/index.m3u8")))
        ).status_code == 200
        # full, and everything was asked for just now: nothing to evict
        fourth = origin.url("/hls/vod-fmp4/hi/index.m3u8")
        busy = await other.get(svc.manifest_url(fourth))
        assert busy.status_code == 503 and busy.json()["reason"] == "unavailable"
        clock.advance(11.0)
        assert (await other.get(svc.manifest_url(fourth))).status_code == 200
        stats = svc.stats()
        assert stats["playlists_evicted"] == 1
        assert stats["rejections"] == {"client_playlists": 1, "unavailable": 1}
        # the evicted one is the least recently asked of the client holding the most
        assert origin.url("/hls/vod-ts/lo/index.m3u8") not in svc.service.tracked()
        assert origin.url("/hls/vod-fmp4/lo/index.m3u8") in svc.service.tracked()


async def test_a_server_ignoring_range_is_not_read_to_the_far_range(
    origin: RunningOrigin, upstream: Upstream
) -> None:
    text = media_playlist(["big.ts", "near.ts"], byteranges=["10@50000000", "10@100"])
    upstream.routes["/r/index.m3u8"] = playlist(upstream, text)
    upstream.routes["/r/big.ts"] = ignores_range(upstream, 60_000_000)
    upstream.routes["/r/near.ts"] = ignores_range(upstream, 1_000)
    cfg = config(origin, upstream, max_range_overread_bytes=4096)
    async with run_hash_service(cfg) as svc, client_at("127.0.0.2") as http:
        response = await http.get(svc.manifest_url(upstream.base + "/r/index.m3u8"))
        assert response.status_code == 200
        # within the over-read cap, the range is cut out of the full body and hashed
        near = hashlib.sha256(pattern_bytes(100, 109)).hexdigest()
        assert response.json() == {"near.ts#100-109": near}
        stats = (await http.get(svc.url("/stats"))).json()
        assert stats["fetch_errors"] == {"segment_range_ignored": 1}
        assert stats["bytes_fetched"] < 1_000_000
        assert upstream.body_bytes_sent < 20_000_000  # of 60 MB (kernel buffers hold some)
        await legit_works(svc, origin)


async def test_one_address_cannot_hold_every_request(
    origin: RunningOrigin, upstream: Upstream
) -> None:
    for n in range(3):
        upstream.routes[f"/c/p{n}.m3u8"] = trickle(upstream, 10_000, 1.0)
    cfg = config(origin, upstream, max_requests_per_client=2, min_rate_bps=0, fetch_deadline_s=60.0)
    async with run_hash_service(cfg) as svc, client_at("127.0.0.2") as http:
        held = [
            asyncio.ensure_future(http.get(svc.manifest_url(upstream.base + f"/c/p{n}.m3u8")))
            for n in range(2)
        ]
        await wait_for(lambda: len(upstream.requests) == 2)
        refused = await http.get(svc.manifest_url(upstream.base + "/c/p2.m3u8"))
        assert refused.status_code == 429 and refused.json()["reason"] == "client_busy"
        assert svc.stats()["rejections"] == {"client_busy": 1}
        await legit_works(svc, origin)  # another address
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)


async def test_forwarded_for_names_the_client_only_from_a_trusted_proxy(
    origin: RunningOrigin,
) -> None:
    def via(client: str) -> dict[str, str]:
        return {"X-Forwarded-For": f"198.51.100.9, {client}"}  # the proxy appends the last

    paths = (
        "/hls/vod-ts/lo/index.m3u8",
        "/hls/vod-ts/hi/index.m3u8",
        "/hls/vod-fmp4/lo/index.m3u8",
    )
    urls = [origin.url(p) for p in paths]
    cfg = hashsvc_config(
        origin.url("/hls/"), max_playlists_per_client=1, trusted_proxies=("127.0.0.1/32",)
    )
    async with (
        run_hash_service(cfg) as svc,
        client_at("127.0.0.1") as proxy,
        client_at("127.0.0.2") as direct,
    ):
        first = await proxy.get(svc.manifest_url(urls[0]), headers=via("203.0.113.7"))
        assert first.status_code == 200
        again = await proxy.get(svc.manifest_url(urls[1]), headers=via("203.0.113.7"))
        assert again.status_code == 429 and again.json()["reason"] == "client_playlists"
        # another client behind the same proxy has its own limit
        other = await proxy.get(svc.manifest_url(urls[1]), headers=via("203.0.113.8"))
        assert other.status_code == 200
        # a client that is no trusted proxy cannot pick its address with the header: it is
        # 127.0.0.2, whose one playlist is still free
        spoof = await direct.get(svc.manifest_url(urls[2]), headers=via("203.0.113.7"))
        assert spoof.status_code == 200
        bad = await proxy.get(svc.manifest_url(urls[2]), headers={"X-Forwarded-For": "nope"})
        assert bad.status_code == 400 and bad.json()["reason"] == "bad_forwarded_for"
        assert svc.stats()["rejections"] == {"client_playlists": 1, "bad_forwarded_for": 1}


async def test_forwarded_for_is_ignored_without_trusted_proxies(origin: RunningOrigin) -> None:
    """The default trusts no proxy (uvicorn's own default would trust 127.0.0.1)."""
    cfg = hashsvc_config(origin.url("/hls/"), max_playlists_per_client=1)
    async with run_hash_service(cfg) as svc, client_at("127.0.0.1") as http:
        lo, hi = origin.url("/hls/vod-ts/lo/index.m3u8"), origin.url("/hls/vod-ts/hi/index.m3u8")
        ok = await http.get(svc.manifest_url(lo), headers={"X-Forwarded-For": "203.0.113.7"})
        assert ok.status_code == 200
        # a different claimed client, but the same TCP peer: its one playlist is taken
        refused = await http.get(svc.manifest_url(hi), headers={"X-Forwarded-For": "203.0.113.8"})
        assert refused.status_code == 429 and refused.json()["reason"] == "client_playlists"
        garbage = await http.get(svc.manifest_url(lo), headers={"X-Forwarded-For": "nope"})
        assert garbage.status_code == 200  # not from a trusted proxy: the header means nothing
