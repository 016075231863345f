"""The hash service against the real test origin: both served by uvicorn on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from hashsvc_support import FakeClock, hashsvc_config, wait_for

from peer_agent.origin.server import RunningOrigin
from signaling.hashsvc import RunningHashService, run_hash_service


def segment_requests(origin: RunningOrigin) -> int:
    by_kind: dict[str, Any] = origin.stats()["by_kind"]
    return sum(by_kind.get(k, {}).get("requests", 0) for k in ("segment", "init"))


def playlist_requests(origin: RunningOrigin) -> int:
    return int(origin.stats()["by_kind"].get("playlist", {}).get("requests", 0))


@pytest.mark.parametrize("stream", ["vod-ts", "vod-fmp4", "vod-byterange"])
async def test_vod_manifest_equals_the_origins(
    origin: RunningOrigin, hashsvc: RunningHashService, http: httpx.AsyncClient, stream: str
) -> None:
    expected_total = 0
    for rendition in ("lo", "hi"):
        playlist = origin.url(f"/hls/{stream}/{rendition}/index.m3u8")
        response = await http.get(hashsvc.manifest_url(playlist))
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == "*"
        assert "max-age" in response.headers["cache-control"]
        own = (await http.get(origin.url(f"/hls/{stream}/{rendition}/manifest.json"))).json()
        assert response.json() == own
        if stream == "vod-fmp4":
            assert "init.mp4" in own
        if stream == "vod-byterange":
            assert all(key.startswith("stream.ts#") for key in own)
        expected_total += len(own)
        # Asked again: answered from memory, nothing refetched.
        again = await http.get(hashsvc.manifest_url(playlist))
        assert again.json() == own
    assert segment_requests(origin) == expected_total
    stats = (await http.get(hashsvc.url("/stats"))).json()
    assert stats["segments_hashed"] == expected_total and stats["playlists_tracked"] == 2
    assert stats["fetch_errors"] == {} and stats["bytes_fetched"] > 0


async def test_live_new_segments_each_fetched_once(
    origin: RunningOrigin,
    hashsvc: RunningHashService,
    http: httpx.AsyncClient,
    origin_clock: FakeClock,
) -> None:
    playlist = origin.url("/hls/live-fmp4/lo/index.m3u8")
    url = hashsvc.manifest_url(playlist)
    first, second = await asyncio.gather(http.get(url), http.get(url))
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    initial = first.json()
    assert set(initial) == {"init.mp4", "seg-0.m4s", "seg-1.m4s", "seg-2.m4s", "seg-3.m4s"}
    assert segment_requests(origin) == len(initial)
    own = (await http.get(origin.url("/hls/live-fmp4/lo/manifest.json"))).json()
    assert all(own[key] == digest for key, digest in initial.items())

    origin_clock.advance(3.0)  # the window slides by three segments: MSNs 3..6
    service = hashsvc.service
    await wait_for(lambda: service.stats()["segments_hashed"] == 8)
    manifest = (await http.get(url)).json()
    assert {"seg-4.m4s", "seg-5.m4s", "seg-6.m4s", "seg-0.m4s"} <= set(manifest)
    own = (await http.get(origin.url("/hls/live-fmp4/lo/manifest.json"))).json()
    # The origin keeps 2 segments of history, the service 30: it lists a superset.
    assert manifest.items() >= own.items()
    # Several refreshes later, still every segment fetched exactly once.
    done = service.refreshes(playlist)
    await wait_for(lambda: service.refreshes(playlist) >= done + 3)
    assert segment_requests(origin) == 8 == service.stats()["segments_hashed"]


async def test_live_history_is_bounded(
    origin: RunningOrigin, http: httpx.AsyncClient, origin_clock: FakeClock
) -> None:
    config = hashsvc_config(origin.url("/hls/"), history_segments=1)
    async with run_hash_service(config) as hashsvc:
        playlist = origin.url("/hls/live-ts/lo/index.m3u8")
        await http.get(hashsvc.manifest_url(playlist))
        origin_clock.advance(3.0)
        await wait_for(lambda: hashsvc.service.stats()["segments_hashed"] == 7)
        await wait_for(lambda: hashsvc.service.refreshes(playlist) >= 1)
        manifest = (await http.get(hashsvc.manifest_url(playlist))).json()
    # Window MSNs 3..6 plus one that left it (MSN 2).
    assert set(manifest) == {f"seg-{n}.ts" for n in range(2, 7)}


async def test_outside_the_prefixes_is_403_and_nothing_fetched(
    origin: RunningOrigin, http: httpx.AsyncClient
) -> None:
    config = hashsvc_config(origin.url("/hls/vod-ts/"))
    async with run_hash_service(config) as hashsvc:
        for playlist in (
            origin.url("/hls/vod-fmp4/lo/index.m3u8"),
            "http://169.254.169.254/latest/meta-data/",
            origin.url("/hls/vod-ts.evil/lo/index.m3u8"),
        ):
            response = await http.get(hashsvc.manifest_url(playlist))
            assert response.status_code == 403, playlist
            assert "error" in response.json()
        assert hashsvc.service.stats()["playlists_tracked"] == 0
    assert origin.stats()["requests"] == 0


async def test_missing_or_garbage_url_is_400(
    origin: RunningOrigin, hashsvc: RunningHashService, http: httpx.AsyncClient
) -> None:
    assert (await http.get(hashsvc.url("/manifest"))).status_code == 400
    for garbage in (
        "",
        "not a url",
        "ftp://127.0.0.1/x.m3u8",
        "/hls/vod-ts/lo/index.m3u8",
        origin.url("/hls/vod-ts/lo/../../vod-fmp4/lo/index.m3u8"),
        origin.url("/hls/vod-ts/lo/%2e%2e/index.m3u8"),
        "http://[::1",
    ):
        response = await http.get(hashsvc.url("/manifest"), params={"playlist": garbage})
        assert response.status_code == 400, garbage
        assert response.json()["error"]
    # A master playlist is not a media playlist.
    master = await http.get(hashsvc.manifest_url(origin.url("/hls/vod-ts/master.m3u8")))
    assert master.status_code == 400 and "master" in master.json()["error"]
    assert segment_requests(origin) == 0


async def test_origin_5xx_on_the_playlist_is_502_and_counted(
    origin: RunningOrigin, hashsvc: RunningHashService, http: httpx.AsyncClient
) -> None:
    origin.set_shaping(error_rate=1.0, faults_on_playlists=True)
    playlist = origin.url("/hls/vod-ts/lo/index.m3u8")
    response = await http.get(hashsvc.manifest_url(playlist))
    assert response.status_code == 502
    assert "503" in response.json()["error"]
    stats = (await http.get(hashsvc.url("/stats"))).json()
    retries = hashsvc.service.config.retries
    assert stats["fetch_errors"] == {"playlist_status": retries + 1}
    assert stats["playlists_tracked"] == 0  # a failed first load is not kept
    # Once the origin recovers, the next request succeeds.
    origin.set_shaping(error_rate=0.0)
    assert (await http.get(hashsvc.manifest_url(playlist))).status_code == 200


async def test_segment_failures_are_retried_and_counted(
    origin: RunningOrigin, http: httpx.AsyncClient
) -> None:
    origin.set_shaping(error_rate=0.4, seed=3)
    config = hashsvc_config(origin.url("/hls/"), retries=6)
    async with run_hash_service(config) as hashsvc:
        playlist = origin.url("/hls/vod-ts/lo/index.m3u8")
        manifest = (await http.get(hashsvc.manifest_url(playlist))).json()
        stats = hashsvc.stats()
    own = (await http.get(origin.url("/hls/vod-ts/lo/manifest.json"))).json()
    assert manifest == own
    errors = origin.stats()["faults"]["error"]
    assert errors >= 1
    assert stats["fetch_errors"] == {"segment_status": errors}
    assert stats["retries"] == errors and stats["segments_hashed"] == len(own)


async def test_max_playlists_is_503(origin: RunningOrigin, http: httpx.AsyncClient) -> None:
    async with run_hash_service(hashsvc_config(origin.url("/hls/"), max_playlists=1)) as svc:
        ok = await http.get(svc.manifest_url(origin.url("/hls/vod-ts/lo/index.m3u8")))
        assert ok.status_code == 200
        full = await http.get(svc.manifest_url(origin.url("/hls/vod-ts/hi/index.m3u8")))
        assert full.status_code == 503 and full.json()["error"]
        assert "retry-after" in full.headers


async def test_idle_playlists_expire_and_stop_refreshing(
    origin: RunningOrigin, http: httpx.AsyncClient
) -> None:
    clock = FakeClock(100.0)
    config = hashsvc_config(origin.url("/hls/"), idle_expiry_s=30.0)
    async with run_hash_service(config, clock=clock) as hashsvc:
        service = hashsvc.service
        playlist = origin.url("/hls/live-ts/lo/index.m3u8")
        assert (await http.get(hashsvc.manifest_url(playlist))).status_code == 200
        await wait_for(lambda: service.refreshes(playlist) >= 2)
        assert service.tracked() == [playlist]
        clock.advance(31.0)
        await wait_for(lambda: service.tracked() == [])
        assert service.stats()["playlists_expired"] == 1
        seen = playlist_requests(origin)
        await asyncio.sleep(0.2)  # four refresh periods: nothing more is fetched
        assert playlist_requests(origin) == seen
        # Asked again: tracked afresh.
        assert (await http.get(hashsvc.manifest_url(playlist))).status_code == 200
        assert service.tracked() == [playlist]


async def test_healthz(hashsvc: RunningHashService, http: httpx.AsyncClient) -> None:
    response = await http.get(hashsvc.url("/healthz"))
    assert response.status_code == 200 and response.json() == {"ok": True}
