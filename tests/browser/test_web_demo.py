"""The browser peer in Debian's Chromium, end to end: the demo stack (origin, signaling with join
tokens and an Origin allowlist, the page server), hls.js from node_modules, headless agents.

1. a page and a headless agent on a live stream: playback, P2P bytes both ways, hashes checked;
2. two pages share segments with each other;
3. a corrupting peer: its bytes never reach the player, it is banned, playback goes on (CDN);
4. the demo page's panel shows non-zero P2P figures (screenshot in test-artifacts/).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
import pytest
from browser_support import (
    ARTIFACTS,
    DEMO_MEDIA,
    browser_context,
    open_demo_page,
    require_browser_stack,
    stats,
    wait_for,
)

from peer_agent.demo import DemoConfig, run_demo

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(150)]


@pytest.fixture(autouse=True)
def _browser_stack() -> None:
    require_browser_stack()


def demo_config(**changes: Any) -> DemoConfig:
    return DemoConfig(**{"page_port": 0, "agents": 0, **DEMO_MEDIA, **changes})


def playing_past(t: float) -> Any:
    return lambda s: s["mediaError"] is None and s["currentTime"] > t


async def collect_hashes(origin_url: str, into: dict[str, str], stop: asyncio.Event) -> None:
    """Merge the live manifest into ``into`` every second (it lists window + history only)."""
    url = f"{origin_url}/hls/live-ts/lo/manifest.json"
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                into.update((await client.get(url)).json())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


def check_deliveries(s: dict[str, Any], hashes: dict[str, str]) -> int:
    """Every fragment handed to hls.js has the origin's hash; returns how many were checked."""
    checked = 0
    for d in s["deliveries"]:
        if d["sha256"] is None or d["relurl"] not in hashes:
            continue
        assert d["sha256"] == hashes[d["relurl"]], f"bad bytes reached the player: {d}"
        checked += 1
    return checked


# The agent is the swarm's one CDN fetcher: the server lists one fetcher (--fetcher-count 1) and
# picks a member claiming an uplink over its threshold first (the agent's upload cap). Left to
# the election's fetcher order (FNV-1a of "<peer id>/<rendition>/<sequence>", docs/scheduling.md),
# one of two fixed peer ids comes first for long runs of consecutive segments: of 4,000 random
# id pairs (computed), the page came first for all of 30 consecutive segments (a minute) in 12 %,
# and would then take no byte from the agent in the test's minute.
ONE_FETCHER = ("--fetcher-count", "1")
FETCHER_CLAIM = ("--upload-cap-bytes-per-s", "2000000")


async def test_page_and_agent_share_a_live_stream_both_ways() -> None:
    log: list[str] = []
    hashes: dict[str, str] = {}
    done = asyncio.Event()
    config = demo_config(engine={"auditDeliveries": True}, signaling_args=ONE_FETCHER)
    async with run_demo(config) as demo, browser_context() as context:
        collector = asyncio.create_task(collect_hashes(demo.origin_url, hashes, done))
        page = await open_demo_page(context, demo.page_url, log)
        first = await wait_for(page, playing_past(1.0), 40, "the page to play", log)
        assert first["trackerConnected"], first
        # The agent plays further behind the edge, so it takes segments the page holds, and the
        # page takes the segments the agent fetches first (it is the one fetcher).
        await demo.start_agent(seed=1, extra=["--latency-segments", "5", *FETCHER_CLAIM])
        s = await wait_for(
            page,
            lambda s: s["bytesFromPeers"] > 0 and s["bytesUploaded"] > 0,
            60,
            "P2P bytes both ways",
            log,
        )
        t0 = s["currentTime"]
        s = await wait_for(page, playing_past(t0 + 2.0), 20, "playback to go on", log)
        done.set()
        await collector
    assert s["integrity"] == "sha256" and s["hashFailures"] == 0, s
    assert s["segmentsVerified"] >= 3, s
    # The manifest is fetched whole once, then only what is new (docs/exchange.md §12).
    assert s["manifestFetches"] >= 1, s
    assert s["manifestBytes"] <= 0.01 * (s["bytesFromCdn"] + s["bytesFromPeers"]), s
    # Its first segments came from the CDN in its join ramp (docs/simulator.md).
    assert s["cdnFetchesJoinRamp"] >= 1, s
    assert any(p["bytesDown"] > 0 and p["bytesUp"] > 0 for p in s["peers"]) or (
        sum(p["bytesDown"] for p in s["peers"]) > 0 and sum(p["bytesUp"] for p in s["peers"]) > 0
    ), s["peers"]
    assert check_deliveries(s, hashes) >= 3, s["deliveries"]
    print(
        f"page: {s['bytesFromPeers']} B from peers, {s['bytesFromCdn']} B from the CDN, "
        f"{s['bytesUploaded']} B uploaded, ratio {s['p2pRatio']:.2f}"
    )


