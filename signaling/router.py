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
    """One accepted WebSocket: an outgoing queue drained by a writer task.

    What it holds for its client is bounded in bytes: the queued messages plus what the
    transport has not handed to the kernel yet (``transport_bytes``) stay within
    ``max_bytes``; a message that would cross it evicts the connection (4008). A connection
    with pending output that makes no progress for the endpoint's write timeout is evicted by
    the endpoint's watchdog (:meth:`stalled_for`)."""

    def __init__(
        self,
        conn_id: str,
        send: AsgiSend,
        metrics: SignalingMetrics,
        queue_max: int,
        now_s: float,
        *,
        max_bytes: int = 1 << 62,
        transport_bytes: Callable[[], int] = lambda: 0,
        on_evict: Callable[[Connection], None] | None = None,
        watch: set[Connection] | None = None,
        abort: Callable[[], None] | None = None,
    ) -> None:
        self.conn_id = conn_id
        self._send = send
        self._metrics = metrics
        self._queue_max = queue_max
        self._max_bytes = max_bytes
        self._transport_bytes = transport_bytes
        self._on_evict = on_evict
        self._watch = watch
        self.abort = abort
        self._queue: asyncio.Queue[tuple[str, SendKind, float] | _Close] = asyncio.Queue()
        self.queued_bytes = 0
        self._handed_bytes = 0  # given to the transport since the start
        self._flushed_mark = 0
        self._stall_since_s: float | None = None
        self.closing = False
        self.evicted = False
        self.closing_since_s: float | None = None
        self.last_rx_s = now_s
        self.session_task: asyncio.Task[Any] | None = None
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def held_bytes(self) -> int:
        """Bytes waiting for this client: queued here plus unsent in the transport."""
        return self.queued_bytes + self._transport_bytes()

    def enqueue(self, text: str, kind: SendKind, t0_s: float) -> bool:
        if self.closing:
            return False
        size = len(text) if text.isascii() else len(text.encode())
        if self._queue.qsize() >= self._queue_max:
            self.evict(closecodes.SLOW_CONSUMER, "too many queued messages", "send_queue_full")
            return False
        if self.held_bytes() + size > self._max_bytes:
            self.evict(closecodes.SLOW_CONSUMER, "too many queued bytes", "send_queue_full")
            return False
        if not self._queue.empty() and self._watch is not None:
            self._watch.add(self)  # the writer is behind: watch its progress
        self.queued_bytes += size
        self._queue.put_nowait((text, kind, t0_s))
        return True

    def close(self, code: int, reason: str) -> None:
        """Ask the writer to send a close frame after what is already queued."""
        if self.closing:
            return
        self.closing = True
        self.closing_since_s = time.monotonic()
        if self._watch is not None:
            self._watch.add(self)
        # a close frame's reason is at most 123 bytes
        self._queue.put_nowait(_Close(code, reason.encode()[:120].decode(errors="ignore")))

    def evict(self, code: int, detail: str, reason: str) -> None:
        """A client that does not read: drop what is queued for it, leave its swarms at once
        (``on_evict``) and send it a close frame (the watchdog aborts the socket if even that
        cannot go out within the write timeout)."""
        if self.evicted:
            return
        self.evicted = True
        self._metrics.reject(reason)
        logger.info("conn %s: evicting a slow reader (%s)", self.conn_id, reason)
        while not self._queue.empty():
            self._queue.get_nowait()
        self.queued_bytes = 0
        self.closing = False  # so that close() queues the frame even after another close
        self.close(code, detail)
        if self._on_evict is not None:
            self._on_evict(self)

    def stalled_for(self, now_s: float) -> float:
        """Seconds its pending output has made no progress (0 when nothing is pending or bytes
        reached the kernel since the last call)."""
        buffered = self._transport_bytes()
        if self.queued_bytes == 0 and buffered == 0 and not self.closing:
            self._stall_since_s = None
            return 0.0
        flushed = self._handed_bytes - buffered
        if flushed > self._flushed_mark or self._stall_since_s is None:
            self._flushed_mark = flushed
            self._stall_since_s = now_s
            return 0.0
        return now_s - self._stall_since_s

    @property
    def idle_output(self) -> bool:
        return self.queued_bytes == 0 and self._transport_bytes() == 0 and not self.closing

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
                size = len(text) if text.isascii() else len(text.encode())
                await self._send({"type": "websocket.send", "text": text})
                self.queued_bytes = max(0, self.queued_bytes - size)
                self._handed_bytes += size
                if self._watch is not None and self._transport_bytes() > 0:
                    self._watch.add(self)  # the kernel did not take it all
                if kind != "reply":
                    self._metrics.relay_latency.labels(kind=kind).observe(time.monotonic() - t0_s)
        except asyncio.CancelledError:
            # stop_writer/wait_writer: the only ones to cancel it. Ending normally instead of
            # re-raising leaves no cycle behind (the done task would hold the error, whose
            # traceback holds this frame, whose self holds the task): refcounting frees the
            # connection at once instead of a rare full collection (docs/signaling.md, memory)
            return
        except Exception as exc:  # the client went away mid-send
            logger.debug("conn %s: send failed: %s", self.conn_id, type(exc).__name__)
            self.closing = True

    @property
    def writer_done(self) -> bool:
        return self._writer.done()

    async def wait_writer(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self._writer), timeout_s)
        except TimeoutError:
            self._writer.cancel()
        except asyncio.CancelledError:
            self._writer.cancel()
            raise

    def stop_writer(self) -> None:
        """Cancel the writer and drop what it had not sent (the client is gone)."""
        self._writer.cancel()
        while not self._queue.empty():
            self._queue.get_nowait()
        self.queued_bytes = 0


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
