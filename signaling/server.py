"""Run the app under uvicorn with a graceful shutdown that closes WebSockets with 1001.

uvicorn alone would close open WebSockets with 1012 and then wait; we first stop listening, send
1001 (going away) to every socket, wait up to ``shutdown_grace_s`` and cancel what is left, then
let uvicorn finish its own shutdown.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI

from p2p_cli.serving import bind_tcp, exit_signals
from signaling import logsafe
from signaling.admission import HttpProtocol, gated
from signaling.app import SignalingRuntime, create_app
from signaling.config import SignalingConfig
from signaling.transport import TrackerWebSocketProtocol

logger = logging.getLogger(__name__)


def uvicorn_config(config: SignalingConfig, app: FastAPI) -> uvicorn.Config:
    runtime: SignalingRuntime = app.state.signaling
    http: Any = HttpProtocol
    if runtime.admission is not None:
        # every accepted connection meets the per-address attempt budget first (admission.py)
        http = gated(HttpProtocol, runtime.admission)
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        http=http,
        ws=TrackerWebSocketProtocol,  # websockets-sansio, exposing the transport's buffer
        # uvicorn's own ceiling: frames above it are closed with 1009 by uvicorn; frames between
        # max_message_bytes and it reach the app, which closes with 1009 and counts them.
        ws_max_size=config.max_message_bytes * 4,
        ws_ping_interval=config.ws_ping_interval_s or None,
        ws_ping_timeout=config.ws_ping_interval_s or None,
        ws_per_message_deflate=config.ws_per_message_deflate,
        lifespan="on",
        log_level=config.log_level,
        timeout_graceful_shutdown=math.ceil(config.shutdown_grace_s) + 1,
        server_header=False,
        # the client address behind a proxy is --trusted-proxies' business (signaling.addresses);
        # uvicorn's own default would trust X-Forwarded-For from 127.0.0.1
        proxy_headers=False,
    )


class SignalingServer(uvicorn.Server):
    def __init__(self, config: SignalingConfig, app: FastAPI | None = None) -> None:
        self.app = app if app is not None else create_app(config)
        self.runtime: SignalingRuntime = self.app.state.signaling
        super().__init__(uvicorn_config(config, self.app))
        logsafe.install()

    @property
    def bound_port(self) -> int:
        """The TCP port actually bound (useful with port 0)."""
        for server in self.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        raise RuntimeError("server is not listening")

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM start the graceful shutdown, which then ends in a normal return
        (uvicorn would re-raise the signal and die by it: tracebacks on Ctrl-C)."""
        with exit_signals(self.handle_exit):
            yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        await self.runtime.shutdown()
        await super().shutdown(sockets)


def tune_gc(config: SignalingConfig) -> None:
    """Process-wide: fewer, rarer collections, and start-up objects out of the GC's sight.

    Every connection holds a few hundred GC-tracked objects; with CPython's default thresholds,
    full collections over 10k connections stall the event loop for ~1 s (measured by
    bench/signaling_bench.py: offer relay p99 1.4 s by default, ~0.1 s with 50000,20,100).
    """
    if config.gc_thresholds:
        gc.set_threshold(*config.gc_thresholds)
    gc.freeze()


def bind(config: SignalingConfig) -> socket.socket:
    """The listening socket for ``config.host:config.port``; raises ``OSError`` (port in use)."""
    return bind_tcp(config.host, config.port, backlog=2048)


def serve(config: SignalingConfig, sock: socket.socket | None = None) -> None:
    """Blocking: serve on ``sock`` (default: bind ``config.host:config.port``) until SIGINT or
    SIGTERM, then shut down gracefully and return."""
    sock = sock if sock is not None else bind(config)
    try:
        server = SignalingServer(config)
        tune_gc(config)
        server.run(sockets=[sock])
    finally:
        sock.close()
