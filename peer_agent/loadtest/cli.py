"""``p2p-loadtest``: run N real agents over W worker processes against an origin and a
signaling server (started here, or given by URL), with an optional CDN-only baseline.

    p2p-loadtest --agents 20 --live --duration-s 120 --baseline --out DIR [--json]
    p2p-loadtest --scenario bench/scenarios/live20.toml --baseline

The scenario (``[scenario]`` table, the simulator's :class:`Scenario`) and the load test's own
knobs (``[loadtest]``) come from a TOML file, then flags override them. Writes
``DIR/results.json`` and PNG plots; prints a summary table, or one JSON object with ``--json``.
Exit status: 0 when the run completed, 1 when it failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from p2p_cli.flags import ConfigFlags, Option, add_all

from ..sim.scenario import Scenario
from .config import LoadTestConfig, load_files
from .plots import write_plots
from .progress import progress_line
from .results import add_baseline, simulate_like, summarize
from .runner import RunResult, run_once

#: Scenario fields only the simulator reads (access links, RTT, tick...): no flag here.
SIM_ONLY = (
    "p2p",
    "tick_s",
    "downlink_bytes_per_s",
    "uplink_bytes_per_s",
    "peer_rtt_s",
    "connect_s",
    "playlist_refresh_s",
    "busy_retry_s",
    "max_uploads",
    "max_peers",
)
SCENARIO_FLAGS = ConfigFlags(
    Scenario,
    env_prefix="P2P_LOADTEST_",
    overrides_only=True,
    options={
        "peers": Option(flags=("--agents",), env="P2P_LOADTEST_AGENTS", help="agents at once"),
        "live": Option(negative=("--vod",), help="live stream (--vod: video on demand)"),
        **{name: Option(skip=True) for name in SIM_ONLY},
    },
)
LOADTEST_FLAGS = ConfigFlags(LoadTestConfig, env_prefix="P2P_LOADTEST_", overrides_only=True)
SUMMARY_ROWS = (
    "agents",
    "agents_total",
    "workers",
    "offload_ratio",
    "cdn_bytes",
    "p2p_bytes",
    "uploaded_bytes",
    "origin_segment_bytes",
    "cdn_egress_ratio_vs_baseline",
    "stall_count",
    "baseline_stall_count",
    "stall_s",
    "startup_s_median",
    "baseline_startup_s_median",
    "latency_s_median",
    "corrupt_segments_played",
    "segments_audited",
    "hash_failures",
    "malicious_agents",
    "malicious_agents_banned",
    "honest_peers_banned",
    "churn_leaves_abrupt",
    "churn_leaves_graceful",
    "media_bitrate_bits_per_s",
    "sim_offload_ratio",
    "busiest_worker_cpu_share",
    "agents_per_core",
    "p2p_mb_per_cpu_s",
    "agent_errors",
)


def build_parser(env: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """Flags for every :class:`Scenario` field the load test uses and every
    :class:`LoadTestConfig` field; each is also a ``P2P_LOADTEST_*`` variable. Given ones
    override the ``--scenario`` file."""
    d = Scenario()
    p = argparse.ArgumentParser(
        prog="p2p-loadtest",
        description=__doc__.split("\n\n")[0] + f" Defaults: the simulator's Scenario ({d.peers} "
        "agents ...) and LoadTestConfig (peer_agent/loadtest/config.py).",
    )
    p.add_argument("--scenario", type=Path, help="TOML file: [scenario] and [loadtest] tables")
    add_all(p, os.environ if env is None else env, (SCENARIO_FLAGS, LOADTEST_FLAGS))
    p.add_argument("--baseline", action="store_true", help="also run CDN only; report ratios")
    p.add_argument(
        "--compare-sim",
        action="store_true",
        help="also simulate the scenario (at the measured bitrate): sim_* keys",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("loadtest-out"),
        help="results.json and plots go here (default: %(default)s)",
    )
    p.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--log-level", default="WARNING", help="(default: %(default)s)")
    return p


def configs_from_args(args: argparse.Namespace) -> tuple[Scenario, LoadTestConfig]:
    scenario, config = (
        load_files(args.scenario) if args.scenario else (Scenario(), LoadTestConfig())
    )
    scenario = scenario.with_overrides(**SCENARIO_FLAGS.values(args), p2p=True)
    config = config.with_overrides(**LOADTEST_FLAGS.values(args))
    return scenario, config


def format_summary(summary: dict[str, Any]) -> str:
    keys = [k for k in SUMMARY_ROWS if k in summary]
    width = max(len(k) for k in keys)
    lines = [f"{'':<{width}}  value", f"{'-' * width}  -----"]
    lines += [f"{k:<{width}}  {summary[k]}" for k in keys]
    if summary.get("errors"):
        lines.append(f"{'errors':<{width}}  {summary['errors']}")
    return "\n".join(lines)


async def run(
    scenario: Scenario,
    config: LoadTestConfig,
    *,
    baseline: bool,
    compare_sim: bool,
    out: Path,
    plots: bool,
    progress: bool,
) -> dict[str, Any]:
    workers = config.workers or os.cpu_count() or 1
    workers = min(workers, scenario.peers)

    def printer(label: str) -> Any:
        if not progress:
            return None

        def show(row: dict[str, Any]) -> None:
            line = progress_line(row, scenario.duration_s, scenario.peers, label)
            sys.stderr.write("\r" + line[:200])
            sys.stderr.flush()

        return show

    runs: dict[str, RunResult] = {}
    runs["p2p"] = await run_once(scenario, config, workers, p2p=True, on_sample=printer("P2P"))
    if progress:
        sys.stderr.write("\n")
    summary = summarize(runs["p2p"], scenario)
    if baseline:
        runs["baseline"] = await run_once(
            scenario, config, workers, p2p=False, on_sample=printer("CDN")
        )
        if progress:
            sys.stderr.write("\n")
        summary = add_baseline(summary, summarize(runs["baseline"], scenario))
    if compare_sim:
        bitrate = summary.get("media_bitrate_bits_per_s")
        summary.update(await asyncio.to_thread(simulate_like, scenario, config, bitrate))
        summary["sim_vs_real_offload_points"] = round(
            100 * (summary["offload_ratio"] - summary["sim_offload_ratio"]), 1
        )
    out.mkdir(parents=True, exist_ok=True)
    if plots:
        written = write_plots(runs["p2p"], runs.get("baseline"), out)
        summary["plots"] = [str(p) for p in written]
    document = {
        "summary": summary,
        "scenario": scenario.__dict__,
        "loadtest": config.__dict__,
        "runs": {
            name: {
                "agents": r.agents,
                "samples": r.samples,
                "workers": r.workers,
                "errors": r.errors,
            }
            for name, r in runs.items()
        },
    }
    (out / "results.json").write_text(json.dumps(document, indent=1, default=str))
    summary["results_json"] = str(out / "results.json")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
    except ValueError as exc:
        print(f"p2p-loadtest: error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        scenario, config = configs_from_args(args)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    progress = not (args.quiet or args.json) and sys.stderr.isatty()
    try:
        summary = asyncio.run(
            run(
                scenario,
                config,
                baseline=args.baseline,
                compare_sim=args.compare_sim,
                out=args.out,
                plots=not args.no_plots,
                progress=progress,
            )
        )
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        logging.getLogger(__name__).debug("load test failed", exc_info=True)
        print(f"p2p-loadtest: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        print(format_summary(summary))
    return 1 if summary.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
