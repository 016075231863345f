"""Soak diagnostic (issue 17): which part of a page's renderer memory grows on a live stream, and
is it ours? The soak's setting (demo with 2 agents, live, 30 s content loop, window 6) with
two of our demo pages and one plain hls.js page (hls.js's own loader, no engine; the same back
buffer and live sync as the demo page, tests/browser/test_abr.py) in one browser, sampled every
minute. Per page: JS heap after a forced GC, CDP Memory.getDOMCounters (documents, nodes,
listeners), Performance.getMetrics (all), the video element's buffered seconds, hls.js latency
behind the live edge, our store's bytes, and that page's own renderer process's RSS and its parts
(anon, file, shmem; the page's process is the one that spins while the page does).

    python -m bench.soak_diag --minutes 10 --every-s 60 --out diag.json

Not part of `make bench`: a tool to explain a soak's growth. Needs Debian's chromium and hls.js.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from bench.soak_bench import (
    MB,
    demo_config,
    page_renderer,
    proc_memory,
    renderer_pids,
    slope_per_10_min,
)
from peer_agent.demo import run_demo

# What every page (ours or plain) can say about its media: buffered seconds, where the playhead
# is, how far behind the live edge hls.js says it is, and our store when the engine is there.
PAGE_JS = """() => {
  const v = document.querySelector('video');
  let buffered = 0;
  const ranges = [];
  for (let i = 0; i < v.buffered.length; i++) {
    buffered += v.buffered.end(i) - v.buffered.start(i);
    ranges.push([+v.buffered.start(i).toFixed(1), +v.buffered.end(i).toFixed(1)]);
  }
  const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {};
  const out = {buffered_s: +buffered.toFixed(1), ranges, time: +v.currentTime.toFixed(1),
    latency_s: window.hls && Number.isFinite(window.hls.latency)
      ? +window.hls.latency.toFixed(1) : null,
    decoded: q.totalVideoFrames ?? null, dropped: q.droppedVideoFrames ?? null,
    error: v.error ? v.error.code : null};
  if (window.p2p) {
    const s = window.p2p.stats();
    out.store_bytes = s.storeBytes; out.store_segments = s.storeSegments;
    out.peers = s.connectedPeers;
  }
  return out;
}"""


async def diag(minutes: float, every_s: float) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from tests.browser.browser_support import CHROMIUM_ARGS, PLAIN_JS, chromium_path

    config = demo_config()
    samples: list[dict[str, Any]] = []
    names = ["ours0", "ours1", "plain"]
    async with run_demo(config) as demo, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 640, "height": 360})
            await context.grant_permissions(["camera", "microphone"])
            pages, cdps = [], []
            for name in names:
                page = await context.new_page()
                if name == "plain":
                    await page.goto(f"{demo.page_url}config.json")
                    await page.evaluate(PLAIN_JS, demo.master_url(config.stream))
                else:
                    await page.goto(demo.page_url)
                await page.wait_for_function("() => window.hls", timeout=60_000)
                cdp = await context.new_cdp_session(page)
                await cdp.send("Performance.enable")
                pages.append(page)
                cdps.append(cdp)
            pids = [await page_renderer(page.evaluate, renderer_pids()) for page in pages]
            print(f"diag: renderer pids per page {dict(zip(names, pids, strict=True))}", flush=True)
            t0 = time.monotonic()
            while True:
                elapsed = time.monotonic() - t0
                row: dict[str, Any] = {"t_s": round(elapsed, 1), "wall_s": round(time.time(), 1)}
                procs = proc_memory(renderer_pids())
                row["renderer_rss_all"] = sum(m["VmRSS"] for m in procs.values())
                row["procs"] = {str(pid): m for pid, m in procs.items()}
                for name, page, cdp, own in zip(names, pages, cdps, pids, strict=True):
                    await cdp.send("HeapProfiler.collectGarbage")
                    metrics = await cdp.send("Performance.getMetrics")
                    dom = await cdp.send("Memory.getDOMCounters")
                    p = await page.evaluate(PAGE_JS)
                    p["metrics"] = {m["name"]: m["value"] for m in metrics["metrics"]}
                    p["dom"] = dom
                    p["rss"] = procs.get(own, {}).get("VmRSS", 0) if own else 0
                    row[name] = p
                samples.append(row)
                brief = {
                    n: (
                        round(row[n]["rss"] / MB),
                        round(row[n]["metrics"]["JSHeapUsedSize"] / MB, 1),
                        row[n]["buffered_s"],
                        row[n]["latency_s"],
                        row[n]["dom"]["nodes"],
                        row[n].get("store_segments"),
                    )
                    for n in names
                }
                print(
                    f"diag: t={elapsed:.0f} (rss MB, heap MB, buffered s, latency s, nodes, "
                    f"store) {brief}",
                    flush=True,
                )
                if elapsed >= minutes * 60:
                    break
                await asyncio.sleep(max(0.0, every_s - (time.monotonic() - t0 - elapsed)))
        finally:
            await browser.close()
    result: dict[str, Any] = {"samples": samples, "pages": names, "pids": pids}
    warm = [r for r in samples if r["t_s"] >= 120]
    result["rss_mb_per_10_min"] = {
        n: slope_per_10_min([(r["t_s"], r[n]["rss"]) for r in warm]) for n in names
    }
    result["heap_mb_per_10_min"] = {
        n: slope_per_10_min([(r["t_s"], r[n]["metrics"]["JSHeapUsedSize"]) for r in warm])
        for n in names
    }
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--every-s", type=float, default=60.0)
    ap.add_argument("--out", type=Path, default=Path("soak_diag.json"))
    a = ap.parse_args()
    result = asyncio.run(diag(a.minutes, a.every_s))
    a.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("rss_mb_per_10_min", "heap_mb_per_10_min")}))


if __name__ == "__main__":
    main()
