"""Where cut-through chains stall and loop in issue 15's assignment row (bench/fetchers_diag.py).

Runs the row (as ``bench.fetchers_diag``, optionally with another seed) with the core
scheduler's ``decide`` wrapped, and for every decision's peer actions looks where the bytes
would come from, in the simulator's state at that moment:

- each ``cancel`` of a peer transfer: its reason, whether the viewer had every byte but the
  relay's held-back last frame (``holdback``) or not (``other``), and where the cancelled
  source's own bytes came from: ``src_has`` (it holds a verified copy) or ``src_chain_<end>``,
  its relay chain followed upstream ending at the CDN (``cdn``), a verified copy (``have``), a
  relay with no transfer of the segment (``none``), a loop not through the viewer (``loop``),
  the viewer itself (``through_self``: the viewer was pulling from its own downstream) or
  past 64 hops (``long``);
- each ``fetch_peer``: ``pick_have`` for a holder, else ``pick_ct_<end>`` as above for the
  chosen relay; ``pick_ct_at_holdback_*`` those whose offset leaves only the held-back frame;
  ``loop_hops`` counts, for ``through_self`` picks, the hops back to the viewer (1: a 2-cycle).

It also counts ``fetchers_diag``'s steady-state CDN fetches (the held-back-frame resumes among
them) over the whole run. The wrapper only reads: the run is decision for decision the row's.

    .venv/bin/python -m bench.loops_diag --peers 30000 --seed 1 --out /tmp/loops.json

About 4 CPU minutes at 30,000 viewers. docs/simulator.md has what it found (2026-12-03).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

from bench import fetchers_diag
from peer_agent.core.config import SchedulerConfig
from peer_agent.core.exchange_actions import RELAY_HOLDBACK_BYTES
from peer_agent.core.ids import SegmentId
from peer_agent.core.scheduler import (
    CancelTransfer,
    Decision,
    FetchFromCdn,
    FetchFromPeer,
    SchedulerView,
)
from peer_agent.sim.engine import Simulation

CHAIN_LIMIT = 64


def chain_end(src: Any, sid: SegmentId, viewer: Any) -> tuple[str, int]:
    """Follow ``src``'s transfer of ``sid`` upstream: how it ends and after how many hops."""
    seen: set[str] = set()
    v = src
    for hops in range(CHAIN_LIMIT):
        if v is viewer:
            return "through_self", hops
        if sid in v.have:
            return "have", hops
        flow = v.transfers.get(sid)
        if flow is None:
            return "none", hops
        if flow.src is None:
            return "cdn", hops
        if v.peer_id in seen:
            return "loop", hops
        seen.add(v.peer_id)
        v = flow.src
    return "long", CHAIN_LIMIT


class LoopProbe(fetchers_diag.FetchProbe):
    """``FetchProbe`` that also classifies every peer cancel and peer pick."""

    def __init__(self, sim: Simulation) -> None:
        super().__init__(sim)
        self.counts: Counter[str] = Counter()
        self.loop_hops: Counter[int] = Counter()

    def __call__(self, view: SchedulerView, config: SchedulerConfig, rng: Any) -> Decision:
        decision = self._decide(view, config, rng)
        viewer = self.sim.viewers[view.self_id]
        for action in decision.actions:
            if isinstance(action, CancelTransfer) and action.peer_id is not None:
                self._cancel(viewer, action)
            elif isinstance(action, FetchFromPeer):
                self._pick(viewer, action)
            elif isinstance(action, FetchFromCdn):
                self._record(view, config, action)
        return decision

    def _cancel(self, viewer: Any, action: CancelTransfer) -> None:
        flow = viewer.transfers.get(action.segment)
        if flow is None or flow.src is None:
            return
        where = "holdback" if flow.reached >= flow.total - RELAY_HOLDBACK_BYTES - 1e-6 else "other"
        if action.segment in flow.src.have:
            state = "src_has"
        else:
            state = "src_chain_" + chain_end(flow.src, action.segment, viewer)[0]
        self.counts[f"cancel_{action.reason}_{where}_{state}"] += 1
        self.counts["cancel_total"] += 1

    def _pick(self, viewer: Any, action: FetchFromPeer) -> None:
        nb = viewer.neighbours.get(action.peer_id)
        if nb is None:
            return
        if action.reason == "have":
            self.counts["pick_have"] += 1
            return
        end, hops = chain_end(nb.viewer, action.segment, viewer)
        self.counts[f"pick_ct_{end}"] += 1
        if end == "through_self":
            self.loop_hops[hops] += 1
        if action.offset >= self.sim.size_of(action.segment.sequence) - RELAY_HOLDBACK_BYTES:
            self.counts[f"pick_ct_at_holdback_{end}"] += 1


def run(peers: int, seed: int | None = None, duration_s: float | None = None) -> dict[str, Any]:
    scenario = fetchers_diag.row_scenario(peers, duration_s, seed=seed)
    sim = Simulation(scenario, per_peer=False)
    probe = LoopProbe(sim)
    result = fetchers_diag.run_probed(sim, probe)
    steady = Counter(
        r["reason"] + (" (held-back frame)" if r["held_back"] else "") for r in probe.records
    )
    summary = result.summary()
    return {
        "peers": peers,
        "seed": scenario.seed,
        "steady_fetches": dict(steady.most_common()),
        "steady_fetches_total": len(probe.records),
        "peer_actions": dict(sorted(probe.counts.items())),
        "loop_hops": dict(sorted(probe.loop_hops.items())),
        "summary": {
            k: summary.get(k)
            for k in (
                "cdn_fetches",
                "cdn_fetches_join_ramp",
                "cdn_fetches_per_segment_steady",
                "offload_ratio",
                "stall_count",
                "decisions",
            )
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=None, help="the scenario's seed (default 1)")
    parser.add_argument("--duration-s", type=float, default=None)
    parser.add_argument("--out", help="write the counts as JSON here")
    args = parser.parse_args()
    found = run(args.peers, args.seed, args.duration_s)
    text = json.dumps(found, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
