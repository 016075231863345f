"""The agent reports its CDN fetches split into join ramp and steady state (core.cdn_phase),
playing a live stream from the real test origin with no swarm: every segment from the CDN."""

from __future__ import annotations

from peer_agent.agent import Agent, AgentConfig
from peer_agent.agent.cdn import CdnConfig
from peer_agent.origin import MediaSet, run_origin
from tests.agent.conftest import origin_config

FAST_CDN = CdnConfig(read_timeout_s=1.0, backoff_base_s=0.02, backoff_max_s=0.1)


async def test_cdn_only_live_agent_ramps_on_four_segments(media: MediaSet) -> None:
    async with run_origin(origin_config(), media=media) as origin:
        cfg = AgentConfig(
            origin.url("hls/live-ts/master.m3u8"), duration_s=7.0, rendition=0, cdn=FAST_CDN
        )
        summary = await Agent(cfg).run()
    assert summary["stall_count"] == 0, summary
    start, last = summary["start_sequence"], summary["last_sequence_played"]
    assert isinstance(start, int) and isinstance(last, int) and last >= start + 5, summary
    # Each segment from its start on came from the CDN once: 4 in the ramp, the rest steady.
    assert summary["cdn_fetches_join_ramp"] == 4, summary
    assert summary["cdn_fetches_steady"] >= last - (start + 4) + 1, summary
    fetched = summary["cdn_fetches_join_ramp"] + summary["cdn_fetches_steady"]
    assert fetched <= summary["cdn_requests"]  # playlists and the manifest are requests too
    # ... and by the scheduler's reason: alone, a viewer is always its own elected fetcher,
    # unless a segment turned urgent first; nothing was resumed (no peer transfer to give up).
    reasons = summary["cdn_fetches_by_reason"]
    assert sum(reasons.values()) == fetched and set(reasons) <= {"elected", "urgent"}, summary
