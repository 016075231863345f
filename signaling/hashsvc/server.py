"""Run the hash service under uvicorn: in-process (tests, tools) or blocking (the CLI).

Shutdown is uvicorn's graceful one (stop accepting, let requests finish for
``shutdown_grace_s``, cancel the rest); then every playlist task is cancelled and the HTTP
client closed.
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

import httpx
import uvicorn

from p2p_cli.serving import exit_signals
from signaling.hashsvc.app import build_app
from signaling.hashsvc.config import HashServiceConfig
from signaling.hashsvc.service import Clock, HashService

logger = logging.getLogger(__name__)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (``port`` 0 picks a free one); IPv6 when ``host`` has a colon."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def base_url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn's server, but a SIGINT/SIGTERM ends in a clean exit (status 0): uvicorn's own
    handling re-raises the signal after its graceful shutdown, killing the process with it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with exit_signals(self.handle_exit):
            yield


def _uvicorn_server(config: HashServiceConfig, service: HashService) -> uvicorn.Server:
    return _Server(
        uvicorn.Config(
            build_app(service),
            lifespan="off",
            log_level=config.log_level.lower(),
            access_log=config.log_level.lower() == "debug",
            timeout_graceful_shutdown=max(1, math.ceil(config.shutdown_grace_s)),
            server_header=False,
            # the client address behind a proxy is --trusted-proxies' business (app.py);
            # uvicorn's own default would trust X-Forwarded-For from 127.0.0.1
            proxy_headers=False,
        )
    )


class RunningHashService:
    """Handle on a hash service served in this process (see :func:`run_hash_service`)."""

    def __init__(self, service: HashService, base_url: str) -> None:
        self.service = service
        self.base_url = base_url

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def manifest_url(self, playlist_url: str) -> str:
        return str(httpx.URL(self.url("/manifest"), params={"playlist": playlist_url}))

    def stats(self) -> dict[str, object]:
        return self.service.stats()


@asynccontextmanager
async def run_hash_service(
    config: HashServiceConfig,
    *,
    clock: Clock = time.monotonic,
    client: httpx.AsyncClient | None = None,
) -> AsyncIterator[RunningHashService]:
    """Serve on ``config.host:config.port`` (0: a free port) in this event loop."""
    service = HashService(config, clock=clock, client=client)
    sock = bind_socket(config.host, config.port)
    server = _uvicorn_server(config, service)
    try:
        server.config.load()
        server.lifespan = server.config.lifespan_class(server.config)
        await server.startup(sockets=[sock])
        main_loop = asyncio.get_running_loop().create_task(server.main_loop())
        base_url = base_url_of(sock)
        logger.info("hash service listening on %s", base_url)
        try:
            yield RunningHashService(service, base_url)
        finally:
            server.should_exit = True
            await main_loop
            await server.shutdown(sockets=[sock])
    finally:
        sock.close()
        await service.close()


async def serve_forever(config: HashServiceConfig, sock: socket.socket | None = None) -> None:
    """Serve on ``sock`` (default: bind ``config.host:config.port``) until SIGINT/SIGTERM
    (uvicorn installs the handlers), then shut down gracefully."""
    service = HashService(config)
    sock = sock if sock is not None else bind_socket(config.host, config.port)
    server = _uvicorn_server(config, service)
    base_url = base_url_of(sock)
    print(f"p2p-hashsvc listening on {base_url}", flush=True)
    for prefix in config.allow_prefixes:
        print(f"  allowed: {prefix}", flush=True)
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()
        await service.close()
