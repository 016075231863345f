"""The agent's bookkeeping types, shared by its modules."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..core.ids import SegmentId


class SwarmLike(Protocol):
    """What the agent needs of :class:`peer_agent.net.Swarm`."""

    links: dict[str, Any]

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def broadcast_have(self, segments: Any) -> None: ...
    def broadcast_fetching(self, entries: Any) -> None: ...
    def broadcast_lost(self, segments: Any) -> None: ...
    def set_position(self, position_s: float | None) -> None: ...
    async def send_stats(self, bytes_p2p_down: int, bytes_p2p_up: int, bytes_cdn: int) -> None: ...


#: (info_hash, peer_id, on_event, hello) -> a swarm
SwarmFactory = Callable[[str, str, Callable[[Any, Any], None], Callable[[], Any]], SwarmLike]


@dataclass
class Held:
    """Bytes ``[0, len(buf))`` of a segment being assembled (possibly from several sources)."""

    buf: bytearray = field(default_factory=bytearray)
    total: int | None = None
    #: Peer ids that supplied bytes (``None``: the CDN).
    contributors: set[str | None] = field(default_factory=set)
    #: ``(first byte, source)`` of each run of bytes from one source, in order.
    spans: list[tuple[int, str | None]] = field(default_factory=list)

    def append(self, data: bytes, source: str | None) -> None:
        """Bytes from ``source`` (a peer id, ``None``: the CDN) at the end of ``buf``."""
        if not data:
            return
        if not self.spans or self.spans[-1][1] != source:
            self.spans.append((len(self.buf), source))
        self.buf += data
        self.contributors.add(source)

    def truncate(self, length: int) -> None:
        """Keep bytes ``[0, length)`` only; sources of nothing kept are no contributors."""
        if length >= len(self.buf):
            return
        del self.buf[length:]
        self.spans = [span for span in self.spans if span[0] < length]
        self.contributors = {source for _, source in self.spans}


@dataclass(eq=False)
class Transfer:
    segment: SegmentId
    peer_id: str | None  # None: the CDN
    started_at: float
    offset: int
    last_data_at: float | None = None
    received: int = 0
    task: asyncio.Task[None] | None = None
    link: Any = None
    request_id: int | None = None
    #: The bytes are complete and being checked: the scheduler sees it as a CDN fetch.
    verifying: bool = False


@dataclass
class Neighbour:
    peer_id: str
    have: set[SegmentId] = field(default_factory=set)
    fetching: set[SegmentId] = field(default_factory=set)
    uploads: bool = True
    choked_until: float = 0.0
    open: bool = False
