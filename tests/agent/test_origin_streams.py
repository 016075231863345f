"""The agent against the real test origin (PyAV-generated HLS): every layout the origin serves
(TS, fMP4 with an init section, byte ranges, live with a looping discontinuity), with SHA-256
manifests, and origin faults."""

from __future__ import annotations

import httpx
import pytest

from peer_agent.agent import Agent, AgentConfig
from peer_agent.agent.cdn import CdnConfig
from peer_agent.agent.playlist import Timeline, parse_master, parse_media
from peer_agent.origin import MediaSet, run_origin
from tests.agent.conftest import origin_config

FAST_CDN = CdnConfig(read_timeout_s=1.0, backoff_base_s=0.02, backoff_max_s=0.1)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


async def test_real_playlists_parse(media: MediaSet) -> None:
    clock = Clock(1_000_000.0)
    async with (
        run_origin(origin_config(), media=media, clock=clock) as origin,
        httpx.AsyncClient() as http,
    ):

        async def get(path: str) -> str:
            response = await http.get(origin.url(path))
            response.raise_for_status()
            return response.text

        url = origin.url("hls/vod-fmp4/master.m3u8")
        renditions = parse_master(await get("hls/vod-fmp4/master.m3u8"), url)
        assert [r.uri.rsplit("/", 2)[-2] for r in renditions] == ["lo", "hi"]
        low, high = (r.bandwidth_bits_per_s or 0 for r in renditions)
        assert 0 < low < high
        fmp4 = parse_media(await get("hls/vod-fmp4/lo/index.m3u8"), renditions[0].uri)
        assert fmp4.ended and len(fmp4.segments) == 6
        assert all(s.init is not None and s.init.key == "init.mp4" for s in fmp4.segments)
        br_url = origin.url("hls/vod-byterange/lo/index.m3u8")
        ranged = parse_media(await get("hls/vod-byterange/lo/index.m3u8"), br_url)
        ranges = [s.byte_range for s in ranged.segments if s.byte_range is not None]
        assert len(ranges) == len(ranged.segments)
        assert [r.offset for r in ranges] == [0] + [r.offset + r.length for r in ranges[:-1]]
        # Live: refresh across the content loop; identity and start times carry over.
        live_url = origin.url("hls/live-ts/lo/index.m3u8")
        timeline = Timeline(0)
        first = parse_media(await get("hls/live-ts/lo/index.m3u8"), live_url)
        assert not first.ended and first.refresh_interval_s <= 1.0
        timeline.update(first, now=0.0)
        clock.t += 4.0
        added = timeline.update(parse_media(await get("hls/live-ts/lo/index.m3u8"), live_url), 4)
        assert [i.segment_id.sequence for i in added] == list(range(6, 10))
        assert added[0].discontinuity  # MSN 6 starts the content's second loop
        ordered = timeline.ordered()
        for a, b in zip(ordered, ordered[1:], strict=False):
            assert b.start_s == pytest.approx(a.end_s)


@pytest.mark.parametrize("stream", ["vod-ts", "vod-fmp4", "vod-byterange"])
async def test_vod_plays_to_the_end_verified(media: MediaSet, stream: str) -> None:
    async with run_origin(origin_config(), media=media) as origin:
        cfg = AgentConfig(origin.url(f"hls/{stream}/master.m3u8"), duration_s=15.0, cdn=FAST_CDN)
        summary = await Agent(cfg).run()
    assert summary["ended"] and summary["segments_played"] == 6
    assert summary["segments_verified"] == 6 and summary["integrity"] == "sha256"
    assert summary["hash_failures"] == 0 and summary["stall_count"] == 0
    if stream == "vod-fmp4":
        assert summary["init_sections_verified"] == 1


@pytest.mark.parametrize("stream", ["live-ts", "live-fmp4"])
async def test_live_plays_behind_the_edge(media: MediaSet, stream: str) -> None:
    async with run_origin(origin_config(), media=media) as origin:
        cfg = AgentConfig(
            origin.url(f"hls/{stream}/master.m3u8"), duration_s=3.5, rendition=1, cdn=FAST_CDN
        )
        summary = await Agent(cfg).run()
    assert summary["rendition"] == 1
    assert summary["segments_played"] >= 3 and summary["stall_count"] == 0
    assert summary["hash_failures"] == 0 and summary["unverifiable"] == 0
    assert summary["latency_s_median"] is not None and 1.5 <= summary["latency_s_median"] <= 4.5


async def test_origin_faults_are_retried_and_playback_continues(media: MediaSet) -> None:
    async with run_origin(origin_config(), media=media) as origin:
        origin.set_shaping(error_rate=0.3, truncate_rate=0.2, seed=7)
        cfg = AgentConfig(origin.url("hls/vod-ts/master.m3u8"), duration_s=15.0, cdn=FAST_CDN)
        summary = await Agent(cfg).run()
        faults = origin.stats()["faults"]
    assert sum(faults.values()) > 0
    assert summary["cdn_retries"] > 0 and summary["ended"]
    assert summary["segments_verified"] == 6 and summary["hash_failures"] == 0


async def test_without_a_manifest_only_sizes_are_checked(media: MediaSet) -> None:
    async with run_origin(origin_config(), media=media) as origin:
        cfg = AgentConfig(
            origin.url("hls/vod-byterange/master.m3u8"),
            duration_s=15.0,
            discover_manifest=False,
            cdn=FAST_CDN,
        )
        summary = await Agent(cfg).run()
    assert summary["integrity"] == "size-only"
    assert summary["ended"] and summary["segments_verified"] == 6


async def test_origin_hangs_time_out_and_are_retried(media: MediaSet) -> None:
    async with run_origin(origin_config(), media=media) as origin:
        origin.set_shaping(timeout_rate=0.25, timeout_hang_s=5.0, seed=3)
        cdn = CdnConfig(read_timeout_s=0.4, backoff_base_s=0.02, backoff_max_s=0.1)
        cfg = AgentConfig(
            origin.url("hls/live-ts/master.m3u8"), duration_s=5.0, latency_segments=4, cdn=cdn
        )
        summary = await Agent(cfg).run()
        faults = origin.stats()["faults"]
    assert faults.get("timeout", 0) > 0, faults
    assert summary["cdn_retries"] > 0
    assert summary["stall_count"] == 0 and summary["hash_failures"] == 0, summary
