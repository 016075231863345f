"""A small real HTTP/1.1 upstream for the hash-service abuse tests: asyncio sockets on loopback,
one response per connection, each path served by a handler that may misbehave (trickle, ignore
Range, stream a huge body). Counts the body bytes it actually wrote."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Handler = Callable[["Request", asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Request:
    path: str
    query: str
    headers: dict[str, str]


@dataclass
class Upstream:
    routes: dict[str, Handler]
    port: int = 0
    body_bytes_sent: int = 0
    requests: list[str] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            _method, target, _ = lines[0].split(" ", 2)
            path, _, query = target.partition("?")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
            self.requests.append(path)
            handler = self.routes.get(path)
            if handler is None:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            else:
                await handler(Request(path, query, headers), writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            self._tasks.discard(task)

    def write_body(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        self.body_bytes_sent += len(data)
        writer.write(data)


def head(status: str, length: int, content_type: str = "application/octet-stream") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


def static(upstream: Upstream, body: bytes, content_type: str = "video/mp2t") -> Handler:
    async def handler(req: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head("200 OK", len(body), content_type))
        upstream.write_body(writer, body)

    return handler


def playlist(upstream: Upstream, text: str) -> Handler:
    return static(upstream, text.encode(), "application/vnd.apple.mpegurl")


def trickle(upstream: Upstream, length: int, every_s: float, chunk_bytes: int = 1) -> Handler:
    """Announces ``length`` bytes, then sends ``chunk_bytes`` of them every ``every_s``."""

    async def handler(req: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head("200 OK", length))
        await writer.drain()
        for start in range(0, length, chunk_bytes):
            await asyncio.sleep(every_s)
            upstream.write_body(writer, b"x" * min(chunk_bytes, length - start))
            await writer.drain()

    return handler


def ignores_range(upstream: Upstream, length: int) -> Handler:
    """Answers every request (Range or not) with 200 and ``length`` bytes of a repeating
    pattern, streamed in 64 KiB writes."""
    pattern = bytes(range(256)) * 256

    async def handler(req: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head("200 OK", length))
        sent = 0
        while sent < length:
            chunk = pattern[: min(len(pattern), length - sent)]
            upstream.write_body(writer, chunk)
            await writer.drain()
            sent += len(chunk)

    return handler


def pattern_bytes(first: int, last: int) -> bytes:
    """Bytes ``first..last`` of :func:`ignores_range`'s body."""
    pattern = bytes(range(256))
    return bytes(pattern[i % 256] for i in range(first, last + 1))


def media_playlist(segments: list[str], *, byteranges: list[str] | None = None) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:4", "#EXT-X-TARGETDURATION:1", "#EXT-X-MEDIA-SEQUENCE:0"]
    for n, uri in enumerate(segments):
        lines.append("#EXTINF:1.0,")
        if byteranges is not None:
            lines.append(f"#EXT-X-BYTERANGE:{byteranges[n]}")
        lines.append(uri)
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
