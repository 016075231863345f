"""The HTTP face of the hash service (FastAPI): ``/manifest``, ``/healthz``, ``/stats``."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from signaling.addresses import BadForwardedFor, client_ip, parse_networks
from signaling.hashsvc.errors import BadForwardedForHeader, BadFromMsn, HashServiceError
from signaling.hashsvc.service import HashService

logger = logging.getLogger(__name__)

_FROM_MSN_RE = re.compile(r"[0-9]{1,15}")
#: An incremental answer that lists its ``from_msn`` segment (docs/exchange.md, section 12).
CACHE_DELTA = "public, max-age=60"


def _from_msn(values: list[str]) -> int | None:
    if not values:
        return None
    if len(values) > 1 or _FROM_MSN_RE.fullmatch(values[0]) is None:
        raise BadFromMsn("from_msn must be given once, as at most 15 decimal digits")
    return int(values[0])


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
    proxies = parse_networks(service.config.trusted_proxies)

    def client_of(request: Request) -> str | None:
        """The client's address: the TCP peer, or behind a trusted proxy the rightmost
        X-Forwarded-For entry that is not itself a trusted proxy (signaling.addresses)."""
        peer = request.client.host if request.client else None
        if peer is None:
            return None
        forwarded = request.headers.getlist("x-forwarded-for")
        try:
            return client_ip(peer, ",".join(forwarded) if forwarded else None, proxies)
        except BadForwardedFor as exc:
            logger.warning("refused a request from a trusted proxy: bad %s", exc)
            raise BadForwardedForHeader(
                "bad X-Forwarded-For from a trusted proxy: an entry is not an address"
            ) from None

    cache_control = f"public, max-age={service.config.cache_max_age_s}"

    @app.get("/manifest")
    async def manifest(request: Request) -> JSONResponse:
        values = request.query_params.getlist("playlist")
        url = values[0] if len(values) == 1 else None
        cache = cache_control
        try:
            client = client_of(request)
            from_msn = _from_msn(request.query_params.getlist("from_msn"))
            if from_msn is None:
                hashes = await service.manifest(url, client)
            else:
                hashes, listed = await service.manifest_since(url, from_msn, client)
                cache = CACHE_DELTA if listed else cache_control
        except HashServiceError as exc:
            if isinstance(exc, BadFromMsn | BadForwardedForHeader):  # the service never saw it
                service.counters.requests += 1
                service.counters.reject(exc.reason)
            headers = {"Cache-Control": "no-store"}
            if exc.status in (429, 503):
                headers["Retry-After"] = "5"
            return JSONResponse(
                {"error": exc.detail, "reason": exc.reason}, exc.status, headers=headers
            )
        return JSONResponse(hashes, headers={"Cache-Control": cache})

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/stats")
    async def stats() -> JSONResponse:
        return JSONResponse(service.stats(), headers={"Cache-Control": "no-store"})

    return app
