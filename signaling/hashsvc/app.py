"""The HTTP face of the hash service (FastAPI): ``/manifest``, ``/healthz``, ``/stats``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from signaling.hashsvc.errors import HashServiceError
from signaling.hashsvc.service import HashService

logger = logging.getLogger(__name__)


def build_app(service: HashService) -> FastAPI:
    """The ASGI app over ``service`` (whose lifetime the caller owns)."""
    app = FastAPI(title="p2p-hls hash service", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def cors(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Any:
        # Browsers (the web loader) fetch manifests cross-origin; plain GETs need no preflight.
        response = await call_next(request)
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    app.state.service = service
    cache_control = f"public, max-age={service.config.cache_max_age_s}"

    @app.get("/manifest")
    async def manifest(request: Request) -> JSONResponse:
        values = request.query_params.getlist("playlist")
        url = values[0] if len(values) == 1 else None
        try:
            hashes = await service.manifest(url, request.client.host if request.client else None)
        except HashServiceError as exc:
            headers = {"Cache-Control": "no-store"}
            if exc.status in (429, 503):
                headers["Retry-After"] = "5"
            return JSONResponse(
                {"error": exc.detail, "reason": exc.reason}, exc.status, headers=headers
            )
        return JSONResponse(hashes, headers={"Cache-Control": cache_control})

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/stats")
    async def stats() -> JSONResponse:
        return JSONResponse(service.stats(), headers={"Cache-Control": "no-store"})

    return app
