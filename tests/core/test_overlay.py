"""docs/vectors/signaling/overlay.json: the member's overlay rules (admit_offer, drain_due,
Refill, Refusals), the
same file web_demo/overlay.js is tested against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from peer_agent.core.overlay import (
    Refill,
    RefillConfig,
    RefusalConfig,
    Refusals,
    admit_offer,
    drain_due,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "docs/vectors/signaling/overlay.json").read_text()
)


@pytest.mark.parametrize("case", VECTORS["admit"], ids=lambda c: c["name"])
def test_admit_vectors(case: dict[str, Any]) -> None:
    got = admit_offer(case["links"], case["max_peers"], case["from_peer"], case["drop"])
    assert got.accept is case["accept"]
    assert got.drop == case["close"]


@pytest.mark.parametrize("case", VECTORS["drain"], ids=lambda c: c["name"])
def test_drain_vectors(case: dict[str, Any]) -> None:
    got = drain_due(
        case["outbound"], case["inbound"], case["buffered_bytes"], case["elapsed_s"], case["max_s"]
    )
    assert got is case["close"]


def test_drain_due_refuses_negative_counts() -> None:
    for args in ((-1, 0, 0), (0, -1, 0), (0, 0, -1)):
        with pytest.raises(ValueError, match="must be >= 0"):
            drain_due(*args, 0.0, 5.0)


@pytest.mark.parametrize("case", VECTORS["refill"], ids=lambda c: c["name"])
def test_refill_vectors(case: dict[str, Any]) -> None:
    refill = Refill(RefillConfig(**VECTORS["refill_config"]))
    for step in case["steps"]:
        if step.get("reset_before"):
            refill.reset()
        assert refill.after_announce(step["links"], case["max_peers"]) == step["delay_s"]


def test_refill_config_is_checked() -> None:
    with pytest.raises(ValueError, match="base_s"):
        RefillConfig(base_s=0.0)
    with pytest.raises(ValueError, match="base_s"):
        RefillConfig(base_s=5.0, max_s=1.0)


def test_refill_backoff_is_bounded_after_many_announces() -> None:
    refill = Refill()
    delays = [refill.after_announce(0, 8) for _ in range(2000)]
    assert delays[-1] == RefillConfig().max_s


@pytest.mark.parametrize("case", VECTORS["refusals"], ids=lambda c: c["name"])
def test_refusal_vectors(case: dict[str, Any]) -> None:
    refusals = Refusals(RefusalConfig(**VECTORS["refusal_config"]))
    for step in case["steps"]:
        if "closed_banned" in step:
            assert refusals.closed_banned(step["closed_banned"], step["at_s"]) == step["until_s"]
        for peer_id, blocked in step.get("blocked", {}).items():
            assert refusals.blocked(peer_id, step["at_s"]) is blocked, (peer_id, step)


def test_refusal_config_is_checked() -> None:
    with pytest.raises(ValueError, match="base_s"):
        RefusalConfig(base_s=0.0)
    with pytest.raises(ValueError, match="base_s"):
        RefusalConfig(base_s=60.0, max_s=30.0)
    with pytest.raises(ValueError, match="max_peer_ids"):
        RefusalConfig(max_peer_ids=0)


def test_refusals_are_bounded_under_many_peer_ids() -> None:
    refusals = Refusals(RefusalConfig(max_peer_ids=16))
    for i in range(1000):
        refusals.closed_banned(f"peer{i}", float(i))
    assert len(refusals) == 16
    assert refusals.blocked("peer999", 999.0)
    assert not refusals.blocked("peer0", 999.0)
