"""Manifest bench (issue 15, finding 6): what the integrity manifest costs each viewer of a live
stream, against the segment bytes it verifies. Four Chromium pages of the demo (live-ts, 2 s
segments, a 20-segment window, 3 segments behind live) play for a minute; each page reports the
manifest requests and body bytes it made (``manifestFetches``, ``manifestBytes``) and its
segment bytes (CDN + peers). Beside it, in the same run, what refetching the whole manifest for
every one of those requests would have cost (the behaviour before incremental manifests):
requests x the full manifest's size at the end. Aim: manifest bytes <= 1 % of segment bytes.

Needs Debian's chromium and hls.js (node_modules); elsewhere the section says it was skipped.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx

from peer_agent.demo import DemoConfig, run_demo

PAGES = 4


async def measure(duration_s: float) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from tests.browser.browser_support import CHROMIUM_ARGS, STATS_JS, chromium_path

    config = DemoConfig(page_port=0, agents=0, segment_duration_s=2.0, live_window_segments=20)
    async with run_demo(config) as demo, async_playwright() as pw, httpx.AsyncClient() as http:
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 320, "height": 180})
            await context.grant_permissions(["camera", "microphone"])
            await http.post(f"{demo.origin_url}/stats/reset")
            pages = []
            for _ in range(PAGES):
                page = await context.new_page()
                await page.goto(demo.page_url)
                pages.append(page)
            started = time.monotonic()
            await asyncio.sleep(duration_s)
            rows = [await page.evaluate(STATS_JS) or {} for page in pages]
            elapsed_s = time.monotonic() - started
            origin = (await http.get(f"{demo.origin_url}/stats")).json()
            full = {}
            for rendition in ("360p", "180p"):
                r = await http.get(
                    f"{demo.origin_url}/hls/{config.stream}/{rendition}/manifest.json"
                )
                full[rendition] = len(r.content)
        finally:
            await browser.close()
    pages_out = []
    for s in rows:
        seg = int(s.get("bytesFromCdn") or 0) + int(s.get("bytesFromPeers") or 0)
        fetches = int(s.get("manifestFetches") or 0)
        pages_out.append(
            {
                "segment_bytes": seg,
                "manifest_fetches": fetches,
                "manifest_bytes": int(s.get("manifestBytes") or 0),
                "whole_manifest_bytes": fetches * max(full.values()),
                "segments_verified": s.get("segmentsVerified"),
                "cdn_fetches_join_ramp": s.get("cdnFetchesJoinRamp"),
                "cdn_fetches_steady": s.get("cdnFetchesSteady"),
                "rendition": s.get("rendition"),
            }
        )
    return {
        "duration_s": round(elapsed_s, 1),
        "pages": pages_out,
        "full_manifest_bytes": full,
        "origin_by_kind": origin.get("by_kind", {}),
    }


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.2f} %" if b else "n/a"


def run(out_dir: Path, quick: bool = False) -> str:
    from tests.browser.browser_support import HLSJS, chromium_path

    title = "## Manifest: incremental live manifests, bytes per page"
    if not Path(chromium_path() or "").exists() or not HLSJS.exists():
        return f"{title}\n\nSkipped: needs Debian's chromium and hls.js (npm ci).\n"
    result = asyncio.run(measure(40.0 if quick else 90.0))
    (out_dir / "manifest.json").write_text(json.dumps(result, indent=1))
    lines = [
        title,
        "",
        f"{PAGES} Chromium pages of the demo, live-ts, 2 s segments, 20-segment window, "
        f"{result['duration_s']:.0f} s. Manifest bytes are answer bodies (headers excluded, as "
        'for segments). "Whole" is the same requests each answered with the full manifest '
        f"({result['full_manifest_bytes']} bytes at the end), i.e. the behaviour before.",
        "",
        "| page | segment bytes | manifest requests | manifest bytes | % of segments | "
        "whole-manifest bytes | % (whole) | CDN fetches: join ramp / steady |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, p in enumerate(result["pages"]):
        lines.append(
            f"| {i} | {p['segment_bytes']} | {p['manifest_fetches']} | {p['manifest_bytes']} | "
            f"{_pct(p['manifest_bytes'], p['segment_bytes'])} | {p['whole_manifest_bytes']} | "
            f"{_pct(p['whole_manifest_bytes'], p['segment_bytes'])} | "
            f"{p['cdn_fetches_join_ramp']} / {p['cdn_fetches_steady']} |"
        )
    kinds = result["origin_by_kind"]
    seg = kinds.get("segment", {}).get("bytes_served", 0)
    man = kinds.get("manifest", {})
    lines += [
        "",
        f"Origin: {man.get('requests', 0)} manifest requests, {man.get('bytes_served', 0)} bytes "
        f"= {_pct(man.get('bytes_served', 0), seg)} of its {seg} segment bytes.",
    ]
    return "\n".join(lines) + "\n"
