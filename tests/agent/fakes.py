"""Test helpers: a synthetic HLS origin (a Starlette app on uvicorn) and in-process links.

The synthetic origin serves random bytes as segments (the agent never decodes media), a live
window that slides with the clock, a SHA-256 manifest and scriptable faults. It stands in for
``peer_agent.origin`` in the fast unit tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from peer_agent.core.errors import CloseCode
from peer_agent.core.ids import SegmentId
from peer_agent.core.wire import AbortReason


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
    #: Ignore Range headers (answer 200 with the whole body).
    ignore_range: bool = False


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
        truncate = stall = False
        if faults.truncate_next > 0:
            faults.truncate_next -= 1
            truncate = True
        elif faults.stall_next > 0:
            faults.stall_next -= 1
            stall = True

        async def chunks() -> AsyncIterator[bytes]:
            cut = min(faults.truncate_at, len(body))
            if truncate or stall:
                stream.bytes_served += cut
                yield body[:cut]
                if stall:
                    await asyncio.sleep(faults.stall_s)
                return
            for i in range(0, len(body), 16384):
                stream.bytes_served += len(body[i : i + 16384])
                yield body[i : i + 16384]

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


# -- in-process swarm: real PeerSessions, bytes moved by hand ---------------------------------


class FakeLink:
    """One side of an in-process link: the PeerLink wrapper API over a real PeerSession."""

    def __init__(self, hub: FakeHub, owner: FakeSwarm, remote_peer_id: str) -> None:
        from peer_agent.core.session import PeerSession, SessionConfig

        self.hub = hub
        self.owner = owner
        self.remote_peer_id = remote_peer_id
        loop = asyncio.get_running_loop()
        self.session = PeerSession(
            SessionConfig(leech_only=owner.leech_only),
            owner.info_hash.encode(),
            owner.peer_id.encode(),
            loop.time(),
        )
        self.other: FakeLink | None = None
        self.is_closed = False

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def flush(self) -> None:
        messages = self.session.data_to_send()
        other = self.other
        if not messages or other is None:
            return
        loop = asyncio.get_running_loop()
        loop.call_later(self.hub.delay_s, other._deliver, messages)
        if self.session.is_closed:
            self._drain()

    def _deliver(self, messages: list[bytes]) -> None:
        if self.is_closed:
            return
        for message in messages:
            self.session.receive_data(message, self._now())
        self._drain()
        self.flush()

    def _drain(self) -> None:
        from peer_agent.core.events import SessionClosed

        while (event := self.session.next_event()) is not None:
            self.owner.on_event(self, event)
            if isinstance(event, SessionClosed):
                self.is_closed = True
                self.owner.links.pop(self.remote_peer_id, None)

    def tick(self) -> None:
        self.session.handle_timer(self._now())
        self._drain()
        self.flush()

    # the PeerLink wrappers
    def request(self, segment: SegmentId, offset: int = 0) -> int:
        rid = self.session.request(segment, offset, self._now())
        self.flush()
        return rid

    def cancel(self, request_id: int) -> bool:
        ok = self.session.cancel(request_id, self._now())
        self.flush()
        return ok

    def respond(self, request_id: int, total_bytes: int) -> bool:
        ok = self.session.respond(request_id, total_bytes)
        self.flush()
        return ok

    def send_data(self, request_id: int, offset: int, data: bytes) -> bool:
        ok = self.session.send_data(request_id, offset, data)
        self.flush()
        return ok

    def reject_absent(self, request_id: int) -> None:
        self.session.reject_absent(request_id)
        self.flush()

    def reject_busy(self, request_id: int, retry_after_ms: int = 0) -> None:
        self.session.reject_busy(request_id, retry_after_ms)
        self.flush()

    def abort(self, request_id: int, reason: AbortReason = AbortReason.INTERNAL) -> None:
        self.session.abort(request_id, reason)
        self.flush()

    async def close(self, code: CloseCode = CloseCode.NORMAL, reason: str = "") -> None:
        self.session.close(code, reason)
        self.flush()
        self._drain()


class FakeSwarm:
    def __init__(
        self, hub: FakeHub, info_hash: str, peer_id: str, on_event: Any, hello: Any
    ) -> None:
        self.hub = hub
        self.info_hash = info_hash
        self.peer_id = peer_id
        self.on_event = on_event
        self.hello = hello
        self.links: dict[str, FakeLink] = {}
        self.leech_only = False
        self.stats: list[tuple[int, int, int]] = []

    async def start(self) -> None:
        await self.hub.join(self)

    async def stop(self) -> None:
        self.hub.members.pop(self.peer_id, None)
        for link in list(self.links.values()):
            await link.close(CloseCode.GOING_AWAY, "going away")

    def _each(self, fn: Callable[[Any], None]) -> None:
        for link in list(self.links.values()):
            if not link.is_closed:
                fn(link.session)
                link.flush()

    def broadcast_have(self, segments: Iterable[SegmentId]) -> None:
        segs = list(segments)
        self._each(lambda s: s.announce_have(segs))

    def broadcast_fetching(self, entries: Iterable[Any]) -> None:
        items = list(entries)
        self._each(lambda s: s.announce_fetching(items))

    def broadcast_lost(self, segments: Iterable[SegmentId]) -> None:
        segs = list(segments)
        self._each(lambda s: s.announce_lost(segs))

    def set_position(self, position_s: float | None) -> None:
        pass

    async def send_stats(self, bytes_p2p_down: int, bytes_p2p_up: int, bytes_cdn: int) -> None:
        self.stats.append((bytes_p2p_down, bytes_p2p_up, bytes_cdn))


class FakeHub:
    """Connects every member with every other (in-process, ``delay_s`` one way)."""

    def __init__(self, delay_s: float = 0.005) -> None:
        self.delay_s = delay_s
        self.members: dict[str, FakeSwarm] = {}
        self._ticker: asyncio.Task[None] | None = None

    def factory(self, *, leech_only: bool = False) -> Any:
        def make(info_hash: str, peer_id: str, on_event: Any, hello: Any) -> FakeSwarm:
            swarm = FakeSwarm(self, info_hash, peer_id, on_event, hello)
            swarm.leech_only = leech_only
            return swarm

        return make

    async def join(self, swarm: FakeSwarm) -> None:
        for other in list(self.members.values()):
            a = FakeLink(self, swarm, other.peer_id)
            b = FakeLink(self, other, swarm.peer_id)
            a.other, b.other = b, a
            swarm.links[other.peer_id] = a
            other.links[swarm.peer_id] = b
            for link, owner in ((a, swarm), (b, other)):
                have, fetching = owner.hello()
                link.session.start(now=link._now(), have=have, fetching=fetching)
            a.flush()
            b.flush()
        self.members[swarm.peer_id] = swarm
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            for member in list(self.members.values()):
                for link in list(member.links.values()):
                    link.tick()


def corrupt_uploads(agent: Any) -> None:
    """Make ``agent`` malicious: every byte 0 it uploads (from its store or relayed
    cut-through) is flipped."""
    source = agent.exchange._source

    def corrupted(upload: Any) -> tuple[bytes | None, int | None]:
        data, total = source(upload)
        if not data:
            return None, total
        return bytes([data[0] ^ 0xFF]) + bytes(data[1:]), total

    agent.exchange._source = corrupted
