"""Join-ramp and steady-state CDN fetches (docs/simulator.md, "Join ramp and steady state").

A viewer's **join ramp** is its start segment (the first segment its player plays: for live, the
one ``latency_segments`` behind the newest listed when it joins; for VOD the first) and the
``ramp_segments - 1`` segments after it by media sequence number. A CDN fetch of a segment of
its join ramp, or any CDN fetch before its start segment is known, is a join-ramp fetch; every
other CDN fetch is steady-state. A resumed fetch (a Range request after a P2P transfer failed)
is a fetch like any other. Pure: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: Segments in a viewer's join ramp by default: the three a player behind live starts with plus
#: the one being published as it joins.
JOIN_RAMP_SEGMENTS = 4

Phase = Literal["join_ramp", "steady"]
JOIN_RAMP: Phase = "join_ramp"
STEADY: Phase = "steady"


def fetch_phase(
    sequence: int, start_sequence: int | None, ramp_segments: int = JOIN_RAMP_SEGMENTS
) -> Phase:
    """The phase of a CDN fetch of segment ``sequence`` by a viewer that started at
    ``start_sequence`` (``None``: not started yet)."""
    if ramp_segments < 0:
        raise ValueError(f"ramp_segments must be >= 0, got {ramp_segments}")
    if start_sequence is None or sequence < start_sequence + ramp_segments:
        return JOIN_RAMP
    return STEADY


@dataclass
class CdnFetchCounts:
    """One viewer's CDN fetches by phase. ``start(sequence)`` once its start segment is known
    (later calls are ignored: the ramp is the viewer's first)."""

    ramp_segments: int = JOIN_RAMP_SEGMENTS
    start_sequence: int | None = None
    join_ramp: int = 0
    steady: int = 0

    def start(self, sequence: int) -> None:
        if self.start_sequence is None:
            self.start_sequence = sequence

    def count(self, sequence: int) -> Phase:
        phase = fetch_phase(sequence, self.start_sequence, self.ramp_segments)
        if phase == JOIN_RAMP:
            self.join_ramp += 1
        else:
            self.steady += 1
        return phase

    def as_dict(self) -> dict[str, int]:
        return {JOIN_RAMP: self.join_ramp, STEADY: self.steady}
