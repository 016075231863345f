"""Serving peers: an upload-rate token bucket and the bookkeeping of uploads in progress.

Pure: time is an argument. :class:`~peer_agent.core.exchange.SegmentExchange` hands each
upload's bytes to its session only as fast as the bucket allows, so the cap holds for what
actually leaves; the session's own flow control does the rest (docs/exchange.md, "Uploads").
"""

from __future__ import annotations

from collections.abc import Iterator
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
