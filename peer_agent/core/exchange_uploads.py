"""Serving peers: an upload-rate token bucket and the bookkeeping of uploads in progress.

Pure: time is an argument. :class:`~peer_agent.core.exchange.SegmentExchange` hands each
upload's bytes to its session only as fast as the bucket allows, so the cap holds for what
actually leaves; the session's own flow control does the rest (docs/exchange.md, "Uploads").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .ids import SegmentId


class TokenBucket:
    """``rate_bytes_per_s`` sustained, bursts up to ``burst_bytes``; ``None`` rate: no cap.

    ``burst_bytes`` 0 means a quarter second of the rate, at least 16 KiB. The bucket starts
    full."""

    def __init__(self, rate_bytes_per_s: float | None, now: float, burst_bytes: int = 0) -> None:
        if rate_bytes_per_s is not None and rate_bytes_per_s <= 0:
            raise ValueError("rate_bytes_per_s must be positive")
        self.rate_bytes_per_s = rate_bytes_per_s
        self.burst_bytes = burst_bytes or (
            max(16 * 1024, int(rate_bytes_per_s / 4)) if rate_bytes_per_s else 0
        )
        self._tokens = float(self.burst_bytes)
        self._at = now

    def _refill(self, now: float) -> None:
        if self.rate_bytes_per_s is None:
            return
        dt = max(0.0, now - self._at)
        self._at = max(self._at, now)
        self._tokens = min(float(self.burst_bytes), self._tokens + dt * self.rate_bytes_per_s)

    def take(self, wanted: int, now: float) -> int:
        """Up to ``wanted`` bytes that may be sent now (consumed from the bucket)."""
        if self.rate_bytes_per_s is None:
            return wanted
        self._refill(now)
        granted = max(0, min(wanted, int(self._tokens)))
        self._tokens -= granted
        return granted

    def set_rate(self, rate_bytes_per_s: float, now: float, burst_bytes: int = 0) -> None:
        """Change the rate (what accrued so far accrued at the old one)."""
        if rate_bytes_per_s == self.rate_bytes_per_s:
            return
        self._refill(now)
        self.rate_bytes_per_s = rate_bytes_per_s
        self.burst_bytes = burst_bytes or max(16 * 1024, int(rate_bytes_per_s / 4))
        self._tokens = min(self._tokens, float(self.burst_bytes))

    def ready_at(self, wanted: int, now: float) -> float:
        """When ``min(wanted, burst)`` bytes will be available."""
        if self.rate_bytes_per_s is None:
            return now
        self._refill(now)
        need = min(wanted, self.burst_bytes) - self._tokens
        return now if need <= 0 else now + need / self.rate_bytes_per_s


@dataclass(eq=False)
class Upload:
    """A peer's request we accepted (or will accept once the segment's size is known)."""

    link: str  # the caller's name of the link it came on
    peer_id: str
    request_id: int
    segment: SegmentId
    offset: int
    #: Next byte to hand to the session.
    sent_until: int
    #: The segment's size once RESPONSE was sent; ``None``: waiting for the upstream to tell.
    total_bytes: int | None = None
    #: Served from the store (pinned there) rather than relayed from a fetch in progress.
    pinned: bool = False


class Uploads:
    """Uploads in progress, by (link, request id), in the order they were accepted."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, int], Upload] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[Upload]:
        return iter(list(self._by_key.values()))

    def add(self, upload: Upload) -> None:
        self._by_key[(upload.link, upload.request_id)] = upload

    def get(self, link: str, request_id: int) -> Upload | None:
        return self._by_key.get((link, request_id))

    def remove(self, upload: Upload) -> None:
        self._by_key.pop((upload.link, upload.request_id), None)

    def for_segment(self, segment: SegmentId) -> list[Upload]:
        return [u for u in self._by_key.values() if u.segment == segment]

    def for_link(self, link: str) -> list[Upload]:
        return [u for u in self._by_key.values() if u.link == link]

    def for_peer(self, peer_id: str) -> int:
        return sum(1 for u in self._by_key.values() if u.peer_id == peer_id)


@dataclass
class PeerServed:
    """What one neighbour was served: times per segment, and bytes over the sliding window."""

    by_segment: dict[SegmentId, int]
    #: ``(when, bytes)`` handed to its uploads, oldest first, within the window.
    window: deque[tuple[float, int]]
    window_bytes: int = 0


class PeerLedger:
    """Per-neighbour serving records for the fairness rules (docs/exchange.md, "Fairness")."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._peers: dict[str, PeerServed] = {}

    def _peer(self, peer_id: str) -> PeerServed:
        rec = self._peers.get(peer_id)
        if rec is None:
            rec = self._peers[peer_id] = PeerServed({}, deque())
        return rec

    def serves(self, peer_id: str, segment: SegmentId) -> int:
        rec = self._peers.get(peer_id)
        return rec.by_segment.get(segment, 0) if rec is not None else 0

    def count_serve(self, peer_id: str, segment: SegmentId) -> None:
        rec = self._peer(peer_id)
        rec.by_segment[segment] = rec.by_segment.get(segment, 0) + 1

    def add_bytes(self, peer_id: str, n: int, now: float) -> None:
        rec = self._peer(peer_id)
        rec.window.append((now, n))
        rec.window_bytes += n

    def window_bytes(self, peer_id: str, now: float) -> int:
        """Bytes handed to ``peer_id`` in ``(now - window_s, now]``."""
        rec = self._peers.get(peer_id)
        if rec is None:
            return 0
        while rec.window and rec.window[0][0] <= now - self.window_s:
            rec.window_bytes -= rec.window.popleft()[1]
        return rec.window_bytes

    def keep_segments(self, keep: Callable[[SegmentId], bool]) -> None:
        """Forget serve counts of segments ``keep`` rejects (gone from the timeline)."""
        for peer_id in list(self._peers):
            rec = self._peers[peer_id]
            rec.by_segment = {s: n for s, n in rec.by_segment.items() if keep(s)}
            if not rec.by_segment and not rec.window:
                del self._peers[peer_id]
