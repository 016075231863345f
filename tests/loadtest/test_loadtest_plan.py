"""The load-test plan and config: pure, no processes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from peer_agent.loadtest import Kind, Leave, LoadTestConfig, load_files, plan_agents
from peer_agent.loadtest.config import scheduler_for
from peer_agent.loadtest.plan import deal_kinds
from peer_agent.sim.scenario import Scenario


def test_kinds_are_dealt_by_count_and_the_first_viewer_is_normal() -> None:
    cfg = LoadTestConfig(malicious_fraction=0.2, slow_fraction=0.1)
    kinds = deal_kinds(20, cfg, 0.25, random.Random(4))
    assert kinds.count(Kind.MALICIOUS) == 4
    assert kinds.count(Kind.SLOW) == 2
    assert kinds.count(Kind.LEECH) == 5
    assert kinds.count(Kind.NORMAL) == 9
    assert kinds[0] is Kind.NORMAL


def test_plan_without_churn_is_one_agent_per_slot_over_the_ramp() -> None:
    sc = Scenario(peers=5, duration_s=60.0, join_over_s=10.0)
    specs = plan_agents(sc, LoadTestConfig(), workers=2)
    assert [s.start_s for s in specs] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert all(s.stop_s == 60.0 and s.leave is Leave.END for s in specs)
    assert [s.worker for s in specs] == [0, 1, 0, 1, 0]
    assert plan_agents(sc, LoadTestConfig(), workers=2) == specs  # deterministic


def test_churn_replaces_leavers_at_about_the_rate_asked() -> None:
    sc = Scenario(peers=20, duration_s=600.0, churn_per_min=0.3, seed=7)
    specs = plan_agents(sc, LoadTestConfig(malicious_fraction=0.2), workers=2)
    leaves = [s for s in specs if s.leave is not Leave.END]
    # 20 viewers x 10 minutes x 0.3 per minute = 60 leaves expected.
    assert 40 <= len(leaves) <= 80
    assert all(s.leave is Leave.ABRUPT for s in leaves)
    for slot in range(20):
        mine = sorted((s for s in specs if s.slot == slot), key=lambda s: s.generation)
        assert mine[-1].leave is Leave.END and mine[-1].stop_s == 600.0
        assert len({s.kind for s in mine}) == 1  # replacements keep the slot's kind
        assert len({s.worker for s in mine}) == 1
        for a, b in zip(mine, mine[1:], strict=False):
            assert b.start_s == a.stop_s and a.duration_s >= 1.0
    assert len({s.seed for s in specs}) == len(specs)


def test_graceful_leaves_when_abrupt_fraction_is_zero() -> None:
    sc = Scenario(peers=10, duration_s=300.0, churn_per_min=0.5)
    specs = plan_agents(sc, LoadTestConfig(abrupt_fraction=0.0), workers=1)
    assert {s.leave for s in specs} == {Leave.GRACEFUL, Leave.END}


@pytest.mark.parametrize(
    "kw",
    [
        {"workers": 0},
        {"malicious_fraction": 1.5},
        {"slow_fraction": 0.6, "malicious_fraction": 0.6},
        {"container": "mkv"},
        {"max_peers": 0},
    ],
)
def test_bad_loadtest_config_is_rejected(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LoadTestConfig(**kw)  # type: ignore[arg-type]


def test_scenario_file_has_both_tables(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        "[scenario]\npeers = 7\nsegment_s = 2.0\n\n"
        "[loadtest]\nworkers = 3\nmalicious_fraction = 0.1\n"
    )
    scenario, config = load_files(path)
    assert scenario.peers == 7 and scenario.segment_s == 2.0
    assert config.workers == 3 and config.malicious_fraction == 0.1
    path.write_text("[scenario]\npeers = 7\n[loadtest]\nwrokers = 3\n")
    with pytest.raises(ValueError, match="wrokers"):
        load_files(path)
    path.write_text("[scenario]\npeers = 7\n[other]\nx = 1\n")
    with pytest.raises(ValueError, match="other"):
        load_files(path)


def test_scheduler_margins_scale_down_for_short_segments() -> None:
    assert scheduler_for(Scenario(segment_s=4.0)).deadline_margin_s == 1.0
    short = scheduler_for(Scenario(segment_s=1.0))
    assert short.deadline_margin_s == 0.5 and short.min_urgent_window_s == 1.0
