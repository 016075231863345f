"""Test helpers: a synthetic HTTP origin with exactly scriptable faults, and a corrupter.

The synthetic origin serves random bytes as segments, a sliding live playlist and a SHA-256
manifest, and fails exactly as told (the next N requests 5xx, a body cut at byte K, a body that
stalls): the CDN fetcher's unit tests need that precision. Everything else runs against the real
origin (``peer_agent.origin``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from peer_agent.core.exchange_actions import SendData


@dataclass
class Faults:
    #: Answer the next N segment requests with this status.
    fail_next: int = 0
    fail_status: int = 503
    #: Cut the next N segment bodies after this many bytes (Content-Length stays whole).
    truncate_next: int = 0
    truncate_at: int = 1000
    #: Stall the next N segment bodies after ``truncate_at`` bytes for ``stall_s``.
    stall_next: int = 0
    stall_s: float = 10.0
    #: Send the next N segment bodies' first ``truncate_at`` bytes at once, then the rest
    #: ``drip_bytes`` at a time every ``drip_every_s`` (slow, never silent for long).
    drip_next: int = 0
    drip_bytes: int = 1000
    drip_every_s: float = 0.2
    #: Ignore Range headers (answer 200 with the whole body).
    ignore_range: bool = False
    #: Pace every segment body at this rate (0: as fast as possible).
    rate_bytes_per_s: float = 0.0


@dataclass
class SynthStream:
    segment_s: float = 0.5
    segment_bytes: int = 40_000
    window: int = 6
    live: bool = True
    vod_segments: int = 8
    seed: int = 1
    started_at: float = field(default_factory=time.monotonic)
    #: Live: segments published before the clock starts (so a viewer can start behind).
    preroll: int = 6
    end_after: int | None = None  # live: ENDLIST once this many segments exist
    faults: Faults = field(default_factory=Faults)
    requests: dict[str, int] = field(default_factory=dict)
    bytes_served: int = 0

    def data(self, seq: int) -> bytes:
        rng = random.Random(self.seed * 1_000_003 + seq)
        size = int(self.segment_bytes * rng.uniform(0.8, 1.2))
        return rng.randbytes(size)

    def available(self) -> int:
        """Number of segments published so far."""
        if not self.live:
            return self.vod_segments
        n = self.preroll + int((time.monotonic() - self.started_at) / self.segment_s)
        return min(n, self.end_after) if self.end_after else n

    def playlist(self) -> str:
        n = self.available()
        first = 0 if not self.live else max(0, n - self.window)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{max(1, round(self.segment_s))}",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
        ]
        for seq in range(first, n):
            lines += [f"#EXTINF:{self.segment_s:.3f},", f"seg{seq}.ts"]
        if not self.live or (self.end_after and n >= self.end_after):
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    def manifest(self) -> dict[str, str]:
        return {
            f"seg{seq}.ts": hashlib.sha256(self.data(seq)).hexdigest()
            for seq in range(self.available())
        }


def build_app(stream: SynthStream) -> Starlette:
    async def playlist(request: Request) -> Response:
        return Response(stream.playlist(), media_type="application/vnd.apple.mpegurl")

    async def manifest(request: Request) -> Response:
        return JSONResponse(stream.manifest())

    async def segment(request: Request) -> Response:
        name = request.path_params["name"]
        stream.requests[name] = stream.requests.get(name, 0) + 1
        seq = int(name.removeprefix("seg").removesuffix(".ts"))
        if seq >= stream.available():
            return Response(status_code=404)
        faults = stream.faults
        if faults.fail_next > 0:
            faults.fail_next -= 1
            return Response(status_code=faults.fail_status)
        data = stream.data(seq)
        status, headers, body = 200, {}, data
        rng = request.headers.get("range")
        if rng and not faults.ignore_range:
            first_s, _, last_s = rng.removeprefix("bytes=").partition("-")
            first = int(first_s)
            last = int(last_s) if last_s else len(data) - 1
            body = data[first : last + 1]
            status = 206
            headers["content-range"] = f"bytes {first}-{last}/{len(data)}"
        headers["content-length"] = str(len(body))
        truncate = stall = drip = False
        if faults.truncate_next > 0:
            faults.truncate_next -= 1
            truncate = True
        elif faults.stall_next > 0:
            faults.stall_next -= 1
            stall = True
        elif faults.drip_next > 0:
            faults.drip_next -= 1
            drip = True

        async def chunks() -> AsyncIterator[bytes]:
            cut = min(faults.truncate_at, len(body))
            if truncate or stall:
                stream.bytes_served += cut
                yield body[:cut]
                if stall:
                    await asyncio.sleep(faults.stall_s)
                return
            if drip:
                cut = min(faults.truncate_at, len(body))
                stream.bytes_served += cut
                yield body[:cut]
                for i in range(cut, len(body), faults.drip_bytes):
                    await asyncio.sleep(faults.drip_every_s)
                    stream.bytes_served += len(body[i : i + faults.drip_bytes])
                    yield body[i : i + faults.drip_bytes]
                return
            for i in range(0, len(body), 16384):
                stream.bytes_served += len(body[i : i + 16384])
                yield body[i : i + 16384]
                if faults.rate_bytes_per_s:
                    await asyncio.sleep(len(body[i : i + 16384]) / faults.rate_bytes_per_s)

        return StreamingResponse(chunks(), status_code=status, headers=headers)

    return Starlette(
        routes=[
            Route("/live/index.m3u8", playlist),
            Route("/live/manifest.json", manifest),
            Route("/live/{name}", segment),
        ]
    )


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Run ``app`` on a free loopback port; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(task, 10)


def corrupt_uploads(agent: Any) -> None:
    """Make ``agent`` malicious: byte 0 of every segment it uploads (from its store or relayed
    cut-through) is flipped on its way to the session."""
    perform = agent.links.perform

    def corrupted(action: Any) -> None:
        if isinstance(action, SendData) and action.offset == 0 and action.data:
            action = dataclasses.replace(
                action, data=bytes([action.data[0] ^ 0xFF]) + action.data[1:]
            )
        perform(action)

    agent.links.perform = corrupted
