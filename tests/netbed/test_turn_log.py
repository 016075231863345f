"""coturn's usage log lines -> :class:`peer_agent.netbed.turn.TurnUsage` (pure; lines as coturn
4.6 writes them with ``simple-log``)."""

from __future__ import annotations

from peer_agent.netbed.turn import parse_usage

REALM = "realm=<p2p-hls.bed>, username=<1796183240:p2p>"
LOG = "\n".join(
    [
        f"28: : session 000000000000000030: new, {REALM}, lifetime=600",
        f"28: : session 000000000000000031: new, {REALM}, lifetime=600",
        f"28: : session 000000000000000035: new, {REALM}, lifetime=600",
        f"29: : session 000000000000000035: refreshed, {REALM}, lifetime=0",
        f"30: : session 000000000000000035: usage: {REALM}, rp=3, rb=276, sp=3, sb=300",
        f"30: : session 000000000000000035: peer usage: {REALM}, rp=0, rb=0, sp=0, sb=0",
        f"30: : session 000000000000000030: usage: {REALM}, rp=25, rb=2918, sp=21, sb=2409",
        f"30: : session 000000000000000030: peer usage: {REALM}, rp=16, rb=1913, sp=19, sb=2182",
        "30: : session 000000000000000030: closed (2nd stage), reason: allocation timeout",
    ]
)


def test_usage_sums_client_and_peer_bytes_of_closed_sessions() -> None:
    usage = parse_usage(LOG)
    assert usage.client_bytes == 276 + 300 + 2918 + 2409
    assert usage.peer_bytes == 1913 + 2182
    assert usage.closed_sessions == 2
    assert usage.open_sessions == 1  # session 31 never logged its usage


def test_empty_log_has_no_usage() -> None:
    usage = parse_usage("")
    assert (usage.client_bytes, usage.peer_bytes, usage.closed_sessions) == (0, 0, 0)
    assert usage.open_sessions == 0
