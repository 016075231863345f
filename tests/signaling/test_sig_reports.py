"""Reports of misbehaving peers (docs/signaling.md, "Reports"): only independent reporters (by
address) stop the pairing of a peer; colluders below the threshold, or one reporter with many
identities, cannot get an honest peer removed; what reports cost is bounded."""

from __future__ import annotations

import pytest

from signaling.reports import ReportLimits, Reports
from tests.signaling.sig_support import RunningServer, connect, pid

SWARM = pid("reports-swarm")


def test_one_address_never_suffices_and_three_independent_ones_do() -> None:
    reports = Reports()
    for n in range(10):  # one reporter address, many identities
        assert not reports.report(0.0, SWARM, "10.0.0.1", "honest", f"conn-{n}")
    assert reports.blocked(1.0, SWARM) == set()
    assert not reports.report(1.0, SWARM, "10.0.0.2", "honest", "c")
    assert reports.report(2.0, SWARM, "10.0.0.3", "honest", "c")
    assert reports.blocked(2.0, SWARM) == {"honest", "c"}
    assert reports.blocked(602.0, SWARM) == set()  # block_s over


def test_reports_expire_and_are_bounded_per_reporter() -> None:
    limits = ReportLimits(max_reports_per_address=2, report_ttl_s=10.0)
    reports = Reports(limits)
    assert not reports.report(0.0, SWARM, "a", "x", "cx")
    assert not reports.report(0.0, SWARM, "b", "x", "cx")
    assert not reports.report(11.0, SWARM, "c", "x", "cx")  # a and b expired
    # Address "d" reports three peers: its first report is dropped.
    for peer in ("p1", "p2", "p3"):
        reports.report(20.0, SWARM, "d", peer, "c" + peer)
    assert not reports.report(20.0, SWARM, "e", "p1", "cp1")
    assert not reports.report(20.0, SWARM, "f", "p1", "cp1")  # d's report on p1 is gone
    with pytest.raises(ValueError):
        ReportLimits(threshold_addresses=1)


async def _member(server: RunningServer, name: str, address: str):  # type: ignore[no-untyped-def]
    client = await connect(server.url, name, local_addr=(address, 0))
    reply = await client.announce(SWARM)
    assert "interval" in reply, reply
    return client


async def test_collusion_two_of_five_cannot_remove_an_honest_peer(server: RunningServer) -> None:
    """Five members on five addresses; two falsely report the honest one: it is still paired.
    A third independent report stops its pairing."""
    honest = await _member(server, "honest", "127.0.0.2")
    others = [await _member(server, f"m{i}", f"127.0.0.{3 + i}") for i in range(4)]
    try:
        for liar in others[:2]:
            await liar.send(
                {
                    "action": "report",
                    "info_hash": SWARM,
                    "peer_id": liar.peer_id,
                    "reported_peer_id": honest.peer_id,
                    "reason": "hash_failure",
                }
            )
        # A new offer from another member can still reach the honest peer.
        asker = others[3]
        for _ in range(8):
            await asker.announce(SWARM, offers=4)
        offer = await honest.next_offer()
        assert offer["peer_id"] == asker.peer_id
        await others[2].send(
            {
                "action": "report",
                "info_hash": SWARM,
                "peer_id": others[2].peer_id,
                "reported_peer_id": honest.peer_id,
                "reason": "lies",
            }
        )
        await others[2].announce(SWARM)  # the report is handled before this reply
        with pytest.raises(TimeoutError):  # drain the offers made before
            while True:
                await honest.recv(timeout_s=0.5)
        honest.inbox.clear()
        for _ in range(8):
            await asker.announce(SWARM, offers=4)
        with pytest.raises(TimeoutError):
            await honest.next_offer(timeout_s=1.0)
    finally:
        for client in (honest, *others):
            await client.close()
