"""``p2p-loadtest``: run N real agents over W worker processes against an origin and a
signaling server (started here, or given by URL), with an optional CDN-only baseline.

    p2p-loadtest --agents 20 --live --duration-s 120 --baseline --out DIR [--json]
    p2p-loadtest --scenario bench/scenarios/live20.toml --baseline

The scenario (``[scenario]`` table, the simulator's :class:`Scenario`) and the load test's own
knobs (``[loadtest]``) come from a TOML file, then flags override them. Writes
``DIR/results.json`` and PNG plots (matplotlib: the ``loadtest`` extra); prints a summary table,
or one JSON object with ``--json``; progress goes to stderr (a bar on a terminal, plain lines
otherwise). Exit status: 0 when the run completed, 1 when it failed, 2 on bad arguments.
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
from p2p_cli.serving import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STATUS_HELP,
    EXIT_USAGE,
    error,
    print_result,
    run_main,
)

from ..sim.scenario import Scenario
from .config import LoadTestConfig, load_files
from .plots import write_plots
from .progress import progress_line
from .results import add_baseline, simulate_like, summarize
from .runner import RunResult, run_once

PROG = "p2p-loadtest"
#: Without a terminal (CI logs), a plain progress line this often (seconds of the run).
PROGRESS_LINE_EVERY_S = 10.0
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
        "peers": Option(
            flags=("--agents",), env="P2P_LOADTEST_AGENTS", metavar="N", help="agents at once"
        ),
        "live": Option(negative=("--vod",), help="live stream (--vod: video on demand)"),
        **{name: Option(skip=True) for name in SIM_ONLY},
    },
)
LOADTEST_FLAGS = ConfigFlags(LoadTestConfig, env_prefix="P2P_LOADTEST_", overrides_only=True)
#: The summary table: (key, unit, what it is). Bytes are also shown in MB.
SUMMARY_ROWS: tuple[tuple[str, str, str], ...] = (
    ("agents", "agents", "playing at once"),
    ("agents_total", "agents", "started over the run (churn replaces leavers)"),
    ("workers", "processes", "worker processes running the agents"),
    ("offload_ratio", "0-1", "share of media bytes received from peers"),
    ("cdn_bytes", "bytes", "media received from the CDN, all agents"),
    ("p2p_bytes", "bytes", "media received from peers, all agents"),
    ("uploaded_bytes", "bytes", "media sent to peers, all agents"),
    ("origin_segment_bytes", "bytes", "segment bytes the origin sent (its /stats)"),
    (
        "cdn_fetches_per_segment_steady",
        "fetches",
        "CDN fetches per segment per rendition past the agents' join ramps",
    ),
    ("cdn_fetches_join_ramp_per_agent", "fetches", "CDN fetches in each agent's join ramp"),
    ("cdn_egress_ratio_vs_baseline", "ratio", "origin segment bytes / the CDN-only run's"),
    ("stall_count", "stalls", "playback stalls, all agents"),
    ("baseline_stall_count", "stalls", "the same in the CDN-only run"),
    ("stall_s", "s", "time spent stalled, all agents"),
    ("startup_s_median", "s", "median time from join to first frame"),
    ("baseline_startup_s_median", "s", "the same in the CDN-only run"),
    ("latency_s_median", "s", "median playback latency behind the live edge"),
    ("corrupt_segments_played", "segments", "played with a wrong hash (must be 0)"),
    ("segments_audited", "segments", "played segments checked against the manifest"),
    ("hash_failures", "segments", "received from peers with a wrong hash (discarded)"),
    ("malicious_agents", "agents", "agents corrupting what they upload"),
    ("malicious_agents_banned", "agents", "of those, banned by at least one peer"),
    ("honest_peers_banned", "agents", "honest agents banned by someone (should be 0)"),
    ("churn_leaves_abrupt", "agents", "left without a goodbye"),
    ("churn_leaves_graceful", "agents", "left with a goodbye"),
    ("media_bitrate_bits_per_s", "bit/s", "measured media bitrate"),
    ("sim_offload_ratio", "0-1", "the simulator's offload for this scenario"),
    ("neighbours_held_min_agent", "peers", "least neighbours held (an agent's median)"),
    ("neighbours_held_median", "peers", "neighbours held, median over agents"),
    ("links_opened_per_agent", "links", "peer connections opened per agent"),
    ("links_split", "links", "links closed to make room for a newcomer"),
    ("links_drain_forced", "links", "of those, closed at split_drain_s mid-transfer"),
    ("worker_loop_lag_ms_p99", "ms", "event-loop lag of the worst worker (p99)"),
    ("busiest_worker_cpu_share", "0-1", "CPU share of the busiest worker process"),
    ("agents_per_core", "agents", "agents per CPU core used"),
    ("p2p_mb_per_cpu_s", "MB/CPU-s", "peer bytes moved per CPU second"),
    ("agent_errors", "agents", "agents that ended with an error"),
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
        epilog=EXIT_STATUS_HELP + " 1 also when any agent or worker reported an error.",
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
    p.add_argument(
        "--network-profile",
        type=Path,
        metavar="FILE",
        help="run on the network test bed (root; docs/netbed.md): a TOML [network] table "
        "(nat_mix, rtt_ms, jitter_ms, loss, uplink_kbit, downlink_kbit, per_kind_kbit); agents, "
        "duration, segment length, join spread and latency come from the scenario; prints the "
        "bed report (baseline and P2P, link paths, set-up times, TURN bytes)",
    )
    p.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress on stderr (a bar redrawn in place on a terminal, otherwise a plain "
        f"line every {PROGRESS_LINE_EVERY_S:g} s of the run)",
    )
    p.add_argument("--log-level", default="WARNING", help="(default: %(default)s)")
    return p


def configs_from_args(args: argparse.Namespace) -> tuple[Scenario, LoadTestConfig]:
    scenario, config = (
        load_files(args.scenario) if args.scenario else (Scenario(), LoadTestConfig())
    )
    scenario = scenario.with_overrides(**SCENARIO_FLAGS.values(args), p2p=True)
    config = config.with_overrides(**LOADTEST_FLAGS.values(args))
    return scenario, config


def _value_text(value: Any, unit: str) -> str:
    if unit == "bytes" and isinstance(value, int | float):
        return f"{value / 1e6:,.1f} MB ({int(value):,} bytes)"
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a titled table: metric, value, unit and what it measures."""
    rows = [
        (key, _value_text(summary[key], unit), "MB" if unit == "bytes" else unit, what)
        for key, unit, what in SUMMARY_ROWS
        if key in summary
    ]
    mode = "live" if summary.get("live") else "VOD"
    title = (
        f"p2p-loadtest summary: {summary.get('agents', '?')} agents, {mode}, "
        f"{summary.get('segment_s', '?')} s segments, {summary.get('duration_s', '?')} s"
    )
    if "baseline_stall_count" in summary:
        title += " (with a CDN-only baseline run)"
    head = ("metric", "value", "unit", "what")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    lines = [title, "=" * len(title)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(head, [*widths, 0], strict=True)).rstrip())
    lines.append("  ".join("-" * w for w in [*widths, len(head[3])]))
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].ljust(widths[2]), row[3]]
        lines.append("  ".join(cells))
    if summary.get("errors"):
        lines.append(f"errors: {summary['errors']}")
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

    tty = sys.stderr.isatty()

    def printer(label: str) -> Any:
        if not progress:
            return None
        next_line_s = 0.0

        def show(row: dict[str, Any]) -> None:
            nonlocal next_line_s
            line = progress_line(row, scenario.duration_s, scenario.peers, label)
            if tty:  # one line, redrawn in place
                sys.stderr.write("\r" + line[:200])
            else:  # a log (CI): a plain line every PROGRESS_LINE_EVERY_S of the run
                t_s = float(row.get("t_s") or 0.0)
                if t_s < next_line_s:
                    return
                next_line_s = t_s + PROGRESS_LINE_EVERY_S
                sys.stderr.write(line + "\n")
            sys.stderr.flush()

        return show

    runs: dict[str, RunResult] = {}
    runs["p2p"] = await run_once(scenario, config, workers, p2p=True, on_sample=printer("P2P"))
    if progress and tty:
        sys.stderr.write("\n")
    summary = summarize(runs["p2p"], scenario)
    if baseline:
        runs["baseline"] = await run_once(
            scenario, config, workers, p2p=False, on_sample=printer("CDN")
        )
        if progress and tty:
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


