"""The tracker WebSocket endpoint as a raw ASGI app: checks before accept, then a read loop.

Order of checks: Origin (4003), connection limit (1013), join token (4001/4002), then every
frame goes to :class:`SignalingService`. Refusals accept the handshake and close at once with
the code and a reason: browsers learn nothing from a refused handshake.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from signaling import closecodes
from signaling.addresses import (
    BadForwardedFor,
    address_key,
    client_ip,
    is_exempt,
    parse_networks,
)
from signaling.config import SignalingConfig
from signaling.errors import FatalViolation, TokenError, TokenExpired
from signaling.metrics import SignalingMetrics
from signaling.router import Connection, Router
from signaling.service import ConnContext, SignalingService
from signaling.tokens import JoinGrant, verify_token
from signaling.transport import TransportControl, transport_control

logger = logging.getLogger(__name__)

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _client_host(scope: dict[str, Any]) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def _forwarded_for(scope: dict[str, Any]) -> str | None:
    """Every X-Forwarded-For header, joined in order (a proxy may send several)."""
    values = [
        bytes(value).decode("latin-1")
        for key, value in scope.get("headers", ())
        if key.lower() == b"x-forwarded-for"
    ]
    return ",".join(values) if values else None


def _no_bytes() -> int:
    return 0


def origin_allowed(config: SignalingConfig, origin: str | None) -> bool:
    if not config.origins:
        return True
    if origin is None:
        return config.allow_missing_origin
    return origin.lower().rstrip("/") in {o.lower().rstrip("/") for o in config.origins}


class TrackerEndpoint:
    """ASGI app mounted at /announce."""

    def __init__(
        self,
        config: SignalingConfig,
        service: SignalingService,
        router: Router,
        metrics: SignalingMetrics,
        wall_clock: Callable[[], float] = time.time,
        node_id: str | None = None,
    ) -> None:
        self.config = config
        self.service = service
        self.router = router
        self.metrics = metrics
        self.wall_clock = wall_clock
        self.shutting_down = False
        self._ids = itertools.count(1)
        self._node = node_id or secrets.token_hex(4)
        self._contexts: dict[str, ConnContext] = {}
        self._proxies = parse_networks(config.trusted_proxies)
        self._exempt = parse_networks(config.address_limits_exempt)
        # connections with output pending (or closing): the write watchdog checks only these
        self._watch: set[Connection] = set()
        self.closed_total = 0  # connections ended, for the sweeper's garbage collection

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        if self.shutting_down:
            await send({"type": "websocket.close", "code": closecodes.GOING_AWAY})
            return
        grant: JoinGrant | None = None
        close: tuple[int, str, str] | None = None
        conn_id = f"{self._node}-{next(self._ids)}"
        address = ""
        reporter = ""  # the client's address key even when exempt: reports count by it
        try:
            ip = client_ip(_client_host(scope), _forwarded_for(scope), self._proxies)
            reporter = address_key(ip)
            if not is_exempt(ip, self._exempt):
                address = reporter
        except BadForwardedFor as exc:
            logger.warning("refused a connection from a trusted proxy: bad %s", exc)
            close = (closecodes.POLICY_VIOLATION, "bad X-Forwarded-For", "bad_forwarded_for")
        if close is not None:
            pass
        elif not origin_allowed(self.config, _header(scope, b"origin")):
            # Accepted, then closed at once with 4003: a browser gets no status for a refused
            # handshake, so a page could not tell this from an unreachable server.
            logger.info("refused a connection: Origin not allowed")
            close = (closecodes.ORIGIN_FORBIDDEN, "origin not allowed", "origin_forbidden")
        elif len(self.router) >= self.config.max_connections:
            close = (closecodes.TRY_AGAIN_LATER, "too many connections", "too_many_connections")
        elif self.config.token_secret is not None:
            grant, close = self._check_token(scope)
        if close is None and address:
            refused = self.service.addresses.open(address, conn_id, time.monotonic())
            if refused == "too_many_connections_per_address":
                close = (
                    closecodes.TRY_AGAIN_LATER,
                    "too many connections from this address",
                    refused,
                )
            elif refused is not None:
                # an address out of tokens is flooding: refuse before the upgrade (HTTP 429),
                # which costs far less than accepting, closing and a closing handshake
                self.metrics.reject(refused)
                await send(
                    {
                        "type": "websocket.http.response.start",
                        "status": 429,
                        "headers": [(b"retry-after", b"1")],
                    }
                )
                body = b"too many connections from this address\n"
                await send({"type": "websocket.http.response.body", "body": body})
                return
        await send({"type": "websocket.accept"})
        if close is not None:
            code, detail, reason = close
            self.metrics.reject(reason)
            await send({"type": "websocket.close", "code": code, "reason": detail})
            return
        await self._session(
            receive, send, grant, transport_control(scope), conn_id, address, reporter
        )

    def _check_token(
        self, scope: dict[str, Any]
    ) -> tuple[JoinGrant | None, tuple[int, str, str] | None]:
        query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
        token = (query.get("token") or [""])[0]
        assert self.config.token_secret is not None
        try:
            return verify_token(self.config.token_secret, token, self.wall_clock()), None
        except TokenExpired as exc:
            return None, (closecodes.TOKEN_EXPIRED, exc.detail, exc.reason)
        except TokenError as exc:
            return None, (closecodes.TOKEN_INVALID, exc.detail, exc.reason)

    async def _session(
        self,
        receive: Receive,
        send: Send,
        grant: JoinGrant | None,
        control: TransportControl | None,
        conn_id: str,
        address: str,
        reporter: str = "",
    ) -> None:
        now_s = time.monotonic()
        conn = Connection(
            conn_id,
            send,
            self.metrics,
            self.config.send_queue_max,
            now_s,
            max_bytes=self.config.send_queue_max_bytes,
            transport_bytes=control.write_buffer_bytes if control is not None else _no_bytes,
            on_evict=self._evicted,
            watch=self._watch,
            abort=control.abort if control is not None else None,
        )
        conn.session_task = asyncio.current_task()
        ctx = self.service.new_connection(conn_id, now_s, grant, address, reporter)
        self._contexts[conn_id] = ctx
        self.router.add(conn)
        self.metrics.connections.inc()
        try:
            while True:
                event = await receive()
                if event["type"] == "websocket.disconnect":
                    if event.get("code") == closecodes.MESSAGE_TOO_BIG and not conn.closing:
                        # uvicorn's own ceiling (4x max_message_bytes) closed it
                        self.metrics.reject("message_too_big")
                    break
                if event["type"] != "websocket.receive":
                    continue
                t0_s = time.monotonic()
                conn.last_rx_s = t0_s
                if conn.closing:
                    continue
                text = event.get("text")
                frame: str | bytes = text if text is not None else event.get("bytes") or b""
                try:
                    sends = await self.service.on_frame_async(ctx, frame, t0_s)
                except FatalViolation as exc:
                    logger.info("conn %s: closing (%s)", conn_id, exc.reason)
                    conn.close(exc.close_code or closecodes.POLICY_VIOLATION, exc.detail)
                    continue
                self.router.deliver(sends, t0_s)
        finally:
            self.closed_total += 1
            self._contexts.pop(conn_id, None)
            self.router.remove(conn_id)
            self.service.on_close(ctx)
            self.metrics.connections.dec()
            if conn.closing:
                await conn.wait_writer(1.0)
            else:
                conn.stop_writer()
            if control is not None and control.write_buffer_bytes() > 0:
                self._watch.add(conn)  # uvicorn's close waits for a drain: abort if it stalls
            else:
                # nothing left in the transport: nothing to watch. Kept in the set, a client
                # gone before its replies went out was held (with its protocol, transport and
                # tasks) until the watchdog evicted it as a false write timeout.
                self._watch.discard(conn)

    def _evicted(self, conn: Connection) -> None:
        """A slow reader: no more offers for it, and out of its swarms now."""
        self.router.remove(conn.conn_id)
        ctx = self._contexts.get(conn.conn_id)
        if ctx is not None:
            self.service.on_close(ctx)

    def check_writes(self, now_s: float) -> int:
        """The write watchdog: evict connections whose pending output made no progress for
        ``write_timeout_s`` (4009); abort sockets still stuck ``write_timeout_s`` after their
        close began. Returns how many it evicted or aborted."""
        timeout_s = self.config.write_timeout_s
        acted = 0
        for conn in list(self._watch):
            stalled_s = conn.stalled_for(now_s)
            if conn.idle_output or (conn.writer_done and conn.held_bytes() == 0):
                self._watch.discard(conn)
                continue
            if stalled_s < timeout_s:
                continue
            if not conn.closing and not conn.evicted:
                conn.evict(closecodes.WRITE_TIMEOUT, "write timeout", "write_timeout")
                acted += 1
            elif conn.closing_since_s is not None and now_s - conn.closing_since_s >= timeout_s:
                self._watch.discard(conn)
                if conn.abort is not None:
                    self.metrics.reject("write_aborted")
                    logger.info("conn %s: aborting a socket that does not drain", conn.conn_id)
                    conn.abort()
                    acted += 1
                conn.stop_writer()
        return acted

    def close_idle(self, now_s: float) -> int:
        """Close connections silent for ``idle_timeout_s`` (4000) and those whose join token
        has expired (4002), even if they send nothing that would be checked."""
        closed = 0
        for conn in self.router.connections():
            if conn.closing:
                continue
            ctx = self._contexts.get(conn.conn_id)
            if ctx is not None and self.service.token_expired(ctx, now_s):
                self.metrics.reject("token_expired")
                conn.close(closecodes.TOKEN_EXPIRED, "join token expired")
                closed += 1
            elif now_s - conn.last_rx_s > self.config.idle_timeout_s:
                self.metrics.reject("idle_timeout")
                conn.close(closecodes.IDLE_TIMEOUT, "idle timeout")
                closed += 1
        return closed

    async def shutdown(self, grace_s: float) -> None:
        """Stop accepting, send 1001 to every socket, wait up to ``grace_s``, cancel the rest."""
        self.shutting_down = True
        conns = self.router.connections()
        if conns:
            logger.info("closing %d WebSocket connections (1001)", len(conns))
        for conn in conns:
            conn.close(closecodes.GOING_AWAY, "server shutting down")
        try:
            await asyncio.wait_for(self.router.all_closed.wait(), grace_s)
        except TimeoutError:
            left = self.router.connections()
            logger.warning("cancelling %d connections after %.1f s", len(left), grace_s)
            for conn in left:
                conn.stop_writer()
                if conn.session_task is not None:
                    conn.session_task.cancel()
