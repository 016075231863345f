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
the mix + churn rows (assignment, and today's pairing and election) at further sizes, each row
in its own process (``p2p-sim --json --progress``, so each has its own peak RSS); a
10,000-viewer row takes several CPU minutes, a 100,000-viewer row (``P2P_BENCH_FETCHERS_PEERS=
100000``, or ``python -m bench.fetchers_bench --row assign|today --peers 100000`` for one row
alone) likely well over half an hour. Each such row is written to ``results/fetchers_scale.json``
as it goes (its last progress line every 10 simulated seconds, then its result), so a long run
that is stopped keeps what it had; rows of other sizes and runs stay in that file, and the
section's table shows them all (``--table`` prints it). ``P2P_BENCH_FLASH_PEERS=0`` skips the
flash crowd.

The flash crowd: ``P2P_BENCH_FLASH_PEERS`` viewers (default 10,000; 500 with --quick) join
within 10 s of the first moment they can start 3 segments behind live, and play 60 s; with the
server's assignment and split pairing against CDN only: join-ramp CDN fetches, startup times
(median, 95th percentile, max) and stalls. CPU seconds are process time; the machine is shared,
so read the ratios within this run.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import json
import os
import re
import signal
import statistics
import subprocess
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
SCALE_COLUMNS = [
    "run",
    "peers",
    "status",
    "t_s",
    "viewers",
    "viewers_total",
    "cdn_fetches_per_segment_steady",
    "cdn_fetches_per_segment_join_ramp",
    "cdn_fetches_join_ramp_per_viewer",
    "offload_ratio",
    "offload_target",
    "stall_count",
    "decisions",
    "cpu_s",
    "peak_rss_mib",
    "updated",
]
#: The Must show's rows at further sizes: mix + churn with the server's assignment (split
#: pairing), and today's pairing and election (free pairing, local election) under the same mix.
SCALE_ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "assign": ("mix + churn, server assignment", {"pairing": "split", "server_fetchers": 4}),
    "today": ("mix + churn, today's pairing and election", {"pairing": "free"}),
}
ROOT = Path(__file__).resolve().parents[1]
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


def scale_command(kind: str, peers: int) -> list[str]:
    """The ``p2p-sim`` command of one scale row (``kind``: a key of ``SCALE_ROWS``)."""
    scenario = BIG.with_overrides(peers=peers, **MIX, **SCALE_ROWS[kind][1])
    flags = {
        "peers": scenario.peers,
        "segment-s": scenario.segment_s,
        "latency-segments": scenario.latency_segments,
        "duration-s": scenario.duration_s,
        "join-over-s": scenario.join_over_s,
        "tick-s": scenario.tick_s,
        "low-uplink-fraction": scenario.low_uplink_fraction,
        "churn-per-min": scenario.churn_per_min,
        "pairing": scenario.pairing,
        "server-fetchers": scenario.server_fetchers,
        "seed": scenario.seed,
    }
    args = [sys.executable, "-m", "peer_agent.sim.cli", "--json", "--progress", "--live"]
    for flag, value in flags.items():
        args += [f"--{flag}", str(value)]
    return args


_PROGRESS = re.compile(
    r"p2p-sim: t=(\S+) s viewers=(\d+) decisions=(\d+) cpu_s=(\S+) peak_rss_mib=(\S+)"
)


