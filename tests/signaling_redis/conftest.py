"""Fixtures: a real redis-server on a free port and real `p2p-signaling` processes joined by it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.signaling_redis.redis_support import (
    RedisServer,
    SignalingProcess,
    require_redis_server,
)

NodeFactory = Callable[..., Awaitable[list[SignalingProcess]]]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(require_redis_server(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def start_nodes(redis_server: RedisServer) -> AsyncIterator[NodeFactory]:
    """Start `count` signaling processes on the test's Redis; wait until they see each other."""
    import asyncio

    started: list[SignalingProcess] = []

    async def start(count: int, **env: str) -> list[SignalingProcess]:
        nodes = [SignalingProcess(redis_server.url, env) for _ in range(count)]
        started.extend(nodes)
        await asyncio.gather(*(n.start() for n in nodes))
        total = len([n for n in started if n.proc is not None and n.proc.returncode is None])
        for node in nodes:
            await node.wait_health(lambda h: h.get("nodes") == total and h["status"] == "ok")
        return nodes

    yield start
    import asyncio as _asyncio

    await _asyncio.gather(*(n.stop() for n in started), return_exceptions=True)
