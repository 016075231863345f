"""Soak benchmark (issue 17): 2 Chromium pages + 2 agents on the live demo stream for 60 minutes,
sampled every minute: each page's JS heap (after a forced GC), its own renderer process's
memory, its store, size table and open peer connections, and what could pile up in a page (DOM
nodes and listeners, buffered seconds and how far the back buffer reaches behind the playhead,
hls.js's fragment lists, performance entries). A third page plays the same stream with plain
hls.js (same options) as a yardstick. Growth is the least-squares slope after warm-up, in MB per
10 minutes (the aim: <= 1 MB per 10 minutes per page).

It measures without perturbing: no Playwright. Playwright enables the Network domain on every
page it drives and the DevTools Network agent keeps response bodies in the renderer (a plain
hls.js page with a DevTools session holding Network.enable: RssAnon 43 -> 101 MB in 5 minutes;
without one 46 -> 48 MB; bench/soak_diag.py keeps that comparison), which is what made earlier
runs of this bench show renderers growing +21/+35 MB per 10 minutes. Here Chromium is started
directly and driven over a bare CDP connection (bench/soak_cdp.py): pages are opened from the
browser's connection, nothing is enabled on them, nothing is intercepted (everything comes from
the real demo servers), and a page has a DevTools session only while it is sampled (attach, GC,
Runtime.getHeapUsage, Memory.getDOMCounters, one Runtime.evaluate, detach). Renderer memory is
read from /proc of the page's own renderer process (found once at the start: the one whose
anonymous memory grows by 128 MB while the page holds that many bytes). bench/soak_heap.py
diffs two heap snapshots of a page to say what grows in its JS heap.

Opt-in: it runs only with `--only bench.soak_bench` or P2P_BENCH_SOAK=1 (bench/run.py);
`--quick` runs 2 minutes sampled every 20 s. Needs Debian's chromium and hls.js
(node_modules); elsewhere the section says it was skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
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


def renderer_pids() -> set[int]:
    """The Chromium renderer processes this process started (descendants of ours: other
    Chromiums on a shared machine do not count), from /proc."""
    parents: dict[int, int] = {}
    renderers: set[int] = set()
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
        if renderer:
            renderers.add(pid)
    me = os.getpid()

    def ours(pid: int) -> bool:
        for _ in range(64):
            pid = parents.get(pid, 0)
            if pid == me:
                return True
            if pid <= 1:
                return False
        return False

    return {pid for pid in renderers if ours(pid)}


def rss_bytes(pids: set[int] | list[int]) -> dict[int, int]:
    """Resident memory (VmRSS) of each process still alive, from /proc."""
    return {pid: m["VmRSS"] for pid, m in proc_memory(pids).items()}


def proc_memory(pids: set[int] | list[int]) -> dict[int, dict[str, int]]:
    """VmRSS and its parts (RssAnon, RssFile, RssShmem), Pss, Pss_Anon and Pss_File in bytes,
    and utime+stime in clock ticks (cpu_ticks), of each process still alive, from /proc. RssFile
    is mostly Chromium's own code, faulted in as it runs and shared by every process: RssAnon
    is what a page's own data can grow."""
    out: dict[int, dict[str, int]] = {}
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        m = {}
        for line in status.splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                m[key] = int(value.split()[0]) * 1024
        with contextlib.suppress(OSError):  # proportional set size: shared pages split
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("Pss", "Pss_Anon", "Pss_File"):
                    m[key] = int(value.split()[0]) * 1024
        fields = stat.rsplit(")", 1)[1].split()
        m["cpu_ticks"] = int(fields[11]) + int(fields[12])
        out[pid] = m
    return out


def renderer_rss_bytes() -> int:
    """Resident memory of this run's renderer processes, summed."""
    return sum(rss_bytes(renderer_pids()).values())


PROBE_BYTES = 128 * MB
# Hold, then drop, PROBE_BYTES of touched memory in a page (page_renderer).
PROBE_HOLD_JS = f"() => {{ window.__probe = new Uint8Array({PROBE_BYTES}).fill(1); }}"
PROBE_DROP_JS = "() => { delete window.__probe; }"


