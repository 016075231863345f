"""The TUN router's per-direction model (pure): delay, jitter without reordering, loss, queue."""

from __future__ import annotations

import random

import pytest

from peer_agent.netbed.impair import DirectionModel, Impairment


def test_fixed_delay_and_order() -> None:
    model = DirectionModel(Impairment(delay_s=0.05), random.Random(1))
    assert model.admit(1.0, b"a") and model.admit(1.01, b"b")
    assert model.next_due_s() == pytest.approx(1.05)
    assert model.due(1.049) == []
    assert model.due(1.05) == [b"a"]
    assert model.due(2.0) == [b"b"]
    assert model.next_due_s() is None


def test_jitter_never_reorders_and_stays_in_bounds() -> None:
    model = DirectionModel(Impairment(delay_s=0.08, jitter_s=0.01), random.Random(2))
    for i in range(500):
        model.admit(i * 0.001, i.to_bytes(2, "big"))
    dues = [due for due, _ in model.queued]
    assert dues == sorted(dues)
    assert all(0.07 <= due - i * 0.001 <= 0.09 + 0.001 * 500 for i, due in enumerate(dues))
    assert [int.from_bytes(p, "big") for p in model.due(10.0)] == list(range(500))


def test_loss_drops_about_its_share() -> None:
    model = DirectionModel(Impairment(loss=0.03, max_queue_packets=20000), random.Random(3))
    kept = sum(model.admit(0.0, b"x") for _ in range(10000))
    assert model.stats.dropped_loss == 10000 - kept
    assert 200 < model.stats.dropped_loss < 400


def test_queue_is_bounded() -> None:
    model = DirectionModel(Impairment(delay_s=1.0, max_queue_packets=10), random.Random(4))
    results = [model.admit(0.0, b"x") for _ in range(15)]
    assert results == [True] * 10 + [False] * 5
    assert model.stats.dropped_queue == 5


@pytest.mark.parametrize(
    "kwargs", [{"delay_s": -1}, {"jitter_s": -0.1}, {"loss": 1.0}, {"max_queue_packets": 0}]
)
def test_bad_impairment_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Impairment(**kwargs)
