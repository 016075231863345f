"""Fixtures: the real test origin's media, generated once per session (real H.264/AAC HLS), and
the event loop's lag while a test runs (tests/loop_lag.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from peer_agent.origin import MediaConfig, MediaSet, OriginConfig, Rendition, load_or_generate
from tests.loop_lag import LoopLag

# Small and short: 1-second segments, 6 segments of content, two tiny renditions.
MEDIA = MediaConfig(
    segment_duration_s=1.0,
    content_duration_s=6.0,
    fps=10,
    renditions=(Rendition("lo", 128, 72, 60_000), Rendition("hi", 192, 108, 150_000)),
)


def origin_config(**kw: object) -> OriginConfig:
    return OriginConfig(port=0, media=MEDIA, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def media() -> MediaSet:
    return load_or_generate(origin_config())


@pytest.fixture
async def loop_lag() -> AsyncIterator[LoopLag]:
    """The loop's lag over the whole test: what explains a player stall on a starved machine."""
    async with LoopLag() as lag:
        yield lag
    print(lag.figures())
