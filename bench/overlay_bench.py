"""Overlay benchmark (issue 15): the simulator's pairing before (``free``: only members with a
free slot) and after (``split``: random members of the whole swarm, splitting a link of a full
one), side by side in one run on the issue's live scenario (`p2p-sim --live --segment-s 4
--latency-segments 3 --duration-s 120 --join-over-s 60 --tick-s 0.1`).

Read the ratio of each pair: the overlay's neighbour distance in join order (median), its
diameter in hops (largest BFS eccentricity over up to 32 random viewers), CDN fetches per
segment of the whole swarm, offload and stalls. CPU seconds are process time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from peer_agent.sim.engine import simulate
from peer_agent.sim.scenario import Scenario

SCENARIO = Scenario(
    live=True,
    segment_s=4.0,
    latency_segments=3,
    duration_s=120.0,
    join_over_s=60.0,
    tick_s=0.1,
)
COLUMNS = [
    "peers",
    "pairing",
    "neighbour_join_distance_median",
    "diameter_hops",
    "neighbours_mean",
    "splits",
    "cdn_fetches_per_segment",
    "offload_ratio",
    "stall_count",
    "cpu_s",
]


def _row(peers: int, pairing: str) -> dict[str, Any]:
    start = time.process_time()
    result = simulate(SCENARIO.with_overrides(peers=peers, pairing=pairing), per_peer=False)
    overlay = result.overlay or {}
    return {
        "peers": peers,
        "pairing": pairing,
        "neighbour_join_distance_median": overlay.get("neighbour_join_distance_median"),
        "diameter_hops": overlay.get("diameter_hops"),
        "neighbours_mean": overlay.get("neighbours_mean"),
        "splits": overlay.get("splits"),
        "cdn_fetches_per_segment": round(result.cdn_fetches_per_segment, 2),
        "offload_ratio": round(result.offload_ratio, 4),
        "stall_count": result.stall_count,
        "cpu_s": round(time.process_time() - start, 1),
    }


def run(out_dir: Path, quick: bool = False) -> str:
    sizes = [100] if quick else [100, 1000]
    rows = [_row(n, pairing) for n in sizes for pairing in ("free", "split")]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "overlay.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "## Overlay: pairing before (free slots only) and after (split links)",
        "",
        __doc__.strip().split("\n\n")[0],
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "| " + " | ".join("---" for _ in COLUMNS) + " |",
    ]
    lines += ["| " + " | ".join(str(r[c]) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"
