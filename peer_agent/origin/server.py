"""Run the origin under uvicorn: in-process for tests and tools, or blocking for the CLI.

Shutdown is graceful in uvicorn's way (stop accepting, let responses finish, cancel what is left
after ``shutdown_grace_s``); before that, the app stops injected hangs and paced bodies so they do
not hold the shutdown up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from p2p_cli.serving import exit_signals
from peer_agent.origin.app import Clock, OriginApp
from peer_agent.origin.catalog import Catalog
from peer_agent.origin.config import OriginConfig, ShapingConfig
from peer_agent.origin.media import MediaSet
from peer_agent.origin.store import load_or_generate

logger = logging.getLogger(__name__)


def build_app(config: OriginConfig, media: MediaSet, *, clock: Clock = time.time) -> OriginApp:
    """The ASGI app for ``media``; the live timeline starts at ``clock()`` now."""
    catalog = Catalog(
        media,
        live_start_s=clock(),
        live_window_segments=config.live_window_segments,
        live_history_segments=config.live_history_segments,
    )
    return OriginApp(catalog, config.shaping, clock=clock)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (``port`` 0 picks a free one); IPv6 when ``host`` has a colon."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # says TCP, and without it Nagle + delayed ACKs add ~40 ms to every keep-alive request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def base_url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class OriginServer(uvicorn.Server):
    def __init__(self, config: OriginConfig, app: OriginApp) -> None:
        self.origin = app
        super().__init__(
            uvicorn.Config(
                app,
                lifespan="off",
                log_level=config.log_level.lower(),
                access_log=config.log_level.lower() == "debug",
                timeout_graceful_shutdown=max(1, math.ceil(config.shutdown_grace_s)),
                server_header=False,
            )
        )

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM: graceful shutdown, then a normal return (exit status 0)."""
        with exit_signals(self.handle_exit):
            yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.origin.begin_shutdown()
        await super().shutdown(sockets)


class RunningOrigin:
    """Handle on an origin served in this process (see :func:`run_origin`)."""

    def __init__(self, app: OriginApp, base_url: str) -> None:
        self.app = app
        self.base_url = base_url

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def stats(self) -> dict[str, Any]:
        """What ``GET /stats`` returns."""
        return self.app.stats_snapshot()

    def reset_stats(self) -> None:
        self.app.reset_stats()

    def streams(self) -> dict[str, Any]:
        """What ``GET /streams`` returns."""
        return self.app.catalog.describe(self.base_url)

    @property
    def shaping(self) -> ShapingConfig:
        return self.app.shaping

    def set_shaping(self, **changes: Any) -> ShapingConfig:
        """Partial shaping change, like ``POST /control``; raises ConfigError."""
        return self.app.update_shaping(**changes)


@asynccontextmanager
async def run_origin(
    config: OriginConfig | None = None,
    *,
    media: MediaSet | None = None,
    clock: Clock = time.time,
) -> AsyncIterator[RunningOrigin]:
    """Serve an origin on loopback in this event loop: ``async with run_origin(cfg) as o:``.

    ``config`` defaults to ``OriginConfig(port=0)`` (a free port). ``media`` skips generation
    (tests share one :class:`MediaSet`); otherwise media is loaded from the cache or generated in
    a worker thread. ``clock`` (UNIX seconds) drives the live window.
    """
    config = config or OriginConfig(port=0)
    if media is None:
        media = await asyncio.to_thread(load_or_generate, config)
    app = build_app(config, media, clock=clock)
    sock = bind_socket(config.host, config.port)
    server = OriginServer(config, app)
    try:
        server.config.load()
        server.lifespan = server.config.lifespan_class(server.config)
        await server.startup(sockets=[sock])
        main_loop = asyncio.get_running_loop().create_task(server.main_loop())
        base_url = base_url_of(sock)
        logger.info("origin listening on %s", base_url)
        try:
            yield RunningOrigin(app, base_url)
        finally:
            server.should_exit = True
            await main_loop
            await server.shutdown(sockets=[sock])
    finally:
        sock.close()


async def serve_forever(
    config: OriginConfig,
    media: MediaSet,
    *,
    sock: socket.socket | None = None,
    clock: Clock = time.time,
) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn's signal handling), then shut down gracefully."""
    sock = sock or bind_socket(config.host, config.port)
    app = build_app(config, media, clock=clock)
    server = OriginServer(config, app)
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()
