"""The CDN's tail: the fetch-time estimator, the exchange feeding it each finished CDN fetch's
excess over its bytes at the mean rate (the view's ``cdn_tail_s``), and the urgent window that
follows it (docs/scheduling.md, "The CDN's tail"); tests/js/cdn_tail.test.mjs checks the same
figures."""

from __future__ import annotations

import math

import pytest

from peer_agent.core.config import SchedulerConfig
from peer_agent.core.exchange import SegmentExchange
from peer_agent.core.exchange_actions import FetchCdn, SegmentEntry
from peer_agent.core.ids import SegmentId
from peer_agent.core.scheduler import (
    FetchFromCdn,
    SchedulerView,
    SegmentView,
    cdn_planned_s,
    cdn_time_s,
    urgent_window_s,
)
from peer_agent.core.throughput import FetchTimeEstimator


def test_tail_is_smoothed_duration_plus_four_deviations() -> None:
    est = FetchTimeEstimator()
    assert est.tail_s is None
    est.add_sample(0.4)  # smoothed 0.4, deviation 0.2
    assert est.tail_s == pytest.approx(1.2)
    est.add_sample(0.4)  # deviation 0.75 * 0.2 = 0.15
    assert est.tail_s == pytest.approx(1.0)
    est.add_sample(2.0)  # deviation 0.1125 + 0.25 * 1.6 = 0.5125; smoothed 0.35 + 0.25 = 0.6
    assert est.tail_s == pytest.approx(0.6 + 4 * 0.5125)
    est.add_sample(-1.0)  # a clock that went backwards: ignored
    est.add_sample(math.nan)
    assert est.tail_s == pytest.approx(2.65)
    with pytest.raises(ValueError):
        FetchTimeEstimator(gain=0.0)
    with pytest.raises(ValueError):
        FetchTimeEstimator(deviations=-1.0)


def _fetch(ex: SegmentExchange, segment: SegmentId, at: float, elapsed_s: float) -> None:
    ex.apply([FetchFromCdn(segment, 0, "elected")], at)
    fetches = []
    while (action := ex.next_action()) is not None:
        if isinstance(action, FetchCdn):
            fetches.append(action)
    [fetch] = fetches
    ex.cdn_data(fetch.fetch_id, 0, b"x" * 1000, at + elapsed_s / 2)
    ex.cdn_done(fetch.fetch_id, 1000, elapsed_s, at + elapsed_s)


def test_exchange_feeds_each_fetchs_excess_over_the_mean_rate_into_the_view() -> None:
    ex = SegmentExchange()
    segments = [SegmentId(0, n) for n in (1, 2)]
    ex.set_timeline([SegmentEntry(s, 2.0 * s.sequence, 2.0, 0.0) for s in segments])
    assert ex.scheduler_view(0.0, 0.0).cdn_tail_s is None  # only finished fetches count
    # the first fetch is the mean rate: no excess
    _fetch(ex, segments[0], 0.0, 0.4)
    assert ex.scheduler_view(0.5, 0.0).cdn_tail_s == pytest.approx(0.0)
    # a second, four times slower: its excess is what it took beyond 1,000 bytes at the new
    # mean rate
    _fetch(ex, segments[1], 1.0, 1.6)
    rate = ex.cdn_rate.estimate_bytes_per_s
    assert rate is not None and 1000 / 1.6 < rate < 1000 / 0.4
    expected = FetchTimeEstimator()
    expected.add_sample(0.0)
    expected.add_sample(1.6 - 1000 / rate)
    assert ex.scheduler_view(3.0, 0.0).cdn_tail_s == pytest.approx(expected.tail_s)
    assert expected.tail_s is not None and expected.tail_s > 0


def _view(tail_s: float | None) -> SchedulerView:
    seg = SegmentView(SegmentId(0, 10), 42.0, 2.0, 100_000, 90.0)
    return SchedulerView(
        now=100.0,
        self_id="peer-ddddddddddddddd",
        playhead_s=40.0,
        segments=[seg],
        cdn_throughput_bytes_per_s=1_000_000.0,
        cdn_tail_s=tail_s,
    )


def test_urgent_window_grows_by_the_tail_beyond_the_margin_only() -> None:
    cfg = SchedulerConfig()
    # mean rate: 0.1 + 100 kB / 1 MB/s = 0.2 s; window max(1.5, 1.2)
    assert cdn_time_s(100_000, _view(None), cfg) == pytest.approx(0.2)
    assert urgent_window_s(100_000, _view(None), cfg) == pytest.approx(1.5)
    # a tail within deadline_margin_s (1 s) changes nothing: the margin covers it
    assert cdn_time_s(100_000, _view(0.9), cfg) == pytest.approx(0.2)
    assert urgent_window_s(100_000, _view(1.0), cfg) == pytest.approx(1.5)
    # beyond it, the rest lengthens the planned fetch
    assert cdn_time_s(100_000, _view(1.9), cfg) == pytest.approx(1.1)
    assert urgent_window_s(100_000, _view(1.9), cfg) == pytest.approx(2.1)
    # rule 1's too-slow test compares with the usual fetch time: the tail for the latency
    assert cdn_planned_s(100_000, _view(0.5), cfg) == pytest.approx(0.6)
    assert cdn_planned_s(100_000, _view(0.05), cfg) == pytest.approx(0.2)
    assert cdn_planned_s(100_000, _view(None), cfg) == pytest.approx(0.2)
