"""Shared test values for tests/origin (a uniquely named module: ``from conftest import``
resolves to whichever conftest was imported first when several test directories run together)."""

from __future__ import annotations

from peer_agent.origin import MediaConfig, OriginConfig, Rendition

# 3 segments of 1 s, two tiny renditions: generated once per session in well under a second.
TEST_MEDIA = MediaConfig(
    segment_duration_s=1.0,
    content_duration_s=3.0,
    renditions=(Rendition("lo", 160, 90, 100_000), Rendition("hi", 320, 180, 200_000)),
)
WINDOW = 4
HISTORY = 2
START_S = 1_800_000_000.0


class FakeClock:
    """A wall clock (UNIX seconds) that only moves when told to."""

    def __init__(self, now_s: float = START_S) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def origin_config(**changes: object) -> OriginConfig:
    base = OriginConfig(
        port=0,
        cache=False,
        log_level="warning",
        live_window_segments=WINDOW,
        live_history_segments=HISTORY,
        shutdown_grace_s=1.0,
        media=TEST_MEDIA,
    )
    return base.with_changes(**changes)
