"""The bed itself, as root: NAT mapping/filtering per kind, delay and loss through the TUN
router, and cleanup (its own namespaces, and stale ones from a killed run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from peer_agent.netbed.bed import (
    PUB_ADDRESS,
    LinkShape,
    NetBed,
    PeerSpec,
    bed_namespaces,
    run_prefix,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("need_bed")]

PROBE = [sys.executable, "-m", "peer_agent.netbed.probe"]


@pytest.fixture
def bed() -> Iterator[NetBed]:
    # a stale bed of a process that has exited, and another bed's namespace (of this live
    # process's parent) that must be left alone
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale, other = run_prefix(dead.pid) + "pub", run_prefix(os.getppid()) + "pub"
    for name in (stale, other):
        subprocess.run(["ip", "netns", "add", name], check=True)
    specs = [
        PeerSpec("none"),
        PeerSpec("cone"),
        PeerSpec("symmetric"),
        PeerSpec("cone", up=LinkShape(delay_ms=40, loss=0.3), down=LinkShape(delay_ms=40)),
    ]
    try:
        with NetBed(specs, seed=7) as nb:
            assert stale not in bed_namespaces()
            assert other in bed_namespaces()
            assert nb.pub_ns.startswith(run_prefix())
            echo = nb.popen(
                nb.pub_ns,
                [*PROBE, "echo", PUB_ADDRESS, "5001", "5002", "5003", "--timeout-s", "120"],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
            yield nb
        assert bed_namespaces(run_prefix()) == []
        assert other in bed_namespaces()
    finally:
        subprocess.run(["ip", "netns", "del", other], check=False)


def test_nat_kinds_map_and_filter_as_documented(bed: NetBed) -> None:
    seen = {}
    for host in bed.hosts[:3]:
        out = bed.run(host.ns, [*PROBE, "map", PUB_ADDRESS, "5001", "5002", "--other", "5003"])
        seen[host.nat] = (host, json.loads(out))
    host, none = seen["none"]
    assert set(none["mapped"].values()) == {f"{host.address}:{_port(none, '5001')}"}
    assert none["other_reply"] is True  # no NAT: anyone may send
    host, cone = seen["cone"]
    assert len(set(cone["mapped"].values())) == 1  # endpoint-independent mapping
    assert cone["mapped"]["5001"].startswith(host.public_address + ":")
    assert cone["other_reply"] is False  # port-restricted filtering
    host, sym = seen["symmetric"]
    assert all(v.startswith(host.public_address + ":") for v in sym["mapped"].values())
    assert _port(sym, "5001") != _port(sym, "5002")  # endpoint-dependent mapping
    assert sym["other_reply"] is False


def test_tun_router_delays_and_drops(bed: NetBed) -> None:
    slow = bed.hosts[3]
    out = json.loads(bed.run(slow.ns, [*PROBE, "rtt", PUB_ADDRESS, "5001", "--count", "60"]))
    # 40 ms each way on the access link: no reply can come back sooner than 80 ms
    assert out["replies"] > 0 and out["min_rtt_s"] >= 0.08
    # 30 % loss on the uplink: some pings are lost (P(no loss in 60) ~ 5e-10)
    assert out["replies"] < 60
    fast = json.loads(
        bed.run(bed.hosts[1].ns, [*PROBE, "rtt", PUB_ADDRESS, "5001", "--count", "5"])
    )
    assert fast["replies"] == 5
    bed.close()
    stats = bed.impair_stats["nb3"]["up"]
    assert stats["dropped_loss"] > 0
    assert (
        stats["packets_in"] == stats["packets_out"] + stats["dropped_loss"] + stats["dropped_write"]
    )


def _port(result: dict[str, dict[str, str]], key: str) -> str:
    return result["mapped"][key].rsplit(":", 1)[1]
