"""Swarm-wide fetcher assignment (issue 15): CDN fetches per segment with the signaling
server's fetcher assignment and with today's local election only, side by side in one run, and
a flash crowd against CDN only.

The scenario is issue 15's (`p2p-sim --live --segment-s 4 --latency-segments 3 --duration-s
120 --join-over-s 60 --tick-s 0.1`) at 1,000 viewers (200 with --quick), run in the same
process with the same seed: the local election (``server_fetchers=0``), the server's assignment
of 4 fetchers (``server_fetchers=4``), and CDN only, with the split pairing of issue 15's overlay
work. The same pair also runs with issue 15's capacity mix and churn (10 % of uploaders at half
the bitrate, which therefore serve no uploads: docs/scheduling.md "Upload fan-out"; 1 % leaving
per minute), beside today's pairing and election under the same mix (``free`` pairing, which
chains the overlay by join time, and the local election), and without the mix under the
``free`` pairing. ``P2P_BENCH_FETCHERS_PEERS`` (comma-separated, default ``1000,10000``) adds
the mix + churn rows (assignment, and today's pairing and election) at further sizes; a
10,000-viewer run takes several CPU minutes.

The flash crowd: ``P2P_BENCH_FLASH_PEERS`` viewers (default 10,000; 500 with --quick) join
within 10 s of the first moment they can start 3 segments behind live, and play 60 s; with the
server's assignment and split pairing against CDN only: join-ramp CDN fetches, startup times
(median, 95th percentile, max) and stalls. CPU seconds are process time; the machine is shared,
so read the ratios within this run.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.tables import markdown_table as _table
from peer_agent.sim.engine import simulate
from peer_agent.sim.scenario import Scenario

BIG = Scenario(
    live=True, segment_s=4.0, latency_segments=3, duration_s=120.0, join_over_s=60.0, tick_s=0.1
)
MIX = {"low_uplink_fraction": 0.1, "churn_per_min": 0.01}
#: Issue 15's flash crowd: everyone joins within 10 s of the live start.
FLASH = BIG.with_overrides(join_over_s=10.0, duration_s=60.0, pairing="split")
COLUMNS = [
    "run",
    "peers",
    "pairing",
    "server_fetchers",
    "cdn_fetches_per_segment",
    "cdn_fetches_per_segment_steady",
    "cdn_fetches_per_segment_join_ramp",
    "offload_ratio",
    "offload_target",
    "stall_count",
    "startup_s_median",
    "cpu_s",
]
FLASH_COLUMNS = [
    "run",
    "peers",
    "cdn_fetches_join_ramp",
    "cdn_fetches_join_ramp_per_viewer",
    "cdn_fetches_per_segment_join_ramp",
    "cdn_fetches_per_segment_steady",
    "offload_ratio",
    "startup_s_median",
    "startup_s_p95",
    "startup_s_max",
    "stall_count",
    "stall_s",
    "cpu_s",
]


def _run(name: str, scenario: Scenario, *, startups: bool = False) -> dict[str, Any]:
    print(f"fetchers bench: {name} ({scenario.peers} viewers) ...", file=sys.stderr, flush=True)
    start = time.process_time()
    result = simulate(scenario, per_peer=startups)
    summary = result.summary()
    summary["cpu_s"] = round(time.process_time() - start, 2)
    summary["offload_target"] = round(0.95 * (scenario.peers - 1) / scenario.peers, 4)
    if startups:
        times = sorted(float(r["startup_s"]) for r in result.by_peer if r["startup_s"] is not None)
        if times:
            summary["startup_s_p95"] = round(times[int(0.95 * (len(times) - 1))], 3)
            summary["startup_s_max"] = round(times[-1], 3)
            summary["startup_s_median"] = round(statistics.median(times), 3)
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
        _run("mix + churn, today's pairing and election", mixed.with_overrides(pairing="free")),
        _run("free pairing, local election", free),
        _run("free pairing, server assignment", free.with_overrides(server_fetchers=4)),
    ]


def scale_rows(peers: int) -> list[dict[str, Any]]:
    """The Must show's rows at a further size: mix + churn, assignment and today's."""
    mixed = BIG.with_overrides(peers=peers, pairing="split", **MIX)
    return [
        _run("mix + churn, server assignment", mixed.with_overrides(server_fetchers=4)),
        _run("mix + churn, today's pairing and election", mixed.with_overrides(pairing="free")),
    ]


def flash_rows(peers: int) -> list[dict[str, Any]]:
    crowd = FLASH.with_overrides(peers=peers)
    return [
        _run(
            "flash crowd, server assignment", crowd.with_overrides(server_fetchers=4), startups=True
        ),
        _run("flash crowd, CDN only", crowd.with_overrides(p2p=False), startups=True),
    ]


def _sizes(env: str, default: str) -> list[int]:
    raw = os.environ.get(env, default)
    try:
        sizes = [int(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"{env} must be comma-separated viewer counts, got {raw!r}") from None
    if any(n < 2 for n in sizes):
        raise SystemExit(f"{env}: every size must be >= 2, got {raw!r}")
    return sizes


def run(out_dir: Path, quick: bool = False) -> str:
    peers = 200 if quick else 1000
    rows = rows_for(peers)
    for n in [] if quick else _sizes("P2P_BENCH_FETCHERS_PEERS", "1000,10000"):
        if n != peers:
            rows += scale_rows(n)
    flash_peers = 500 if quick else _sizes("P2P_BENCH_FLASH_PEERS", "10000")[0]
    flash = flash_rows(flash_peers) if flash_peers else []
    local, assigned = rows[0], rows[1]
    ratio = round(
        assigned["cdn_fetches_per_segment_steady"] / local["cdn_fetches_per_segment_steady"], 3
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "fetchers.json").write_text(
        json.dumps(
            {"rows": rows, "flash": flash, "steady_fetches_ratio_assigned_vs_local": ratio},
            indent=1,
        )
        + "\n"
    )
    lines = [
        "## Swarm-wide fetcher assignment (simulator)",
        "",
        f"Issue 15's live scenario at {peers:,} viewers, with and without the signaling server's "
        "fetcher assignment (4 fetchers), side by side in one process, with the overlay's split "
        "pairing; with the capacity mix (10 % of uploaders at half the bitrate, serving no "
        'uploads: docs/scheduling.md "Upload fan-out") and 1 % of viewers leaving per minute '
        "beside today's pairing and election (`free` pairing, local election); and the pairing "
        "before issue 15 without the mix. Targets: steady-state CDN fetches per segment <= 1.5, "
        "0 stalls, offload >= offload_target = 0.95 x (N-1)/N. Steady-state CDN fetches per "
        f"segment, assigned / local (split pairing): **{ratio}**. Shared 2-core machine: "
        "compare within this table.",
        "",
        *_table(COLUMNS, rows),
    ]
    if flash:
        lines += [
            "",
            f"Flash crowd: {flash_peers:,} viewers join within 10 s of the live start (3 segments "
            "behind live, 4 s segments, 60 s), server assignment and split pairing against CDN "
            "only; startup times from each viewer's join.",
            "",
            *_table(FLASH_COLUMNS, flash),
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run(Path(__file__).resolve().parent / "results", quick="--quick" in sys.argv))
