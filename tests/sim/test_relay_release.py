"""How fast a relay's withheld last frame goes down a chain of cut-through relays (issue 15).

A relay passes bytes on as they arrive but withholds the last frame until its own copy verifies
(docs/exchange.md, "Hold-back"). In a real agent the release reaches the next hop after half a
round trip and takes the frame's time at the link's rate; the simulator's byte mover models it
so (engine._move_bytes), whatever its tick: a completion within a tick lets the relays it feeds
move the frame for the time left in that tick.
"""

from __future__ import annotations

import pytest

from peer_agent.sim.engine import RELAY_HOLDBACK_BYTES, Simulation, _Flow, _Viewer
from peer_agent.sim.scenario import Scenario


def _chain(
    n: int, tick_s: float, **overrides: float
) -> tuple[Simulation, list[_Viewer], dict[int, float]]:
    """``n`` viewers in a line: the first fetches segment 0 from the CDN, each next one relays
    it from the one before, all asked at the same moment. Runs the byte mover until every one
    holds it; returns when (within its tick) each received its last byte, by viewer index."""
    scenario = Scenario(peers=n, live=True, tick_s=tick_s, join_over_s=0.0, **overrides)
    sim = Simulation(scenario, per_peer=False)
    for _ in range(n):
        sim.join()
    viewers = list(sim.active)
    for a, b in zip(viewers, viewers[1:], strict=False):
        sim._link(b, a)
    done: dict[int, float] = {}
    complete = sim._complete

    def record(flow: _Flow, done_at: float) -> None:
        assert sim.now - tick_s - 1e-9 <= done_at <= sim.now  # within the tick just moved
        done[flow.dst.index] = done_at
        complete(flow, done_at)

    sim._complete = record  # type: ignore[method-assign]
    seg = sim.segment_id(0)
    sim._start_cdn(viewers[0], seg, 0)
    for a, b in zip(viewers, viewers[1:], strict=False):
        sim._start_peer(b, seg, a.peer_id, 0)
    start = sim.now
    for _ in range(int(10 / tick_s)):
        if all(seg in v.have for v in viewers):
            break
        sim.tick += 1
        sim.now = sim.t0 + sim.tick * tick_s
        sim._move_bytes(tick_s)
    assert all(seg in v.have for v in viewers)
    for v in viewers:  # recorded as of the tick it completed in
        assert done[v.index] <= v.have[seg] < done[v.index] + tick_s + 1e-9
    return sim, viewers, {i: t - start for i, t in done.items()}


@pytest.mark.parametrize("tick_s", [0.1, 0.05, 0.01])
def test_each_hop_takes_half_a_round_trip_and_the_frame_whatever_the_tick(tick_s: float) -> None:
    sim, viewers, done = _chain(6, tick_s)
    sc = sim.sc
    size = sim.size_of(0)
    # The CDN fetch and the first relay: latency, then the whole segment at the link's rate.
    assert done[0] == pytest.approx(sc.cdn_latency_s + size / sc.downlink_bytes_per_s)
    assert done[1] == pytest.approx(sc.peer_rtt_s + size / sc.uplink_bytes_per_s)
    # Every later relay held all but the last frame by then; each hop after: its sender's
    # release reaches it after half a round trip, then the frame at the uplink's rate.
    hop_s = sc.peer_rtt_s / 2 + RELAY_HOLDBACK_BYTES / sc.uplink_bytes_per_s
    for i in range(2, 6):
        assert done[i] - done[i - 1] == pytest.approx(hop_s)
    assert hop_s < 0.04  # far below the row's tick of 0.1 s, which each hop took before
    assert all(v.ups == 0 and v.downs == 0 for v in viewers)  # every flow ended


def test_a_release_to_another_region_takes_that_round_trip() -> None:
    sim, viewers, done = _chain(4, 0.1, regions=2, cross_region_rtt_s=0.15)
    sc = sim.sc
    frame_s = RELAY_HOLDBACK_BYTES / sc.uplink_bytes_per_s
    for i in (2, 3):
        a, b = viewers[i - 1], viewers[i]
        half_rtt = sc.peer_rtt_s / 2 if a.region == b.region else sc.cross_region_rtt_s / 2
        assert done[i] - done[i - 1] == pytest.approx(half_rtt + frame_s)


def test_a_slower_relay_is_limited_by_its_own_rate_not_by_the_release() -> None:
    """The third viewer's sender uploads at a quarter of the others' rate: its whole segment
    takes longer than the release behind it, so it ends at its own rate, as before."""
    scenario = Scenario(peers=4, live=True, tick_s=0.1, join_over_s=0.0)
    sim = Simulation(scenario, per_peer=False)
    for _ in range(4):
        sim.join()
    a, b, c, d = sim.active
    b.uplink_bytes_per_s = scenario.uplink_bytes_per_s / 4
    for x, y in ((a, b), (b, c), (c, d)):
        sim._link(y, x)
    seg = sim.segment_id(0)
    sim._start_cdn(a, seg, 0)
    sim._start_peer(b, seg, a.peer_id, 0)
    sim._start_peer(c, seg, b.peer_id, 0)
    sim._start_peer(d, seg, c.peer_id, 0)
    slow = c.transfers[seg]
    size = sim.size_of(0)
    ticks = 0
    while seg not in d.have:
        ticks += 1
        sim.tick += 1
        sim.now = sim.t0 + sim.tick * scenario.tick_s
        sim._move_bytes(scenario.tick_s)
        assert ticks < 200
    rate = b.uplink_bytes_per_s
    assert slow.rate == rate
    # c completes at its own pace (recorded at the end of that tick), d one release after.
    c_done = slow.data_from + size / rate
    assert c.have[seg] - scenario.tick_s < c_done <= c.have[seg] + 1e-9
    d_done = c_done + scenario.peer_rtt_s / 2 + RELAY_HOLDBACK_BYTES / scenario.uplink_bytes_per_s
    assert d.have[seg] - scenario.tick_s < d_done <= d.have[seg] + 1e-9
