"""Simulator benchmark: the issue's live scenario with and without P2P, the simulator against its
event-less predecessor, and how CPU and memory grow with the swarm up to 100,000 viewers.

Each row is one simulator run. P2P and its CDN-only baseline run side by side in the same
process, so their ratio is what to read. CPU seconds are process time (``time.process_time``),
robust to a shared machine; peak RSS is per run, each size in its own process.

The comparison runs the simulator as it was before it became event-driven (``engine.py`` at
commit ``REFERENCE_COMMIT``, read from git and loaded beside the current one; it drives the same
core scheduler) on the same scenarios and seeds: offload must agree within 1 point and CDN
fetches within 5 % (issue 16).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

from bench.tables import markdown_table as _table
from peer_agent.sim.engine import simulate
from peer_agent.sim.scenario import Scenario

ROOT = Path(__file__).resolve().parents[1]
#: The last commit of the tick-everyone simulator (before issue 16).
REFERENCE_COMMIT = "e101483"
ISSUE = Scenario(
    peers=10, live=True, segment_s=4.0, duration_s=300.0, join_over_s=20.0, latency_segments=3
)
#: The large-swarm scenario of issue 16 (`p2p-sim --live --segment-s 4 --latency-segments 3
#: --duration-s 120 --join-over-s 60 --tick-s 0.1 --peers N`).
BIG = ISSUE.with_overrides(duration_s=120.0, join_over_s=60.0, tick_s=0.1)
#: CPU budgets of issue 16 for BIG, seconds.
BUDGET_CPU_S = {10_000: 120.0, 100_000: 900.0}
COLUMNS = [
    "run",
    "peers",
    "p2p",
    "offload_ratio",
    "cdn_fetches_per_segment",
    "cdn_fetches_per_segment_steady",
    "cdn_fetches_join_ramp_per_viewer",
    "stall_count",
    "stall_s",
    "startup_s_median",
    "latency_s_median",
    "cpu_s",
]
COMPARE_COLUMNS = [
    "peers",
    "offload_now",
    "offload_before",
    "offload_diff_points",
    "cdn_fetches_now",
    "cdn_fetches_before",
    "cdn_fetches_diff_pct",
    "decisions_now",
    "decisions_before",
    "cpu_s_now",
    "cpu_s_before",
    "agrees",
]
GROWTH_COLUMNS = [
    "peers",
    "cpu_s",
    "cpu_ms_per_viewer",
    "peak_rss_mib",
    "rss_kib_per_viewer",
    "decisions_per_viewer",
    "offload_ratio",
    "cdn_fetches_per_segment",
    "cdn_fetches_per_segment_steady",
    "cdn_fetches_join_ramp_per_viewer",
    "stall_count",
    "budget_cpu_s",
    "within_budget",
]


def _run(name: str, scenario: Scenario) -> dict[str, Any]:
    start = time.process_time()
    summary = simulate(scenario, per_peer=False).summary()
    summary["cpu_s"] = round(time.process_time() - start, 2)
    return {"run": name, **summary}


def _reference_module(commit: str = REFERENCE_COMMIT) -> types.ModuleType:
    """The simulator engine at ``commit``, importable beside the current one (it drives the
    current core and the current modules beside it)."""
    source = subprocess.run(
        ["git", "show", f"{commit}:peer_agent/sim/engine.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    source = re.sub(r"^from \.\.", "from peer_agent.", source, flags=re.M)
    source = re.sub(r"^from \.", "from peer_agent.sim.", source, flags=re.M)
    spec = importlib.util.spec_from_loader(f"peer_agent_sim_engine_{commit}", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    exec(compile(source, f"engine.py@{commit}", "exec"), module.__dict__)  # noqa: S102
    return module


def _compare(sizes: list[int]) -> list[dict[str, Any]]:
    reference = _reference_module()
    rows = []
    for n in sizes:
        # The reference predates the split pairing (issue 15): compare under the old pairing.
        scenario = BIG.with_overrides(peers=n, pairing="free")
        start = time.process_time()
        now = simulate(scenario, per_peer=False).summary()
        cpu_now = time.process_time() - start
        start = time.process_time()
        before = reference.simulate(scenario).summary()
        cpu_before = time.process_time() - start
        offload_diff = (now["offload_ratio"] - before["offload_ratio"]) * 100
        fetch_diff = (now["cdn_fetches"] / before["cdn_fetches"] - 1) * 100
        rows.append(
            {
                "peers": n,
                "offload_now": now["offload_ratio"],
                "offload_before": before["offload_ratio"],
                "offload_diff_points": round(offload_diff, 2),
                "cdn_fetches_now": now["cdn_fetches"],
                "cdn_fetches_before": before["cdn_fetches"],
                "cdn_fetches_diff_pct": round(fetch_diff, 2),
                "decisions_now": now["decisions"],
                "decisions_before": before["decisions"],
                "cpu_s_now": round(cpu_now, 2),
                "cpu_s_before": round(cpu_before, 2),
                "stalls_now": now["stall_count"],
                "stalls_before": before["stall_count"],
                "agrees": abs(offload_diff) <= 1.0 and abs(fetch_diff) <= 5.0,
            }
        )
    return rows


def _idle_rss_mib() -> float:
    """Peak RSS of a process that imported the simulator and ran nothing: the baseline."""
    out = subprocess.run(
        [sys.executable, "-c", "import peer_agent.sim.cli as c; print(c.peak_rss_mib())"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.strip())


def _growth_row(n: int, idle_rss_mib: float) -> dict[str, Any]:
    """One size of BIG in its own process (`p2p-sim --json`), for its own peak RSS."""
    args = [
        sys.executable, "-m", "peer_agent.sim.cli", "--json", "--live", "--peers", str(n),
        "--segment-s", "4", "--latency-segments", "3", "--duration-s", "120",
        "--join-over-s", "60", "--tick-s", "0.1",
    ]  # fmt: skip
    out = subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    s = json.loads(out)
    budget = BUDGET_CPU_S.get(n)
    return {
        "peers": n,
        "cpu_s": s["cpu_s"],
        "cpu_ms_per_viewer": round(s["cpu_s"] / n * 1000, 2),
        "peak_rss_mib": s["peak_rss_mib"],
        "rss_kib_per_viewer": round((s["peak_rss_mib"] - idle_rss_mib) * 1024 / n, 2),
        "decisions_per_viewer": round(s["decisions"] / n, 1),
        "offload_ratio": s["offload_ratio"],
        "cdn_fetches_per_segment": s["cdn_fetches_per_segment"],
        "cdn_fetches_per_segment_steady": s["cdn_fetches_per_segment_steady"],
        "cdn_fetches_join_ramp_per_viewer": s["cdn_fetches_join_ramp_per_viewer"],
        "stall_count": s["stall_count"],
        "budget_cpu_s": budget,
        "within_budget": None if budget is None else s["cpu_s"] <= budget,
    }


def run(out_dir: Path, quick: bool = False) -> str:
    rows = [
        _run("issue scenario, P2P", ISSUE),
        _run("issue scenario, CDN only", ISSUE.with_overrides(p2p=False)),
        _run("issue scenario, VOD, P2P", ISSUE.with_overrides(live=False)),
        _run("issue scenario, VOD, CDN only", ISSUE.with_overrides(live=False, p2p=False)),
    ]
    p2p, cdn = rows[0], rows[1]
    ratios = {
        "cdn_bytes_ratio_p2p_vs_baseline": round(p2p["bytes_cdn"] / cdn["bytes_cdn"], 4),
        "cdn_fetches_ratio_p2p_vs_baseline": round(p2p["cdn_fetches"] / cdn["cdn_fetches"], 4),
    }
    compare = _compare([100] if quick else [100, 1000])
    idle = _idle_rss_mib()
    sizes = [100, 1000] if quick else [100, 1000, 10_000, 100_000]
    growth = []
    for n in sizes:
        print(f"sim bench: {n} viewers ...", file=sys.stderr, flush=True)
        growth.append(_growth_row(n, idle))
    first, last = growth[0], growth[-1]
    scale = last["peers"] / first["peers"]
    cpu_exponent = _exponent(first["cpu_s"], last["cpu_s"], scale)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "simulator.json").write_text(
        json.dumps(
            {
                "rows": rows,
                "ratios": ratios,
                "compare": compare,
                "growth": growth,
                "idle_rss_mib": idle,
                "cpu_growth_exponent": cpu_exponent,
                "reference_commit": REFERENCE_COMMIT,
            },
            indent=1,
        )
    )
    lines = [
        "## Simulator",
        "",
        "Live stream, 4 s segments, 2 Mbit/s, viewers joining over 20 s, playing 3 segments",
        "behind the live edge, 300 s (`p2p-sim --live --peers 10 --segment-s 4 --duration-s 300",
        "--join-over-s 20 --latency-segments 3`, and `--no-p2p` for the baseline). Offload",
        "ceiling for 10 viewers is (N-1)/N = 0.9.",
        "",
        *_table(COLUMNS, rows),
        "",
        f"CDN bytes, P2P / CDN only: {ratios['cdn_bytes_ratio_p2p_vs_baseline']}; "
        f"CDN fetches, P2P / CDN only: {ratios['cdn_fetches_ratio_p2p_vs_baseline']}.",
        "",
        "### Event-driven simulator against its predecessor",
        "",
        "Large-swarm scenario (`p2p-sim --live --segment-s 4 --latency-segments 3 --duration-s "
        "120 --join-over-s 60 --tick-s 0.1 --peers N`), same seed, run by the current simulator "
        f"and by the one at commit {REFERENCE_COMMIT} (every viewer decides every tick it is "
        "dirty or due, idle recheck 0.5 s, pairing scans the swarm), side by side in this "
        "process. *agrees*: offload within 1 point and CDN fetches within 5 %.",
        "",
        *_table(COMPARE_COLUMNS, compare),
        "",
        "### Growth with the swarm",
        "",
        "The same scenario at each size in its own process. CPU is process time; "
        f"RSS per viewer is (peak RSS - {idle:.1f} MiB of an idle interpreter) / N. Budgets "
        "(issue 16): 10,000 viewers in 120 CPU s, 100,000 in 900 CPU s. "
        f"CPU grows as N^{cpu_exponent} from {first['peers']} to {last['peers']} viewers.",
        "",
        *_table(GROWTH_COLUMNS, growth),
        "",
    ]
    return "\n".join(lines)


def _exponent(a: float, b: float, scale: float) -> float | None:
    import math

    if a <= 0 or b <= 0 or scale <= 1:
        return None
    return round(math.log(b / a) / math.log(scale), 2)


if __name__ == "__main__":
    print(run(Path("bench/results"), quick="--quick" in sys.argv))
