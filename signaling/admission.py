"""Refuse a flooding address when its TCP connection is accepted, before any HTTP work.

A client that reconnects as fast as it can costs the server, per attempt, an accept, uvicorn's
HTTP protocol and request parsing, the WebSocket upgrade and a close, even when the per-address
limits (:mod:`signaling.ws`) refuse it at the end. :class:`AdmissionGate` is the protocol the
listening socket creates first: in ``connection_made`` it takes one attempt from the peer
address's bucket (:class:`signaling.addresses.AttemptTable`) and, when that is empty, resets the
connection at once (RST, no TIME_WAIT left on the server) and counts it
(``p2p_signaling_rejections_total{reason="connection_attempts_per_address"}``); otherwise it
hands the transport to uvicorn's HTTP protocol and is out of the way. The client sees its
connection reset before any HTTP response (a browser: a WebSocket ``error`` then ``close`` with
1006) and reconnects with backoff.

The TCP peer is the address here: a trusted proxy's connections (many clients) and the
``address_limits_exempt`` networks are never refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from signaling.addresses import AttemptTable, Network, address_key, is_exempt, parse_networks
from signaling.config import SignalingConfig
from signaling.metrics import SignalingMetrics

logger = logging.getLogger(__name__)

REASON = "connection_attempts_per_address"
_LINGER_RESET = struct.pack("ii", 1, 0)
_MAX_CACHED_HOSTS = 65536


class AdmissionGuard:
    """The per-address attempt budget and what it needs to name an address."""

    def __init__(
        self,
        config: SignalingConfig,
        metrics: SignalingMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = AttemptTable(
            config.connect_rate_per_address_s, config.connect_burst_per_address
        )
        self._skip: tuple[Network, ...] = parse_networks(
            config.address_limits_exempt + config.trusted_proxies
        )
        self._clock = clock
        self._refused = metrics.rejections.labels(reason=REASON)
        self._keys: dict[str, str | None] = {}  # peer host -> address key, None: never refused
        self.refused_total = 0

    def _key(self, host: str) -> str | None:
        key = self._keys.get(host, "")
        if key == "":
            if len(self._keys) >= _MAX_CACHED_HOSTS:
                self._keys.clear()
            key = self._keys[host] = None if is_exempt(host, self._skip) else address_key(host)
        return key

    def admit(self, peer: Any) -> bool:
        """Whether a connection from ``peer`` (a transport's ``peername``) may go on."""
        if not isinstance(peer, tuple) or not peer or not isinstance(peer[0], str):
            return True  # a Unix socket: no address to count
        key = self._key(peer[0])
        if key is None or self.table.admit(key, self._clock()):
            return True
        self._refused.inc()
        self.refused_total += 1
        return False

    def prune(self, now_s: float) -> int:
        return self.table.prune(now_s)


def reset(transport: asyncio.BaseTransport) -> None:
    """Close with a reset: nothing was sent, and no TIME_WAIT stays behind on our side."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, ValueError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()  # type: ignore[attr-defined]


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (``uvicorn[standard]`` brings httptools), which lets go of
    its parser once it has handed the connection to the WebSocket protocol. The parser's
    callbacks point back at the protocol: that cycle kept every upgraded connection's HTTP
    protocol, parser, flow control and transport (~27 objects) until a full collection, which
    the raised GC thresholds make rare (docs/signaling.md, "Memory under hostile traffic")."""

    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()
        self.parser = None  # type: ignore[assignment]


class AdmissionGate(asyncio.Protocol):
    """First protocol of every accepted connection; see the module's docstring."""

    __slots__ = ("_guard", "_inner", "_kwargs")

    def __init__(
        self, guard: AdmissionGuard, inner: Callable[..., asyncio.Protocol], kwargs: dict[str, Any]
    ) -> None:
        self._guard = guard
        self._inner = inner
        self._kwargs = kwargs

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._guard.admit(transport.get_extra_info("peername")):
            reset(transport)
            return
        protocol = self._inner(**self._kwargs)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)

    def data_received(self, data: bytes) -> None:  # only ever after a refusal: dropped
        pass

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        pass


def gated(inner: Callable[..., asyncio.Protocol], guard: AdmissionGuard) -> Callable[..., Any]:
    """A protocol factory for ``uvicorn.Config(http=...)``: uvicorn calls it with its keyword
    arguments for ``inner`` (its HTTP protocol class)."""

    def factory(**kwargs: Any) -> asyncio.Protocol:
        return AdmissionGate(guard, inner, kwargs)

    return factory
