"""hls.js ABR with the P2P loader (issue 17), two pages in one browser on one live stream: ours
(the demo page: the engine's loader) and a plain hls.js page (hls.js's own loader, no engine),
a top rendition of about 4 Mbit/s (real segments of 1.1-1.4 MB per 2 s) and a 200 kbit/s one.

1. The origin uncapped, one deliberately slow neighbour (an agent whose uplink is shaped to
   64 KB/s, i.e. under 0.6 Mbit/s, at its UDP socket: slow_uplink/sitecustomize.py; since the
   upload fan-out rule an agent that declares a cap below the bitrate serves nobody) relays
   segments to our page: our page does not switch down
   (hls.js LEVEL_SWITCHING to the low rendition) in a minute with that neighbour (and at least
   three of its segments slower than real time at 4 Mbit/s).
   The neighbour is the swarm's one CDN fetcher (signaling `--fetcher-count 1`; it claims an
   uplink over the server's threshold through an upload cap its shaped link never reaches), so
   our page takes each segment from it whenever it announces one in time. Left to the fetcher
   order of the election (FNV-1a of "<peer id>/<rendition>/<sequence>", docs/scheduling.md),
   one of two fixed peer ids is first for long runs of consecutive sequences (random id pairs:
   our page first for a run of 40 or more of 100 segments in a quarter of them): our page then
   fetched every segment itself for minutes, never asked the neighbour, and phase 1 timed out
   (CI; reproduced with the page's decision log: every fetch `assigned` from segment 30 to 89).
   The neighbour relays at most about one segment per 20 s anyway: after our page gives up on
   it (`too_slow`, then a CDN resume) the rest of that segment, up to 1 MiB queued in its SCTP
   association, drains at 64 KB/s ahead of its next HAVE.
   Checked by hand that this fails without the loader's ABR rule (README "ABR": the reported
   time is floored at the CDN's pace): with `abrDurationMs` in web_demo/loader.js returning
   `realMs`, each slow segment is told to hls.js at its own pace, which the test asserts
   against (one run: 3.97 Mbit/s for 1.45 MB). hls.js's estimate alone no longer shows it: since
   bytes the CDN alone sent are reported at their own pace, only the few slow peer segments
   carry the neighbour's, and that run's estimate stayed at 19 Mbit/s with no down-switch (with
   the rule: 110-166 Mbit/s). Before that CDN rule the page's waits at the live edge were
   reported too: the estimate sat near 5 Mbit/s and the page switched down 15 s and 51 s after
   the neighbour joined (two runs).
2. Then the origin is really capped (POST /control, docs/origin.md: every response paced at
   150 KB/s, under the top rendition) and our page must switch down (within 240 s). The time to
   each page's first down-switch from the cap, and per segment what each loader told hls.js,
   are printed (`-s`), not asserted: they vary too much for a test. The plain page is the
   yardstick, not asserted either: under heavy load plain hls.js can keep aborting its
   top-rendition loads as the live edge moves on, so no load finishes and it never switches
   (seen once at load average 19).
   Why ours used to take twice as long (CI, idle machine: 37.5 s against 14.2 s; here 33.5 s
   against 16.1 s, per-segment log): the loader floored every delivery, the CDN's own included,
   at the exchange's CDN estimate, an EWMA that after the first capped fetch (1 MB in 5.4 s)
   still held 57 Mbit/s of the old 215, so hls.js was told 146 ms for it, and peer deliveries
   (the agent relays at the capped pace of its own fetch: 2.6-7.2 s) were floored by the same
   stale figure. Now bytes the CDN alone sent count at that transfer's own pace and the CDN
   figure is the lower of the EWMA and the last fetch's rate (README "ABR"): ours then switched
   down after 18.8 s.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import PLAIN_JS, browser_context, open_demo_page, require_browser_stack

from peer_agent.demo import DemoConfig, run_demo

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]

MEDIA: dict[str, Any] = {
    "segment_duration_s": 2.0,
    "content_duration_s": 24.0,
    "renditions": "hi:640x360@4000000,lo:160x90@200000",
    "fps": 10,
    "live_window_segments": 6,
    "host_addresses": ("127.0.0.1",),
}
TOP = 0  # hls.js sorts levels by bitrate: level 1 is "hi"; `TOP` is the master's order (agents)
SLOW_PEER_BYTES_PER_S = 64_000
ROOT = Path(__file__).resolve().parents[2]
# The slow neighbour's uplink is shaped at its UDP socket (slow_uplink/sitecustomize.py): it
# does not know it is slow (a cap it declared below the bitrate would make it leech-only).
SLOW_UPLINK_DIR = Path(__file__).resolve().parent / "slow_uplink"
SLOW_PHASE_S = 60.0
CAP_BYTES_PER_S = 150_000  # 1.2 Mbit/s per response: under the top rendition, over the low one
# The slow neighbour's upload cap: far above what its shaped link carries; as its uplink claim it
# is over the server's fetcher_min_uplink_bytes_per_s, so the server lists it as the fetcher.
SLOW_PEER_CLAIM_BYTES_PER_S = 2_000_000
# Everything within the test's 600 s timeout, with time left to stop the stack: every wait is
# bounded by what is left of this, so a slow run fails with its own message and state.
TEST_BUDGET_S = 560.0

# Every level switch (hls.js's decision, LEVEL_SWITCHING) with the page's wall clock, and every
# fragment hls.js buffered with where the engine got it, how long hls.js waited for it, what the
# loader told it and its estimate after; a log of loads, aborts and errors (failure messages).
WATCH_JS = """() => {
  const hls = window.hls, p2p = window.p2p;
  const w = (window.__abr = {switches: [], frags: [], events: new Map(), asked: new Map()});
  hls.on('hlsLevelSwitching', (_, d) => w.switches.push({level: d.level, at: Date.now()}));
  const key = (f) => `${f.level}/${f.sn}`;
  w.log = [];
  const note = (what) => w.log.push({at: Date.now(), what});
  hls.on('hlsFragLoading', (_, d) => {
    w.asked.set(key(d.frag), performance.now());
    note(`loading ${key(d.frag)}`);
  });
  hls.on('hlsFragLoadEmergencyAborted', (_, d) => note(`emergency abort ${key(d.frag)}`));
  hls.on('hlsError', (_, d) => note(`error ${d.details}`));
  if (p2p) for (const type of ['segment-error', 'segment-abort'])
    p2p.on(type, (e) => note(`${type} ${e.level}/${e.sn} ${e.message || ''}`));
  // the page's side of its neighbours: who connected, closed (and why), was banned or refused
  if (p2p) for (const type of ['peer-connected', 'peer-closed', 'peer-banned', 'warning', 'error'])
    p2p.on(type, (e) => note(`${type} ${JSON.stringify(e)}`));
  if (p2p) p2p.on('segment-loaded', (e) => w.events.set(`${e.level}/${e.sn}`, e));
  hls.on('hlsFragLoaded', (_, d) => {
    const e = w.events.get(key(d.frag));
    const st = d.frag.stats;
    w.frags.push({sn: d.frag.sn, level: d.frag.level, bytes: st.loaded,
                  source: e ? (e.fallback ? 'fallback' : e.source) : 'hls.js',
                  observedMs: performance.now() - w.asked.get(key(d.frag)),
                  reportedMs: st.loading.end - st.loading.start,
                  cdn: p2p ? p2p.abrCdnBytesPerS() : null, at: Date.now(),
                  estimate: hls.bandwidthEstimate});
  });
}"""
STATE_JS = """() => ({level: window.hls.currentLevel, estimate: window.hls.bandwidthEstimate,
  now: Date.now(), switches: window.__abr.switches.slice(), frags: window.__abr.frags.slice(),
  log: window.__abr.log.slice(-200),
  p2p: window.p2p ? (({actions, peers, segmentsFromPeers, segmentsFromCdn, latencyS, bufferS}) =>
    ({actions, peers, segmentsFromPeers, segmentsFromCdn, latencyS, bufferS}))(window.p2p.stats())
    : null})"""


@pytest.fixture(autouse=True)
def _browser_stack() -> None:
    require_browser_stack()


async def wait_state(page: Any, predicate: Any, timeout_s: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = await page.evaluate(STATE_JS)
        if predicate(last):
            return last
        await asyncio.sleep(0.5)
    last["frags"] = last.get("frags", [])[-8:]
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


def slow(f: dict[str, Any]) -> bool:
    """A top-rendition segment from the peer that hls.js waited for longer than real time
    would allow at 4 Mbit/s (only the slow neighbour is in the swarm)."""
    return f["source"] == "peer" and f["observedMs"] > 8 * f["bytes"] / 4_000_000 * 1000


def downs(state: dict[str, Any], since_ms: float) -> list[dict[str, Any]]:
    return [s for s in state["switches"] if s["level"] == 0 and s["at"] >= since_ms]


async def test_a_slow_peer_causes_no_down_switch_and_a_real_cap_switches_both_down() -> None:
    log: list[str] = []
    budget_end = time.monotonic() + TEST_BUDGET_S

    def left(wanted_s: float) -> float:
        return max(1.0, min(wanted_s, budget_end - time.monotonic()))

    # one fetcher per segment: the slow neighbour once it is there (see the module docstring)
    config = DemoConfig(
        page_port=0,
        agents=0,
        agent_rendition=TOP,
        signaling_args=("--fetcher-count", "1"),
        **MEDIA,
    )
    async with run_demo(config) as demo, browser_context() as context:
        ours = await open_demo_page(context, demo.page_url, log)
        plain = await context.new_page()
        await plain.goto(f"{demo.page_url}config.json")
        await plain.evaluate(PLAIN_JS, demo.master_url(config.stream))
        for page in (ours, plain):
            await page.wait_for_function("() => window.hls?.levels?.length === 2", timeout=60_000)
            await page.evaluate(WATCH_JS)
        await wait_state(ours, lambda s: s["level"] == 1, left(90), "our page on the top rendition")

        # 1. The slow neighbour: same rendition and depth, the swarm's one CDN fetcher, relaying
        # segments at its shaped pace, for a minute and at least three segments slower than
        # real time; stop at the first down-switch.
        since = (await ours.evaluate(STATE_JS))["now"]
        slow_uplink = {
            "PYTHONPATH": f"{SLOW_UPLINK_DIR}{os.pathsep}{ROOT}",
            "P2P_TEST_UPLINK_BYTES_PER_S": str(SLOW_PEER_BYTES_PER_S),
        }
        claim = ("--upload-cap-bytes-per-s", str(SLOW_PEER_CLAIM_BYTES_PER_S))
        await demo.start_agent(seed=0, env=slow_uplink, extra=claim)
        s = await wait_state(
            ours,
            lambda s: (
                downs(s, since)
                or (s["now"] - since > SLOW_PHASE_S * 1000 and sum(map(slow, s["frags"])) >= 3)
            ),
            left(SLOW_PHASE_S + 180),
            "a minute and three slow segments from the peer",
        )
        slow_frags = [f for f in s["frags"] if slow(f)]
        assert not downs(s, since), (downs(s, since), slow_frags, s["estimate"])
        slow_bps = sorted(8 * f["bytes"] / (f["observedMs"] / 1000) for f in slow_frags)
        assert s["estimate"] > 4_000_000, (s["estimate"], slow_bps)
        for f in s["frags"]:
            if f["source"] == "peer":  # hls.js is never told it waited longer than it did
                assert f["reportedMs"] <= f["observedMs"] + 1, f
        # Each slow segment was told to hls.js at the viewer's CDN pace, above the top rendition,
        # not at the pace it came (README "ABR"): checked where that CDN figure is clearly above
        # the top rendition (twice; on loopback it always was, 25-130 Mbit/s at load 20-40).
        # Without the rule this fails, while hls.js's estimate alone did not show it: a few
        # slow samples among many fast CDN ones left it at 19 Mbit/s (one run, no down-switch).
        told_bps = [8 * f["bytes"] / (f["reportedMs"] / 1000) for f in slow_frags]
        checked = [
            (f, bps)
            for f, bps in zip(slow_frags, told_bps, strict=True)
            if f["cdn"] and f["cdn"] * 8 > 8e6
        ]
        assert checked, ("no slow segment while the CDN figure was above 8 Mbit/s", slow_frags)
        for f, bps in checked:
            assert bps > 4_000_000, ("a slow segment was told to hls.js at its own pace", f)
        plain_downs_1 = downs(await plain.evaluate(STATE_JS), since)

        # 2. A real cap: both pages on the top rendition, then every origin response paced
        # below it; the time to each page's first down-switch from the cap.
        for page, name in ((ours, "our page"), (plain, "the plain page")):
            await wait_state(
                page, lambda s: s["level"] == 1, left(120), f"{name} on the top rendition"
            )
        capped_at = (await ours.evaluate(STATE_JS))["now"]
        async with httpx.AsyncClient(trust_env=False) as client:
            shaping = {"rate_limit_bytes_per_s": CAP_BYTES_PER_S}
            (await client.post(f"{demo.origin_url}/control", json=shaping)).raise_for_status()
        # Ours must switch down; the plain page is the yardstick, printed: under heavy load
        # plain hls.js can keep aborting its top-rendition loads as the live edge moves on
        # (no load finishes, so its estimate never falls), which is hls.js's, not ours.
        took_s: dict[str, float] = {}
        cap_wait_s = left(240)
        deadline = time.monotonic() + cap_wait_s
        states: dict[str, dict[str, Any]] = {}
        # the yardstick gets 120 s once ours has switched (this test must stay short)
        while time.monotonic() < deadline and len(took_s) < 2:
            if "ours" in took_s and time.monotonic() > deadline - 120:
                break
            for page, name in ((ours, "ours"), (plain, "plain")):
                if name not in took_s:
                    states[name] = await page.evaluate(STATE_JS)
                    if downs(states[name], capped_at):
                        took_s[name] = (downs(states[name], capped_at)[0]["at"] - capped_at) / 1000
            await asyncio.sleep(0.5)
        waited_s = cap_wait_s - (deadline - time.monotonic())
        assert "ours" in took_s, (
            f"our page did not switch down under the cap in {cap_wait_s:.0f} s: {states}"
        )
        for name, st in states.items():  # what each page's loader told hls.js, from the cap
            for f in st["frags"]:
                if f["at"] >= capped_at and (
                    name not in took_s or f["at"] <= capped_at + took_s[name] * 1000 + 2000
                ):
                    print(
                        f"{name} +{(f['at'] - capped_at) / 1000:.1f} s: sn {f['sn']} level "
                        f"{f['level']} from {f['source']}, {f['bytes']} B, hls.js waited "
                        f"{f['observedMs']:.0f} ms, told {f['reportedMs']:.0f} ms; CDN figure "
                        f"{f['cdn'] and round(f['cdn'] * 8 / 1e6, 1)} Mbit/s; estimate after "
                        f"{f['estimate'] / 1e6:.1f} Mbit/s"
                    )
    print(
        f"slow peer's segments at {[round(b / 1e6, 2) for b in slow_bps]} Mbit/s as hls.js waited, "
        f"hls.js estimate "
        f"{s['estimate'] / 1e6:.1f} Mbit/s, no down-switch (plain page meanwhile: "
        f"{len(plain_downs_1)}); under the cap the first down-switch after "
        f"{took_s['ours']:.1f} s (ours) and "
        + (f"{took_s['plain']:.1f} s" if "plain" in took_s else f"none in {waited_s:.0f} s")
        + " (plain hls.js); shared machine"
    )
