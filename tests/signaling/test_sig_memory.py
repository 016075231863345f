"""Closed connections are released at once, by reference counting (issue 10 item 7).

Each closed connection used to leave its uvicorn protocols, transport, tasks and our
``Connection`` in reference cycles (a cancelled writer task holding its own traceback; the
httptools parser's callbacks pointing back at the HTTP protocol); with the server's raised GC
thresholds they waited for a rare full collection while RSS grew. Automatic collection is
switched off here, and so is the sweeper's (``gc_collect_after_closes=0``): nothing but
reference counting may free them. The sweeper's bounded collection stays as a safety net."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator

import pytest
import websockets

from signaling.admission import HttpProtocol
from signaling.router import Connection
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


def _held() -> dict[str, int]:
    """Objects of the server's per-connection types still alive."""
    kinds = (TrackerWebSocketProtocol, HttpProtocol, Connection)
    counts = {k.__name__: 0 for k in kinds}
    for o in gc.get_objects():
        if type(o) in kinds:
            counts[type(o).__name__] += 1
    return counts


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


async def test_closed_connections_are_released_with_the_sweepers_collection_on(
    start_server: ServerFactory, no_automatic_gc: None
) -> None:
    """The default set-up (the sweeper's bounded collection on): nothing is left either, and a
    client gone before its replies went out is not taken for a slow reader."""
    server = await start_server(
        sweep_interval_s=0.05,
        write_timeout_s=0.4,
        gc_collect_after_closes=1,
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
        if left <= 2:
            break
    assert left <= 2, f"{left} protocol objects of closed connections still held"
    assert await server.rejections("write_timeout") == 0  # gone clients are not slow readers


async def test_closed_connections_leave_no_reference_cycles(
    start_server: ServerFactory, no_automatic_gc: None
) -> None:
    server = await start_server(
        sweep_interval_s=0.05, gc_collect_after_closes=0, max_swarms_per_connection=1
    )
    await _churn(server)  # the client closes
    for _ in range(CONNECTIONS // 2):  # the server closes (a rule broken: 1003)
        async with websockets.connect(server.url, ping_interval=None) as ws:
            await ws.send(b"binary")
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
    for n in range(CONNECTIONS // 2):  # a member of a swarm, gone
        async with websockets.connect(server.url, ping_interval=None) as ws:
            info_hash, peer_id = f"mem-swarm-{n:010d}", f"mem-peer-{n:011d}"
            await ws.send(
                json.dumps({"action": "announce", "info_hash": info_hash, "peer_id": peer_id})
            )
            await ws.recv()
    for _ in range(500):
        if server.runtime.endpoint.closed_total >= 2 * CONNECTIONS and not len(
            server.runtime.router
        ):
            break
        await asyncio.sleep(0.02)
    await _watch_drained(server)
    held = _held()
    for _ in range(100):  # the last closes finish on the server's side
        if not any(held.values()):
            break
        await asyncio.sleep(0.05)
        held = _held()
    assert not any(held.values()), f"closed connections still held: {held}"
    assert server.runtime.endpoint.closed_total >= 2 * CONNECTIONS
