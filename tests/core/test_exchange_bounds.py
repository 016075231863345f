"""The exchange's per-segment records stay bounded over a long live session
(docs/exchange.md section 3, "Bounds"): a scripted hour of a sliding live window."""

from __future__ import annotations

from peer_agent.core import events as ev
from peer_agent.core.exchange import SegmentExchange
from peer_agent.core.exchange_actions import (
    AnnounceLost,
    ExchangeConfig,
    FetchCdn,
    SegmentEntry,
    Verify,
)
from peer_agent.core.exchange_state import Verdict
from peer_agent.core.ids import SegmentId
from peer_agent.core.scheduler import FetchFromCdn
from peer_agent.core.wire import FetchingEntry

SEG_S = 2.0
WINDOW = 12


def _window(last: int) -> list[SegmentEntry]:
    first = max(0, last - WINDOW + 1)
    return [
        SegmentEntry(SegmentId(0, i), i * SEG_S, SEG_S, i * SEG_S) for i in range(first, last + 1)
    ]


def _hello(have: tuple[SegmentId, ...]) -> ev.HelloReceived:
    return ev.HelloReceived(peer_id=b"p" * 20, flags=0, have=have, fetching=())


def _drain(ex: SegmentExchange) -> list[object]:
    out = []
    while (a := ex.next_action()) is not None:
        out.append(a)
    return out


def _fetch_and_verify(ex: SegmentExchange, segment: SegmentId, now: float) -> None:
    ex.apply([FetchFromCdn(segment, 0, "urgent")], now)
    fetch = next(a for a in _drain(ex) if isinstance(a, FetchCdn))
    data = bytes([segment.sequence % 251]) * 1000
    ex.cdn_data(fetch.fetch_id, 0, data, now)
    ex.cdn_done(fetch.fetch_id, len(data), 0.1, now)
    assert any(isinstance(a, Verify) for a in _drain(ex))
    ex.verdict(segment, Verdict.OK, now)


def test_an_hour_of_live_keeps_records_to_the_window_and_margin() -> None:
    cfg = ExchangeConfig(retain_behind_s=30.0)
    ex = SegmentExchange(cfg)
    ex.on_peer_event("L1", "alice", _hello(()), 0.0)
    lost: list[SegmentId] = []
    bound = WINDOW + int(cfg.retain_behind_s / SEG_S) + 2
    for last in range(1800):  # one hour of 2-second segments
        now = last * SEG_S
        ex.set_timeline(_window(last))
        segment = SegmentId(0, last)
        # a neighbour announces what it has and fetches (another rendition too): pruned alike
        ex.on_peer_event("L1", "alice", ev.PeerHave((segment, SegmentId(1, last))), now)
        ex.on_peer_event(
            "L1", "alice", ev.PeerFetching((FetchingEntry(SegmentId(1, last + 1), 900),)), now
        )
        _fetch_and_verify(ex, segment, now)
        playhead_s = max(0.0, now - 3 * SEG_S)
        ex.forget_before(playhead_s, now)
        lost += [s for a in _drain(ex) if isinstance(a, AnnounceLost) for s in a.segments]
        assert len(ex.store) <= bound
        assert len(ex.sizes) <= 2 * bound
        assert len(ex.verified) <= bound
        nb = ex.neighbours["alice"]
        assert len(nb.have) <= 2 * bound and len(nb.fetching) <= 2
    assert ex.verified_count == 1800
    assert lost == sorted(lost) and len(lost) == 1800 - len(ex.store)
    assert ex.verified_forgotten == 1800 - len(ex.verified)


def test_a_pinned_segment_stays_until_its_upload_ends() -> None:
    # a slow upload cap keeps the upload (and the store's pin) open
    cfg = ExchangeConfig(retain_behind_s=0.0, upload_cap_bytes_per_s=100.0, upload_burst_bytes=100)
    ex = SegmentExchange(cfg)
    ex.set_timeline(_window(3))
    ex.on_peer_event("L1", "bob", _hello(()), 0.0)
    old = SegmentId(0, 0)
    _fetch_and_verify(ex, old, 0.0)
    _drain(ex)
    ex.on_peer_event("L1", "bob", ev.SegmentRequested(request_id=1, segment=old, offset=0), 0.1)
    assert ex.store.is_pinned(old)
    ex.forget_before(100.0, 1.0)  # everything is behind: only the pinned copy survives
    assert old in ex.store and not any(isinstance(a, AnnounceLost) for a in _drain(ex))
    ex.on_peer_event("L1", "bob", ev.RequestCancelled(request_id=1), 0.2)
    ex.forget_before(100.0, 1.0)
    assert old not in ex.store
    assert [a for a in _drain(ex) if isinstance(a, AnnounceLost)] == [AnnounceLost((old,))]


def test_no_timeline_prunes_nothing() -> None:
    ex = SegmentExchange()
    ex.on_peer_event("L1", "c", _hello((SegmentId(0, 1),)), 0.0)
    ex.forget_before(1e6, 0.0)
    assert ex.neighbours["c"].have == {SegmentId(0, 1)}
