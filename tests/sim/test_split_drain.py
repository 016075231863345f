"""A link the tracker splits for a newcomer drains instead of closing at once (issue 15).

Our clients drain a split link (docs/signaling.md, "Making room"): nothing new is asked over it,
the transfers on it go on, and it closes once none is left, or at ``split_drain_s``. Closed at
once, each split cut the transfers over it, and with them every cut-through relay downstream
(docs/simulator.md, "Splits cut transfers"). The simulator models the clients' rule.
"""

from __future__ import annotations

import heapq

import pytest

from bench.fetchers_diag import row_scenario
from peer_agent.sim.engine import Simulation, _Viewer
from peer_agent.sim.scenario import Scenario


def _pair(**overrides: float) -> tuple[Simulation, _Viewer, _Viewer]:
    """Two linked viewers; the second pulls segment 0 from the first, which fetches it from
    the CDN (decisions are not run: the test drives them)."""
    scenario = Scenario(peers=2, live=True, tick_s=0.05, join_over_s=0.0, **overrides)
    sim = Simulation(scenario, per_peer=False)
    sim.join()
    sim.join()
    a, b = sim.active
    sim._link(b, a)
    seg = sim.segment_id(0)
    sim._start_cdn(a, seg, 0)
    sim._start_peer(b, seg, a.peer_id, 0)
    assert b.transfers[seg].src is a
    return sim, a, b


def _step(sim: Simulation) -> None:
    """One tick as the engine's run loop takes it, without decisions."""
    sim.tick += 1
    now = sim.t0 + sim.tick * sim.sc.tick_s
    while sim._events and sim._events[0][0] <= now:
        t, _, fn = heapq.heappop(sim._events)
        sim.now = t
        fn()
    sim.now = now
    sim._move_bytes(sim.sc.tick_s)


def test_a_split_link_keeps_its_transfer_and_closes_when_it_ends() -> None:
    sim, a, b = _pair()
    seg = sim.segment_id(0)
    sim._split(a, b)
    # Still linked, but neither is a source for the other any more.
    assert a.peer_id in b.neighbours and b.neighbours[a.peer_id].draining
    assert a.peer_id not in sim._peer_views(b) and b.peer_id not in sim._peer_views(a)
    assert sim.split_drains == 1
    while seg not in b.have:
        _step(sim)
        assert sim.now < sim.t0 + sim.sc.split_drain_s
    _step(sim)  # the close is due as the transfer ends
    assert a.peer_id not in b.neighbours and b.peer_id not in a.neighbours
    assert sim.split_drains_forced == 0
    assert not b.partial  # it got the whole segment over the split link


def test_a_split_link_closes_at_the_bound_whatever_flows() -> None:
    sim, a, b = _pair(split_drain_s=0.3, downlink_bytes_per_s=100_000.0)
    seg = sim.segment_id(0)
    sim._split(a, b)
    for _ in range(7):
        _step(sim)
    assert a.peer_id not in b.neighbours
    assert sim.split_drains_forced == 1
    assert seg not in b.have and seg not in b.transfers  # cut at the bound, bytes kept
    assert b.partial[seg] > 0


def test_split_drain_s_zero_closes_at_once_cutting_the_transfer() -> None:
    sim, a, b = _pair(split_drain_s=0.0)
    seg = sim.segment_id(0)
    _step(sim)
    sim._split(a, b)
    assert a.peer_id not in b.neighbours and seg not in b.transfers
    assert sim.split_drains == 0


def test_a_link_with_nothing_in_flight_closes_at_once() -> None:
    scenario = Scenario(peers=2, live=True, tick_s=0.05, join_over_s=0.0)
    sim = Simulation(scenario, per_peer=False)
    sim.join()
    sim.join()
    a, b = sim.active
    sim._link(b, a)
    sim._split(a, b)
    assert a.peer_id not in b.neighbours and sim.split_drains == 0


@pytest.mark.slow
def test_drained_splits_leave_no_relay_without_a_source() -> None:
    """Issue 15's assignment row at 1,000 viewers (deterministic): with splits closed at once
    some peer transfers start on a relay chain that ends at a viewer with no transfer, or runs
    in a circle; drained, none does, and the chains are shallower."""
    at_once = Simulation(row_scenario(1000).with_overrides(split_drain_s=0.0), per_peer=False)
    drained = Simulation(row_scenario(1000), per_peer=False)
    cut = at_once.run().cut_through
    kept = drained.run().cut_through
    assert cut is not None and kept is not None
    assert cut["unanchored"] > 0 and cut["loops"] > 0
    assert kept["unanchored"] == 0 and kept["loops"] == 0
    assert drained.split_drains > 0 and drained.split_drains_forced == 0
    assert kept["depth_max"] is not None and cut["depth_max"] is not None
    assert kept["depth_max"] < cut["depth_max"]
