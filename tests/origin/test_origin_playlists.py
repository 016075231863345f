"""Playlists parse with the m3u8 package; the live window slides with an injected clock."""

from __future__ import annotations

import httpx
import m3u8
import pytest
from origin_support import HISTORY, START_S, TEST_MEDIA, WINDOW, FakeClock

from peer_agent.origin import MediaSet
from peer_agent.origin.live import LiveTimeline
from peer_agent.origin.playlists import format_program_date_time, target_duration_s

SEG_S = TEST_MEDIA.segment_duration_s
N = TEST_MEDIA.segment_count


async def playlist(client: httpx.AsyncClient, path: str) -> m3u8.M3U8:
    response = await client.get(path)
    assert response.status_code == 200, path
    assert response.headers["content-type"] == "application/vnd.apple.mpegurl"
    return m3u8.loads(response.text, uri=str(response.url))


@pytest.mark.parametrize("stream", ["vod-ts", "vod-fmp4", "vod-byterange", "live-ts", "live-fmp4"])
async def test_master_lists_every_rendition(client: httpx.AsyncClient, stream: str) -> None:
    master = await playlist(client, f"/hls/{stream}/master.m3u8")
    assert master.is_variant
    assert [p.uri for p in master.playlists] == ["lo/index.m3u8", "hi/index.m3u8"]
    resolutions = [p.stream_info.resolution for p in master.playlists]
    assert resolutions == [(160, 90), (320, 180)]
    for p in master.playlists:
        assert p.stream_info.bandwidth > p.stream_info.average_bandwidth > 50_000
        codecs = p.stream_info.codecs.split(",")
        assert codecs[0].startswith("avc1.") and codecs[1] == "mp4a.40.2"
        assert p.stream_info.frame_rate == 25


async def test_vod_ts(client: httpx.AsyncClient) -> None:
    pl = await playlist(client, "/hls/vod-ts/lo/index.m3u8")
    assert pl.is_endlist and pl.playlist_type == "vod"
    assert pl.media_sequence == 0
    assert pl.target_duration == 1
    assert [s.uri for s in pl.segments] == ["seg-0.ts", "seg-1.ts", "seg-2.ts"]
    assert [s.duration for s in pl.segments] == [SEG_S] * N
    assert all(s.init_section is None and s.byterange is None for s in pl.segments)


async def test_vod_fmp4_has_init_map(client: httpx.AsyncClient) -> None:
    pl = await playlist(client, "/hls/vod-fmp4/hi/index.m3u8")
    assert pl.is_endlist and pl.version >= 6
    assert [s.uri for s in pl.segments] == ["seg-0.m4s", "seg-1.m4s", "seg-2.m4s"]
    assert all(s.init_section is not None for s in pl.segments)
    assert pl.segments[0].init_section.uri == "init.mp4"
    init = await client.get("/hls/vod-fmp4/hi/init.mp4")
    assert init.status_code == 200 and init.headers["content-type"] == "video/mp4"
    assert init.content[4:8] == b"ftyp"


async def test_byterange_variant_is_contiguous(client: httpx.AsyncClient, media: MediaSet) -> None:
    for name in ("lo", "hi"):
        pl = await playlist(client, f"/hls/vod-byterange/{name}/index.m3u8")
        assert pl.version >= 4
        offset = 0
        for seg in pl.segments:
            assert seg.uri == "stream.ts"
            length_s, at_s = seg.byterange.split("@")
            assert int(at_s) == offset
            offset += int(length_s)
        whole = await client.get(f"/hls/vod-byterange/{name}/stream.ts")
        assert whole.headers["content-type"] == "video/mp2t"
        assert offset == len(whole.content) == sum(map(len, media.rendition(name).ts_segments))


async def live(client: httpx.AsyncClient, stream: str = "live-ts") -> m3u8.M3U8:
    pl = await playlist(client, f"/hls/{stream}/lo/index.m3u8")
    assert not pl.is_endlist and pl.playlist_type is None
    return pl


def first_discontinuity_index(pl: m3u8.M3U8) -> int | None:
    for i, seg in enumerate(pl.segments):
        if seg.discontinuity:
            return i
    return None


