"""Routing: which live socket a ``conn_id`` is, and handing it messages.

Kept apart from the registry: the registry says *who* gets a message (a ``conn_id``); the router
owns the sockets of this process. With scale-out, a message for a connection of another process
(``conn_id`` is ``<node_id>-<n>``) goes to ``forward``, which puts it on that process's channel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from signaling import closecodes
from signaling.metrics import SignalingMetrics
from signaling.replica import node_of
from signaling.service import Send, SendKind

logger = logging.getLogger(__name__)

AsgiSend = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str


class Connection:
    """One accepted WebSocket: an outgoing queue drained by a writer task."""

    def __init__(
        self,
        conn_id: str,
        send: AsgiSend,
        metrics: SignalingMetrics,
        queue_max: int,
        now_s: float,
    ) -> None:
        self.conn_id = conn_id
        self._send = send
        self._metrics = metrics
        self._queue_max = queue_max
        self._queue: asyncio.Queue[tuple[str, SendKind, float] | _Close] = asyncio.Queue()
        self.closing = False
        self.last_rx_s = now_s
        self.session_task: asyncio.Task[Any] | None = None
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def enqueue(self, text: str, kind: SendKind, t0_s: float) -> bool:
        if self.closing:
            return False
        if self._queue.qsize() >= self._queue_max:
            self._metrics.reject("send_queue_full")
            self.close(closecodes.SLOW_CONSUMER, "too many queued messages")
            return False
        self._queue.put_nowait((text, kind, t0_s))
        return True

    def close(self, code: int, reason: str) -> None:
        """Ask the writer to send a close frame after what is already queued."""
        if self.closing:
            return
        self.closing = True
        # a close frame's reason is at most 123 bytes
        self._queue.put_nowait(_Close(code, reason.encode()[:120].decode(errors="ignore")))

    async def _write_loop(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, _Close):
                    await self._send(
                        {"type": "websocket.close", "code": item.code, "reason": item.reason}
                    )
                    return
                text, kind, t0_s = item
                await self._send({"type": "websocket.send", "text": text})
                if kind != "reply":
                    self._metrics.relay_latency.labels(kind=kind).observe(time.monotonic() - t0_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client went away mid-send
            logger.debug("conn %s: send failed: %s", self.conn_id, type(exc).__name__)
            self.closing = True

    async def wait_writer(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self._writer), timeout_s)
        except TimeoutError:
            self._writer.cancel()
        except asyncio.CancelledError:
            self._writer.cancel()
            raise

    def stop_writer(self) -> None:
        self._writer.cancel()


class Router:
    def __init__(
        self, node_id: str | None = None, forward: Callable[[Send], None] | None = None
    ) -> None:
        self._conns: dict[str, Connection] = {}
        self.all_closed = asyncio.Event()
        self.all_closed.set()
        self.node_id = node_id
        self.forward = forward

    def add(self, conn: Connection) -> None:
        self._conns[conn.conn_id] = conn
        self.all_closed.clear()

    def remove(self, conn_id: str) -> None:
        self._conns.pop(conn_id, None)
        if not self._conns:
            self.all_closed.set()

    def __len__(self) -> int:
        return len(self._conns)

    def connections(self) -> list[Connection]:
        return list(self._conns.values())

    def deliver(self, sends: Iterable[Send], t0_s: float) -> None:
        for item in sends:
            conn = self._conns.get(item.conn_id)
            if conn is None:
                if self.forward is not None and node_of(item.conn_id) != self.node_id:
                    self.forward(item)
                    continue
                logger.debug("drop %s for gone conn %s", item.kind, item.conn_id)
                continue
            conn.enqueue(item.text, item.kind, t0_s)
