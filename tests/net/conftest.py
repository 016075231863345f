"""Fixtures for the network adapters: event recorders, directly connected PeerLink pairs and a
real signaling server on a free loopback port (in-process uvicorn)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from peer_agent.core.events import Event, HelloReceived
from peer_agent.core.session import SessionConfig
from peer_agent.net.rtc import LinkConfig, PeerLink
from signaling.app import create_app
from signaling.config import SignalingConfig
from signaling.server import SignalingServer

#: How long a test waits for an event it expects (a link, a transfer, a close): generous, since
#: waiting costs only when something is wrong; a 1 MiB transfer over aiortc (pure-Python SCTP)
#: took over 10 s on the shared 2-core machine at load 30-40.
WAIT_S = 60.0
LOOPBACK = ("127.0.0.1",)


def ident(name: str) -> str:
    """A 20-character peer_id / info_hash from a short name."""
    return (name + "-" * 20)[:20]


def link_config(**overrides: Any) -> LinkConfig:
    overrides.setdefault("host_addresses", LOOPBACK)
    overrides.setdefault("session", SessionConfig())
    return LinkConfig(**overrides)


@dataclass
class Recorder:
    """Collects ``(link, event)`` pairs; tests wait on conditions, never sleep."""

    items: list[tuple[Any, Event]] = field(default_factory=list)
    hook: Callable[[Any, Event], None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, link: Any, event: Event) -> None:
        self.items.append((link, event))
        self._changed.set()
        if self.hook is not None:
            self.hook(link, event)

    def of(self, kind: type, link: Any = None) -> list[Any]:
        return [e for lk, e in self.items if isinstance(e, kind) and (link is None or lk is link)]

    async def wait_for(self, pred: Callable[[], Any], timeout_s: float = WAIT_S) -> Any:
        async with asyncio.timeout(timeout_s):
            while True:
                result = pred()
                if result:
                    return result
                self._changed.clear()
                await self._changed.wait()


async def wait_until(
    pred: Callable[[], Any], changed: asyncio.Event, timeout_s: float = WAIT_S
) -> Any:
    async with asyncio.timeout(timeout_s):
        while True:
            result = pred()
            if result:
                return result
            changed.clear()
            await changed.wait()


async def connect_pair(
    a_events: Recorder,
    b_events: Recorder,
    *,
    config: LinkConfig | None = None,
    swarm_id: bytes = b"swarm-for-link-tests",
    hello_a: Any = None,
    hello_b: Any = None,
) -> tuple[PeerLink, PeerLink]:
    """Two PeerLinks connected directly (SDP exchanged by hand); both sessions OPEN."""
    config = config or link_config()
    a = PeerLink(
        swarm_id=swarm_id,
        local_peer_id=ident("peer-a").encode(),
        on_event=a_events,
        hello=hello_a,
        config=config,
        remote_peer_id=ident("peer-b"),
    )
    b = PeerLink(
        swarm_id=swarm_id,
        local_peer_id=ident("peer-b").encode(),
        on_event=b_events,
        hello=hello_b,
        config=config,
        remote_peer_id=ident("peer-a"),
    )
    offer = await a.create_offer()
    answer = await b.accept_offer(offer)
    assert answer is not None
    await a.accept_answer(answer)
    await a_events.wait_for(lambda: a_events.of(HelloReceived, a))
    await b_events.wait_for(lambda: b_events.of(HelloReceived, b))
    return a, b


@dataclass
class RunningServer:
    server: SignalingServer
    task: asyncio.Task[None]
    port: int

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/announce"

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 15.0)


ServerFactory = Callable[..., Awaitable[RunningServer]]


async def _start(port: int, **overrides: Any) -> RunningServer:
    overrides.setdefault("log_level", "warning")
    overrides.setdefault("shutdown_grace_s", 1.0)
    config = SignalingConfig(host="127.0.0.1", port=port, **overrides)
    server = SignalingServer(config, create_app(config, rng=random.Random(1)))
    task = asyncio.get_running_loop().create_task(server.serve())
    started = asyncio.Event()

    async def watch() -> None:  # uvicorn exposes no startup event: poll its flag cheaply
        while not server.started and not task.done():
            await asyncio.sleep(0.005)
        started.set()

    watcher = asyncio.get_running_loop().create_task(watch())
    await asyncio.wait_for(started.wait(), 10.0)
    await watcher
    if task.done():
        task.result()
    assert server.started, "server did not start"
    return RunningServer(server, task, server.bound_port)


@pytest.fixture
async def start_server() -> AsyncIterator[ServerFactory]:
    running: list[RunningServer] = []

    async def start(port: int = 0, **overrides: Any) -> RunningServer:
        handle = await _start(port, **overrides)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        if not handle.task.done():
            await handle.stop()


@pytest.fixture
async def server(start_server: ServerFactory) -> RunningServer:
    return await start_server()
