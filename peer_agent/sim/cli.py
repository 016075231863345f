"""p2p-sim: run a swarm scenario in the simulator and print its summary."""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from p2p_cli.flags import ConfigFlags, Option
from p2p_cli.serving import (
    EXIT_STATUS_HELP,
    EXIT_USAGE,
    error,
    print_result,
    run_main,
)

from .engine import Simulation, simulate
from .scenario import Scenario, load_scenario

FLAGS = ConfigFlags(
    Scenario,
    env_prefix="P2P_SIM_",
    overrides_only=True,
    options={
        "live": Option(negative=("--vod",), help="live stream (--vod: video on demand)"),
        "p2p": Option(negative=("--no-p2p",), help="P2P on (--no-p2p: CDN only, the baseline)"),
    },
)


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_parser(env: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """Every :class:`Scenario` field is a flag and a ``P2P_SIM_*`` variable; given ones
    override the ``--scenario`` file, which overrides the defaults."""
    p = argparse.ArgumentParser(prog="p2p-sim", description=__doc__, epilog=EXIT_STATUS_HELP)
    p.add_argument("--scenario", type=Path, help="TOML file of Scenario fields (flags override)")
    FLAGS.add_to(p, os.environ if env is None else env)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--per-peer", action="store_true", help="with --json: add per-peer rows")
    p.add_argument(
        "--progress",
        action="store_true",
        help="every 10 simulated seconds, print time, viewers, decisions, CPU s and RSS to stderr",
    )
    return p


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    base = load_scenario(args.scenario) if args.scenario else Scenario()
    return base.with_overrides(**FLAGS.values(args))


def main(argv: list[str] | None = None) -> int:
    return run_main(_main, argv)


def _main(argv: list[str] | None) -> int:
    try:
        parser = build_parser()
    except ValueError as exc:  # a bad P2P_SIM_* value
        error("p2p-sim", str(exc))
        return EXIT_USAGE
    args = parser.parse_args(argv)
    try:
        scenario = scenario_from_args(args)
    except (ValueError, OSError) as exc:
        parser.error(FLAGS.explain(exc))
    cpu_start = time.process_time()

    def report(sim: Simulation) -> None:
        print(
            f"p2p-sim: t={sim.now - sim.t0:.0f} s viewers={len(sim.viewers)} "
            f"decisions={sim.decisions} cpu_s={time.process_time() - cpu_start:.1f} "
            f"peak_rss_mib={peak_rss_mib():.0f}",
            file=sys.stderr,
            flush=True,
        )

    result = simulate(scenario, per_peer=args.per_peer, progress=report if args.progress else None)
    summary = result.summary()
    summary["cpu_s"] = round(time.process_time() - cpu_start, 3)
    summary["peak_rss_mib"] = round(peak_rss_mib(), 1)
    if args.json:
        if args.per_peer:
            summary["by_peer"] = result.by_peer
        print_result(json.dumps(summary))
    else:
        mode = "live" if scenario.live else "VOD"
        width = max(len(k) for k in summary)
        lines = [
            f"p2p-sim: {summary['peers']} peers, {mode}, {scenario.segment_s:g} s segments, "
            f"{scenario.duration_s:g} s, P2P {'on' if scenario.p2p else 'off'}, "
            f"seed {scenario.seed}"
        ]
        lines += [f"  {key:<{width}}  {value}" for key, value in summary.items()]
        print_result("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