async def test_live_window_slides(client: httpx.AsyncClient, clock: FakeClock) -> None:
    pl = await live(client)
    assert pl.media_sequence == 0
    assert len(pl.segments) == WINDOW
    assert [s.uri for s in pl.segments] == [f"seg-{i}.ts" for i in range(WINDOW)]
    assert pl.segments[0].program_date_time.timestamp() == pytest.approx(START_S - WINDOW * SEG_S)
    clock.advance(SEG_S * 0.99)
    assert (await live(client)).media_sequence == 0  # not yet a whole segment later
    clock.advance(SEG_S * 0.01)
    pl = await live(client)
    assert pl.media_sequence == 1
    assert pl.segments[-1].uri == f"seg-{WINDOW}.ts"
    last_pdt = pl.segments[-1].program_date_time.timestamp()
    assert last_pdt + SEG_S == pytest.approx(clock())  # published when it ends
    previous = 1
    for _ in range(3 * N):
        clock.advance(SEG_S)
        pl = await live(client)
        assert pl.media_sequence == previous + 1
        previous = pl.media_sequence
        assert len(pl.segments) == WINDOW
        times = [s.program_date_time.timestamp() for s in pl.segments]
        assert [b - a for a, b in zip(times, times[1:], strict=False)] == [SEG_S] * (WINDOW - 1)


async def test_live_discontinuities(client: httpx.AsyncClient, clock: FakeClock) -> None:
    """A discontinuity before every loop start, never on the window's first segment; the
    discontinuity sequence counts every loop start at or before the first segment."""
    for _ in range(4 * N):
        for stream in ("live-ts", "live-fmp4"):
            pl = await live(client, stream)
            first = pl.media_sequence
            assert not pl.segments[0].discontinuity
            assert pl.discontinuity_sequence == first // N
            for offset, seg in enumerate(pl.segments):
                msn = first + offset
                loops = msn > 0 and msn % N == 0
                assert seg.discontinuity == (loops and offset > 0), (msn, offset)
        clock.advance(SEG_S)


async def test_live_segments_served_only_near_the_window(
    client: httpx.AsyncClient, clock: FakeClock, media: MediaSet
) -> None:
    clock.advance(10 * SEG_S)
    pl = await live(client)
    first = pl.media_sequence
    last = first + WINDOW - 1
    for msn in range(first - HISTORY, last + 1):
        response = await client.get(f"/hls/live-ts/lo/seg-{msn}.ts")
        assert response.status_code == 200, msn
        assert response.content == media.rendition("lo").ts_segments[msn % N]
    assert (await client.get(f"/hls/live-ts/lo/seg-{first - HISTORY - 1}.ts")).status_code == 404
    assert (await client.get(f"/hls/live-ts/lo/seg-{last + 1}.ts")).status_code == 404
    fmp4 = await client.get(f"/hls/live-fmp4/hi/seg-{last}.m4s")
    assert fmp4.content == media.rendition("hi").fmp4_segments[last % N]


def test_timeline_pure() -> None:
    tl = LiveTimeline(start_s=100.0, segment_s=2.0, window=3, content_segments=2, history=1)
    w = tl.window_at(100.0)
    assert (w.first_msn, w.last_msn, w.discontinuity_sequence) == (0, 2, 0)
    assert tl.window_at(50.0) == w  # before the start: the initial window
    w = tl.window_at(104.0)
    assert (w.first_msn, w.last_msn, w.discontinuity_sequence) == (2, 4, 1)
    assert tl.served_range(104.0) == range(1, 5)
    assert [tl.starts_loop(m) for m in range(5)] == [False, False, True, False, True]
    assert tl.program_date_time_s(3) == 100.0
    with pytest.raises(ValueError):
        LiveTimeline(start_s=0, segment_s=0, window=1, content_segments=1)


def test_playlist_helpers() -> None:
    assert target_duration_s([1.0, 2.0, 1.5]) == 2
    assert target_duration_s([2.04]) == 3
    assert target_duration_s([]) == 1
    assert format_program_date_time(0.25) == "1970-01-01T00:00:00.250Z"
