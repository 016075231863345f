"""The live sliding window over looping content. Pure: time is an argument.

Model: the origin pretends the live stream began ``window`` segments before ``start_s`` so a full
window is published at once. Media sequence number (MSN) ``k`` plays content segment
``k % content_segments``, starts (program date time) at ``start_s + (k - window) * segment_s``
and is published when it ends, at ``start_s + (k - window + 1) * segment_s``.

Whenever the content loops (``k > 0`` and ``k % content_segments == 0``) segment ``k`` carries
``EXT-X-DISCONTINUITY``, except when it is the first segment of the window: hls.js fails fatally
on a discontinuity there, so the tag is dropped and accounted for by
``EXT-X-DISCONTINUITY-SEQUENCE`` instead (RFC 8216 6.2.2 allows this: the sequence number of the
first segment is what counts). That number is ``first_msn // content_segments`` either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LiveTimeline:
    start_s: float
    segment_s: float
    window: int
    content_segments: int
    history: int = 0

    def __post_init__(self) -> None:
        if self.segment_s <= 0 or self.window < 1 or self.content_segments < 1 or self.history < 0:
            raise ValueError(f"invalid live timeline {self!r}")

    def published_count(self, now_s: float) -> int:
        """How many segments (MSNs ``0 .. n-1``) are published at ``now_s``."""
        elapsed = max(0.0, now_s - self.start_s)
        return self.window + math.floor(elapsed / self.segment_s + 1e-9)

    def window_at(self, now_s: float) -> LiveWindow:
        last = self.published_count(now_s) - 1
        first = last - self.window + 1
        return LiveWindow(
            first_msn=first,
            last_msn=last,
            discontinuity_sequence=first // self.content_segments,
        )

    def content_index(self, msn: int) -> int:
        return msn % self.content_segments

    def starts_loop(self, msn: int) -> bool:
        return msn > 0 and msn % self.content_segments == 0

    def program_date_time_s(self, msn: int) -> float:
        return self.start_s + (msn - self.window) * self.segment_s

    def served_range(self, now_s: float) -> range:
        """MSNs still served: the window plus ``history`` segments behind it."""
        w = self.window_at(now_s)
        return range(max(0, w.first_msn - self.history), w.last_msn + 1)


@dataclass(frozen=True)
class LiveWindow:
    first_msn: int
    last_msn: int
    discontinuity_sequence: int

    @property
    def msns(self) -> range:
        return range(self.first_msn, self.last_msn + 1)
