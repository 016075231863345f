"""bench/fetchers_diag.py: its wrapper leaves the run as it is, and what it records adds up to
the row's steady-state metric."""

from __future__ import annotations

from typing import Any

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


def test_relay_chain_follows_each_transfer_to_its_source() -> None:
    """Mid-run, every transfer's chain goes hop by hop (each source is the next hop's viewer)
    and ends where the bytes come from: the CDN, a verified copy, nothing, or a loop."""
    scenario = fb.BIG.with_overrides(peers=100, duration_s=30.0, pairing="split", server_fetchers=4)
    sim = engine.Simulation(scenario, per_peer=False)
    chains: list[list[Any]] = []

    def look(s: engine.Simulation) -> None:
        for viewer in s.active:
            for sid in list(viewer.transfers):
                chains.append(fetchers_diag.relay_chain(s, viewer, sid))

    sim.run(look)
    assert any(len(c) > 2 for c in chains)  # some bytes came through a relay
    for chain in chains:
        *hops, end = chain
        assert end in ("cdn", "have", "none", "loop")
        assert all(isinstance(h, list) for h in hops)
        assert hops or end == "cdn"  # a viewer's own CDN fetch: no hop
        for hop, nxt in zip(hops, hops[1:], strict=False):
            assert hop[1] == nxt[0]
        if end == "loop":
            assert hops[-1][1] in {h[0] for h in hops}
