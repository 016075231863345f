"""The join-ramp / steady-state split of CDN fetches (docs/simulator.md, "Join ramp and steady
state"): the definition every report uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from peer_agent.core.cdn_phase import (
    JOIN_RAMP,
    JOIN_RAMP_SEGMENTS,
    STEADY,
    CdnFetchCounts,
    fetch_phase,
)


def test_ramp_is_the_start_segment_and_the_three_after_it() -> None:
    assert JOIN_RAMP_SEGMENTS == 4
    assert [fetch_phase(s, 100) for s in range(99, 106)] == [
        JOIN_RAMP,  # before the start segment (a viewer catching up) is in the ramp
        JOIN_RAMP,  # the start segment
        JOIN_RAMP,
        JOIN_RAMP,
        JOIN_RAMP,  # start + 3: the last of four
        STEADY,  # start + 4
        STEADY,
    ]


def test_before_the_start_is_known_every_fetch_is_ramp() -> None:
    assert fetch_phase(10**9, None) == JOIN_RAMP


def test_ramp_length_is_a_parameter() -> None:
    assert fetch_phase(5, 5, ramp_segments=0) == STEADY
    assert fetch_phase(5, 5, ramp_segments=1) == JOIN_RAMP
    assert fetch_phase(6, 5, ramp_segments=1) == STEADY
    with pytest.raises(ValueError):
        fetch_phase(5, 5, ramp_segments=-1)


def test_counts_keep_the_first_start_only() -> None:
    counts = CdnFetchCounts()
    assert counts.count(7) == JOIN_RAMP  # no start yet
    counts.start(10)
    counts.start(50)  # a later start (seek, rendition switch) does not start a new ramp
    assert counts.start_sequence == 10
    phases = [counts.count(s) for s in (10, 11, 13, 14, 20, 14)]
    assert phases == [JOIN_RAMP, JOIN_RAMP, JOIN_RAMP, STEADY, STEADY, STEADY]
    assert counts.as_dict() == {"join_ramp": 4, "steady": 3}


VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "docs/vectors/metrics/cdn_phase.json").read_text()
)


def test_default_matches_the_vectors() -> None:
    assert VECTORS["join_ramp_segments"] == JOIN_RAMP_SEGMENTS


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_vector(case: dict[str, Any]) -> None:
    counts = CdnFetchCounts(ramp_segments=case["ramp_segments"])
    start = case["start"]
    phases = []
    for i, sequence in enumerate(case["fetches"]):
        if start is not None and i == start["before_fetch"]:
            counts.start(start["sequence"])
        phases.append(counts.count(sequence))
    assert phases == case["phases"]
    assert counts.as_dict() == case["counts"]
