"""Hours-long viewing, in short (issue 17): a page and a headless agent on the live test stream
until the origin's window has turned over a few times; the page's store and every per-segment
record of its exchange stay within what the window and the retention margin hold
(docs/exchange.md section 3, "Bounds"), hls.js runs with a bounded back buffer, and the page's
open peer connections stay flat; a page put behind its target latency catches up (hlsConfig()'s
maxLiveSyncPlaybackRate, engine option liveCatchUpRate: with hls.js's default of 1 a page that
fell behind stays behind, and a 60-minute soak drifted 16 s, its store from 20 to 31 segments).
The hour-long version with memory figures is bench/soak_bench.py."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest
from browser_support import (
    DEMO_MEDIA,
    browser_context,
    open_demo_page,
    require_browser_stack,
    stats,
    wait_for,
)

from peer_agent.demo import DemoConfig, run_demo

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

RETAIN_BEHIND_S = 6.0  # the exchange's margin, small so the window turns over quickly
BACK_BUFFER_S = 8.0  # hlsConfig()'s backBufferLength (default 30), small for the same reason
# RTCPeerConnections the page holds: open links and offers waiting for an answer.
RTC_JS = """() => { const sw = window.p2p.swarm;
  return {links: sw.links.size, pending: sw._pending.size, slots: sw.config.max_peers}; }"""
BUFFERED_JS = """() => { const v = document.querySelector('video');
  return {start: v.buffered.length ? v.buffered.start(0) : null, now: v.currentTime}; }"""
LATENCY_JS = """() => ({latency: window.hls.latency, target: window.hls.targetLatency,
  rate: document.querySelector('video').playbackRate})"""
BEHIND_S = 5.0  # how far the page is put back behind its target latency


@pytest.fixture(autouse=True)
def _browser_stack() -> None:
    require_browser_stack()


async def wait_latency(page: Any, predicate: Any, timeout_s: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        s = await page.evaluate(LATENCY_JS)
        seen.append(s)
        if s["latency"] is not None and predicate(s):
            return s
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}: {seen[-5:]}")


async def test_store_and_records_stay_bounded_as_the_live_window_turns_over() -> None:
    log: list[str] = []
    seg_s = DEMO_MEDIA["segment_duration_s"]
    window = DEMO_MEDIA["live_window_segments"]
    # Everything retained lies between (playhead - margin - one segment) and the live edge,
    # and the playhead is inside the window: at most this many segments.
    bound = window + math.ceil(RETAIN_BEHIND_S / seg_s) + 2
    config = DemoConfig(
        page_port=0,
        agents=0,
        **DEMO_MEDIA,
        engine={"exchange": {"retain_behind_s": RETAIN_BEHIND_S}, "backBufferS": BACK_BUFFER_S},
    )
    async with run_demo(config) as demo, browser_context() as context:
        page = await open_demo_page(context, demo.page_url, log)
        await wait_for(page, lambda s: s["currentTime"] > 1.0, 60, "the page to play", log)
        await demo.start_agent(seed=1)
        # Sampled from the agent's connection on: its process start and handshake take a while
        # on a busy machine (this asked for it within the first three samples, 18 s of playback).
        await wait_for(page, lambda s: s["connectedPeers"] == 1, 90, "the agent to connect", log)
        assert await page.evaluate("() => window.hls.config.backBufferLength") == BACK_BUFFER_S
        first = await page.evaluate(BUFFERED_JS)
        samples: list[dict[str, Any]] = []
        start = (await stats(page))["currentTime"]
        # Three windows' worth of playback; sampled on the way.
        for k in range(1, 7):
            target = start + k * window * seg_s / 2
            s = await wait_for(
                page,
                lambda s, t=target: s["mediaError"] is None and s["currentTime"] > t,
                120,
                f"playback past {target:.0f} s",
                log,
            )
            s["rtc"] = await page.evaluate(RTC_JS)
            s["latency"] = (await page.evaluate(LATENCY_JS))["latency"]
            samples.append(s)
        last = samples[-1]
        buffered = await page.evaluate(BUFFERED_JS)
        # Put the page behind live (as a stall would; within its back buffer) and see it come
        # back to its target latency by itself: hls.js's default rate 1 would keep the lag.
        # hls.js catches up only within one target duration past its target (beyond that is
        # DVR playback, README "hlsConfig"), so the seek is measured from the live sync position,
        # not from wherever a loaded machine's stalls left the page (a CI run had drifted 8.5 s
        # before a seek of 5 s from the playhead and stayed at 19.5 s, out of that range). A stall
        # right after the seek can still push it out: then the seek is repeated (twice at most).
        tries: list[dict[str, Any]] = []
        for _ in range(3):
            before = await page.evaluate(LATENCY_JS)
            await page.evaluate(
                f"() => {{ document.querySelector('video').currentTime = "
                f"window.hls.liveSyncPosition - {BEHIND_S}; }}"
            )
            # hls.js updates its latency on the next timeupdate: wait for it to show the lag.
            behind = await wait_latency(
                page, lambda s: s["latency"] >= s["target"] + BEHIND_S - 2.0, 30, "the lag to show"
            )
            tries.append({"before": before, "behind": behind})
            if behind["latency"] - behind["target"] < behind["target"] + seg_s - 1.0:
                break
        caught_up = await wait_latency(
            page,
            lambda s: s["latency"] <= s["target"] + 2.0,
            150,
            f"catch-up to the target (latency in the samples before: "
            f"{[s['latency'] for s in samples]}; seeks: {tries})",
        )
    # hls.js let go of played media: what it buffers behind the playhead stays within the back
    # buffer (and one segment of rounding), although far more than that was played.
    assert buffered["now"] - first["now"] > 3 * (BACK_BUFFER_S + seg_s), (first, buffered)
    assert buffered["now"] - buffered["start"] <= BACK_BUFFER_S + 2 * seg_s, buffered
    # More segments went through than the bound holds, so the bound is what held the store, not
    # a short run. (Three windows of playback verify about 20 segments here, each once; it was
    # above 2 x bound only while the engine forgot and refetched segments on playlist reloads.)
    assert last["segmentsVerified"] > bound, last["segmentsVerified"]
    assert last["hashFailures"] == 0, last
    for s in samples:
        records = s["segmentRecords"]
        what = f"at {s['currentTime']:.1f} s: store {s['storeSegments']}, records {records}"
        assert s["storeSegments"] <= bound, what
        assert records["verified"] <= bound and records["held"] <= bound, what
        assert records["sizes"] <= bound + 4, what  # + a few announced ahead of our playlist
        assert records["hashRetries"] <= bound and records["avoid"] <= bound, what
    # Open peer connections flat: connected to the one agent from the first sample on and
    # exactly that link in every sample (no drop, no growth), nothing accumulating per peer, and
    # the offers waiting for an answer within the engine's peer slots.
    links = [s["rtc"]["links"] for s in samples]
    connected = [s["connectedPeers"] for s in samples]
    assert connected == [1] * len(samples), (links, connected)
    assert links == [1] * len(samples), (links, connected)
    assert all(len(s["peers"]) <= 1 for s in samples), samples[-1]["peers"]
    assert all(s["rtc"]["links"] + s["rtc"]["pending"] <= s["rtc"]["slots"] for s in samples)
    print(
        f"links {links}, connected {connected}; bound {bound} segments; store "
        f"{[s['storeSegments'] for s in samples]}, sizes "
        f"{[s['segmentRecords']['sizes'] for s in samples]}, verified {last['segmentsVerified']}; "
        f"latency {[round(s['latency'], 1) for s in samples]}; "
        f"latency {tries[0]['before']['latency']:.1f} s before the seek, put to "
        f"{behind['latency']:.1f} s (target {behind['target']:.1f}, seeks {len(tries)}), back to "
        f"{caught_up['latency']:.1f} s"
    )