async def test_two_pages_share_segments() -> None:
    log_a: list[str] = []
    log_b: list[str] = []
    async with run_demo(demo_config()) as demo, browser_context() as context:
        a = await open_demo_page(context, demo.page_url, log_a)
        await wait_for(a, playing_past(2.0), 40, "page A to play", log_a)
        b = await open_demo_page(context, demo.page_url, log_b)
        sb = await wait_for(
            b,
            lambda s: s["bytesFromPeers"] > 0 and s["currentTime"] > 1.0,
            60,
            "page B to play with bytes from page A",
            log_b,
        )
        sa = await wait_for(a, lambda s: s["bytesUploaded"] > 0, 30, "page A to upload", log_a)
        b_id = sb["peerId"]
        a_id = sa["peerId"]
        assert any(p["peerId"] == a_id and p["bytesDown"] > 0 for p in sb["peers"]), sb["peers"]
        assert any(p["peerId"] == b_id and p["bytesUp"] > 0 for p in sa["peers"]), sa["peers"]
        t_a, t_b = sa["currentTime"], sb["currentTime"]
        await wait_for(a, playing_past(t_a + 2.0), 20, "page A to keep playing", log_a)
        await wait_for(b, playing_past(t_b + 2.0), 20, "page B to keep playing", log_b)
    assert sa["hashFailures"] == 0 and sb["hashFailures"] == 0


def corrupt_uploads(agent: Any) -> None:
    """Make ``agent`` malicious: byte 0 of every segment it uploads is flipped."""
    from tests.agent.fakes import corrupt_uploads as corrupt

    corrupt(agent)


EVIL_ADDRESS = "127.0.0.5"


async def test_corrupting_peer_is_banned_and_never_reaches_the_player() -> None:
    from peer_agent.agent import Agent, AgentConfig

    log: list[str] = []
    hashes: dict[str, str] = {}
    done = asyncio.Event()
    engine = {"auditDeliveries": True, "integrity": {"ban_after_failures": 2, "penalty_s": 0.5}}
    async with run_demo(demo_config(engine=engine)) as demo, browser_context() as context:
        collector = asyncio.create_task(collect_hashes(demo.origin_url, hashes, done))
        evil = Agent(
            AgentConfig(
                demo.master_url("live-ts"),
                tracker_url=demo.tracker_url,
                tracker_token=demo.token,
                host_addresses=(EVIL_ADDRESS,),  # its own: the page's ban keys on it
                rendition=0,
                latency_segments=2,
                seed=66,
            )
        )
        corrupt_uploads(evil)
        evil_task = asyncio.create_task(evil.run())
        try:
            # the evil agent holds segments before the page arrives (a condition: a fixed 3 s
            # could end before a starved agent fetched any)
            deadline = time.monotonic() + 60
            while evil.exchange.verified_count < 2:
                assert time.monotonic() < deadline, "the evil agent fetched nothing in 60 s"
                assert not evil_task.done(), evil_task
                await asyncio.sleep(0.2)
            page = await open_demo_page(context, demo.page_url, log)
            s = await wait_for(
                page,
                lambda s: evil.peer_id in s["bannedPeers"],
                60,
                "the corrupting peer to be banned",
                log,
            )
            t0 = s["currentTime"]
            s = await wait_for(page, playing_past(t0 + 4.0), 30, "playback after the ban", log)
        finally:
            evil.stop()
            await evil_task
            done.set()
            await collector
    assert s["hashFailures"] >= 1, s  # banned at its first (it alone supplied the segment)
    assert s["mediaError"] is None
    assert s["bytesFromCdn"] > 0
    banned = [p for p in s["peers"] if p["peerId"] == evil.peer_id]
    assert banned and banned[0]["banned"] and not banned[0]["connected"], s["peers"]
    # the ban outlives the peer id: the page read the address of the selected candidate pair
    # (getStats) and the certificate fingerprint of the remote SDP (docs/exchange.md §8b)
    subjects = s["bannedSubjects"]
    assert f"addr:{EVIL_ADDRESS}" in subjects, subjects
    assert any(k.startswith("cert:") for k in subjects), subjects
    assert check_deliveries(s, hashes) >= 3, s["deliveries"]
    assert all(d["source"] != "peer" or d["sha256"] for d in s["deliveries"])
    print(
        f"corrupting peer banned after {s['hashFailures']} hash failures; "
        f"{check_deliveries(s, hashes)} deliveries checked against the manifest; "
        f"{s['bytesFromCdn']} B from the CDN, {s['bytesFromPeers']} B from peers"
    )


