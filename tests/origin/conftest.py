"""Fixtures: one small generated stream per session, and a real uvicorn origin on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from origin_support import TEST_MEDIA, FakeClock, origin_config

from peer_agent.origin import MediaSet, generate_media
from peer_agent.origin.server import RunningOrigin, run_origin


@pytest.fixture(scope="session")
def media() -> MediaSet:
    return generate_media(TEST_MEDIA)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def origin(media: MediaSet, clock: FakeClock) -> AsyncIterator[RunningOrigin]:
    async with run_origin(origin_config(), media=media, clock=clock) as running:
        yield running


@pytest.fixture
async def client(origin: RunningOrigin) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=origin.base_url, timeout=10.0) as http:
        yield http
