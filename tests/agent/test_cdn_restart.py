"""A CDN fetch that falls silent, or delivers far slower than this path's tail, is given up and
fetched again once its segment is urgent (docs/scheduling.md rule 1): the real agent against a
local HTTP origin whose next segment body stops after 1,000 bytes for longer than the segment's
whole deadline (on a lossy path, a TCP connection that lost its SYN or a tail packet stays silent
for a retransmission timeout), or drips the rest slowly (TCP recovering one loss after another)."""

from __future__ import annotations

import asyncio
from typing import Any

from peer_agent.agent import Agent, AgentConfig
from peer_agent.agent.cdn import CdnConfig
from peer_agent.core.config import SchedulerConfig
from tests.agent.fakes import SynthStream, build_app, serve
from tests.loop_lag import LoopLag, assert_no_unexplained_stall

# One-second segments (the scheduler's margins scaled to them), 3 behind live: a segment is
# fetched about 3 s before the player needs it. The read timeout (5 s) is longer than that:
# the fetcher's own retry comes too late, only the scheduler's restart can make the deadline.
SCHED = SchedulerConfig(min_urgent_window_s=1.0, deadline_margin_s=0.5)
SLOW_RETRY_CDN = CdnConfig(read_timeout_s=5.0, backoff_base_s=0.05, backoff_max_s=0.3)


async def _play_with_one_faulty_fetch(
    scheduler: SchedulerConfig, *, drip: bool
) -> tuple[Agent, dict[str, Any], SynthStream]:
    """Play 7 s of a live stream whose next segment request, 1 s after playback starts, sends
    1,000 bytes and then either falls silent for 8 s (``drip`` False) or drips the rest, 1,000
    bytes every 0.2 s (``drip`` True: 39 kB in 7.8 s, never silent for ``cdn_stall_timeout_s``,
    far slower than the loopback fetches before it, which set the viewer's CDN tail)."""
    stream = SynthStream(segment_s=1.0, segment_bytes=40_000, window=6, preroll=6)
    async with serve(build_app(stream)) as base:
        config = AgentConfig(
            base + "/live/index.m3u8",
            scheduler=scheduler,
            cdn=SLOW_RETRY_CDN,
            latency_segments=3,
            duration_s=7.0,
            request_timeline=drip,
        )
        agent = Agent(config)
        task = asyncio.create_task(agent.run())
        while agent.player is None or agent.player.started_at is None:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        stream.faults.truncate_at = 1_000
        if drip:
            stream.faults.drip_next = 1
        else:
            stream.faults.stall_s = 8.0
            stream.faults.stall_next = 1
        result = await task
    return agent, result, stream


async def test_silent_cdn_fetch_is_restarted_before_the_deadline() -> None:
    async with LoopLag() as lag:
        agent, result, stream = await _play_with_one_faulty_fetch(SCHED, drip=False)
    assert stream.faults.stall_next == 0, "the fault never bit"
    assert result["cdn_stall_cancels"] == 1, result
    # The silent segment was asked for twice: the second request resumed after its 1,000 bytes.
    assert sorted(stream.requests.values())[-1] == 2 and result["cdn_resumes"] == 1, stream.requests
    assert result["segments_played"] >= 5 and result["hash_failures"] == 0, result
    assert_no_unexplained_stall(agent, lag, result)


async def test_without_the_restart_the_silent_fetch_stalls_the_player() -> None:
    """The same fault with the rule off (``cdn_stall_timeout_s`` 0): the fetch waits for the
    fetcher's read timeout, past the deadline, and the player stalls (what the rule prevents)."""
    off = SchedulerConfig(min_urgent_window_s=1.0, deadline_margin_s=0.5, cdn_stall_timeout_s=0.0)
    _, result, stream = await _play_with_one_faulty_fetch(off, drip=False)
    assert stream.faults.stall_next == 0, "the fault never bit"
    assert result["cdn_stall_cancels"] == 0, result
    assert result["stall_count"] >= 1, result


async def test_slow_cdn_fetch_is_restarted_before_the_deadline() -> None:
    """docs/scheduling.md rule 1, too slow: the dripping fetch is cancelled once its segment is
    urgent (at its own rate it would end seconds past the deadline, far beyond the tail) and
    the rest fetched again on a new request, in time."""
    async with LoopLag() as lag:
        agent, result, stream = await _play_with_one_faulty_fetch(SCHED, drip=True)
    assert stream.faults.drip_next == 0, "the fault never bit"
    assert result["cdn_stall_cancels"] == 1, result
    cancels = [e for e in result["event_timeline"] if e["event"] == "cdn_cancel"]
    assert [e["reason"] for e in cancels] == ["too_slow"], cancels
    assert sorted(stream.requests.values())[-1] == 2 and result["cdn_resumes"] == 1, stream.requests
    assert result["segments_played"] >= 5 and result["hash_failures"] == 0, result
    assert_no_unexplained_stall(agent, lag, result)


async def test_without_the_restart_the_slow_fetch_stalls_the_player() -> None:
    """The same drip with rule 1 off: the fetch is kept to its end, past the deadline."""
    off = SchedulerConfig(min_urgent_window_s=1.0, deadline_margin_s=0.5, cdn_stall_timeout_s=0.0)
    _, result, stream = await _play_with_one_faulty_fetch(off, drip=True)
    assert stream.faults.drip_next == 0, "the fault never bit"
    assert result["cdn_stall_cancels"] == 0, result
    assert result["stall_count"] >= 1, result
