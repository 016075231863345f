"""bench/fetchers_bench.py's scale rows: each runs `p2p-sim` in its own process and is recorded
as it goes. The figures are `make bench` output; these tests check the wiring only."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench import fetchers_bench as fb
from peer_agent.sim.engine import simulate


@pytest.mark.parametrize("kind", sorted(fb.SCALE_ROWS))
def test_scale_row_runs_the_same_scenario_in_its_own_process(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command's flags give the scenario the row names: its summary equals an in-process
    run of that scenario (same seed); the row is recorded with CPU s and peak RSS."""
    results = tmp_path / "scale.json"
    fb._record(results, "7/other", {"run": "kept"})  # a row of another run stays
    row = fb.scale_row(kind, 30, results)
    scenario = fb.BIG.with_overrides(peers=30, **fb.MIX, **fb.SCALE_ROWS[kind][1])
    expected = simulate(scenario, per_peer=False).summary()
    for key, value in expected.items():
        assert row[key] == value, key
    assert row["status"] == "done" and row["cpu_s"] > 0 and row["peak_rss_mib"] > 0
    saved = json.loads(results.read_text())["rows"]
    assert saved == {"7/other": {"run": "kept"}, f"30/{kind}": row}
    # Its progress lines were parsed (every 10 simulated seconds) and passed on.
    assert capsys.readouterr().err.count("p2p-sim: t=") == 12


def test_a_failing_row_is_recorded_and_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "scale.json"
    failing = [sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"]
    monkeypatch.setattr(fb, "scale_command", lambda kind, peers: failing)
    with pytest.raises(RuntimeError, match="boom"):
        fb.scale_row("assign", 30, results)
    saved = json.loads(results.read_text())["rows"]
    assert saved["30/assign"]["status"] == "failed (exit 3)"
    with pytest.raises(ValueError, match=">= 2"):
        fb.scale_row("assign", 1, results)


def test_sizes_reject_bad_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2P_BENCH_FETCHERS_PEERS", "1000,x")
    with pytest.raises(SystemExit, match="comma-separated"):
        fb._sizes("P2P_BENCH_FETCHERS_PEERS", "1000")
    monkeypatch.setenv("P2P_BENCH_FETCHERS_PEERS", "0")
    with pytest.raises(SystemExit, match=">= 2"):
        fb._sizes("P2P_BENCH_FETCHERS_PEERS", "1000")
    assert fb._sizes("P2P_BENCH_FETCHERS_PEERS", "1000", zero=True) == [0]
