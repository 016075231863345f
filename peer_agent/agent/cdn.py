"""Fetching from the CDN with httpx: timeouts, retries with backoff, Range resume.

One :class:`CdnFetcher` wraps one ``httpx.AsyncClient``. :meth:`CdnFetcher.fetch` returns the
bytes of a segment (or of a byte range of a resource), from a given offset, calling
``on_chunk(offset, data)`` for every piece as it arrives, so the agent can relay bytes to peers
that asked for the segment while it is still downloading (cut-through).

Failures that may pass are retried with exponential backoff and jitter: 5xx and 429 answers,
timeouts, connection errors and bodies shorter than announced. Those that cannot (a 4xx, a URL
that is not http(s), a host name that does not resolve) fail at once. A retry continues where
the last attempt stopped (``Range: bytes=N-``), so bytes are never fetched twice. A server that
ignores Range and answers 200 has the already-held prefix skipped.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from .playlist import ByteRange

logger = logging.getLogger(__name__)

ChunkCallback = Callable[[int, bytes], None]

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class CdnConfig:
    """CDN fetch options (all times in seconds)."""

    #: Time to connect, and longest silence while reading a body, before an attempt fails.
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 4.0
    #: Attempts per fetch (the first one included).
    max_attempts: int = 5
    #: Backoff before retry k (k = 1, 2, ...): base * 2**(k-1), capped, times a jitter in
    #: [0.5, 1.0).
    backoff_base_s: float = 0.2
    backoff_max_s: float = 2.0


class CdnError(Exception):
    """A fetch failed for good (attempts exhausted or a status that retrying cannot fix)."""

    def __init__(self, message: str, *, status: int | None = None, received: int = 0) -> None:
        super().__init__(message)
        self.status = status
        #: Bytes of the segment held when the fetch gave up (from its start, offset included).
        self.received = received


class CdnTooLarge(CdnError):
    """A body over the ``max_bytes`` the caller allows (not retried; nothing past it is read)."""


def _unknown_host(exc: BaseException) -> bool:
    """True when a name lookup said the host does not exist (retrying cannot fix that; a
    temporary resolver failure, EAI_AGAIN, is retried)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, socket.gaierror):
            return seen.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5))
        seen = seen.__cause__ or seen.__context__
    return "Name or service not known" in str(exc)


class _Retry(Exception):
    """One attempt failed in a way another attempt may fix."""


@dataclass(frozen=True)
class CdnResult:
    data: bytes  # the segment's bytes from ``offset`` to its end
    offset: int
    total_bytes: int
    attempts: int
    elapsed_s: float


