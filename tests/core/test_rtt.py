"""Round trips to peers: the estimator, and the exchange measuring REQUEST -> RESPONSE for the
scheduler's view (docs/scheduling.md, "rtt(peer)")."""

from __future__ import annotations

import pytest

from peer_agent.core import events as ev
from peer_agent.core.exchange import SegmentExchange
from peer_agent.core.exchange_actions import SegmentEntry
from peer_agent.core.ids import SegmentId
from peer_agent.core.scheduler import FetchFromPeer
from peer_agent.core.throughput import RttEstimator


def test_rtt_is_the_smallest_of_the_last_samples() -> None:
    rtt = RttEstimator(window=3)
    assert rtt.rtt_s is None
    for sample in (0.5, 0.2, 0.9):
        rtt.add_sample(sample)
    assert rtt.rtt_s == 0.2
    rtt.add_sample(-1.0)  # ignored
    rtt.add_sample(0.4)  # 0.5 leaves the window
    rtt.add_sample(0.6)  # 0.2 leaves it
    assert rtt.rtt_s == 0.4
    with pytest.raises(ValueError):
        RttEstimator(window=0)


def _exchange_with_request(sent_at: float) -> tuple[SegmentExchange, SegmentId]:
    ex = SegmentExchange()
    segment = SegmentId(0, 1)
    ex.set_timeline([SegmentEntry(segment, 2.0, 2.0, 0.0)])
    hello = ev.HelloReceived(peer_id=b"p" * 20, flags=0, have=(segment,), fetching=())
    ex.on_peer_event("L1", "alice", hello, 0.0)
    ex.apply([FetchFromPeer(segment, "alice", 0, "have")], sent_at)
    ex.request_sent("L1", segment, 7)
    return ex, segment


def test_exchange_measures_request_to_response_for_the_view() -> None:
    ex, segment = _exchange_with_request(sent_at=1.0)
    [peer] = ex.scheduler_view(1.0, 0.0).peers
    assert peer.rtt_s is None
    ex.on_peer_event("L1", "alice", ev.ResponseStarted(7, segment, 1000), 1.25)
    [peer] = ex.scheduler_view(1.3, 0.0).peers
    assert peer.rtt_s == pytest.approx(0.25)
    # a response for a request id we never sent teaches nothing
    ex.on_peer_event("L1", "alice", ev.ResponseStarted(99, segment, 1000), 9.0)
    assert ex.scheduler_view(9.0, 0.0).peers[0].rtt_s == pytest.approx(0.25)


def test_rtt_is_forgotten_with_the_peers_last_link() -> None:
    ex, segment = _exchange_with_request(sent_at=1.0)
    ex.on_peer_event("L1", "alice", ev.ResponseStarted(7, segment, 1000), 1.1)
    ex.on_peer_event("L1", "alice", ev.SessionClosed(code=0, reason="bye", by_remote=True), 2.0)
    assert "alice" not in ex.peer_rtts
