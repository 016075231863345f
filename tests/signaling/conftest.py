"""Fixtures: a real uvicorn server on a free loopback port."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from signaling.app import create_app
from signaling.config import SignalingConfig
from signaling.server import SignalingServer
from tests.signaling.sig_support import RunningServer, ServerFactory


@pytest.fixture
async def start_server() -> AsyncIterator[ServerFactory]:
    running: list[RunningServer] = []

    async def start(**overrides: Any) -> RunningServer:
        overrides.setdefault("log_level", "warning")
        config = SignalingConfig(host="127.0.0.1", port=0, **overrides)
        server = SignalingServer(config, create_app(config, rng=random.Random(1)))
        task = asyncio.get_running_loop().create_task(server.serve())
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        assert server.started, "server did not start"
        handle = RunningServer(server, task, server.bound_port)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        if not handle.task.done():
            await handle.stop()


@pytest.fixture
async def server(start_server: ServerFactory) -> RunningServer:
    return await start_server()
