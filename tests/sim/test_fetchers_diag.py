"""bench/fetchers_diag.py: its wrapper leaves the run as it is, and what it records adds up to
the row's steady-state metric."""

from __future__ import annotations

from bench import fetchers_bench as fb
from bench import fetchers_diag
from peer_agent.sim import engine
from peer_agent.sim.engine import simulate


def test_diag_records_every_steady_fetch_of_the_metric_without_changing_the_run() -> None:
    found = fetchers_diag.run(200)
    scenario = fb.BIG.with_overrides(peers=200, **fb.MIX, **fb.SCALE_ROWS["assign"][1])
    assert found["summary"] == simulate(scenario, per_peer=False).summary()
    assert not isinstance(engine.decide, fetchers_diag.FetchProbe)  # put back
    window = found["metric_window"]
    assert window
    in_window = sum(found["steady_fetches_in_metric_window"].values())
    steady = found["summary"]["cdn_fetches_per_segment_steady"]
    assert round(in_window / len(window), 3) == steady
    records = found["records"]
    assert sum(found["steady_fetches"].values()) == len(records) > 0
    assert {r["reason"] for r in records} <= {"assigned", "backup", "urgent"}
    for r in records:
        assert r["held_back"] == (r["missing_bytes"] == fetchers_diag.RELAY_HOLDBACK_BYTES)
