"""`make bench`: every benchmark in one run, written to bench/results/ and bench/README.md.

Figures are measured side by side in one run on this (shared, noisy) machine; compare ratios
within a run rather than absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SUITES = [
    "bench.sim_bench",
    "bench.fetchers_bench",
    "bench.overlay_bench",
    "bench.link_bench",
    "bench.signaling_bench",
    "bench.loadtest_bench",
    "bench.agents50_bench",
    "bench.hostile_bench",
    "bench.netbed_bench",
    "bench.abuse_bench",
    "bench.manifest_bench",
    "bench.pages6_bench",
    "bench.soak_bench",
]
#: Suites too long for a default run: they run only when named with --only, or when their
#: environment variable is set.
OPT_IN = {"bench.soak_bench": "P2P_BENCH_SOAK"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--only", action="append", help="run only these suites (module names)")
    args = parser.parse_args(argv)
    out_dir = ROOT / "results"
    sections: list[str] = []
    failed = False
    stamp = (
        f"_Measured {datetime.date.today().isoformat()} by `python -m bench.run"
        + (" --quick" if args.quick else "")
        + f" --only {{name}}` on {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}._"
    )
    for name in args.only or SUITES:
        if name in OPT_IN and not args.only and not os.environ.get(OPT_IN[name]):
            print(f"bench: skipping {name} (opt in: --only {name} or {OPT_IN[name]}=1)")
            continue
        print(f"bench: running {name} ...", flush=True)
        try:
            module = importlib.import_module(name)
            section = module.run(out_dir, quick=args.quick)
        except Exception:  # one broken suite must not hide the others' figures
            failed = True
            section = f"## {name}\n\nFAILED:\n\n```\n{traceback.format_exc()}```\n"
        section = _with_stamp(section, stamp.format(name=name))
        # Each suite keeps its own section, so `--only` reruns one without losing the others.
        (out_dir / f"{name.rsplit('.', 1)[-1]}.md").write_text(section)
        print(section, flush=True)
    for name in SUITES:
        saved = out_dir / f"{name.rsplit('.', 1)[-1]}.md"
        if saved.exists():
            sections.append(saved.read_text())
    header = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench.run`; `--only SUITE` reruns one suite and",
        "keeps the others' last sections, from `bench/results/SUITE.md`). Each section says when",
        "and where it was measured. JSON for every table is in `bench/results/`.",
        "",
    ]
    (ROOT / "README.md").write_text("\n".join(header + sections))
    return 1 if failed else 0


def _with_stamp(section: str, stamp: str) -> str:
    """The section with a line saying when and where it was measured, under its heading."""
    heading, _, body = section.partition("\n")
    return f"{heading}\n\n{stamp}\n\n{body.lstrip()}"


if __name__ == "__main__":
    sys.exit(main())
