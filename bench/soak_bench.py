"""Soak benchmark (issue 17): 2 Chromium pages + 2 agents on the live demo stream for 60 minutes,
sampled every minute: each page's JS heap (after a forced GC), the renderer processes' resident
memory, each page's store and open peer connections. Growth is the least-squares slope after
warm-up, in MB per 10 minutes (the aim: <= 1 MB per 10 minutes per page).

Opt-in: it runs only with `--only bench.soak_bench` or P2P_BENCH_SOAK=1 (bench/run.py);
`--quick` runs 2 minutes sampled every 20 s. Needs Debian's chromium, Playwright and hls.js
(node_modules); elsewhere the section says it was skipped.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from peer_agent.demo import DemoConfig, run_demo

MB = 1024 * 1024
SEGMENT_S = 2.0  # DemoConfig's default segment length
WINDOW_SEGMENTS = 6
RETAIN_BEHIND_S = 30.0  # the exchange's default margin (web_demo/segment_exchange.js)
# What a page may hold (tests/browser/test_longrun.py): the window, the margin behind the
# playhead, and a segment of rounding at each end.
STORE_BOUND_SEGMENTS = WINDOW_SEGMENTS + math.ceil(RETAIN_BEHIND_S / SEGMENT_S) + 2


def renderer_rss_bytes() -> int:
    """Resident memory of the Chromium renderer processes this process started (descendants
    of ours: other Chromiums on a shared machine do not count), from /proc, summed."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
            renderer = b"--type=renderer" in (proc / "cmdline").read_bytes()
        except OSError:
            continue
        pid = int(proc.name)
        for line in status.splitlines():
            if line.startswith("PPid:"):
                parents[pid] = int(line.split()[1])
            elif line.startswith("VmRSS:") and renderer:
                rss[pid] = int(line.split()[1]) * 1024
    me = os.getpid()

    def ours(pid: int) -> bool:
        for _ in range(64):
            pid = parents.get(pid, 0)
            if pid == me:
                return True
            if pid <= 1:
                return False
        return False

    return sum(v for pid, v in rss.items() if ours(pid))


def slope_per_10_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, bytes) in MB per 10 minutes."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    den = sum((t - mx) ** 2 for t, _ in points)
    if den == 0:
        return None
    k = sum((t - mx) * (v - my) for t, v in points) / den
    return k * 600 / MB


async def soak(duration_s: float, every_s: float, warmup_s: float) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from tests.browser.browser_support import CHROMIUM_ARGS, STATS_JS, chromium_path

    config = DemoConfig(
        page_port=0,
        agents=2,
        segment_duration_s=SEGMENT_S,
        content_duration_s=30.0,
        live_window_segments=WINDOW_SEGMENTS,
    )
    samples: list[dict[str, Any]] = []
    async with run_demo(config) as demo, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 640, "height": 360})
            await context.grant_permissions(["camera", "microphone"])
            pages, cdps = [], []
            for _ in range(2):
                page = await context.new_page()
                await page.goto(demo.page_url)
                cdp = await context.new_cdp_session(page)
                await cdp.send("Performance.enable")
                pages.append(page)
                cdps.append(cdp)
            t0 = time.monotonic()
            while True:
                elapsed = time.monotonic() - t0
                row: dict[str, Any] = {"t_s": round(elapsed, 1)}
                row["renderer_rss"] = renderer_rss_bytes()
                for i, (page, cdp) in enumerate(zip(pages, cdps, strict=True)):
                    await cdp.send("HeapProfiler.collectGarbage")
                    metrics = await cdp.send("Performance.getMetrics")
                    heap = {m["name"]: m["value"] for m in metrics["metrics"]}["JSHeapUsedSize"]
                    s = await page.evaluate(STATS_JS) or {}
                    row[f"p{i}"] = {
                        "heap": int(heap),
                        "store_segments": s.get("storeSegments"),
                        "store_bytes": s.get("storeBytes"),
                        "sizes": (s.get("segmentRecords") or {}).get("sizes"),
                        "peers": s.get("connectedPeers"),
                        "time": round(s.get("currentTime") or 0.0, 1),
                        "media_error": s.get("mediaError"),
                    }
                samples.append(row)
                print(f"soak: {json.dumps(row)}", flush=True)
                if elapsed >= duration_s:
                    break
                await asyncio.sleep(max(0.0, every_s - (time.monotonic() - t0 - elapsed)))
        finally:
            await browser.close()
    after = [r for r in samples if r["t_s"] >= warmup_s]
    result: dict[str, Any] = {"samples": samples, "duration_s": duration_s, "warmup_s": warmup_s}
    result["renderer_mb_per_10_min"] = slope_per_10_min(
        [(r["t_s"], r["renderer_rss"]) for r in after]
    )
    for i in range(2):
        result[f"p{i}_heap_mb_per_10_min"] = slope_per_10_min(
            [(r["t_s"], r[f"p{i}"]["heap"]) for r in after]
        )
    return result


