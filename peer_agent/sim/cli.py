"""``p2p-sim``: run a swarm scenario in the simulator and print its summary."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .engine import simulate
from .scenario import Scenario, load_scenario


def build_parser() -> argparse.ArgumentParser:
    d = Scenario()
    p = argparse.ArgumentParser(prog="p2p-sim", description=__doc__)
    p.add_argument("--scenario", type=Path, help="TOML file of Scenario fields (flags override)")
    p.add_argument("--peers", type=int, help=f"viewers in the swarm (default {d.peers})")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--live", dest="live", action="store_true", default=None, help="live")
    mode.add_argument("--vod", dest="live", action="store_false", help="video on demand")
    p.add_argument("--segment-s", type=float, help=f"segment duration (default {d.segment_s})")
    p.add_argument("--duration-s", type=float, help=f"time simulated (default {d.duration_s})")
    p.add_argument("--join-over-s", type=float, help=f"join ramp (default {d.join_over_s})")
    p.add_argument(
        "--latency-segments", type=int, help=f"live start depth (default {d.latency_segments})"
    )
    p.add_argument("--no-p2p", action="store_true", help="CDN only: the baseline")
    p.add_argument("--seed", type=int, help=f"random seed (default {d.seed})")
    p.add_argument("--churn-per-min", type=float, help="share of viewers replaced each minute")
    p.add_argument("--leech-fraction", type=float, help="share of viewers that never upload")
    p.add_argument("--bitrate-bits-per-s", type=float, help="media bitrate")
    p.add_argument("--tick-s", type=float, help=f"simulation step (default {d.tick_s})")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--per-peer", action="store_true", help="with --json: add per-peer rows")
    return p


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    base = load_scenario(args.scenario) if args.scenario else Scenario()
    overrides = {
        name: getattr(args, name)
        for name in (
            "peers",
            "live",
            "segment_s",
            "duration_s",
            "join_over_s",
            "latency_segments",
            "seed",
            "churn_per_min",
            "leech_fraction",
            "bitrate_bits_per_s",
            "tick_s",
        )
        if getattr(args, name) is not None
    }
    if args.no_p2p:
        overrides["p2p"] = False
    return base.with_overrides(**overrides)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        scenario = scenario_from_args(args)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    cpu_start = time.process_time()
    result = simulate(scenario)
    summary = result.summary()
    summary["cpu_s"] = round(time.process_time() - cpu_start, 3)
    if args.json:
        if args.per_peer:
            summary["by_peer"] = result.by_peer
        json.dump(summary, sys.stdout)
        sys.stdout.write("\n")
    else:
        mode = "live" if scenario.live else "VOD"
        print(
            f"p2p-sim: {summary['peers']} peers, {mode}, {scenario.segment_s:g} s segments, "
            f"{scenario.duration_s:g} s, P2P {'on' if scenario.p2p else 'off'}, "
            f"seed {scenario.seed}"
        )
        width = max(len(k) for k in summary)
        for key, value in summary.items():
            print(f"  {key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
