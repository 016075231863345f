"""Why each steady-state CDN fetch happened in issue 15's assignment row (bench/fetchers_bench.py).

Runs the row's scenario (``--row assign``: capacity mix, 1 % churn per minute, split pairing,
4 server-assigned fetchers) in this process with the core scheduler's ``decide`` wrapped (the
decisions are the same: the wrapper only reads the view and the simulator's state). For every
CDN fetch of a steady-state segment (past the viewer's join ramp, core.cdn_phase) it records:
the reason (``assigned``, ``backup``, ``urgent``), whether the viewer is listed and its rank
(listed: in the assignment's order; not listed: the local election), how long it had known the
segment, how far ahead of the playhead it was, how many of its neighbours really hold or fetch
it and how many it sees doing so (announcements take half a round trip), the hops to the
nearest viewer that holds or fetches it, the bytes it still missed (``held_back``: exactly the
one frame a relay withholds until its own copy verifies), the time since the segment's first
CDN fetch and, for a resume, the relay chain its missing bytes were to come through. The
summary counts them by reason for the whole run and for the segments the metric uses (those the
whole swarm played), as ``cdn_fetches_per_segment_steady`` does.

    .venv/bin/python -m bench.fetchers_diag --peers 100000 --out /tmp/diag.json

A 100,000-viewer run takes as long as the row itself (about 15 CPU minutes) plus a few
percent. docs/simulator.md ("Issue 15's rows at 100,000 viewers") has what it found.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from bench.fetchers_bench import BIG, MIX, SCALE_ROWS
from peer_agent.core import scheduler as core_scheduler
from peer_agent.core.cdn_phase import STEADY, fetch_phase
from peer_agent.core.config import SchedulerConfig
from peer_agent.core.election import rank_candidates
from peer_agent.core.exchange_actions import RELAY_HOLDBACK_BYTES
from peer_agent.core.ids import SegmentId
from peer_agent.core.scheduler import Decision, FetchFromCdn, PeerView, SchedulerView
from peer_agent.sim import engine
from peer_agent.sim.engine import Simulation
from peer_agent.sim.results import SimResult
from peer_agent.sim.scenario import Scenario


def _holds(viewer: Any, sid: SegmentId) -> bool:
    return sid in viewer.have or sid in viewer.transfers


def _hops_to_copy(viewer: Any, sid: SegmentId, limit: int = 12) -> int | None:
    """BFS hops from ``viewer`` to the nearest viewer that holds or fetches ``sid`` (now)."""
    seen = {viewer.peer_id}
    frontier = [viewer]
    for hops in range(1, limit + 1):
        nxt = []
        for v in frontier:
            for pid, nb in v.neighbours.items():
                if pid in seen:
                    continue
                seen.add(pid)
                if _holds(nb.viewer, sid):
                    return hops
                nxt.append(nb.viewer)
        if not nxt:
            return None
        frontier = nxt
    return None


def relay_chain(sim: Simulation, viewer: Any, sid: SegmentId, limit: int = 64) -> list[Any]:
    """Where ``viewer``'s bytes of ``sid`` come from now, hop by hop: one ``[peer, source,
    bytes reached, started at]`` per transfer, then how it ends: ``"cdn"``, ``"have"`` (the
    source holds a verified copy), ``"none"`` (it has no transfer of it) or ``"loop"``."""
    out: list[Any] = []
    seen = set()
    v = viewer
    while len(out) < limit:
        flow = v.transfers.get(sid)
        if flow is None:
            out.append("have" if sid in v.have else "none")
            return out
        if flow.src is None:
            out.append("cdn")
            return out
        out.append(
            [v.peer_id, flow.src.peer_id, int(flow.reached), round(flow.requested_at - sim.t0, 2)]
        )
        seen.add(v.peer_id)
        v = flow.src
        if v.peer_id in seen:
            out.append("loop")
            return out
    return out


class FetchProbe:
    """Wraps ``decide`` for one simulation and records its steady-state CDN fetches."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.records: list[dict[str, Any]] = []
        self.first_fetch_at: dict[int, float] = {}
        self._decide = engine.decide

    def __call__(self, view: SchedulerView, config: SchedulerConfig, rng: Any) -> Decision:
        decision = self._decide(view, config, rng)
        for action in decision.actions:
            if isinstance(action, FetchFromCdn):
                self._record(view, config, action)
        return decision

    def _record(self, view: SchedulerView, config: SchedulerConfig, action: FetchFromCdn) -> None:
        sim = self.sim
        viewer = sim.viewers[view.self_id]
        sid = action.segment
        seq = sid.sequence
        first = self.first_fetch_at.setdefault(seq, view.now)
        if fetch_phase(seq, viewer.cdn_fetch_counts.start_sequence) != STEADY:
            return
        given = view.peers
        peers: dict[str, PeerView] = (
            dict(given) if isinstance(given, Mapping) else {p.peer_id: p for p in given}
        )
        listed = bool(view.fetchers) and view.self_id in view.fetchers
        if listed:
            rank = rank_candidates(view.fetchers, sid).index(view.self_id)
        else:
            rank = core_scheduler._local_rank(sid, view, peers, config)
        seg = next(s for s in view.segments if s.segment == sid)
        ahead_s = seg.start_s - view.playhead_s
        wanted_since = max(seg.known_since, view.now - (config.prefetch_window_s - ahead_s))
        size = sim.size_of(seq)
        self.records.append(
            {
                "t_s": round(view.now - sim.t0, 2),
                "sequence": seq,
                "reason": action.reason,
                "listed": listed,
                "rank": rank,
                "since_wanted_s": round(view.now - wanted_since, 2),
                "ahead_s": round(ahead_s, 2),
                "neighbours": len(viewer.neighbours),
                "neighbours_holding": sum(
                    1 for nb in viewer.neighbours.values() if _holds(nb.viewer, sid)
                ),
                "neighbours_seen_holding": sum(
                    1 for p in peers.values() if sid in p.have or sid in p.fetching
                ),
                "hops_to_copy": _hops_to_copy(viewer, sid),
                "missing_bytes": size - action.offset,
                "held_back": size - action.offset == RELAY_HOLDBACK_BYTES,
                "since_first_cdn_fetch_s": round(view.now - first, 2),
                # Where the bytes it missed were to come from (its transfer is still there: the
                # decision's cancel is carried out after this).
                "relay_chain": relay_chain(sim, viewer, sid) if action.offset else None,
            }
        )