def bounds_line(result: dict[str, Any]) -> str:
    """Store, size table and open peer connections after warm-up, against the bound."""
    after = [r for r in result["samples"] if r["t_s"] >= result["warmup_s"]]
    if not after:
        return "No sample after warm-up."
    parts = []
    for i in range(2):
        rows = [r[f"p{i}"] for r in after]
        store = max(p["store_segments"] or 0 for p in rows)
        sizes = max(p["sizes"] or 0 for p in rows)
        peers = sorted({p["peers"] for p in rows if p["peers"] is not None})
        ok = (
            "met"
            if store <= STORE_BOUND_SEGMENTS and sizes <= STORE_BOUND_SEGMENTS + 4
            else "NOT met"
        )
        flat = "flat" if len(peers) == 1 else "NOT flat"
        parts.append(
            f"page {i}: store at most {store} segments, size table at most {sizes} entries "
            f"({ok}), open peer connections {peers} ({flat})"
        )
    return (
        f"After warm-up (bound: window {WINDOW_SEGMENTS} + margin "
        f"{math.ceil(RETAIN_BEHIND_S / SEGMENT_S)} + 2 = {STORE_BOUND_SEGMENTS} segments; the "
        "size table may hold up to 4 more announced ahead of the playlist): "
        + "; ".join(parts)
        + "."
    )


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:+.2f}"


def run(out_dir: Path, quick: bool = False) -> str:
    from tests.browser.browser_support import HLSJS, chromium_path

    title = "## Soak: 2 pages + 2 agents, live"
    if not Path(chromium_path() or "").exists() or not HLSJS.exists():
        return f"{title}\n\nSkipped: needs Debian's chromium and hls.js (npm ci).\n"
    duration_s, every_s, warmup_s = (120.0, 20.0, 40.0) if quick else (3600.0, 60.0, 600.0)
    result = asyncio.run(soak(duration_s, every_s, warmup_s))
    (out_dir / "soak.json").write_text(json.dumps(result, indent=1))
    return render(result, every_s)


def render(result: dict[str, Any], every_s: float) -> str:
    """The section from a run's soak.json (also: `python -m bench.soak_bench soak.json`)."""
    title = "## Soak: 2 pages + 2 agents, live"
    duration_s, warmup_s = result["duration_s"], result["warmup_s"]
    lines = [
        title,
        "",
        f"{duration_s / 60:.0f} minutes, sampled every {every_s:.0f} s; growth after a "
        f"{warmup_s / 60:.0f}-minute warm-up (least squares, MB per 10 minutes; aim <= 1 per "
        "page). JS heap after a forced GC (CDP); renderer: RSS of this run's renderer processes "
        "(shared pages count in each). A 2-minute --quick run is all warm-up: its slopes say "
        "nothing about hours.",
        "",
        "| t (s) | p0 heap MB | p1 heap MB | renderer MB | p0 store (segs) | p1 store | "
        "p0 sizes | p0 peers | p1 peers |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["samples"]:
        p0, p1 = r["p0"], r["p1"]
        lines.append(
            f"| {r['t_s']:.0f} | {p0['heap'] / MB:.1f} | {p1['heap'] / MB:.1f} | "
            f"{r['renderer_rss'] / MB:.0f} | {p0['store_segments']} | {p1['store_segments']} | "
            f"{p0['sizes']} | {p0['peers']} | {p1['peers']} |"
        )
    lines += [
        "",
        f"Growth (MB / 10 min): page 0 heap {_fmt(result['p0_heap_mb_per_10_min'])}, page 1 "
        f"heap {_fmt(result['p1_heap_mb_per_10_min'])}, renderers "
        f"{_fmt(result['renderer_mb_per_10_min'])} (both pages).",
        "",
        bounds_line(result),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    saved = json.loads(Path(sys.argv[1]).read_text())
    times = [r["t_s"] for r in saved["samples"]]
    print(render(saved, times[1] - times[0] if len(times) > 1 else 0.0), end="")
