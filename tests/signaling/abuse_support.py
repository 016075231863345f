"""Hostile clients on raw sockets for the abuse tests and the abuse bench.

:class:`RawClient` speaks WebSocket through websockets' sans-I/O client over a plain TCP socket
that the test controls: a tiny receive buffer, a chosen local address (127.0.0.x tells
addresses apart on loopback), and no reading at all unless asked. A uniquely named module (not
conftest) so that any order of test paths collects, and the bench can import it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

TCP_STATES = {1: "established", 7: "close", 8: "close_wait", 4: "fin_wait1", 5: "fin_wait2"}


class RawClient:
    def __init__(self, sock: socket.socket, proto: ClientProtocol) -> None:
        self.sock = sock
        self.proto = proto
        self.close_code: int | None = None
        self.messages: list[dict[str, Any]] = []

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        rcvbuf_bytes: int | None = None,
        local_host: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> RawClient:
        uri = parse_uri(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf_bytes is not None:  # before connect, so the window starts small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf_bytes)
        if local_host is not None:
            sock.bind((local_host, 0))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (uri.host, uri.port))
        proto = ClientProtocol(uri, max_size=None)
        request = proto.connect()
        for key, value in (headers or {}).items():
            request.headers[key] = value
        proto.send_request(request)
        await loop.sock_sendall(sock, b"".join(proto.data_to_send()))
        client = cls(sock, proto)
        async with asyncio.timeout(10):
            while True:
                data = await loop.sock_recv(sock, 4096)
                if not data:
                    raise ConnectionError("closed during the handshake")
                proto.receive_data(data)
                events = proto.events_received()
                if any(isinstance(e, Response) for e in events):
                    client._take(events)
                    break
        if proto.handshake_exc is not None:
            raise proto.handshake_exc
        return client

    def _take(self, events: list[Any]) -> None:
        for event in events:
            opcode = getattr(event, "opcode", None)
            if opcode is Opcode.TEXT:
                self.messages.append(json.loads(bytes(event.data)))
            elif opcode is Opcode.CLOSE and self.proto.close_rcvd is not None:
                self.close_code = self.proto.close_rcvd.code

    async def send(self, obj: Any) -> None:
        self.proto.send_text(json.dumps(obj).encode())
        await asyncio.get_running_loop().sock_sendall(
            self.sock, b"".join(self.proto.data_to_send())
        )

    async def read_until_closed(self, timeout_s: float) -> int | None:
        """Read everything (finally); return the close code the server sent, or None when the
        socket ended without one (reset)."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(TimeoutError, ConnectionError, OSError):
            async with asyncio.timeout(timeout_s):
                while self.close_code is None:
                    data = await loop.sock_recv(self.sock, 65536)
                    if not data:
                        break
                    self.proto.receive_data(data)
                    self._take(self.proto.events_received())
        return self.close_code

    def tcp_state(self) -> str:
        """The kernel's state of this socket (TCP_INFO), read without reading any data: a
        server abort (RST) shows as ``close``, a server close (FIN) as ``close_wait``."""
        info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
        state = struct.unpack("B", info[:1])[0]
        return TCP_STATES.get(state, str(state))

    def close(self) -> None:
        self.sock.close()
