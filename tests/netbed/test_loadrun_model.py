"""The bed load test's pure parts: the NAT mix, the per-link split of RTT/jitter/loss, and the
report built from agent summaries."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from peer_agent.loadtest.cli import main as loadtest_main
from peer_agent.netbed.bed import PUB_ADDRESS
from peer_agent.netbed.loadrun import (
    NetworkProfile,
    ban_kind,
    load_profile,
    path_type,
    request_kinds,
    summarise,
)


def test_nat_mix_is_split_by_largest_remainder() -> None:
    profile = NetworkProfile(nat_mix={"cone": 0.6, "symmetric": 0.3, "none": 0.1})
    kinds = profile.kinds(20, random.Random(1))
    assert (kinds.count("cone"), kinds.count("symmetric"), kinds.count("none")) == (12, 6, 2)
    odd = profile.kinds(7, random.Random(1))
    assert len(odd) == 7 and odd.count("cone") == 4


def test_link_split_adds_up_to_the_peer_to_peer_figures() -> None:
    spec = NetworkProfile(rtt_ms=80, jitter_ms=10, loss=0.03, uplink_kbit=4000).spec("cone")
    # a round trip between two peers crosses four one-way legs
    assert 2 * (spec.up.delay_ms + spec.down.delay_ms) == 80
    assert 2 * (spec.up.jitter_ms + spec.down.jitter_ms) == 10
    # one way between two peers: the sender's uplink, then the receiver's downlink
    assert math.isclose(1 - (1 - spec.up.loss) * (1 - spec.down.loss), 0.03)
    assert spec.up.rate_kbit == 4000


@pytest.mark.parametrize(
    "kwargs",
    [{"nat_mix": {"full-cone": 1.0}}, {"nat_mix": {"cone": 0.0}}, {"loss": 1.0}, {"rtt_ms": -1}],
)
def test_bad_profiles_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        NetworkProfile(**kwargs)  # type: ignore[arg-type]


def test_path_types() -> None:
    assert path_type("host", "host") == "host"
    assert path_type("host", "srflx") == "srflx"
    assert path_type("host", "prflx") == "srflx"
    assert path_type("relay", "prflx") == "relay"
    assert path_type("host", "relay") == "relay"
    assert path_type(None, None) == "unknown"


def test_summary_of_agent_records() -> None:
    agent = {
        "bytes_cdn": 100,
        "bytes_p2p": 300,
        "stall_count": 1,
        "stall_s": 0.5,
        "hash_failures": 0,
        "segments_played": 10,
        "startup_s": 1.0,
        "integrity": "sha256",
        "unverifiable": 0,
        "peers_banned": ["x"],
        "peer_requests": {"outcomes": {"completed": 3, "cancel:stalled": 1}},
        "link_paths": [
            {"local": "relay", "remote": "srflx", "setup_s": 0.8},
            {"local": "host", "remote": "srflx", "setup_s": 0.4},
        ],
    }
    out = summarise([agent, dict(agent, link_paths=[]), {"error": "timed out"}])
    assert out["agents"] == 3 and out["agents_failed"] == 1
    assert out["offload"] == 0.75
    assert out["stall_count"] == 2
    assert out["links"]["relay"]["count"] == 1 and out["links"]["srflx"]["setup_s_p50"] == 0.4
    assert out["corrupt_played"] == 0 and out["peers_banned"] == 2
    assert out["peer_requests"] == {"cancel:stalled": 2, "completed": 6}
    assert out["cdn_fetches_steady"] == 0 and "cdn_fetches_by_reason" not in out
    # an agent without the manifest: whether a corrupt segment played cannot be told
    size_only = summarise([agent, dict(agent, integrity="size-only")])
    assert size_only["corrupt_played"] is None


def test_bans_counted_by_rule_and_kind_of_subject() -> None:
    """Every agent of the bed is honest: each ban is an honest peer banned, counted by the rule
    and the kind of subject that tipped it (the bed's TURN relay address told apart)."""
    base = {"bytes_cdn": 1, "bytes_p2p": 1, "stall_count": 0, "stall_s": 0.0}
    base |= {"hash_failures": 0, "segments_played": 1, "startup_s": None}
    a = dict(
        base,
        peers_banned=["p", "q"],
        ban_reasons={
            "p": f"penalty points: stall (addr:{PUB_ADDRESS} 6.1)",
            "q": "penalty points: abandoned (id:q 6.0)",
        },
        refusals=2,
        offences={"stall": 3, "abandoned": 2},
    )
    b = dict(
        base,
        peers_banned=["r"],
        ban_reasons={"r": "penalty points: stall (addr:10.241.5.2 6.4)"},
        refusals=1,
        offences={"stall": 1},
    )
    old_tree = dict(base, peers_banned=["s"])  # a checkout that does not report reasons
    out = summarise([a, b, old_tree])
    assert out["peers_banned"] == 4
    assert out["peers_banned_by_reason"] == {
        "penalty points: abandoned (id)": 1,
        "penalty points: stall (addr)": 1,
        "penalty points: stall (addr:turn)": 1,
    }
    assert out["refusals"] == 3 and out["offences"] == {"abandoned": 2, "stall": 4}
    assert ban_kind("integrity failure") == "integrity failure"
    assert ban_kind("repeated integrity failures (cert:sha-256 AB)") == (
        "repeated integrity failures (cert)"
    )


def test_request_kinds_from_timelines_or_summaries() -> None:
    timeline = [
        {"reason": "cut_through", "outcome": "cancel:stalled", "bytes": 0},
        {"reason": "cut_through", "outcome": "cancel:stalled", "bytes": 5000},
        {"reason": "have", "outcome": "completed", "bytes": 9000},
        {"reason": "have", "outcome": "open", "bytes": 0},  # still running at the end
    ]
    counted = {"peer_requests": {"outcomes_by_reason": {"have completed": 2}}}
    kinds = request_kinds([{"request_timeline": timeline}, counted, {"peer_requests": {}}])
    assert kinds == {
        "cut_through cancel:stalled": 1,
        "cut_through cancel:stalled no_byte": 1,
        "have completed": 3,
    }
    agent = {
        "bytes_cdn": 1,
        "bytes_p2p": 1,
        "stall_count": 0,
        "stall_s": 0.0,
        "hash_failures": 0,
        "segments_played": 1,
        "startup_s": None,
        "cdn_fetches_join_ramp": 4,
        "cdn_fetches_steady": 3,
        "cdn_resumes": 1,
        "cdn_fetches_by_reason": {"elected": 5, "urgent_resume": 1, "urgent": 1},
        "peer_requests": {"outcomes_by_reason": {"have completed": 2}},
    }
    out = summarise([agent, agent])
    assert out["cdn_fetches_join_ramp"] == 8 and out["cdn_resumes"] == 2
    assert out["cdn_fetches_by_reason"] == {"elected": 10, "urgent": 2, "urgent_resume": 2}
    assert out["peer_requests_by_reason"] == {"have completed": 4}


def test_profile_file(tmp_path: Path) -> None:
    good = tmp_path / "net.toml"
    good.write_text(
        "[network]\nnat_mix = { cone = 1.0 }\nrtt_ms = 200.0\nloss = 0.03\n"
        "per_kind_kbit = { cone = [1000, 8000] }\n"
    )
    profile = load_profile(str(good))
    assert profile.rtt_ms == 200 and profile.per_kind_kbit == {"cone": (1000, 8000)}
    assert profile.spec("cone").up.rate_kbit == 1000
    bad = tmp_path / "bad.toml"
    bad.write_text("[network]\nrtt = 5\n")
    with pytest.raises(ValueError, match="unknown"):
        load_profile(str(bad))
    empty = tmp_path / "empty.toml"
    empty.write_text("[scenario]\npeers = 2\n")
    with pytest.raises(ValueError, match="no \\[network\\]"):
        load_profile(str(empty))


def test_loadtest_cli_refuses_a_bad_profile(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[network]\nloss = 2.0\n")
    assert loadtest_main(["--network-profile", str(bad), "--no-plots"]) == 2


def test_bench_rows_judge_the_issue_targets() -> None:
    from bench.netbed_bench import row, section

    def run(offload: float, stalls: int) -> dict[str, object]:
        return {
            "offload": offload,
            "stall_count": stalls,
            "stall_s": 0.5 * stalls,
            "hash_failures": 0,
            "agents_failed": 0,
            "corrupt_played": 0,
            "peers_banned": 0,
            "bytes_p2p": 10,
            "links": {"relay": {"count": 1}, "srflx": {"count": 3}},
            "peer_requests": {"completed": 5},
        }

    report = {
        "plan": {"agents": 20},
        "offload_target": 0.855,
        "baseline": run(0.0, 1),
        "p2p": run(0.9, 1),
        "p2p_loopback_timeouts": dict(run(0.5, 3), turn_share_of_p2p=0.2),
        "turn_share_of_p2p": 0.1,
    }
    good = row("a", report)
    assert good["targets_met"] == "yes" and good["relay_links_share"] == 0.25
    assert row("b", dict(report, p2p=run(0.9, 2)))["targets_met"] == "no"  # more stalls
    assert row("c", dict(report, p2p=run(0.8, 0)))["targets_met"] == "no"  # offload short
    text = section([("a", report), ("b", report)], "cmd")
    assert "| a | round-trip aware | 0.9 | 1 (0.5 s) |" in text
    assert "| a | loopback-tuned | 0.5 | 3 (1.5 s) | 0 | 0 | 0.2 |" in text
    assert "Offload falls from 0.9 to 0.9" in text
    assert "CDN segment fetches" in text and "| a | round-trip aware | 4 |" not in text
    counted = dict(
        report,
        p2p=dict(
            run(0.9, 1),
            cdn_fetches_join_ramp=4,
            cdn_fetches_steady=2,
            cdn_resumes=1,
            cdn_stall_cancels=2,
            cdn_fetches_by_reason={"assigned": 5, "urgent_resume": 1},
        ),
    )
    text = section([("a", counted)], "cmd")
    assert "| join_ramp | steady | resumes | restarts | reason:assigned |" in text
    assert "| a | round-trip aware | 4 | 2 | 1 | 2 | 5 | 1 |" in text


def test_compare_tree_must_be_a_checkout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--compare-tree`` runs agents from another checkout: a directory without the project is
    refused before any bed is built (no root needed to get this far)."""
    from peer_agent.netbed.loadrun import main as loadrun_main

    assert loadrun_main(["--compare-tree", str(tmp_path)]) == 2
    assert "no peer_agent/" in capsys.readouterr().err
