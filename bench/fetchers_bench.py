"""Swarm-wide fetcher assignment (issue 15): CDN fetches per segment with the signaling
server's fetcher assignment and with today's local election only, side by side in one run.

The scenario is issue 15's (`p2p-sim --live --segment-s 4 --latency-segments 3 --duration-s
120 --join-over-s 60 --tick-s 0.1`) at 1,000 viewers (200 with --quick), run three ways in
the same process with the same seed: the local election (``server_fetchers=0``), the server's
assignment of 4 fetchers (``server_fetchers=4``), and CDN only, with the split pairing of issue
15's overlay work. The same pair also runs with issue 15's capacity mix and churn (10 % of
uploaders below the bitrate, 1 % leaving per minute), and with the pairing before issue 15
(``free``, which chains the overlay by join time). CPU seconds are process time; the machine
is shared, so read the ratios within this run.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from peer_agent.sim.engine import simulate
from peer_agent.sim.scenario import Scenario

BIG = Scenario(
    live=True, segment_s=4.0, latency_segments=3, duration_s=120.0, join_over_s=60.0, tick_s=0.1
)
MIX = {"low_uplink_fraction": 0.1, "churn_per_min": 0.01}
COLUMNS = [
    "run",
    "peers",
    "pairing",
    "server_fetchers",
    "cdn_fetches_per_segment",
    "cdn_fetches_per_segment_steady",
    "cdn_fetches_per_segment_join_ramp",
    "offload_ratio",
    "stall_count",
    "startup_s_median",
    "cpu_s",
]


def _run(name: str, scenario: Scenario) -> dict[str, Any]:
    print(f"fetchers bench: {name} ...", file=sys.stderr, flush=True)
    start = time.process_time()
    summary = simulate(scenario, per_peer=False).summary()
    summary["cpu_s"] = round(time.process_time() - start, 2)
    return {
        "run": name,
        "pairing": scenario.pairing,
        "server_fetchers": scenario.server_fetchers,
        **summary,
    }


def rows_for(peers: int) -> list[dict[str, Any]]:
    base = BIG.with_overrides(peers=peers, pairing="split")
    mixed = base.with_overrides(**MIX)
    free = base.with_overrides(pairing="free")
    return [
        _run("local election", base),
        _run("server assignment", base.with_overrides(server_fetchers=4)),
        _run("CDN only", base.with_overrides(p2p=False)),
        _run("mix + churn, local election", mixed),
        _run("mix + churn, server assignment", mixed.with_overrides(server_fetchers=4)),
        _run("free pairing, local election", free),
        _run("free pairing, server assignment", free.with_overrides(server_fetchers=4)),
    ]


def run(out_dir: Path, quick: bool = False) -> str:
    peers = 200 if quick else 1000
    rows = rows_for(peers)
    local, assigned = rows[0], rows[1]
    ratio = round(
        assigned["cdn_fetches_per_segment_steady"] / local["cdn_fetches_per_segment_steady"], 3
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "fetchers.json").write_text(
        json.dumps({"rows": rows, "steady_fetches_ratio_assigned_vs_local": ratio}, indent=1) + "\n"
    )
    lines = [
        "## Swarm-wide fetcher assignment (simulator)",
        "",
        f"Issue 15's live scenario at {peers:,} viewers, with and without the signaling server's "
        "fetcher assignment (4 fetchers), side by side in one process, with the overlay's split "
        "pairing (and the pairing before issue 15, `free`, at the end). Steady-state CDN "
        "fetches per segment, assigned / local (split pairing): "
        f"**{ratio}**. Shared 2-core machine: compare within this table.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c)) for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run(Path(__file__).resolve().parent / "results", quick="--quick" in sys.argv))
