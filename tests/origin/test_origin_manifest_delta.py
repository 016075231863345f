"""Incremental manifests on the origin (docs/exchange.md, section 12): ``manifest.json?from_msn=N``
lists only segments from MSN ``N`` on, with caching a CDN can keep; bad values are 400."""

from __future__ import annotations

import httpx
import pytest
from origin_support import HISTORY, WINDOW, FakeClock

from peer_agent.origin.catalog import parse_from_msn
from peer_agent.origin.errors import BadQuery
from peer_agent.origin.server import RunningOrigin


async def test_live_delta_lists_only_new_segments(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    base = "/hls/live-fmp4/lo/manifest.json"
    full = (await client.get(base)).json()
    assert len(full) == 1 + WINDOW  # init.mp4 and the window (no history yet at start)
    newest = WINDOW - 1
    r = await client.get(f"{base}?from_msn={newest}")
    assert r.status_code == 200
    assert r.json() == {
        "init.mp4": full["init.mp4"],
        f"seg-{newest}.m4s": full[f"seg-{newest}.m4s"],
    }
    assert r.headers["cache-control"] == "public, max-age=60"  # lists segment N: cacheable
    assert len(r.content) < len((await client.get(base)).content) / 2

    # Not published yet: an empty answer the CDN must not keep.
    r = await client.get(f"{base}?from_msn={newest + 1}")
    assert r.json() == {}
    assert r.headers["cache-control"] == "no-cache"

    clock.advance(1.0)  # one more segment (TEST_MEDIA: 1 s segments)
    r = await client.get(f"{base}?from_msn={newest + 1}")
    assert list(r.json()) == ["init.mp4", f"seg-{newest + 1}.m4s"]
    assert r.headers["cache-control"] == "public, max-age=60"


async def test_delta_never_lists_more_than_the_full_manifest(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    clock.advance(float(WINDOW + HISTORY + 3))
    base = "/hls/live-ts/lo/manifest.json"
    full = (await client.get(base)).json()
    assert len(full) == WINDOW + HISTORY
    r = await client.get(f"{base}?from_msn=0")  # long gone: only what is still served
    assert r.json() == full
    assert r.headers["cache-control"] == "no-cache"  # segment 0 itself is not listed


async def test_vod_and_byterange_deltas(client: httpx.AsyncClient) -> None:
    full = (await client.get("/hls/vod-byterange/lo/manifest.json")).json()
    r = await client.get("/hls/vod-byterange/lo/manifest.json?from_msn=1")
    assert r.json() == dict(list(full.items())[1:])
    assert r.headers["cache-control"] == "public, max-age=60"
    r = await client.get("/hls/vod-ts/lo/manifest.json?from_msn=99")
    assert r.json() == {}
    r = await client.get("/hls/vod-ts/lo/manifest.json?other=1&from_msn=2")
    assert list(r.json()) == ["seg-2.ts"]


@pytest.mark.parametrize(
    "query",
    ["from_msn=", "from_msn=-1", "from_msn=1e3", "from_msn=1&from_msn=2", "from_msn=" + "9" * 16],
)
async def test_bad_from_msn_is_400_and_counted(
    client: httpx.AsyncClient, origin: RunningOrigin, query: str
) -> None:
    before = origin.stats()["by_status"].get("400", 0)
    r = await client.get(f"/hls/live-ts/lo/manifest.json?{query}")
    assert r.status_code == 400
    assert "from_msn" in r.text
    assert origin.stats()["by_status"].get("400", 0) == before + 1


def test_parse_from_msn() -> None:
    assert parse_from_msn("") is None
    assert parse_from_msn("a=1&from_msn=12") == 12
    assert parse_from_msn("from_msn=" + "9" * 15) == 10**15 - 1
    with pytest.raises(BadQuery):
        parse_from_msn("from_msn=0x1")