def _check_plotting() -> str | None:
    """Why the plots cannot be drawn (matplotlib missing), or None."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return (
            "the plots need matplotlib, which is not installed: "
            "pip install 'p2p-hls[loadtest]' (or pass --no-plots)"
        )
    return None


def _bed_run(path: Path, scenario: Scenario, as_json: bool) -> int:
    from ..netbed.bed import BedError
    from ..netbed.loadrun import BedLoadTest, RunPlan, load_profile

    try:
        profile = load_profile(str(path))
        plan = RunPlan(
            agents=scenario.peers,
            duration_s=scenario.duration_s,
            join_over_s=scenario.join_over_s,
            segment_s=scenario.segment_s,
            latency_segments=scenario.latency_segments,
        )
    except (ValueError, OSError) as exc:
        error(PROG, str(exc))
        return EXIT_USAGE
    try:
        report = BedLoadTest(profile, plan).run()
    except BedError as exc:
        error(PROG, str(exc))
        return EXIT_FAILED
    print(json.dumps(report, sort_keys=True, indent=None if as_json else 1))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, argv)


def _main(argv: Sequence[str] | None) -> int:
    try:
        parser = build_parser()
    except ValueError as exc:  # a bad P2P_LOADTEST_* value
        error(PROG, str(exc))
        return EXIT_USAGE
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.peers is not None and args.peers < 1:
        parser.error(f"--agents must be at least 1 (agents playing at once), got {args.peers}")
    try:
        scenario, config = configs_from_args(args)
    except (ValueError, OSError) as exc:
        parser.error(SCENARIO_FLAGS.explain(exc).replace("peers must", "agents (peers) must"))
    if args.network_profile is not None:
        return _bed_run(args.network_profile, scenario, args.json)
    if not args.no_plots and (why := _check_plotting()) is not None:
        error(PROG, why)
        return EXIT_FAILED
    try:
        summary = asyncio.run(
            run(
                scenario,
                config,
                baseline=args.baseline,
                compare_sim=args.compare_sim,
                out=args.out,
                plots=not args.no_plots,
                progress=not args.quiet,
            )
        )
    except Exception as exc:
        logging.getLogger(__name__).debug("load test failed", exc_info=True)
        error(PROG, str(exc))
        return EXIT_FAILED
    if args.json:
        print_result(json.dumps(summary, sort_keys=True))
    else:
        print_result(format_summary(summary))
    return EXIT_FAILED if summary.get("errors") else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
