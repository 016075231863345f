"""Soak heap diagnostic (issue 17): what grows in one of our pages' JS heap on a live stream.
The soak's setting (bench/soak_bench.py: demo with 2 agents, 2 of our pages, bare Chromium
driven over CDP with no Network domain and a session only while sampling), with two V8 heap
snapshots of page 0 (after a forced GC) `--gap-min` minutes apart, after `--warmup-min`; prints
the object groups (V8 node type and constructor name) whose count or self size grew most.

    python -m bench.soak_heap --warmup-min 5 --gap-min 10 --out heap.json

Not part of `make bench`: a tool to explain a soak's heap growth. Needs Debian's chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

from bench.soak_bench import demo_config
from peer_agent.demo import run_demo

# Our page's store and peers, and its performance entries by type (browsers cap each buffer).
COUNTS_JS = """() => {
  const s = window.p2p.stats();
  const types = {};
  for (const e of performance.getEntries()) types[e.entryType] = (types[e.entryType] || 0) + 1;
  return {store: s.storeSegments, peers: s.connectedPeers, perf_entries: types};
}"""


def heap_groups(snapshot: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(count, self bytes) per "type:name" over a parsed V8 heap snapshot (strings and code
    are grouped by type alone: their names are their contents)."""
    meta = snapshot["snapshot"]["meta"]
    fields = meta["node_fields"]
    types = meta["node_types"][0]
    width = len(fields)
    i_type, i_name, i_size = fields.index("type"), fields.index("name"), fields.index("self_size")
    nodes, strings = snapshot["nodes"], snapshot["strings"]
    count: Counter[str] = Counter()
    size: Counter[str] = Counter()
    for at in range(0, len(nodes), width):
        kind = types[nodes[at + i_type]]
        name = (
            kind
            if kind
            in ("string", "concatenated string", "sliced string", "code", "number", "hidden")
            else f"{kind}:{strings[nodes[at + i_name]][:60]}"
        )
        count[name] += 1
        size[name] += nodes[at + i_size]
    return {k: (count[k], size[k]) for k in count}


def diff(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], top: int
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for key in set(before) | set(after):
        c0, s0 = before.get(key, (0, 0))
        c1, s1 = after.get(key, (0, 0))
        rows.append(
            {"group": key, "count": [c0, c1], "self_bytes": [s0, s1], "grew_bytes": s1 - s0}
        )
    rows.sort(key=lambda r: r["grew_bytes"], reverse=True)
    return rows[:top]


async def run_diag(warmup_min: float, gap_min: float) -> dict[str, Any]:
    from bench.soak_cdp import launch
    from tests.browser.browser_support import CHROMIUM_ARGS, chromium_path

    config = demo_config()
    async with run_demo(config) as demo, launch(chromium_path(), CHROMIUM_ARGS) as browser:
        await browser.send(
            "Browser.grantPermissions",
            {"permissions": ["videoCapture", "audioCapture"], "origin": demo.page_url.rstrip("/")},
        )
        targets = [await browser.open_page(demo.page_url) for _ in range(2)]
        snaps = []
        for wait_min in (warmup_min, gap_min):
            await asyncio.sleep(wait_min * 60)
            async with browser.session(targets[0]) as s:
                await s.send("HeapProfiler.collectGarbage")
                used = (await s.send("Runtime.getHeapUsage"))["usedSize"]
                stats = await s.evaluate(COUNTS_JS)
                groups = heap_groups(await s.heap_snapshot())
            print(
                f"heap: snapshot after {wait_min} min more: used {used / 2**20:.2f} MB, {stats}",
                flush=True,
            )
            snaps.append({"used": used, "stats": stats, "groups": groups})
    rows = diff(snaps[0]["groups"], snaps[1]["groups"], 25)
    return {
        "warmup_min": warmup_min,
        "gap_min": gap_min,
        "used": [s["used"] for s in snaps],
        "stats": [s["stats"] for s in snaps],
        "grew": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warmup-min", type=float, default=5.0)
    ap.add_argument("--gap-min", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=Path("soak_heap.json"))
    a = ap.parse_args()
    result = asyncio.run(run_diag(a.warmup_min, a.gap_min))
    a.out.write_text(json.dumps(result, indent=1))
    for r in result["grew"]:
        print(f"{r['grew_bytes']:+10d} B  count {r['count'][0]} -> {r['count'][1]}  {r['group']}")


if __name__ == "__main__":
    main()
