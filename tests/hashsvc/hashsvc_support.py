"""Shared test values for tests/hashsvc (a uniquely named module, see tests/origin)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from peer_agent.origin import MediaConfig, OriginConfig, Rendition
from signaling.hashsvc import HashServiceConfig
from tests.origin.origin_support import FakeClock  # noqa: F401 (re-exported)

# 3 segments of 1 s, two tiny renditions: generated once per session in well under a second.
TEST_MEDIA = MediaConfig(
    segment_duration_s=1.0,
    content_duration_s=3.0,
    fps=10,
    renditions=(Rendition("lo", 128, 72, 60_000), Rendition("hi", 192, 108, 120_000)),
)
WINDOW = 4
HISTORY = 2


def origin_config() -> OriginConfig:
    return OriginConfig(
        port=0,
        cache=False,
        log_level="warning",
        live_window_segments=WINDOW,
        live_history_segments=HISTORY,
        shutdown_grace_s=1.0,
        media=TEST_MEDIA,
    )


def hashsvc_config(prefix: str, **changes: object) -> HashServiceConfig:
    base = HashServiceConfig(
        allow_prefixes=(prefix,),
        port=0,
        log_level="warning",
        min_refresh_s=0.05,
        retry_backoff_s=0.01,
        fetch_timeout_s=5.0,
        shutdown_grace_s=1.0,
    )
    return base.with_changes(**changes)


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait until ``predicate()`` holds (checked every 20 ms); fail after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.02)