async def test_demo_panel_shows_p2p_figures_and_a_screenshot() -> None:
    log: list[str] = []
    async with run_demo(demo_config(agents=2)) as demo, browser_context() as context:
        page = await open_demo_page(context, demo.page_url, log)
        s = await wait_for(
            page,
            lambda s: (
                s["bytesFromPeers"] > 0 and s["connectedPeers"] >= 1 and len(s["history"]) >= 3
            ),
            60,
            "P2P figures in the panel",
            log,
        )
        # the panel redraws twice a second: wait for a redraw that shows the figures (a fixed
        # 1 s wait could fall short when Chromium is starved of CPU)
        await page.wait_for_function(
            """() => {
                const p2p = document.querySelector("#fig-p2p")?.innerText ?? "";
                const ratio = document.querySelector("#fig-ratio")?.innerText ?? "";
                const rows = document.querySelectorAll("#peers tbody tr").length;
                return p2p !== "" && p2p !== "0 B" && ratio !== "0.0 %" && rows >= 1;
            }""",
            timeout=60_000,
        )
        s = await stats(page)
        shown = await page.inner_text("#fig-p2p")
        rows = await page.locator("#peers tbody tr").count()
        ratio = await page.inner_text("#fig-ratio")
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "demo-panel.png"
        await page.screenshot(path=str(shot), full_page=True)
    assert shown not in ("", "0 B"), shown
    assert rows >= 1 and ratio != "0.0 %"
    for key in ("bytesFromPeers", "bytesFromCdn", "bytesUploaded", "peers"):
        assert key in s
    assert shot.stat().st_size > 10_000
    print(f"panel: {shown} from peers, ratio {ratio}, {rows} peers; screenshot {shot}")


WS_PROBE_JS = """async (url) => await new Promise((resolve) => {
  let opened = false;
  const ws = new WebSocket(url);
  ws.onopen = () => { opened = true; setTimeout(() => ws.close(1000), 300); };
  ws.onclose = (e) => resolve({opened, code: e.code});
})"""


async def test_tracker_checks_are_on_tokens_and_origin() -> None:
    async with run_demo(demo_config()) as demo, browser_context() as context:
        page = await context.new_page()
        await page.goto(demo.page_url + "config.json")  # the page's own origin
        with_token = demo.tracker_url + f"?token={demo.token}"
        assert await page.evaluate(WS_PROBE_JS, with_token) == {"opened": True, "code": 1000}
        no_token = await page.evaluate(WS_PROBE_JS, demo.tracker_url)
        assert no_token["code"] == 4001, no_token  # token_invalid, after accept
        await page.goto(demo.origin_url + "/healthz")  # another origin: closed with 4003
        elsewhere = await page.evaluate(WS_PROBE_JS, with_token)
        assert elsewhere["code"] == 4003, elsewhere  # the page sees why (origin_forbidden)


def test_demo_cli_prints_the_url_and_stops_everything_on_sigint(tmp_path: Any) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys

    from peer_agent.demo import ROOT

    proc = subprocess.Popen(
        [sys.executable, "-m", "peer_agent.demo", "--port", "0", "--agents", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("Demo: http://"), line
        url = line.split()[1]
        page = httpx.get(url, timeout=5.0, trust_env=False)
        assert page.status_code == 200 and "p2p-hls" in page.text
        config = httpx.get(url + "config.json", timeout=5.0, trust_env=False).json()
        assert config["token"] and config["tracker"].startswith("ws://")
        origin_port = int(config["origin"].rsplit(":", 1)[1])
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) in (0, 130)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the origin subprocess is gone with the launcher
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", origin_port)) != 0:
                return
        time.sleep(0.2)
    raise AssertionError("the origin still listens after the demo stopped")
