"""The simulator skips a decision only when it could not act differently.

Each test runs a small live swarm whose engine, at every skip, plans the viewer's decision both
ways (as it is now and as if the skipped event had not happened) with the same random draws,
and asserts the plans are the same. The plan is the scheduler's own output
(:func:`peer_agent.core.scheduler.decide`), so a rule that skipped a decision the event could
change fails here.
"""

from __future__ import annotations

import random

from peer_agent.core.scheduler import Decision, Wait, decide
from peer_agent.sim.engine import Simulation, _Flow, _Neighbour, _Viewer
from peer_agent.sim.scenario import Scenario

# The issue-16 bench scenario, small: splits happen while viewers join.
SWARM = Scenario(
    peers=100,
    live=True,
    segment_s=4.0,
    latency_segments=3,
    duration_s=90.0,
    join_over_s=60.0,
    tick_s=0.1,
)


def _plan(sim: Simulation, viewer: _Viewer) -> Decision | None:
    view = sim._view(viewer)
    return None if view is None else decide(view, sim.sched_cfg, random.Random(7))


def _outcome(decision: Decision | None) -> tuple[object, ...]:
    """What a decision does: its actions, a wait for a neighbour without its retry time (a
    lost neighbour's BUSY back-off leaves the list of retries; the pending wake-up is then only
    earlier)."""
    if decision is None:
        return ()
    return tuple(
        (a.segment, a.reason) if isinstance(a, Wait) and a.reason == "awaiting_peer" else a
        for a in decision.actions
    )


class _LossChecked(Simulation):
    """At each neighbour loss, plans the viewer's decision without and with the lost
    neighbour (put back for the second plan) and records whether they differ."""

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(scenario, per_peer=False)
        self.skipped = 0
        self.skipped_changed = 0
        self.skipped_acting = 0
        self.marked = 0
        self.marked_changed = 0

    def _loss_matters(self, viewer: _Viewer, nb: _Neighbour) -> bool:
        matters = super()._loss_matters(viewer, nb)
        if not viewer.neighbours or viewer.dirty or viewer.wake_tick == self.tick + 1:
            # Left alone (the rule marks it: nothing to compare), or it decides in this tick
            # anyway (an event marked it, or its wake-up is due).
            return matters
        without_plan = _plan(self, viewer)
        without = _outcome(without_plan)
        viewer.neighbours[nb.viewer.peer_id] = nb
        viewer.peer_views = None
        with_lost = _outcome(_plan(self, viewer))
        del viewer.neighbours[nb.viewer.peer_id]
        viewer.peer_views = None
        changed = without != with_lost
        if matters:
            self.marked += 1
            self.marked_changed += changed
        else:
            self.skipped += 1
            self.skipped_changed += changed
            acts = [a for a in without if not isinstance(a, Wait | tuple)]
            self.skipped_acting += bool(acts)
        return matters


def test_a_lost_neighbour_skips_only_decisions_it_cannot_change() -> None:
    sim = _LossChecked(SWARM)
    sim.run()
    assert sim.splits > 0
    assert sim.skipped > 100  # the rule does skip
    assert sim.skipped_acting == 0  # ... only decisions that would act on nothing
    assert sim.skipped_changed == 0  # ... and only where the loss changes nothing planned
    # The comparison can tell: some losses the rule keeps do change the plan.
    assert sim.marked_changed > 0


def test_a_lost_neighbour_skip_keeps_the_swarm_figures() -> None:
    """The same scenario with every loss deciding (the simulator before the rule) and with the
    rule: the swarm's figures stay close (the runs' random draws part ways at the first
    skipped decision, so they are not identical)."""

    class _Always(Simulation):
        def _loss_matters(self, viewer: _Viewer, nb: _Neighbour) -> bool:
            return True

    before = _Always(SWARM, per_peer=False)
    after = Simulation(SWARM, per_peer=False)
    a, b = before.run(), after.run()
    assert after.decisions < before.decisions
    assert abs(a.offload_ratio - b.offload_ratio) < 0.01
    assert abs(a.cdn_fetches - b.cdn_fetches) <= 0.05 * a.cdn_fetches
    assert b.stall_count == a.stall_count == 0


class _CompletionChecked(Simulation):
    """At each completion the rule lets pass without a decision, plans the viewer's decision
    now and records whether it would act (anything but a wait)."""

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(scenario, per_peer=False)
        self.skipped = 0
        self.skipped_acting = 0
        self.marked = 0
        self.marked_acting = 0

    def _completion_matters(self, viewer: _Viewer, flow: _Flow, playing: bool) -> bool:
        matters = super()._completion_matters(viewer, flow, playing)
        if viewer.wake_tick == self.tick + 1 or not viewer.wants:
            return matters  # it decides in this tick anyway, or has nothing left to fetch
        plan = _plan(self, viewer)
        acts = plan is not None and any(not isinstance(a, Wait) for a in plan.actions)
        if matters:
            self.marked += 1
            self.marked_acting += acts
        else:
            self.skipped += 1
            self.skipped_acting += acts
        return matters


def test_a_completion_skips_only_decisions_that_would_not_act() -> None:
    sim = _CompletionChecked(SWARM)
    sim.run()
    assert sim.skipped > 50  # the rule does skip
    assert sim.skipped_acting == 0  # ... only decisions that would act on nothing
    assert sim.marked_acting > 0  # the check can tell: some completions it keeps do act


def test_a_completion_skip_keeps_every_figure() -> None:
    """With every completion deciding (the rule before) and with the rule: a skipped decision
    would only have waited and draws no random number, so the runs are the same."""

    class _Always(Simulation):
        def _completion_matters(self, viewer: _Viewer, flow: _Flow, playing: bool) -> bool:
            return not self.sc.live or bool(viewer.wants)

    before = _Always(SWARM, per_peer=False)
    after = Simulation(SWARM, per_peer=False)
    a, b = before.run().summary(), after.run().summary()
    assert after.decisions < before.decisions
    assert a.pop("decisions") > b.pop("decisions")
    assert a == b
