"""``p2p-loadtest`` arguments, the shared scenario file, the summary and progress (no agents)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from peer_agent.loadtest import cli
from peer_agent.loadtest.config import LoadTestConfig
from peer_agent.loadtest.progress import progress_line
from peer_agent.loadtest.results import add_baseline, summarize
from peer_agent.loadtest.runner import RunResult, merge_samples
from peer_agent.sim import cli as sim_cli
from peer_agent.sim.scenario import Scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "bench" / "scenarios").glob("*.toml"))


@pytest.mark.parametrize(
    "argv",
    [
        ["--agents", "0"],
        ["--agents", "x"],
        ["--live", "--vod"],
        ["--malicious-fraction", "1.5"],
        ["--churn-per-min", "-0.1"],
        ["--workers", "0"],
        ["--container", "avi"],
        ["--scenario", "/nonexistent.toml"],
        ["--bogus"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert "p2p-loadtest" in capsys.readouterr().err


def test_bad_key_in_scenario_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[loadtest]\nmalicious = 0.2\n")
    with pytest.raises(SystemExit) as exc:
        cli.main(["--scenario", str(path)])
    assert exc.value.code == 2


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_every_bench_scenario_loads_in_loadtest_and_simulator(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = cli.build_parser().parse_args(["--scenario", str(path), "--agents", "3"])
    scenario, config = cli.configs_from_args(args)
    assert scenario.peers == 3  # flags override the file
    with path.open("rb") as f:
        file_workers = tomllib.load(f).get("loadtest", {}).get("workers")
    assert config.workers == (file_workers or LoadTestConfig().workers)
    short = ["--duration-s", "20", "--peers", "3", "--tick-s", "0.1"]
    assert sim_cli.main(["--scenario", str(path), *short, "--json"]) == 0
    sim = json.loads(capsys.readouterr().out)
    assert sim["peers"] == 3 and sim["live"] == scenario.live


def _run(p2p: bool, stalls: int, cdn: int, p2p_bytes: int) -> RunResult:
    run = RunResult(p2p=p2p, specs=[])
    run.agents = [
        {
            "index": i,
            "kind": kind,
            "leave": "end",
            "peer_id": f"p{i}",
            "bytes_cdn": cdn,
            "bytes_p2p": p2p_bytes,
            "bytes_uploaded": p2p_bytes,
            "stall_count": stalls,
            "stall_s": 0.5 * stalls,
            "startup_s": 0.2 + i,
            "latency_s_median": 9.0,
            "segments_played": 10,
            "segments_verified": 10,
            "segments_audited": 10,
            "corrupt_segments_played": 0,
            "hash_failures": 1 if kind == "normal" else 0,
            "peers_banned": ["p2"] if i == 0 else [],
        }
        for i, kind in enumerate(["normal", "normal", "malicious"])
    ]
    run.workers = {0: {"cpu_s": 3.0, "wall_s": 30.0}, 1: {"cpu_s": 6.0, "wall_s": 30.0}}
    run.origin_segment_bytes = 3 * cdn
    return run


def test_summary_and_baseline_ratios() -> None:
    sc = Scenario(peers=3, segment_s=2.0)
    summary = summarize(_run(True, 0, 100, 300), sc)
    assert summary["offload_ratio"] == 0.75
    assert summary["cdn_bytes"] == 300 and summary["p2p_bytes"] == 900
    assert summary["malicious_agents"] == 1 and summary["malicious_agents_banned"] == 1
    assert summary["honest_peers_banned"] == 0 and summary["hash_failures"] == 2
    assert summary["busiest_worker_cpu_share"] == 0.2
    assert summary["agents_per_core"] == 10.0  # 3 agents on 0.3 cores
    assert summary["media_bitrate_bits_per_s"] == 160  # 40 bytes a 2-s segment
    both = add_baseline(summary, summarize(_run(False, 1, 400, 0), sc))
    assert both["baseline_stall_count"] == 3 and both["stalls_within_baseline"]
    assert both["cdn_egress_ratio_vs_baseline"] == 0.25
    assert "offload_ratio" in cli.format_summary(both)


def test_samples_merge_and_progress_line() -> None:
    row = merge_samples(
        {
            0: {"bytes_cdn": 1, "bytes_p2p": 3, "stall_count": 1, "latency_s_median": 8.0},
            1: {"bytes_cdn": 1, "bytes_p2p": 3, "stall_count": 0, "latency_s_median": 10.0},
        }
    )
    assert row["bytes_cdn"] == 2 and row["bytes_p2p"] == 6 and row["stall_count"] == 1
    line = progress_line({**row, "t_s": 30.0}, 60.0, 4, "P2P")
    assert "50%" in line and "offload=0.75" in line and "stalls=1" in line