def _record(path: Path, key: str, row: dict[str, Any]) -> None:
    """Replace ``key``'s row in the JSON file at ``path`` (other rows stay), atomically and
    under a lock, so rows run at the same time by two commands both stay. ``updated`` says
    when: a row left ``running`` long after it was updated was killed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            rows = json.loads(path.read_text())["rows"]
        except (OSError, ValueError, KeyError):
            rows = {}
        rows[key] = {**row, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
        tmp.replace(path)


def _die_with_parent() -> None:
    """In the child: a SIGTERM when the bench process dies, so a stopped bench leaves no
    simulator running (Linux; elsewhere stop both with Ctrl-C)."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def scale_row(kind: str, peers: int, results: Path) -> dict[str, Any]:
    """One scale row in its own process, recorded in ``results`` as it goes: its last progress
    line (``status: running``) every 10 simulated seconds, then its summary (``done``)."""
    if peers < 2:
        raise ValueError(f"a scale row needs >= 2 viewers, got {peers}")
    name = SCALE_ROWS[kind][0]
    key = f"{peers}/{kind}"
    base = {"run": name, "peers": peers, "offload_target": round(0.95 * (peers - 1) / peers, 4)}
    command = scale_command(kind, peers)
    print(f"fetchers bench: {name} ({peers} viewers) ...", file=sys.stderr, flush=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    base["started"] = started
    last = base
    with subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_die_with_parent,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        other: list[str] = []
        try:
            for line in proc.stderr:
                match = _PROGRESS.match(line)
                if match is None:
                    other.append(line)
                    continue
                print(f"fetchers bench: {name}: {line.strip()}", file=sys.stderr, flush=True)
                t_s, viewers, decisions, cpu_s, rss = match.groups()
                last = {
                    **base,
                    "status": "running",
                    "t_s": float(t_s),
                    "viewers": int(viewers),
                    "decisions": int(decisions),
                    "cpu_s": float(cpu_s),
                    "peak_rss_mib": float(rss),
                }
                _record(results, key, last)
            out = proc.stdout.read()
        except BaseException:  # stopped (Ctrl-C): the row keeps its last progress
            proc.kill()
            _record(results, key, {**last, "status": "stopped"})
            raise
    if proc.returncode != 0:
        _record(results, key, {**last, "status": f"failed (exit {proc.returncode})"})
        raise RuntimeError(f"{' '.join(command)} failed:\n{''.join(other)[-2000:]}")
    row = {
        **base,
        "status": "done",
        "t_s": BIG.duration_s,
        "viewers": peers,
        "pairing": SCALE_ROWS[kind][1]["pairing"],
        **json.loads(out),
    }
    _record(results, key, row)
    return row


def scale_rows(peers: int, results: Path) -> list[dict[str, Any]]:
    """The Must show's rows at a further size: mix + churn, assignment and today's."""
    return [scale_row(kind, peers, results) for kind in SCALE_ROWS]


def recorded_rows(results: Path) -> list[dict[str, Any]]:
    """Every scale row recorded in ``results`` (this run's and earlier ones', e.g. a
    100,000-viewer row run alone with ``--row``), by size, finished or not."""
    try:
        rows = json.loads(results.read_text())["rows"]
    except (OSError, ValueError, KeyError):
        return []
    order = list(SCALE_ROWS)

    def rank(key: str) -> tuple[int, int]:
        peers, _, kind = key.partition("/")
        return (int(peers), order.index(kind) if kind in order else len(order))

    return [rows[key] for key in sorted(rows, key=rank)]


def scale_section(results: Path) -> list[str]:
    rows = recorded_rows(results)
    if not rows:
        return []
    return [
        "The same mix + churn at further sizes, server assignment (split pairing) and today's "
        "pairing and election (free pairing, local election), each row in its own process "
        "(`p2p-sim --json --progress`; `python -m bench.fetchers_bench --row KIND --peers N` runs "
        "one), every row recorded in bench/results/fetchers_scale.json, finished (`done`) or "
        "not (`running` or `stopped` at t_s of 120 s: its figures so far); peak RSS per process.",
        "",
        *_table(SCALE_COLUMNS, rows),
    ]


def flash_rows(peers: int) -> list[dict[str, Any]]:
    crowd = FLASH.with_overrides(peers=peers)
    return [
        _run(
            "flash crowd, server assignment", crowd.with_overrides(server_fetchers=4), startups=True
        ),
        _run("flash crowd, CDN only", crowd.with_overrides(p2p=False), startups=True),
    ]


def _sizes(env: str, default: str, *, zero: bool = False) -> list[int]:
    """Viewer counts from ``env`` (comma-separated); ``zero``: a lone 0 means none."""
    raw = os.environ.get(env, default)
    try:
        sizes = [int(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"{env} must be comma-separated viewer counts, got {raw!r}") from None
    if zero and sizes == [0]:
        return sizes
    if not sizes or any(n < 2 for n in sizes):
        raise SystemExit(f"{env}: every size must be >= 2, got {raw!r}")
    return sizes


def run(out_dir: Path, quick: bool = False) -> str:
    peers = 200 if quick else 1000
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = rows_for(peers)
    scale: list[dict[str, Any]] = []
    for n in [] if quick else _sizes("P2P_BENCH_FETCHERS_PEERS", "1000,10000"):
        if n != peers:
            scale += scale_rows(n, out_dir / "fetchers_scale.json")
    flash_peers = 500 if quick else _sizes("P2P_BENCH_FLASH_PEERS", "10000", zero=True)[0]
    flash = flash_rows(flash_peers) if flash_peers else []
    local, assigned = rows[0], rows[1]
    ratio = round(
        assigned["cdn_fetches_per_segment_steady"] / local["cdn_fetches_per_segment_steady"], 3
    )
    (out_dir / "fetchers.json").write_text(
        json.dumps(
            {
                "rows": rows,
                "scale": scale,
                "flash": flash,
                "steady_fetches_ratio_assigned_vs_local": ratio,
            },
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
    recorded = scale_section(out_dir / "fetchers_scale.json")
    if recorded:
        lines += ["", *recorded]
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fetchers_bench",
        description="The whole section (as `make bench` runs it), or with --row one scale row "
        "in its own process, recorded in bench/results/fetchers_scale.json as it goes.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--row", choices=sorted(SCALE_ROWS), help="run this scale row only")
    parser.add_argument("--peers", type=int, default=100_000, help="with --row: viewers")
    parser.add_argument(
        "--table", action="store_true", help="print the recorded scale rows only, run nothing"
    )
    args = parser.parse_args(argv)
    results = Path(__file__).resolve().parent / "results"
    if args.table:
        print("\n".join(scale_section(results / "fetchers_scale.json")))
        return
    if args.row is None:
        print(run(results, quick=args.quick))
        return
    if args.peers < 2:
        parser.error("--peers must be >= 2")
    scale_row(args.row, args.peers, results / "fetchers_scale.json")
    print("\n".join(scale_section(results / "fetchers_scale.json")))


if __name__ == "__main__":
    main()
