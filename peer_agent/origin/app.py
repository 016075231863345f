"""The origin's ASGI application.

Media under ``/hls/`` is served by a small hand-written ASGI handler, because shaping needs
control that a framework response hides: pacing the body chunk by chunk, counting the bytes
actually handed to the socket, stopping short of ``Content-Length`` and closing (truncation), and
hanging without an answer (timeouts). Everything else (``/streams``, ``/stats``, ``/control``,
``/healthz``) is a FastAPI app. CORS headers cover both.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import pydantic
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send

from peer_agent.origin.catalog import HLS_PREFIX, Catalog, Resource
from peer_agent.origin.config import ShapingConfig
from peer_agent.origin.errors import BadQuery, BadRange, ConfigError, NotFound
from peer_agent.origin.ranges import parse_range
from peer_agent.origin.shaping import Fault, Pacer, draw_fault, pacing_chunk_bytes, truncated_length
from peer_agent.origin.stats import OriginStats

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

_EXPECT_INCOMPLETE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "p2p_origin_expect_incomplete", default=False
)
_INCOMPLETE_MSG = "ASGI callable returned without completing response"
_UNSHAPED_CHUNK_BYTES = 65_536


class _IntendedTruncationFilter(logging.Filter):
    """Hide uvicorn's error line for responses we cut short on purpose (truncation faults)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_EXPECT_INCOMPLETE.get() and record.getMessage().startswith(_INCOMPLETE_MSG))


_FILTER = _IntendedTruncationFilter()


def install_log_filter() -> None:
    uv_logger = logging.getLogger("uvicorn.error")
    if _FILTER not in uv_logger.filters:
        uv_logger.addFilter(_FILTER)


_SHAPING_TYPES: dict[str, type] = {"int": int, "float": float, "bool": bool}


def _control_model() -> type[pydantic.BaseModel]:
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(ShapingConfig):
        py_type = _SHAPING_TYPES[str(f.type)]
        fields[f.name] = (py_type | None, None)
    model: type[pydantic.BaseModel] = pydantic.create_model(
        "ShapingUpdate", __config__=pydantic.ConfigDict(extra="forbid", strict=False), **fields
    )
    return model


ShapingUpdate = _control_model()


class _RequestState:
    """Per-request: a watcher that notices the client going away, and one stop event."""

    def __init__(self, receive: Receive) -> None:
        self.stop = asyncio.Event()
        self.disconnected = False
        self._task = asyncio.get_running_loop().create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                self.stop.set()
                return

    async def wait(self, delay_s: float) -> bool:
        """Sleep ``delay_s``; True when interrupted (client gone or origin shutting down)."""
        if self.stop.is_set():
            return True
        try:
            async with asyncio.timeout(delay_s):
                await self.stop.wait()
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self._task.cancel()


