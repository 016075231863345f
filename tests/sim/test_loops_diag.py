"""bench/loops_diag.py: it leaves the run as it is, and its counts add up."""

from __future__ import annotations

from bench import fetchers_bench as fb
from bench import loops_diag
from peer_agent.sim import engine
from peer_agent.sim.engine import simulate


def test_loops_diag_counts_without_changing_the_run() -> None:
    found = loops_diag.run(200)
    scenario = fb.BIG.with_overrides(peers=200, **fb.MIX, **fb.SCALE_ROWS["assign"][1])
    full = simulate(scenario, per_peer=False).summary()
    assert found["summary"] == {k: full.get(k) for k in found["summary"]}
    assert not isinstance(engine.decide, loops_diag.LoopProbe)  # put back
    actions = found["peer_actions"]
    cancels = {k: n for k, n in actions.items() if k.startswith("cancel_") and k != "cancel_total"}
    assert sum(cancels.values()) == actions.get("cancel_total", 0)
    for key in cancels:
        assert key.startswith(("cancel_stalled_", "cancel_too_slow_")), key
        assert "_holdback_" in key or "_other_" in key, key
    picks = sum(n for k, n in actions.items() if k.startswith("pick_ct_") and "holdback" not in k)
    assert actions.get("pick_have", 0) + picks > 0  # peers served the swarm
    assert sum(found["loop_hops"].values()) == actions.get("pick_ct_through_self", 0)
    assert sum(found["steady_fetches"].values()) == found["steady_fetches_total"]