def row_scenario(
    peers: int,
    duration_s: float | None = None,
    tick_s: float | None = None,
    seed: int | None = None,
) -> Scenario:
    """The assignment row's scenario at ``peers`` viewers (its seed is 1, its tick 0.1 s)."""
    given = {"duration_s": duration_s, "tick_s": tick_s, "seed": seed}
    overrides = {k: v for k, v in given.items() if v is not None}
    return BIG.with_overrides(peers=peers, **MIX, **SCALE_ROWS["assign"][1], **overrides)


def run_probed(sim: Simulation, probe: Any) -> SimResult:
    """Run ``sim`` with every decision through ``probe`` (which keeps the real one as
    ``_decide``): the engine calls its module's ``decide``."""
    setattr(engine, "decide", probe)  # noqa: B010
    try:
        return sim.run()
    finally:
        setattr(engine, "decide", probe._decide)  # noqa: B010


def run(
    peers: int,
    duration_s: float | None = None,
    tick_s: float | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    scenario = row_scenario(peers, duration_s, tick_s, seed)
    sim = Simulation(scenario, per_peer=False)
    probe = FetchProbe(sim)
    result = run_probed(sim, probe)
    window = {seq for seq, n in sim.plays.items() if n >= scenario.peers}
    records = probe.records

    def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
        c = Counter(r["reason"] + (" (held-back frame)" if r["held_back"] else "") for r in rows)
        return dict(c.most_common())

    in_window = [r for r in records if r["sequence"] in window]
    return {
        "peers": peers,
        "summary": result.summary(),
        "steady_fetches": counts(records),
        "steady_fetches_in_metric_window": counts(in_window),
        "metric_window": sorted(window),
        "by_sequence": {
            str(seq): counts([r for r in records if r["sequence"] == seq])
            for seq in sorted({r["sequence"] for r in records})
        },
        "records": records,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--duration-s", type=float, default=None)
    parser.add_argument(
        "--tick-s", type=float, default=None, help="the simulator's tick (the row's: 0.1)"
    )
    parser.add_argument("--seed", type=int, default=None, help="the scenario's seed (the row's: 1)")
    parser.add_argument("--out", help="write every record as JSON here")
    args = parser.parse_args()
    found = run(args.peers, args.duration_s, args.tick_s, args.seed)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(found, f, indent=1)
    shown = {k: v for k, v in found.items() if k not in ("records", "summary")}
    summary = found["summary"]
    for key in ("cdn_fetches_per_segment_steady", "offload_ratio", "stall_count", "decisions"):
        shown[key] = summary.get(key)
    print(json.dumps(shown, indent=1))


if __name__ == "__main__":
    main()
