"""Incremental manifests at the hash service (docs/exchange.md, section 12): ``from_msn=N``
answers only the segments from MSN ``N`` on (and their init sections), as the origin does."""

from __future__ import annotations

import httpx
import pytest
from hashsvc_support import FakeClock, wait_for

from peer_agent.origin.server import RunningOrigin
from signaling.hashsvc import RunningHashService


async def test_live_from_msn_matches_the_origin(
    origin: RunningOrigin,
    hashsvc: RunningHashService,
    http: httpx.AsyncClient,
    origin_clock: FakeClock,
) -> None:
    playlist = origin.url("/hls/live-fmp4/lo/index.m3u8")
    url = hashsvc.manifest_url(playlist)
    full = (await http.get(url)).json()
    assert set(full) == {"init.mp4", "seg-0.m4s", "seg-1.m4s", "seg-2.m4s", "seg-3.m4s"}
    r = await http.get(f"{url}&from_msn=3")
    assert r.status_code == 200
    assert r.json() == {"init.mp4": full["init.mp4"], "seg-3.m4s": full["seg-3.m4s"]}
    assert r.headers["cache-control"] == "public, max-age=60"
    ahead = await http.get(f"{url}&from_msn=4")  # not published yet
    assert ahead.json() == {}
    max_age_s = hashsvc.service.config.cache_max_age_s
    assert ahead.headers["cache-control"] == f"public, max-age={max_age_s}"

    origin_clock.advance(2.0)  # MSNs 4 and 5 appear
    await wait_for(lambda: hashsvc.service.stats()["segments_hashed"] == 7)
    r = await http.get(f"{url}&from_msn=4")
    origins = await http.get(origin.url("/hls/live-fmp4/lo/manifest.json?from_msn=4"))
    assert r.json() == origins.json()
    assert set(r.json()) == {"init.mp4", "seg-4.m4s", "seg-5.m4s"}


async def test_vod_byterange_from_msn(
    origin: RunningOrigin, hashsvc: RunningHashService, http: httpx.AsyncClient
) -> None:
    url = hashsvc.manifest_url(origin.url("/hls/vod-byterange/lo/index.m3u8"))
    full = (await http.get(url)).json()
    r = await http.get(f"{url}&from_msn=1")
    assert r.json() == dict(list(full.items())[1:])
    own = await http.get(origin.url("/hls/vod-byterange/lo/manifest.json?from_msn=1"))
    assert r.json() == own.json()


@pytest.mark.parametrize("bad", ["from_msn=x", "from_msn=-2", "from_msn=1&from_msn=2"])
async def test_bad_from_msn_is_400_and_counted(
    origin: RunningOrigin, hashsvc: RunningHashService, http: httpx.AsyncClient, bad: str
) -> None:
    url = hashsvc.manifest_url(origin.url("/hls/vod-ts/lo/index.m3u8"))
    r = await http.get(f"{url}&{bad}")
    assert r.status_code == 400
    assert r.json()["reason"] == "bad_from_msn"
    assert r.headers["cache-control"] == "no-store"
    assert hashsvc.service.stats()["rejections"] == {"bad_from_msn": 1}
