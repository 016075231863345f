"""The byte mover keeps each flow's rate and source by events (engine._move_bytes), and each
viewer its neighbours by delay class (engine._show): after every tick they must equal what the
swarm's state gives when computed afresh."""

from __future__ import annotations

import math

import pytest

from peer_agent.sim.engine import Simulation
from peer_agent.sim.scenario import Scenario

# Small but busy: two regions (two delays), churn, a capped CDN, low uplinks and leechers.
BUSY = Scenario(
    peers=30,
    live=True,
    segment_s=2.0,
    duration_s=40.0,
    join_over_s=10.0,
    latency_segments=3,
    tick_s=0.1,
    regions=2,
    churn_per_min=0.3,
    cdn_bytes_per_s=4_000_000.0,
    low_uplink_fraction=0.2,
    leech_fraction=0.1,
    max_uploads=2,
)


def _check_flows(sim: Simulation, seen: dict[str, int]) -> None:
    sc = sim.sc
    downs: dict[str, int] = {}
    ups: dict[str, int] = {}
    cdn_live = 0
    for f in sim.flows:
        assert f.attached
        if not f.live:
            continue
        downs[f.dst.peer_id] = downs.get(f.dst.peer_id, 0) + 1
        rate = sc.downlink_bytes_per_s / f.dst.downs
        if f.src is None:
            cdn_live += 1
            rate = min(rate, sim._cdn_share)  # the share as of this tick's move
            assert f.full and f.feed is None
            seen["cdn"] += 1
        else:
            ups[f.src.peer_id] = ups.get(f.src.peer_id, 0) + 1
            rate = min(rate, f.src.uplink_bytes_per_s / f.src.ups)
            assert f.full == (f.segment in f.src.have)
            if not f.full:
                assert f.feed is f.src.transfers.get(f.segment)
                seen["relay" if f.feed is not None else "starved"] += 1
            else:
                seen["full"] += 1
        assert f.rate == rate
    assert cdn_live == sim._cdn_live
    for v in sim.active:
        assert v.downs == downs.get(v.peer_id, 0)
        assert v.ups == ups.get(v.peer_id, 0)
        if v.listeners is not None:  # who _show wakes: the neighbours, by delay class
            seen["listeners"] += 1
            fresh: list[list[object]] = [[] for _ in sim.delays_s]
            for nb in v.neighbours.values():
                fresh[nb.delay_class].append(nb.viewer)
            assert v.listeners == fresh


def test_rates_and_sources_kept_by_events_match_a_fresh_computation() -> None:
    sim = Simulation(BUSY, per_peer=True)
    seen = {"cdn": 0, "full": 0, "relay": 0, "starved": 0, "listeners": 0}
    sim.run(lambda s: _check_flows(s, seen), progress_every_s=BUSY.tick_s)
    # Every kind of flow was checked many times over.
    assert seen["cdn"] > 100 and seen["full"] > 100 and seen["relay"] > 100
    assert seen["listeners"] > 1000


@pytest.mark.parametrize("cdn_bytes_per_s", [0.0, 4_000_000.0])
def test_bytes_are_counted_once_when_flows_end_or_the_run_does(cdn_bytes_per_s: float) -> None:
    sc = BUSY.with_overrides(cdn_bytes_per_s=cdn_bytes_per_s)
    sim = Simulation(sc, per_peer=True)
    result = sim.run()
    viewers = list(sim.viewers.values()) + sim.departed
    up = sum(v.bytes_up for v in viewers)
    assert math.isclose(up, sum(v.bytes_p2p for v in viewers), rel_tol=1e-9)
    assert result.bytes_p2p > 0 and result.bytes_cdn > 0
    # Every segment played came through flows (resumed ones too): nothing moved went uncounted.
    played = sum(sim.size_of(seq) * n for seq, n in sim.plays.items())
    assert played <= result.bytes_cdn + result.bytes_p2p + 1


def _tick(sim: Simulation) -> None:
    sim.tick += 1
    sim.now = sim.t0 + sim.tick * sim.sc.tick_s
    sim._move_bytes(sim.sc.tick_s)


def test_a_relay_follows_its_senders_own_transfer() -> None:
    """A relays B's segment cut-through from its CDN fetch: B's flow stops when A cancels,
    follows A's new fetch, never passes A's progress, and has the whole segment once A does."""
    sim = Simulation(Scenario(peers=2, live=True, tick_s=0.1, join_over_s=0.0), per_peer=False)
    sim.join()
    sim.join()
    a, b = sim.active
    sim._link(b, a)
    seg = sim.segment_id(0)
    sim._start_cdn(a, seg, 0)
    upstream = a.transfers[seg]
    sim._start_peer(b, seg, a.peer_id, 0)
    relay = b.transfers[seg]
    assert relay.feed is upstream and not relay.full
    for _ in range(3):
        _tick(sim)
        assert 0 < relay.offset + relay.received <= upstream.offset + upstream.received
    assert relay.rate == min(sim.sc.downlink_bytes_per_s, sim.sc.uplink_bytes_per_s)

    sim._drop_flow(upstream, mark=False)  # A cancels: B's flow has nothing more to relay
    assert relay.feed is None and a.ups == 1 and a.downs == 0
    moved = relay.received
    _tick(sim)
    assert relay.received == moved and relay.attached

    sim._start_cdn(a, seg, a.partial[seg])  # A resumes from what it had
    resumed = a.transfers[seg]
    assert relay.feed is resumed
    while relay.attached:
        _tick(sim)
        assert relay.offset + relay.received <= resumed.offset + resumed.received
    assert seg in a.have and seg in b.have and relay.full
    assert b.bytes_p2p == a.bytes_up == relay.received
    assert a.bytes_cdn == upstream.received + resumed.received
