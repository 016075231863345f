"""Upload fan-out from a viewer's uplink (docs/scheduling.md, "Upload fan-out")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from peer_agent.core.capacity import upload_slots

VECTORS = json.loads(
    (Path(__file__).parents[2] / "docs/vectors/capacity/upload_slots.json").read_text()
)


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_upload_slots_vectors(case: dict[str, Any]) -> None:
    args = (case["uplink_bytes_per_s"], case["stream_bits_per_s"], case["max_uploads"])
    if case.get("error"):
        with pytest.raises(ValueError):
            upload_slots(*args)
    else:
        assert upload_slots(*args) == case["slots"]


def test_vectors_cover_leech_only_and_unknown() -> None:
    slots = [c.get("slots") for c in VECTORS["cases"]]
    assert 0 in slots and any(c["uplink_bytes_per_s"] is None for c in VECTORS["cases"])


def test_non_finite_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="uplink"):
        upload_slots(float("inf"), 2e6, 4)
    with pytest.raises(ValueError, match="stream"):
        upload_slots(1e6, float("nan"), 4)
