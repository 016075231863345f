"""bench/fetchers_bench.py's scale rows: each runs `p2p-sim` in its own process and is recorded
as it goes. The figures are `make bench` output; these tests check the wiring only."""

from __future__ import annotations

import json
import os
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
    assert set(saved) == {"7/other", f"30/{kind}"}
    assert saved["7/other"]["run"] == "kept"
    assert {k: v for k, v in saved[f"30/{kind}"].items() if k != "updated"} == row
    # Its progress lines were parsed (every 10 simulated seconds) and passed on.
    assert capsys.readouterr().err.count("p2p-sim: t=") == 12
    # The section's table lists every recorded row, by size.
    assert [r["run"] for r in fb.recorded_rows(results)] == ["kept", row["run"]]
    assert any(
        line.startswith(f"| {row['run']} | 30 | done | 120.0 | 30 |")
        for line in fb.scale_section(results)
    )


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


def test_a_stopped_row_keeps_its_last_progress_and_stops_its_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during a long row: the row is recorded as stopped with its last progress line,
    and its simulator process is killed, not left running."""
    results = tmp_path / "scale.json"
    pid_file = tmp_path / "pid"
    child = (
        "import os, sys, time\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "print('p2p-sim: t=10 s viewers=5 decisions=7 cpu_s=0.5 peak_rss_mib=30',"
        " file=sys.stderr, flush=True)\n"
        "time.sleep(600)\n"
    )
    monkeypatch.setattr(fb, "scale_command", lambda kind, peers: [sys.executable, "-c", child])
    record = fb._record

    def stop_after_progress(path: Path, key: str, row: dict[str, object]) -> None:
        record(path, key, row)
        if row["status"] == "running":
            raise KeyboardInterrupt

    monkeypatch.setattr(fb, "_record", stop_after_progress)
    with pytest.raises(KeyboardInterrupt):
        fb.scale_row("today", 30, results)
    saved = json.loads(results.read_text())["rows"]["30/today"]
    assert saved["status"] == "stopped"
    assert (saved["t_s"], saved["viewers"], saved["decisions"]) == (10.0, 5, 7)
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
