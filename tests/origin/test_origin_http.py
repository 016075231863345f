"""HTTP surface: manifests match served bytes, Range, /streams, /stats, CORS, bad inputs."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import m3u8
import pytest
from origin_support import HISTORY, WINDOW, FakeClock

from peer_agent.origin import MediaSet, byterange_key
from peer_agent.origin.errors import BadRange
from peer_agent.origin.ranges import parse_range
from peer_agent.origin.server import RunningOrigin

STREAMS = ["vod-ts", "vod-fmp4", "vod-byterange", "live-ts", "live-fmp4"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def segment_bytes(
    client: httpx.AsyncClient, base: str, seg: m3u8.Segment
) -> tuple[str, bytes]:
    """(manifest key, bytes) of one playlist entry, fetched as a player would."""
    if seg.byterange:
        length_s, at_s = seg.byterange.split("@")
        start, length = int(at_s), int(length_s)
        response = await client.get(
            f"{base}/{seg.uri}", headers={"Range": f"bytes={start}-{start + length - 1}"}
        )
        assert response.status_code == 206
        return byterange_key(seg.uri, start, length), response.content
    response = await client.get(f"{base}/{seg.uri}")
    assert response.status_code == 200
    return seg.uri, response.content


@pytest.mark.parametrize("stream", STREAMS)
async def test_manifest_matches_served_bytes(
    client: httpx.AsyncClient, clock: FakeClock, stream: str
) -> None:
    clock.advance(7.0)  # live: somewhere past the first loop
    for rendition in ("lo", "hi"):
        base = f"/hls/{stream}/{rendition}"
        response = await client.get(f"{base}/manifest.json")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        manifest = response.json()
        pl = m3u8.loads((await client.get(f"{base}/index.m3u8")).text)
        checked = 0
        for seg in pl.segments:
            key, data = await segment_bytes(client, base, seg)
            assert manifest[key] == sha(data), key
            checked += 1
        assert checked == len(pl.segments) > 0
        if stream.endswith("fmp4"):
            init = await client.get(f"{base}/init.mp4")
            assert manifest["init.mp4"] == sha(init.content)
        if stream.startswith("live"):
            # the window plus HISTORY segments behind it
            expected = len(pl.segments) + HISTORY + (1 if stream == "live-fmp4" else 0)
            assert len(manifest) == expected
            oldest = pl.media_sequence - HISTORY
            ext = "m4s" if stream == "live-fmp4" else "ts"
            old = await client.get(f"{base}/seg-{oldest}.{ext}")
            assert manifest[f"seg-{oldest}.{ext}"] == sha(old.content)


async def test_range_requests(client: httpx.AsyncClient, media: MediaSet) -> None:
    body = media.rendition("lo").ts_segments[1]
    size = len(body)
    url = "/hls/vod-ts/lo/seg-1.ts"
    cases = {
        "bytes=0-99": (0, 99),
        "bytes=100-": (100, size - 1),
        "bytes=-188": (size - 188, size - 1),
        f"bytes=10-{size + 500}": (10, size - 1),
        f"bytes=-{size * 2}": (0, size - 1),
    }
    for header, (first, last) in cases.items():
        response = await client.get(url, headers={"Range": header})
        assert response.status_code == 206, header
        assert response.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert int(response.headers["content-length"]) == last - first + 1
        assert response.content == body[first : last + 1]
    full = await client.get(url)
    assert full.status_code == 200 and full.headers["accept-ranges"] == "bytes"
    assert full.content == body


async def test_range_resume_of_a_partial_segment(client: httpx.AsyncClient) -> None:
    url = "/hls/vod-fmp4/hi/seg-2.m4s"
    whole = (await client.get(url)).content
    head = whole[:1000]
    tail = await client.get(url, headers={"Range": f"bytes={len(head)}-"})
    assert head + tail.content == whole


@pytest.mark.parametrize(
    "header",
    [
        "bytes=abc",
        "items=0-1",
        "bytes=5-2",
        "bytes=0-1,4-5",
        "bytes=-0",
        "bytes=-",
        "bytes=99999999-",
    ],
)
async def test_bad_range_is_416(client: httpx.AsyncClient, media: MediaSet, header: str) -> None:
    response = await client.get("/hls/vod-ts/lo/seg-0.ts", headers={"Range": header})
    assert response.status_code == 416
    assert (
        response.headers["content-range"] == f"bytes */{len(media.rendition('lo').ts_segments[0])}"
    )


def test_parse_range_pure() -> None:
    assert parse_range("bytes=0-0", 10) == (0, 0)
    assert parse_range(" bytes = 2 - 4 ", 10) == (2, 4)
    assert parse_range("bytes=-3", 10) == (7, 9)
    with pytest.raises(BadRange) as info:
        parse_range("bytes=10-", 10)
    assert info.value.size == 10
    with pytest.raises(BadRange):
        parse_range("bytes=0-", 0)


@pytest.mark.parametrize(
    "path",
    [
        "/hls/nope/master.m3u8",
        "/hls/vod-ts/nope/index.m3u8",
        "/hls/vod-ts/lo/seg-3.ts",
        "/hls/vod-ts/lo/seg-01.ts",
        "/hls/vod-ts/lo/seg-0.m4s",
        "/hls/vod-fmp4/lo/seg-0.ts",
        "/hls/vod-ts/lo/init.mp4",
        "/hls/vod-byterange/lo/seg-0.ts",
        "/hls/vod-ts/lo/x/seg-0.ts",
        "/hls/",
    ],
)
async def test_unknown_paths_are_404(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 404


async def test_content_types_cache_control_and_head(client: httpx.AsyncClient) -> None:
    expected = {
        "/hls/vod-ts/lo/seg-0.ts": ("video/mp2t", "max-age=3600"),
        "/hls/vod-fmp4/lo/seg-0.m4s": ("video/mp4", "max-age=3600"),
        "/hls/vod-ts/lo/index.m3u8": ("application/vnd.apple.mpegurl", "max-age=60"),
        "/hls/live-ts/lo/index.m3u8": ("application/vnd.apple.mpegurl", "no-cache"),
        "/hls/live-ts/lo/manifest.json": ("application/json", "no-cache"),
    }
    for path, (ctype, cache) in expected.items():
        response = await client.get(path)
        assert response.headers["content-type"] == ctype
        assert cache in response.headers["cache-control"]
    head = await client.head("/hls/vod-ts/lo/seg-0.ts")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) > 1000
    assert (await client.post("/hls/vod-ts/lo/seg-0.ts")).status_code == 405


async def test_cors(client: httpx.AsyncClient) -> None:
    origin = {"Origin": "http://localhost:9999"}
    response = await client.get("/hls/vod-ts/lo/seg-0.ts", headers={**origin, "Range": "bytes=0-9"})
    assert response.headers["access-control-allow-origin"] == "*"
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "content-length" in exposed and "content-range" in exposed
    preflight = await client.options(
        "/hls/vod-ts/lo/seg-0.ts",
        headers={
            **origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] in ("*", origin["Origin"])
    assert "range" in preflight.headers["access-control-allow-headers"].lower()
    streams = await client.get("/streams", headers=origin)
    assert streams.headers["access-control-allow-origin"] == "*"


async def test_streams_document(client: httpx.AsyncClient, origin: RunningOrigin) -> None:
    doc = (await client.get("/streams")).json()
    assert doc == origin.streams()
    assert doc["segment_duration_s"] == 1.0 and doc["content_segments"] == 3
    assert doc["live_window_segments"] == WINDOW
    assert [r["name"] for r in doc["renditions"]] == ["lo", "hi"]
    by_name = {s["name"]: s for s in doc["streams"]}
    assert set(by_name) == set(STREAMS)
    assert by_name["live-ts"]["type"] == "live" and by_name["vod-fmp4"]["container"] == "fmp4"
    assert by_name["vod-byterange"]["byterange"] is True
    for stream in doc["streams"]:
        assert stream["master_url"] == f"{origin.base_url}/hls/{stream['name']}/master.m3u8"
        assert (await client.get(stream["master_url"])).status_code == 200
        for rendition in stream["renditions"]:
            assert (await client.get(rendition["playlist_url"])).status_code == 200
            assert (await client.get(rendition["manifest_url"])).status_code == 200


async def test_stats_count_requests_and_bytes(
    client: httpx.AsyncClient, origin: RunningOrigin
) -> None:
    await client.get("/streams")  # the API itself is not counted
    seg = await client.get("/hls/vod-ts/hi/seg-0.ts")
    part = await client.get("/hls/vod-ts/lo/seg-1.ts", headers={"Range": "bytes=0-99"})
    assert len(part.content) == 100
    pl = await client.get("/hls/live-fmp4/lo/index.m3u8")
    await client.get("/hls/vod-ts/lo/seg-9.ts")
    stats = (await client.get("/stats")).json()
    assert stats["requests"] == 4
    assert stats["bytes_served"] == len(seg.content) + 100 + len(pl.content)
    assert stats["by_status"] == {"200": 2, "206": 1, "404": 1}
    assert stats["by_kind"]["segment"] == {"requests": 2, "bytes_served": len(seg.content) + 100}
    assert stats["by_kind"]["playlist"]["bytes_served"] == len(pl.content)
    vod = stats["streams"]["vod-ts"]
    assert vod["renditions"]["hi"] == {"requests": 1, "bytes_served": len(seg.content)}
    assert vod["renditions"]["lo"] == {"requests": 1, "bytes_served": 100}
    assert stats["streams"]["live-fmp4"]["requests"] == 1
    assert stats["faults"] == {"error": 0, "timeout": 0, "truncate": 0}
    assert stats == origin.stats() | {"window_s": stats["window_s"]}
    reset = await client.post("/stats/reset")
    assert reset.status_code == 200
    assert reset.json()["bytes_served"] == 0 and reset.json()["requests"] == 0
    assert (await client.get("/stats")).json()["by_status"] == {}


async def test_concurrent_downloads_are_all_counted(
    client: httpx.AsyncClient, origin: RunningOrigin, media: MediaSet
) -> None:
    paths = [f"/hls/vod-fmp4/{r}/seg-{i}.m4s" for r in ("lo", "hi") for i in range(3)] * 5
    responses = await asyncio.gather(*(client.get(p) for p in paths))
    assert all(r.status_code == 200 for r in responses)
    stats = origin.stats()
    assert stats["requests"] == len(paths)
    assert stats["bytes_served"] == sum(len(r.content) for r in responses)
    assert stats["streams"]["vod-fmp4"]["renditions"]["hi"]["requests"] == 15
