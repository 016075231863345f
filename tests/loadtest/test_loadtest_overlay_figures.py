"""The load test's overlay and load figures (pure: samples and rows in, figures out): the
neighbours each agent held after joining, the connection churn behind them, the workers'
event-loop lag and CPU wait (docs/loadtest.md), and the slot-filling switches."""

from __future__ import annotations

import pytest

from peer_agent.loadtest.config import LoadTestConfig
from peer_agent.loadtest.plan import AgentSpec, Kind, Leave
from peer_agent.loadtest.results import loop_lag_figures, overlay_figures
from peer_agent.loadtest.worker import WorkerJob, agent_config, neighbour_figures
from peer_agent.sim.scenario import Scenario


def test_neighbour_figures_count_from_ten_seconds_after_the_join() -> None:
    samples = [(1.0, 2), (3.0, 5), (9.0, 8), (10.5, 6), (12.0, 7), (20.0, 4)]
    figures = neighbour_figures(samples)
    assert figures == {
        "neighbours_at_10s": 6,
        "neighbours_held_median": 6,
        "neighbours_held_min": 4,
        "neighbours_held_max": 8,
        "neighbours_5_after_s": 3.0,
    }


def test_neighbour_figures_of_an_agent_that_left_early_are_none() -> None:
    figures = neighbour_figures([(1.0, 1), (2.0, 3)])
    assert figures["neighbours_at_10s"] is None and figures["neighbours_held_median"] is None
    assert figures["neighbours_held_max"] == 3 and figures["neighbours_5_after_s"] is None
    assert neighbour_figures([])["neighbours_held_max"] is None


def test_overlay_figures_keep_an_agent_that_held_nobody() -> None:
    rows = [
        {"neighbours_held_median": 0, "link_paths": [], "tracker_offers_sent": 3, "links_split": 0},
        {"neighbours_held_median": 7.5, "link_paths": [{}] * 9, "tracker_offers_sent": 9},
        {
            "neighbours_held_median": None,
            "link_paths": [{}],
            "links_split": 2,
            "links_drain_forced": 1,
        },
    ]
    figures = overlay_figures(rows)
    assert figures["neighbours_held_min_agent"] == 0.0  # a 0 is a figure, not a missing one
    assert figures["neighbours_held_median"] == 3.75
    assert figures["links_opened_per_agent"] == round(10 / 3, 2)
    assert figures["offers_sent_per_agent"] == 4.0
    assert figures["links_split"] == 2
    assert figures["links_drain_forced"] == 1


def test_loop_lag_figures_take_the_worst_worker() -> None:
    workers = [
        {"loop_lag_ms_p50": 2.0, "loop_lag_ms_p99": 40.0, "run_queue_wait_s": 6.0, "wall_s": 60},
        {"loop_lag_ms_p50": 5.0, "loop_lag_ms_p99": 30.0, "run_queue_wait_s": 30.0, "wall_s": 60},
        {"cpu_s": None, "wall_s": None},  # a worker that never reported
    ]
    assert loop_lag_figures(workers) == {
        "worker_run_queue_wait_share": 0.5,
        "worker_loop_lag_ms_p50": 5.0,
        "worker_loop_lag_ms_p99": 40.0,
    }
    assert loop_lag_figures([])["worker_loop_lag_ms_p99"] is None


@pytest.mark.parametrize(
    ("refill", "make_room", "split_drain_s"), [(True, True, 5.0), (False, False, 0.0)]
)
def test_slot_filling_switches_reach_the_agents_swarm(
    refill: bool, make_room: bool, split_drain_s: float
) -> None:
    config = LoadTestConfig(refill=refill, make_room=make_room)
    spec = AgentSpec(
        index=0, slot=0, generation=0, kind=Kind.NORMAL, start_s=0.0, stop_s=10.0,
        leave=Leave.END, seed=1, worker=0,
    )  # fmt: skip
    job = WorkerJob(0, (spec,), "http://127.0.0.1:1/m.m3u8", "ws://127.0.0.1:1", 0.0,
                    Scenario(split_drain_s=split_drain_s), config)  # fmt: skip
    swarm = agent_config(job, spec).swarm
    assert swarm is not None
    assert (swarm.refill is not None) is refill and swarm.make_room is make_room
    assert swarm.split_drain_s == split_drain_s
    with pytest.raises(ValueError, match="split_drain_s"):
        Scenario(split_drain_s=-1.0)
