"""Closed connections are released: the sweeper's bounded full collection (issue 10 item 7).

Each closed connection leaves its uvicorn protocol, transport and tasks in reference cycles;
with the server's raised GC thresholds they would wait for a rare full collection while RSS
grows. Automatic collection is switched off here so only the sweeper's collection can free
them; ``gc_collect_after_closes=0`` (disabled) shows that they really are left behind."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
import websockets

from signaling.transport import TrackerWebSocketProtocol
from tests.signaling.sig_support import RunningServer, ServerFactory

CONNECTIONS = 40


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


def _protocols() -> int:
    return sum(1 for o in gc.get_objects() if type(o) is TrackerWebSocketProtocol)


async def _churn(server: RunningServer) -> None:
    for _ in range(CONNECTIONS):
        async with websockets.connect(server.url, ping_interval=None) as ws:
            await ws.send("not json")  # counted as a rejection; the connection stays open
    for _ in range(500):
        if server.runtime.endpoint.closed_total >= CONNECTIONS:
            break
        await asyncio.sleep(0.02)
    assert server.runtime.endpoint.closed_total >= CONNECTIONS


async def _watch_drained(server: RunningServer) -> None:
    """Closed connections leave the write watchdog's set (they held their protocol alive)."""
    for _ in range(500):
        if not server.runtime.endpoint._watch:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{len(server.runtime.endpoint._watch)} closed connections still watched")


@pytest.mark.parametrize("after_closes", [0, 1])
async def test_sweeper_collects_closed_connections(
    start_server: ServerFactory, no_automatic_gc: None, after_closes: int
) -> None:
    server = await start_server(
        sweep_interval_s=0.05,
        write_timeout_s=0.4,
        gc_collect_after_closes=after_closes,
        gc_collect_interval_s=0.0,
    )
    await _churn(server)
    await _watch_drained(server)
    async with websockets.connect(server.url, ping_interval=None) as ws:  # one more close
        await ws.send("not json")
        await ws.recv()
    left = _protocols()
    for _ in range(200):  # a few sweeps
        await asyncio.sleep(0.05)
        left = _protocols()
        if after_closes and left <= 2:
            break
    if after_closes:
        assert left <= 2, f"{left} protocol objects of closed connections still held"
    else:
        assert left >= CONNECTIONS, f"only {left} left: nothing for the collection to do"
    assert await server.rejections("write_timeout") == 0  # gone clients are not slow readers
