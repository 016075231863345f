"""Real load tests: our origin, ``p2p-signaling`` and agents in two worker processes, linked by
aiortc data channels on loopback. Small and short (1-s segments) to fit 2 cores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from peer_agent.loadtest import cli
from tests.loop_lag import MIN_LAG_S

pytestmark = pytest.mark.slow

SMALL = [
    "--workers", "2", "--live", "--segment-s", "1", "--join-over-s", "5",
    "--bitrate-bits-per-s", "150000", "--duration-s", "30", "--json", "--quiet",
]  # fmt: skip


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    status = cli.main(argv)
    out, err = capsys.readouterr()
    assert status == 0, (out, err[-4000:])
    return dict(json.loads(out))


def assert_p2p_adds_no_stall_unless_starved(
    summary: dict[str, Any], workers: dict[str, dict[str, Any]]
) -> None:
    """P2P stalls no more than the CDN-only run, unless its workers were starved.

    The two runs are sequential, so they do not share the machine's load: on a busy 2-core
    machine the P2P run's workers can wait a second for a CPU while the baseline's did not, and
    a segment due meanwhile stalls whatever the scheduler decided (tests/loop_lag.py). As there,
    extra stalls count against the code unless the P2P run's event loop ran MIN_LAG_S late (the
    worst lag any of its workers saw; the workers keep no per-stall timing for the
    window check the in-process agent tests make). On a quiet machine nothing excuses them."""
    extra = int(summary["stall_count"]) - int(summary["baseline_stall_count"])
    if extra <= 0:
        return
    worst_lag_s = max(float(w.get("loop_lag_ms_max") or 0.0) for w in workers.values()) / 1000
    print(f"P2P run: {extra} more stalls than the baseline; worst worker loop lag {worst_lag_s} s")
    assert worst_lag_s >= MIN_LAG_S, (summary, workers)


def test_small_live_load_test_with_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    s = run_cli(["--agents", "5", "--baseline", "--out", str(out), *SMALL], capsys)
    for key in ("offload_ratio", "stall_count", "baseline_stall_count",
                "corrupt_segments_played", "cdn_bytes", "p2p_bytes", "agents"):  # fmt: skip
        assert key in s, key
    assert s["agents"] == 5 and s["agent_errors"] == 0 and s["errors"] == [], s
    assert 0 < float(s["offload_ratio"]) <= 1  # type: ignore[arg-type]
    document = json.loads((out / "results.json").read_text())
    assert_p2p_adds_no_stall_unless_starved(s, document["runs"]["p2p"]["workers"])
    assert s["corrupt_segments_played"] == 0 and s["segments_audited"] > 0  # type: ignore[operator]
    # The origin's own count agrees with what the agents got from it.
    assert s["origin_segment_bytes"] >= s["cdn_bytes"] > 0  # type: ignore[operator]
    assert s["origin_segment_bytes"] < s["baseline_origin_segment_bytes"]  # type: ignore[operator]
    for name in ("offload", "cdn_egress", "stalls", "startup", "peer_bytes", "latency"):
        assert (out / f"{name}.png").stat().st_size > 1000
    assert len(document["runs"]["p2p"]["agents"]) == 5
    assert len(document["runs"]["baseline"]["agents"]) == 5
    assert document["runs"]["baseline"]["agents"][0]["bytes_p2p"] == 0
    assert len(document["runs"]["p2p"]["samples"]) >= 20


def test_malicious_peers_are_caught_and_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--agents", "6", "--malicious-fraction", "0.34", "--out", str(tmp_path), "--no-plots"]
    s = run_cli([*argv, *SMALL], capsys)
    assert s["malicious_agents"] == 2, s
    assert s["corrupt_segments_played"] == 0 and s["segments_audited"] > 0, s  # type: ignore[operator]
    assert s["hash_failures"] > 0, s  # type: ignore[operator]
    assert s["honest_peers_banned"] == 0, s
    assert s["errors"] == [], s
    agents = json.loads((tmp_path / "results.json").read_text())["runs"]["p2p"]["agents"]
    assert sum(1 for a in agents if a["kind"] == "malicious") == 2