class OriginApp:
    """ASGI callable serving one :class:`Catalog` with runtime-adjustable shaping."""

    def __init__(
        self,
        catalog: Catalog,
        shaping: ShapingConfig | None = None,
        *,
        clock: Clock = time.time,
    ) -> None:
        self.catalog = catalog
        self.clock = clock
        self._shaping = shaping or ShapingConfig()
        self.rng = random.Random(self._shaping.seed)
        self.stats = OriginStats(clock())
        self._total_pacer = Pacer()
        self._active: set[_RequestState] = set()
        self._closing = False
        self.api = self._build_api()
        self._asgi = CORSMiddleware(
            self._dispatch,
            allow_origins=["*"],
            allow_methods=["GET", "HEAD", "POST", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=["Content-Length", "Content-Range", "Accept-Ranges"],
            max_age=600,
        )
        install_log_filter()

    # -- runtime control ----------------------------------------------------------------------

    @property
    def shaping(self) -> ShapingConfig:
        return self._shaping

    def set_shaping(self, shaping: ShapingConfig) -> None:
        if shaping.seed != self._shaping.seed:
            self.rng = random.Random(shaping.seed)
        self._shaping = shaping
        logger.info("shaping changed: %s", shaping)

    def update_shaping(self, **changes: Any) -> ShapingConfig:
        """Apply a partial change; raises :class:`ConfigError` on invalid values."""
        try:
            new = dataclasses.replace(self._shaping, **changes)
        except TypeError as exc:
            raise ConfigError(str(exc)) from exc
        self.set_shaping(new)
        return new

    def reset_stats(self) -> None:
        self.stats.reset(self.clock())

    def stats_snapshot(self) -> dict[str, Any]:
        return self.stats.snapshot(self.clock())

    def begin_shutdown(self) -> None:
        """Stop hanging and paced responses so a graceful shutdown does not wait on them."""
        self._closing = True
        for state in list(self._active):
            state.stop.set()

    # -- ASGI ---------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._asgi(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(HLS_PREFIX):
            state = _RequestState(receive)
            self._active.add(state)
            if self._closing:
                state.stop.set()
            try:
                await self._serve_media(scope, state, send)
            finally:
                self._active.discard(state)
                state.close()
        else:
            await self.api(scope, receive, send)

    def _build_api(self) -> FastAPI:
        api = FastAPI(title="p2p-hls test origin", docs_url=None, redoc_url=None)

        @api.get("/streams")
        async def streams(request: Request) -> dict[str, Any]:
            return self.catalog.describe(str(request.base_url))

        @api.get("/stats")
        async def stats() -> dict[str, Any]:
            return self.stats_snapshot()

        @api.post("/stats/reset")
        async def stats_reset() -> dict[str, Any]:
            self.reset_stats()
            return self.stats_snapshot()

        @api.get("/control")
        async def control_get() -> dict[str, Any]:
            return {"shaping": dataclasses.asdict(self._shaping)}

        @api.post("/control", response_model=None)
        async def control_post(update: ShapingUpdate) -> dict[str, Any] | JSONResponse:  # type: ignore[valid-type]
            changes = {
                k: v
                for k, v in update.model_dump(exclude_unset=True).items()  # type: ignore[attr-defined]
                if v is not None
            }
            try:
                new = self.update_shaping(**changes)
            except ConfigError as exc:
                return JSONResponse({"detail": str(exc)}, status_code=422)
            return {"shaping": dataclasses.asdict(new)}

        @api.get("/healthz")
        async def healthz() -> dict[str, Any]:
            return {"ok": True}

        return api

    # -- media --------------------------------------------------------------------------------

    async def _serve_media(self, scope: Scope, state: _RequestState, send: Send) -> None:
        method = scope["method"]
        shaping = self._shaping
        if method not in ("GET", "HEAD"):
            self.stats.request(None, None, None)
            await self._plain(send, 405, b"method not allowed\n", [(b"allow", b"GET, HEAD")])
            return
        try:
            query = scope.get("query_string", b"").decode("latin-1")
            res = self.catalog.resolve(scope["path"], self.clock(), query)
        except NotFound as exc:
            self.stats.request(None, None, None)
            await self._plain(send, 404, f"not found: {exc}\n".encode())
            return
        except BadQuery as exc:
            self.stats.request(None, None, None)
            await self._plain(send, 400, f"bad request: {exc}\n".encode())
            return
        self.stats.request(res.kind, res.stream, res.rendition)
        shaped = res.kind in ("segment", "init") or shaping.faults_on_playlists
        if shaped and shaping.latency_s > 0 and await state.wait(shaping.latency_s):
            self._aborted(state)
            return
        fault = draw_fault(shaping, self.rng) if shaped else Fault.NONE
        if fault is Fault.ERROR:
            self.stats.fault("error")
            await self._plain(send, shaping.error_status, b"injected error\n")
            return
        if fault is Fault.TIMEOUT:
            self.stats.fault("timeout")
            await state.wait(shaping.timeout_hang_s)
            if not state.disconnected:
                await self._plain(send, 504, b"injected timeout\n", [(b"connection", b"close")])
            return
        body = res.body
        status = 200
        headers = [
            (b"content-type", res.content_type.encode()),
            (b"accept-ranges", b"bytes"),
            (b"cache-control", res.cache_control.encode()),
        ]
        range_header = _header(scope, b"range")
        if range_header is not None:
            try:
                first, last = parse_range(range_header, len(body))
            except BadRange as exc:
                await self._plain(
                    send,
                    416,
                    f"{exc}\n".encode(),
                    [(b"content-range", f"bytes */{exc.size}".encode())],
                )
                return
            status = 206
            headers.append((b"content-range", f"bytes {first}-{last}/{len(body)}".encode()))
            body = body[first : last + 1]
        headers.append((b"content-length", str(len(body)).encode()))
        self.stats.status(status)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if method == "HEAD":
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        limit = len(body)
        if fault is Fault.TRUNCATE:
            self.stats.fault("truncate")
            limit = truncated_length(len(body), shaping.truncate_fraction)
        sent = await self._send_paced(send, state, res, body, limit, shaping if shaped else None)
        if sent == len(body):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        # Cut short on purpose (truncation, shutdown) or by the client: returning now makes
        # uvicorn close the connection, so the client sees fewer bytes than Content-Length.
        if state.disconnected:
            self._aborted(state)
        _EXPECT_INCOMPLETE.set(True)

    async def _send_paced(
        self,
        send: Send,
        state: _RequestState,
        res: Resource,
        body: bytes,
        limit: int,
        shaping: ShapingConfig | None,
    ) -> int:
        loop = asyncio.get_running_loop()
        chunk = pacing_chunk_bytes(shaping) if shaping is not None else _UNSHAPED_CHUNK_BYTES
        pacer = Pacer()
        sent = 0
        while sent < limit:
            n = min(chunk, limit - sent)
            if shaping is not None:
                now = loop.time()
                delay = max(
                    pacer.reserve(n, shaping.rate_limit_bytes_per_s, now),
                    self._total_pacer.reserve(n, shaping.total_rate_limit_bytes_per_s, now),
                )
                if delay > 0 and await state.wait(delay):
                    break
            if state.disconnected:
                break
            await send(
                {"type": "http.response.body", "body": body[sent : sent + n], "more_body": True}
            )
            if state.disconnected:
                break
            sent += n
            self.stats.sent(n, res.kind, res.stream, res.rendition)
        return sent

    def _aborted(self, state: _RequestState) -> None:
        if state.disconnected:
            self.stats.client_abort()

    async def _plain(
        self,
        send: Send,
        status: int,
        body: bytes,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.stats.status(status)
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            *(extra or []),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
