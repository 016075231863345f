"""Fixtures: one small generated stream per session, a real origin and a real hash service,
both served by uvicorn on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from hashsvc_support import TEST_MEDIA, FakeClock, hashsvc_config, origin_config

from peer_agent.origin import MediaSet, generate_media
from peer_agent.origin.server import RunningOrigin, run_origin
from signaling.hashsvc import RunningHashService, run_hash_service


@pytest.fixture(scope="session")
def media() -> MediaSet:
    return generate_media(TEST_MEDIA)


@pytest.fixture
def origin_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def origin(media: MediaSet, origin_clock: FakeClock) -> AsyncIterator[RunningOrigin]:
    async with run_origin(origin_config(), media=media, clock=origin_clock) as running:
        yield running


@pytest.fixture
async def hashsvc(origin: RunningOrigin) -> AsyncIterator[RunningHashService]:
    async with run_hash_service(hashsvc_config(origin.url("/hls/"))) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client