async def page_renderer(run_js: Any, candidates: set[int]) -> int | None:
    """Which renderer process runs a page: the one whose anonymous memory grows by about
    PROBE_BYTES while the page holds that many touched bytes (`run_js(source)` runs a JS function
    in the page). Chromium hands a new page a spare renderer started earlier, so the process that
    appears when a page opens is not the page's; and CPU time (a page spinning) does not tell them
    apart on a loaded machine, where every renderer gets a share of a core."""
    before = proc_memory(candidates)
    await run_js(PROBE_HOLD_JS)
    after = proc_memory(candidates)
    await run_js(PROBE_DROP_JS)
    grew = [
        p
        for p in after
        if p in before and after[p]["RssAnon"] - before[p]["RssAnon"] >= PROBE_BYTES * 0.8
    ]
    return grew[0] if len(grew) == 1 else None


# Any page's media and what could pile up in it: the video's buffered seconds and ranges (hls.js's
# back buffer: how far the oldest buffered second lies behind the playhead), its SourceBuffers,
# hls.js's latency behind live and the fragments its level details list, the page's performance
# entries (resource timing), and for our pages the engine's stats.
PAGE_JS = """() => {
  const v = document.querySelector('video');
  let buffered = 0;
  for (let i = 0; i < v.buffered.length; i++) buffered += v.buffered.end(i) - v.buffered.start(i);
  const hls = window.hls;
  const latency = hls ? hls.latency : null;
  const out = {buffered_s: +buffered.toFixed(1), time: +v.currentTime.toFixed(1),
    visible: document.visibilityState,
    behind_s: v.buffered.length ? +(v.currentTime - v.buffered.start(0)).toFixed(1) : null,
    ranges: v.buffered.length,
    source_buffers: hls?.bufferController?.mediaSource?.sourceBuffers?.length ?? null,
    latency_s: Number.isFinite(latency) ? +latency.toFixed(1) : null,
    hls_frags: (hls?.levels || []).reduce((n, l) => n + (l.details?.fragments?.length || 0), 0),
    perf_entries: performance.getEntries().length,
    media_error: v.error ? v.error.code : null};
  if (window.p2p) {
    const s = window.p2p.stats();
    out.store_segments = s.storeSegments; out.store_bytes = s.storeBytes;
    out.sizes = (s.segmentRecords || {}).sizes ?? null; out.peers = s.connectedPeers;
    out.from_peers = s.bytesFromPeers; out.from_cdn = s.bytesFromCdn;
  }
  return out;
}"""


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


async def sample_page(
    browser: Any, target: str, pid: int | None, procs: dict[int, Any]
) -> dict[str, Any]:
    """One page's figures: attach, force a GC, read the JS heap, DOM counters and the page's own
    counters, detach; its renderer's memory from /proc (`procs`, read just before)."""
    async with browser.session(target) as s:
        await s.send("HeapProfiler.collectGarbage")
        heap = await s.send("Runtime.getHeapUsage")
        dom = await s.send("Memory.getDOMCounters")
        page = await s.evaluate(PAGE_JS)
    own = procs.get(pid, {}) if pid else {}
    return {
        "heap": int(heap["usedSize"]),
        "rss": own.get("VmRSS"),
        "rss_anon": own.get("RssAnon"),
        "pss_anon": own.get("Pss_Anon"),
        "rss_shmem": own.get("RssShmem"),
        "nodes": dom["nodes"],
        "listeners": dom["jsEventListeners"],
        "documents": dom["documents"],
        **page,
    }


def demo_config() -> DemoConfig:
    """The soak's demo: 2 agents on the live stream (also the diagnostic's and heap run's)."""
    return DemoConfig(
        page_port=0,
        agents=2,
        segment_duration_s=SEGMENT_S,
        content_duration_s=30.0,
        live_window_segments=WINDOW_SEGMENTS,
    )


