"""Segment store bounded in bytes, and the throughput estimator."""

from __future__ import annotations

import pytest

from peer_agent.core.config import ThroughputConfig
from peer_agent.core.ids import SegmentId
from peer_agent.core.store import SegmentStore
from peer_agent.core.throughput import ThroughputEstimator


def seg(n: int) -> SegmentId:
    return SegmentId(0, n)


def test_store_evicts_oldest_first_and_reports_it() -> None:
    store = SegmentStore(max_bytes=10)
    assert store.put(seg(1), b"a" * 4) == []
    assert store.put(seg(2), b"b" * 4) == []
    assert store.put(seg(3), b"c" * 4) == [seg(1)]
    assert seg(1) not in store and store.get(seg(3)) == b"cccc"
    assert store.used_bytes == 8


def test_store_skips_pinned_segments_until_unpinned() -> None:
    store = SegmentStore(max_bytes=8)
    store.put(seg(1), b"a" * 4)
    store.pin(seg(1))
    store.put(seg(2), b"b" * 4)
    assert store.put(seg(3), b"c" * 4) == [seg(2)]
    assert seg(1) in store
    store.pin(seg(3))
    assert store.put(seg(4), b"d" * 2) == [seg(4)]  # all else pinned: the newcomer goes
    store.pin(seg(3))
    store.unpin(seg(3))  # pins count: still pinned once
    assert store.put(seg(5), b"e" * 2) == [seg(5)]
    store.unpin(seg(3))
    assert store.put(seg(6), b"f" * 2) == [seg(3)]
    assert store.used_bytes == 6


def test_store_replacing_a_segment_counts_bytes_once() -> None:
    store = SegmentStore(max_bytes=100)
    store.put(seg(1), b"a" * 10)
    store.put(seg(1), b"b" * 20)
    assert store.used_bytes == 20 and len(store) == 1
    assert store.discard(seg(1)) and not store.discard(seg(1))
    assert store.used_bytes == 0


def test_store_rejects_empty_segments() -> None:
    with pytest.raises(ValueError):
        SegmentStore(10).put(seg(1), b"")


def test_estimator_none_until_first_sample_then_exact_for_constant_rate() -> None:
    est = ThroughputEstimator()
    assert est.estimate_bytes_per_s is None
    est.add_sample(1_000_000, 1.0)
    assert est.estimate_bytes_per_s == pytest.approx(1_000_000)
    est.add_sample(500_000, 0.5)
    assert est.estimate_bytes_per_s == pytest.approx(1_000_000)


def test_estimator_follows_a_change_with_its_half_life() -> None:
    est = ThroughputEstimator(ThroughputConfig(half_life_s=1.0))
    for _ in range(20):
        est.add_sample(1_000_000, 1.0)
    est.add_sample(100_000, 1.0)  # one half-life at the new rate: halfway there
    assert est.estimate_bytes_per_s == pytest.approx(550_000, rel=1e-3)


def test_estimator_ignores_zero_duration_and_rejects_negative_bytes() -> None:
    est = ThroughputEstimator()
    est.add_sample(10, 0.0)
    assert est.estimate_bytes_per_s is None
    with pytest.raises(ValueError):
        est.add_sample(-1, 1.0)
