"""A segment store bounded in bytes.

Holds verified segments for playback and for upload to peers. Oldest-inserted segments are
evicted first (for live streams that is the oldest media); segments that are pinned (being
uploaded right now) are skipped by eviction. Every eviction is reported so the owner can
announce it to peers (LOST).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from .ids import SegmentId


class SegmentStore:
    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self._items: OrderedDict[SegmentId, bytes] = OrderedDict()
        self._pins: dict[SegmentId, int] = {}
        self.used_bytes = 0

    def __contains__(self, segment: object) -> bool:
        return segment in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[SegmentId]:
        return iter(self._items)

    def get(self, segment: SegmentId) -> bytes | None:
        return self._items.get(segment)

    def put(self, segment: SegmentId, data: bytes) -> list[SegmentId]:
        """Store ``data``; returns the segments evicted to make room (possibly ``segment``
        itself, when it is larger than the store or everything else is pinned)."""
        if not data:
            raise ValueError("a segment has at least one byte")
        if segment in self._items:
            self.used_bytes -= len(self._items.pop(segment))
        self._items[segment] = data
        self.used_bytes += len(data)
        return self._evict()

    def discard(self, segment: SegmentId) -> bool:
        data = self._items.pop(segment, None)
        if data is None:
            return False
        self.used_bytes -= len(data)
        return True

    def is_pinned(self, segment: SegmentId) -> bool:
        return segment in self._pins

    def pin(self, segment: SegmentId) -> None:
        """Protect ``segment`` from eviction until a matching :meth:`unpin`."""
        self._pins[segment] = self._pins.get(segment, 0) + 1

    def unpin(self, segment: SegmentId) -> list[SegmentId]:
        count = self._pins.get(segment, 0)
        if count <= 1:
            self._pins.pop(segment, None)
        else:
            self._pins[segment] = count - 1
        return self._evict()

    def _evict(self) -> list[SegmentId]:
        evicted: list[SegmentId] = []
        if self.used_bytes <= self.max_bytes:
            return evicted
        for segment in list(self._items):
            if self.used_bytes <= self.max_bytes:
                break
            if segment in self._pins:
                continue
            self.used_bytes -= len(self._items.pop(segment))
            evicted.append(segment)
        return evicted