async def soak(duration_s: float, every_s: float, warmup_s: float) -> dict[str, Any]:
    from bench.soak_cdp import launch
    from tests.browser.browser_support import CHROMIUM_ARGS, PLAIN_JS, chromium_path

    config = demo_config()
    samples: list[dict[str, Any]] = []
    names = ["p0", "p1", "plain"]
    async with run_demo(config) as demo, launch(chromium_path(), CHROMIUM_ARGS) as browser:
        # Loopback ICE candidates need these (docs: "Facts learned on these machines").
        await browser.send(
            "Browser.grantPermissions",
            {"permissions": ["videoCapture", "audioCapture"], "origin": demo.page_url.rstrip("/")},
        )
        targets = [await browser.open_page(demo.page_url) for _ in range(2)]
        # A plain hls.js page beside ours: growth it shows too is not ours.
        targets.append(await browser.open_page(f"{demo.page_url}config.json"))
        deadline = time.monotonic() + 60
        while True:
            async with browser.session(targets[2]) as s:
                if await s.evaluate("() => document.readyState === 'complete'"):
                    await s.evaluate(PLAIN_JS, demo.master_url(config.stream))
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the plain page did not load")
            await asyncio.sleep(0.5)
        for target in targets:
            while True:
                async with browser.session(target) as s:
                    if await s.evaluate("() => !!window.hls"):
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("a page did not start hls.js within 60 s")
                await asyncio.sleep(0.5)

        def runner(target: str) -> Any:
            async def run_js(source: str) -> None:
                async with browser.session(target) as s:
                    await s.evaluate(source)
                    await s.send("HeapProfiler.collectGarbage")

            return run_js

        pids = [await page_renderer(runner(t), renderer_pids()) for t in targets]
        print(f"soak: renderer pids {dict(zip(names, pids, strict=True))}", flush=True)
        t0 = time.monotonic()
        while True:
            elapsed = time.monotonic() - t0
            row: dict[str, Any] = {"t_s": round(elapsed, 1), "load_1m": os.getloadavg()[0]}
            procs = proc_memory(renderer_pids())
            row["renderer_rss"] = sum(m["VmRSS"] for m in procs.values())
            for name, target, pid in zip(names, targets, pids, strict=True):
                row[name] = await sample_page(browser, target, pid, procs)
            samples.append(row)
            print(f"soak: {json.dumps(row)}", flush=True)
            if elapsed >= duration_s:
                break
            await asyncio.sleep(max(0.0, every_s - (time.monotonic() - t0 - elapsed)))
    after = [r for r in samples if r["t_s"] >= warmup_s]
    result: dict[str, Any] = {
        "samples": samples,
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "driver": "bare CDP (bench/soak_cdp.py): no Network domain, a session only while sampling",
    }
    result["renderer_mb_per_10_min"] = slope_per_10_min(
        [(r["t_s"], r["renderer_rss"]) for r in after]
    )
    result["renderer_pids"] = dict(zip(names, pids, strict=True))
    for name in names:
        result[f"{name}_heap_mb_per_10_min"] = slope_per_10_min(
            [(r["t_s"], r[name]["heap"]) for r in after]
        )
        for key in ("rss", "rss_anon", "pss_anon"):
            result[f"{name}_{key}_mb_per_10_min"] = slope_per_10_min(
                [(r["t_s"], r[name][key]) for r in after if r[name].get(key) is not None]
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


def counters_line(result: dict[str, Any]) -> str:
    """What could pile up in a page, as ranges over the samples after warm-up, and the load."""
    after = [r for r in result["samples"] if r["t_s"] >= result["warmup_s"]]
    if not after:
        return ""

    def span(name: str, key: str) -> str:
        values = [r[name].get(key) for r in after if r[name].get(key) is not None]
        return f"{min(values)}-{max(values)}" if values else "n/a"

    parts = []
    for name, label in (("p0", "page 0"), ("p1", "page 1"), ("plain", "plain")):
        parts.append(
            f"{label}: DOM nodes {span(name, 'nodes')}, listeners {span(name, 'listeners')}, "
            f"performance entries {span(name, 'perf_entries')}, hls.js fragments listed "
            f"{span(name, 'hls_frags')}, buffered s {span(name, 'buffered_s')}, back buffer s "
            f"{span(name, 'behind_s')}, latency s {span(name, 'latency_s')}"
        )
    loads = [r["load_1m"] for r in after if "load_1m" in r]
    load = f"{min(loads):.0f}-{max(loads):.0f}" if loads else "n/a"
    return (
        "After warm-up (ranges): "
        + "; ".join(parts)
        + f". Load average (1 min) {load} on {os.cpu_count()} cores: a shared machine."
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
        "page). JS heap after a forced GC (CDP); renderers: RSS of this run's renderer processes "
        "summed; a page's RSS: its own renderer's VmRSS and its anonymous part (RssAnon). A "
        "third page plays the same stream with plain hls.js. Buffered: the video's buffered "
        "seconds; latency: hls.js's, behind the live edge; DOM nodes: CDP "
        "Memory.getDOMCounters. A 2-minute --quick run is all warm-up: its slopes say "
        "nothing about hours.",
        "",
        "| t (s) | p0 heap MB | p1 heap MB | renderers MB | p0 / p1 / plain RSS (anon) MB | "
        "p0 store (segs) | p1 store | p0 sizes | p0 / p1 peers | p0 / plain buffered s | "
        "p0 / p1 / plain latency s | p0 / plain DOM nodes |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["samples"]:
        p0, p1, pl = r["p0"], r["p1"], r.get("plain", {})

        def mb(v: int | None) -> str:
            return "?" if v is None else f"{v / MB:.0f}"

        lines.append(
            f"| {r['t_s']:.0f} | {p0['heap'] / MB:.1f} | {p1['heap'] / MB:.1f} | "
            f"{r['renderer_rss'] / MB:.0f} | {mb(p0.get('rss'))} ({mb(p0.get('rss_anon'))}) / "
            f"{mb(p1.get('rss'))} ({mb(p1.get('rss_anon'))}) / {mb(pl.get('rss'))} "
            f"({mb(pl.get('rss_anon'))}) | {p0['store_segments']} | {p1['store_segments']} | "
            f"{p0['sizes']} | {p0['peers']} / {p1['peers']} | {p0.get('buffered_s')} / "
            f"{pl.get('buffered_s')} | {p0.get('latency_s')} / {p1.get('latency_s')} / "
            f"{pl.get('latency_s')} | {p0.get('nodes')} / {pl.get('nodes')} |"
        )
    lines += [
        "",
        f"Growth (MB / 10 min): page 0 heap {_fmt(result['p0_heap_mb_per_10_min'])}, page 1 "
        f"heap {_fmt(result['p1_heap_mb_per_10_min'])}, renderers "
        f"{_fmt(result['renderer_mb_per_10_min'])} (all of this run's renderers). Each page's "
        f"own renderer's RSS (anonymous part): page 0 {_fmt(result.get('p0_rss_mb_per_10_min'))} "
        f"({_fmt(result.get('p0_rss_anon_mb_per_10_min'))}), page 1 "
        f"{_fmt(result.get('p1_rss_mb_per_10_min'))} "
        f"({_fmt(result.get('p1_rss_anon_mb_per_10_min'))}), plain hls.js (no engine, same "
        f"hls.js options) {_fmt(result.get('plain_rss_mb_per_10_min'))} "
        f"({_fmt(result.get('plain_rss_anon_mb_per_10_min'))}): growth the plain page shows "
        "too is hls.js's or Chromium's, not ours; the rest of RSS is mostly Chromium's code, "
        "shared by all its processes and faulted in as it runs.",
        "",
        counters_line(result),
        "",
        bounds_line(result),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    saved = json.loads(Path(sys.argv[1]).read_text())
    times = [r["t_s"] for r in saved["samples"]]
    print(render(saved, times[1] - times[0] if len(times) > 1 else 0.0), end="")