class CdnFetcher:
    def __init__(
        self,
        config: CdnConfig | None = None,
        client: httpx.AsyncClient | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or CdnConfig()
        timeout = httpx.Timeout(self.config.read_timeout_s, connect=self.config.connect_timeout_s)
        self._own_client = client is None
        self.client = client or httpx.AsyncClient(timeout=timeout, follow_redirects=True)
        self.rng = rng or random.Random()
        self.retries = 0
        self.requests = 0
        self.bytes_received = 0

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()

    def backoff_s(self, attempt: int) -> float:
        """Delay before retry ``attempt`` (1 for the first retry)."""
        cfg = self.config
        base = min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** (attempt - 1))
        return base * (0.5 + 0.5 * self.rng.random())

    async def get_text(self, url: str) -> str:
        """A small resource (playlist, manifest) with the same retry rules."""
        result = await self.fetch(url)
        return result.data.decode("utf-8")

    async def fetch(
        self,
        url: str,
        *,
        byte_range: ByteRange | None = None,
        offset: int = 0,
        on_chunk: ChunkCallback | None = None,
        on_total: Callable[[int], None] | None = None,
        max_bytes: int | None = None,
    ) -> CdnResult:
        """Bytes ``[offset, end)`` of the resource (or of ``byte_range`` within it). With
        ``max_bytes``, a larger resource raises :class:`CdnTooLarge` (read no further)."""
        started = time.monotonic()
        buf = bytearray()
        total: int | None = byte_range.length if byte_range is not None else None
        attempt = 0
        while True:
            attempt += 1
            try:
                total = await self._attempt(
                    url, byte_range, offset, total, buf, on_chunk, on_total, max_bytes
                )
                if offset + len(buf) >= total:
                    elapsed = time.monotonic() - started
                    return CdnResult(bytes(buf), offset, total, attempt, elapsed)
                raise _Retry(f"body ended at {offset + len(buf)} of {total} bytes")
            except _Retry as exc:
                reached = offset + len(buf)
                if attempt >= self.config.max_attempts:
                    message = f"{url}: {exc} (gave up after {attempt} attempts)"
                    raise CdnError(message, received=reached) from None
                self.retries += 1
                delay = self.backoff_s(attempt)
                logger.info(
                    "CDN %s: %s; retry %d in %.2f s from byte %d", url, exc, attempt, delay, reached
                )
                await asyncio.sleep(delay)

    async def _attempt(
        self,
        url: str,
        byte_range: ByteRange | None,
        offset: int,
        total: int | None,
        buf: bytearray,
        on_chunk: ChunkCallback | None,
        on_total: Callable[[int], None] | None = None,
        max_bytes: int | None = None,
    ) -> int:
        """One GET continuing at ``offset + len(buf)``; appends to ``buf``; returns the total
        size of the segment."""
        pos = offset + len(buf)  # next byte wanted, in segment coordinates
        base = byte_range.offset if byte_range is not None else 0
        headers = {}
        if byte_range is not None:
            headers["Range"] = f"bytes={base + pos}-{base + byte_range.length - 1}"
        elif pos > 0:
            headers["Range"] = f"bytes={pos}-"
        self.requests += 1
        try:
            async with self.client.stream("GET", url, headers=headers) as response:
                status = response.status_code
                if status >= 500 or status == 429:
                    raise _Retry(f"HTTP {status}")
                if status >= 400 or status < 200 or status == 204:
                    raise CdnError(f"{url}: HTTP {status}", status=status, received=pos)
                length = response.headers.get("content-length")
                expected = int(length) if length is not None else None  # bytes in this body
                skip = 0
                if status == 206:
                    match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", ""))
                    if match is None:
                        raise _Retry("206 without a usable Content-Range")
                    first, last = int(match.group(1)), int(match.group(2))
                    if first != base + pos:
                        raise _Retry(f"206 from byte {first}, asked for {base + pos}")
                    expected = last - first + 1
                    if byte_range is None:
                        if match.group(3) != "*":
                            total = int(match.group(3))
                        elif total is None:
                            total = pos + expected
                else:  # 200: the whole resource, whatever was asked
                    skip = base + pos
                    if byte_range is None and expected is not None:
                        total = expected
                if total is not None and on_total is not None:
                    on_total(total)
                if max_bytes is not None and total is not None and total > max_bytes:
                    raise CdnTooLarge(f"{url}: {total} bytes, over {max_bytes}", received=pos)
                got = 0
                async for chunk in response.aiter_bytes():  # as received: keep every byte
                    got += len(chunk)
                    if max_bytes is not None and got > max_bytes:
                        raise CdnTooLarge(f"{url}: body over {max_bytes} bytes", received=pos)
                    if skip:
                        cut = min(skip, len(chunk))
                        chunk = chunk[cut:]
                        skip -= cut
                    if total is not None:
                        chunk = chunk[: max(0, total - pos)]
                    if chunk:
                        buf += chunk
                        self.bytes_received += len(chunk)
                        if on_chunk is not None:
                            on_chunk(pos, bytes(chunk))
                        pos += len(chunk)
                if expected is not None and got < expected:
                    raise _Retry(f"truncated body: {got} of {expected} bytes")
                if total is None:  # no length announced: the body ended the resource
                    total = pos
                return total
        except httpx.TimeoutException as exc:
            raise _Retry(f"timeout ({type(exc).__name__})") from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise CdnError(f"{url}: not an http(s) URL ({exc})", received=pos) from None
        except (httpx.TransportError, httpx.StreamError) as exc:
            if _unknown_host(exc):
                message = f"{url}: unknown host (the name does not resolve)"
                raise CdnError(message, received=pos) from None
            raise _Retry(f"{type(exc).__name__}: {exc}") from None
