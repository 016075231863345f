"""The simulator splits CDN fetches into join ramp and steady state (core.cdn_phase)."""

from __future__ import annotations

import pytest

from peer_agent.sim.engine import simulate
from peer_agent.sim.scenario import Scenario

SHORT = Scenario(
    peers=10, live=True, segment_s=4.0, duration_s=80.0, join_over_s=20.0, latency_segments=3
)


def test_cdn_only_each_viewer_ramps_on_exactly_four_segments() -> None:
    r = simulate(SHORT.with_overrides(p2p=False))
    assert r.by_peer and all(row["segments_played"] >= 8 for row in r.by_peer)
    for row in r.by_peer:
        assert row["cdn_fetches_join_ramp"] == 4, row
        assert row["cdn_fetches_steady"] == row["cdn_fetches"] - 4, row
    assert r.cdn_fetches_join_ramp == 4 * r.viewers_total
    assert r.cdn_fetches_join_ramp_per_viewer == 4.0
    # Every viewer fetches every segment: the split adds up to the swarm's size.
    assert r.cdn_fetches_per_segment == 10
    total = r.cdn_fetches_per_segment_steady + r.cdn_fetches_per_segment_join_ramp
    assert total == pytest.approx(10)
    assert r.cdn_fetches_per_segment_join_ramp > 0


@pytest.mark.parametrize("live", [True, False])
def test_p2p_split_adds_up(live: bool) -> None:
    r = simulate(SHORT.with_overrides(live=live))
    total = r.cdn_fetches_per_segment_steady + r.cdn_fetches_per_segment_join_ramp
    assert total == pytest.approx(r.cdn_fetches_per_segment)
    for row in r.by_peer:
        assert row["cdn_fetches_join_ramp"] + row["cdn_fetches_steady"] == row["cdn_fetches"]
    assert sum(row["cdn_fetches_join_ramp"] for row in r.by_peer) == r.cdn_fetches_join_ramp
    summary = r.summary()
    for key in (
        "cdn_fetches_per_segment_steady",
        "cdn_fetches_per_segment_join_ramp",
        "cdn_fetches_join_ramp",
        "cdn_fetches_join_ramp_per_viewer",
    ):
        assert key in summary
