"""The simulator drives the core unchanged; loose sanity checks of its figures.

The figures themselves (offload, CDN fetches per segment, CPU) are benchmark output of
`make bench`; these tests only check that the model behaves like a swarm at all.
"""

from __future__ import annotations

import json

import pytest

from peer_agent.sim.cli import main
from peer_agent.sim.engine import simulate
from peer_agent.sim.scenario import Scenario, load_scenario

ISSUE_SCENARIO = Scenario(
    peers=10, live=True, segment_s=4.0, duration_s=300.0, join_over_s=20.0, latency_segments=3
)


def test_live_swarm_offloads_most_bytes_without_stalls() -> None:
    r = simulate(ISSUE_SCENARIO)
    assert r.stall_count == 0
    assert r.offload_ratio > 0.8  # ceiling (N-1)/N = 0.9; `make bench` reports the figure
    assert r.cdn_fetches_per_segment < 1.5
    assert r.latency_s_median is not None and r.latency_s_median < 4 * 4.0


def test_baseline_fetches_every_segment_once_per_viewer() -> None:
    r = simulate(ISSUE_SCENARIO.with_overrides(p2p=False))
    assert r.offload_ratio == 0.0 and r.bytes_p2p == 0
    assert r.cdn_fetches_per_segment == 10
    assert r.stall_count == 0


def test_same_seed_same_result_other_seed_other_result() -> None:
    short = ISSUE_SCENARIO.with_overrides(duration_s=60.0)
    a, b = simulate(short).summary(), simulate(short).summary()
    assert a == b
    c = simulate(short.with_overrides(seed=2)).summary()
    assert c != a


def test_vod_swarm_shares_too() -> None:
    r = simulate(ISSUE_SCENARIO.with_overrides(live=False, duration_s=120.0))
    assert r.stall_count == 0
    assert r.offload_ratio > 0.5
    assert r.latency_s_median is None  # no live edge to lag behind


def test_leech_only_viewers_upload_nothing() -> None:
    r = simulate(ISSUE_SCENARIO.with_overrides(duration_s=60.0, leech_fraction=0.5, seed=3))
    rows = r.by_peer
    assert any(row["bytes_up"] == 0 for row in rows)
    assert sum(int(row["bytes_up"] or 0) for row in rows) == pytest.approx(r.bytes_p2p, rel=1e-6)


def test_churn_replaces_leavers_and_keeps_playing() -> None:
    r = simulate(ISSUE_SCENARIO.with_overrides(duration_s=120.0, churn_per_min=0.5, seed=4))
    assert r.viewers_total > 10
    assert r.stall_count == 0
    assert r.offload_ratio > 0.5


def test_scenario_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Scenario(peers=0)
    with pytest.raises(ValueError):
        Scenario(churn_per_min=2.0)
    with pytest.raises(ValueError, match="unknown scenario keys: bogus"):
        Scenario().with_overrides(bogus=1)


def test_scenario_file(tmp_path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("[scenario]\npeers = 3\nlive = false\nsegment_s = 2.0\n")
    sc = load_scenario(path)
    assert (sc.peers, sc.live, sc.segment_s) == (3, False, 2.0)


def test_cli_json_has_the_documented_keys(capsys) -> None:
    assert main(["--peers", "3", "--duration-s", "30", "--join-over-s", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in (
        "offload_ratio",
        "cdn_fetches_per_segment",
        "stall_count",
        "stall_s",
        "startup_s_median",
        "latency_s_median",
        "peers",
        "cpu_s",
    ):
        assert key in out
    assert out["peers"] == 3


def test_cli_rejects_bad_flags(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--peers", "0"])
    assert exc.value.code == 2
    assert "peers must be >= 1" in capsys.readouterr().err
