"""The bed load test's pure parts: the NAT mix, the per-link split of RTT/jitter/loss, and the
report built from agent summaries."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from peer_agent.loadtest.cli import main as loadtest_main
from peer_agent.netbed.loadrun import NetworkProfile, load_profile, path_type, summarise


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
