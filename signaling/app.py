"""FastAPI application: the tracker WebSocket plus /healthz, /metrics and /api/swarms."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.routing import WebSocketRoute

from signaling.admin import admin_verdict
from signaling.admission import AdmissionGuard
from signaling.api import Health, SwarmsResponse, swarm_info
from signaling.cluster import RedisCluster
from signaling.config import SignalingConfig
from signaling.errors import UsageError
from signaling.metrics import SignalingMetrics
from signaling.registry import InMemorySwarmRegistry, SwarmRegistry
from signaling.replica import PeerRecord, RemoteMembers
from signaling.router import Router
from signaling.service import RelayInfo, SendKind, SignalingService, limits_from_config
from signaling.ws import TrackerEndpoint

logger = logging.getLogger(__name__)

ANNOUNCE_PATH = "/announce"


@dataclass
class SignalingRuntime:
    """Everything the app holds, reachable as ``app.state.signaling`` (tests and the server)."""

    config: SignalingConfig
    registry: SwarmRegistry
    metrics: SignalingMetrics
    service: SignalingService
    router: Router
    endpoint: TrackerEndpoint
    node_id: str = ""
    cluster: RedisCluster | None = None
    admission: AdmissionGuard | None = None

    async def shutdown(self, grace_s: float | None = None) -> None:
        await self.endpoint.shutdown(self.config.shutdown_grace_s if grace_s is None else grace_s)


class _Collector:
    """A full ``gc.collect()`` once ``after_closes`` connections closed since the last one, at
    most once per ``interval_s``. Each closed connection leaves ~120 objects in reference
    cycles (uvicorn protocol, uvloop transport, tasks); with the raised GC thresholds
    (server.tune_gc) they survive the young collections and wait for a rare full one, and RSS
    grew ~1.6 MiB per 20,000 hostile frames without a plateau (docs/signaling.md, memory)."""

    def __init__(self, after_closes: int, interval_s: float, now_s: float) -> None:
        self.after_closes = after_closes
        self.interval_s = interval_s
        self._last_s = now_s
        self._closed_mark = 0

    def maybe_collect(self, closed_total: int, now_s: float) -> bool:
        if self.after_closes <= 0 or closed_total - self._closed_mark < self.after_closes:
            return False
        if now_s - self._last_s < self.interval_s:
            return False
        self._closed_mark = closed_total
        self._last_s = now_s
        found = gc.collect()
        logger.debug("collected %d objects after %d closed connections", found, closed_total)
        return True


async def _sweeper(runtime: SignalingRuntime, stop: asyncio.Event) -> None:
    interval_s = runtime.config.sweep_interval_s
    collector = _Collector(
        runtime.config.gc_collect_after_closes,
        runtime.config.gc_collect_interval_s,
        time.monotonic(),
    )
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
        now_s = time.monotonic()
        try:
            runtime.service.sweep(now_s)
            runtime.router.deliver(runtime.service.fetcher_pushes(now_s), now_s)
            runtime.endpoint.close_idle(now_s)
            if runtime.admission is not None:
                runtime.admission.prune(now_s)
            collector.maybe_collect(runtime.endpoint.closed_total, now_s)
        except Exception:  # keep sweeping whatever one pass hit
            logger.exception("sweep failed")


async def _write_watchdog(runtime: SignalingRuntime, stop: asyncio.Event) -> None:
    """Checks the connections with pending output a few times per write timeout."""
    interval_s = max(0.05, runtime.config.write_timeout_s / 4)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
        try:
            runtime.endpoint.check_writes(time.monotonic())
        except Exception:  # keep watching whatever one pass hit
            logger.exception("write watchdog failed")


def create_app(
    config: SignalingConfig,
    *,
    registry: SwarmRegistry | None = None,
    rng: random.Random | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> FastAPI:
    """Build the app. ``rng`` seeds pairing (tests pass a seeded one)."""
    message_limits, registry_limits = limits_from_config(config)
    del message_limits
    node_id = secrets.token_hex(6)
    scale_out = config.redis_url is not None
    if registry is None:
        remote = RemoteMembers(config.peer_ttl_s) if scale_out else None
        registry = InMemorySwarmRegistry(
            registry_limits, rng or random.Random(), remote=remote, track_changes=scale_out
        )
    metrics = SignalingMetrics()
    if config.metrics_max_swarms:
        max_swarms = config.metrics_max_swarms
        metrics.bind_swarm_bytes(lambda: registry.snapshot(time.monotonic(), max_swarms, 0))
    service = SignalingService(config, registry, metrics, wall_clock=wall_clock)
    router = Router(node_id)
    cluster: RedisCluster | None = None
    if scale_out:
        if not isinstance(registry, InMemorySwarmRegistry) or registry.remote is None:
            raise UsageError("with redis_url, the registry must have a RemoteMembers replica")
        metrics.enable_cluster(registry.peer_count, registry.swarm_count)

        def on_relay(
            kind: SendKind, conn_id: str, relay: RelayInfo, text: str, t0_s: float
        ) -> None:
            router.deliver(service.on_remote_relay(kind, conn_id, relay, text, t0_s), t0_s)

        cluster = RedisCluster(config, node_id, registry, metrics, on_relay)

        def on_join(rec: PeerRecord) -> None:
            t0_s = time.monotonic()
            router.deliver(service.on_remote_join(rec, t0_s), t0_s)

        cluster.on_join = on_join
        cluster.on_takeover = lambda peer_id: service.release_peer_id(peer_id, "remote")
        service.attach_cluster(cluster)
        router.forward = cluster.forward
    endpoint = TrackerEndpoint(config, service, router, metrics, wall_clock, node_id=node_id)
    runtime = SignalingRuntime(
        config,
        registry,
        metrics,
        service,
        router,
        endpoint,
        node_id,
        cluster,
        AdmissionGuard(config, metrics),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.get_running_loop().create_task(_sweeper(runtime, stop))
        watchdog = asyncio.get_running_loop().create_task(_write_watchdog(runtime, stop))
        if cluster is not None:
            cluster.start()
        try:
            yield
        finally:
            if not endpoint.shutting_down:
                await runtime.shutdown()
            if cluster is not None:
                await cluster.stop()
            stop.set()
            await task
            await watchdog

    app = FastAPI(
        title="p2p-hls signaling",
        version="0.1.0",
        description="WebTorrent-tracker-compatible WebSocket signaling at "
        f"`{ANNOUNCE_PATH}` (see docs/signaling.md).",
        lifespan=lifespan,
        docs_url="/docs" if config.api_docs else None,
        redoc_url="/redoc" if config.api_docs else None,
    )
    app.state.signaling = runtime
    app.router.routes.append(WebSocketRoute(ANNOUNCE_PATH, endpoint))

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Response:
        status = "ok"
        if endpoint.shutting_down:
            status = "shutting_down"
        elif cluster is not None and cluster.degraded:
            status = "degraded"
        body = Health(
            status=status,
            connections=len(router),
            peers=registry.peer_count(),
            swarms=registry.swarm_count(),
        )
        if cluster is not None:
            body.backend = "redis"
            body.node_id = node_id
            body.redis = "ok" if not cluster.degraded else "unreachable"
            body.nodes = cluster.live_nodes
            body.local_peers = registry.local_peer_count()
            body.local_swarms = registry.local_swarm_count()
        return JSONResponse(
            body.model_dump(exclude_none=True), status_code=503 if endpoint.shutting_down else 200
        )

    def admin_refusal(request: Request) -> Response | None:
        client = request.client.host if request.client is not None else None
        verdict = admin_verdict(config.admin_token, request.headers, client)
        if verdict == "ok":
            return None
        metrics.reject("admin_" + verdict)
        if verdict == "unauthorized":
            return JSONResponse(
                {"detail": "admin credential required (Authorization: Bearer <admin_token>)"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return JSONResponse(
            {"detail": "admin endpoint: set --admin-token, or ask directly on loopback"},
            status_code=403,
        )

    def list_swarms(limit: int, peers_limit: int, with_peers: bool) -> SwarmsResponse:
        snaps = registry.snapshot(time.monotonic(), limit, peers_limit if with_peers else 0)
        return SwarmsResponse(
            swarm_count=registry.swarm_count(),
            peer_count=registry.peer_count(),
            swarms=[swarm_info(s, with_peers=with_peers) for s in snaps],
        )

    @app.get("/metrics", response_class=Response)
    async def metrics_endpoint(request: Request) -> Response:
        """Prometheus metrics (admin: see docs/deployment.md)."""
        refusal = admin_refusal(request)
        if refusal is not None:
            return refusal
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/swarms", response_model=SwarmsResponse, response_model_exclude_none=True)
    async def swarms(
        limit: int = Query(100, ge=0, le=10000, description="most swarms listed"),
    ) -> SwarmsResponse:
        """Public: counts and byte totals per swarm; no peer_id."""
        return list_swarms(limit, 0, with_peers=False)

    @app.get("/api/admin/swarms", response_model=SwarmsResponse)
    async def admin_swarms(
        request: Request,
        limit: int = Query(100, ge=0, le=10000, description="most swarms listed"),
        peers_limit: int = Query(100, ge=0, le=10000, description="most peers listed per swarm"),
    ) -> Response | SwarmsResponse:
        """Admin: the same with each swarm's peers (peer_id, hints, counters)."""
        refusal = admin_refusal(request)
        if refusal is not None:
            return refusal
        return list_swarms(limit, peers_limit, with_peers=True)

    return app
