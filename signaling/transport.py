"""What the tracker endpoint may see and do of the TCP socket under a WebSocket.

ASGI gives an app no access to its transport, yet bounding a slow reader needs two things from
it: how many bytes sit in the transport's write buffer (asyncio keeps everything the kernel did
not take; uvicorn stops handing it frames above the 64 KiB high-water mark but never drops them)
and a way to abort it (``transport.close()`` waits for that buffer to drain, which never happens
when the client does not read). :class:`TrackerWebSocketProtocol` is uvicorn's
``websockets-sansio`` protocol that puts a :class:`TransportControl` in the ASGI scope under
``scope["extensions"][EXTENSION]``; the endpoint works without it (other servers, test clients)
but then cannot see the transport's buffer nor abort a stuck socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import socket
import struct
import termios
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

logger = logging.getLogger(__name__)

EXTENSION = "p2p.transport"
_LINGER_RESET = struct.pack("ii", 1, 0)


class TransportControl:
    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._sock = transport.get_extra_info("socket")  # its fileno() is -1 once closed

    def kernel_bytes(self) -> int:
        """Bytes in the kernel's send queue the client has not acknowledged (SIOCOUTQ). The
        kernel grows a socket's send buffer up to ``net.ipv4.tcp_wmem``'s maximum (4 MiB by
        default), so a client that does not read can park megabytes there, out of sight of
        the transport."""
        fd = self._sock.fileno() if self._sock is not None else -1
        if fd < 0:
            return 0
        try:
            buf = fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0")
        except OSError:
            return 0
        return int(struct.unpack("i", buf)[0])

    def write_buffer_bytes(self) -> int:
        """Bytes written for the client that it has not received yet: the transport's buffer
        plus the kernel's unacknowledged send queue (0 once the socket is gone)."""
        try:
            buffered = int(self._transport.get_write_buffer_size())
        except (AttributeError, RuntimeError):  # a transport already torn down
            return 0
        return buffered + self.kernel_bytes()

    def abort(self) -> None:
        """Drop the socket now, discarding what is buffered (idempotent). A zero linger makes
        the close a reset: otherwise the kernel keeps the orphaned socket and its unsent
        queue, probing a zero window, for minutes."""
        fd = self._sock.fileno() if self._sock is not None else -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        self._transport.abort()

    def abort_if_stuck(self) -> None:
        """Abort when bytes are still buffered (a clean close leaves none)."""
        if self.write_buffer_bytes() > 0:
            logger.debug("aborting a socket that did not drain its write buffer")
            self.abort()


def transport_control(scope: dict[str, Any]) -> TransportControl | None:
    control = (scope.get("extensions") or {}).get(EXTENSION)
    return control if isinstance(control, TransportControl) else None


class TrackerWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websockets protocol, exposing :class:`TransportControl` to the app."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None and self.transport is not None:
            scope.setdefault("extensions", {})[EXTENSION] = TransportControl(self.transport)
