"""A virtual player: what a real player would do with the segments we hand it.

Pure and clock-free: every call takes ``now``. The model plays media at rate 1 from a start
position; it starts once ``startup_buffer_s`` is buffered contiguously ahead of the playhead,
stalls when the playhead reaches the end of the contiguous buffer, and resumes once
``rebuffer_s`` is buffered again (or the rest of a finite stream is). It records the startup
time, every stall and its length, and the latency behind the live edge that it plays at.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from .config import PlaybackConfig

_EPS = 1e-9


@dataclass(frozen=True)
class Stall:
    started_at: float
    ended_at: float | None
    position_s: float


class PlaybackModel:
    __slots__ = (
        "config",
        "created_at",
        "playhead_s",
        "end_s",
        "started_at",
        "playing",
        "ended",
        "stalls",
        "_stall_started",
        "_clock",
        "_starts",
        "_ends",
    )

    def __init__(
        self,
        config: PlaybackConfig,
        start_position_s: float,
        now: float,
        end_s: float | None = None,
    ) -> None:
        self.config = config
        self.created_at = now
        self.playhead_s = start_position_s
        #: Media time where a finite (VOD) stream ends; ``None`` for live.
        self.end_s = end_s
        self.started_at: float | None = None
        self.playing = False
        self.ended = False
        self.stalls: list[Stall] = []
        self._stall_started: float | None = None
        self._clock = now
        # Buffered media as sorted, disjoint [start, end) intervals.
        self._starts: list[float] = []
        self._ends: list[float] = []

    # -- inputs -----------------------------------------------------------------------------

    def add_media(self, start_s: float, duration_s: float, now: float) -> None:
        """A segment covering [start_s, start_s + duration_s) is ready to play."""
        self.advance(now)
        self._insert(start_s, start_s + duration_s)
        self._maybe_resume(now)

    def advance(self, now: float) -> None:
        """Move the model's clock to ``now``, playing what is buffered."""
        if now < self._clock - _EPS:
            raise ValueError("time went backwards")
        dt = max(0.0, now - self._clock)
        self._clock = max(self._clock, now)
        if not self.playing or self.ended:
            return
        buffered_until = self.buffered_until_s
        room = buffered_until - self.playhead_s
        if dt < room - _EPS:
            self.playhead_s += dt
            return
        # The playhead reaches the end of the buffer inside this step.
        self.playhead_s = buffered_until
        reached_at = now - (dt - room)
        if self.end_s is not None and self.playhead_s >= self.end_s - _EPS:
            self.playing = False
            self.ended = True
            return
        self.playing = False
        self._stall_started = reached_at
        self.stalls.append(Stall(reached_at, None, self.playhead_s))
        self._maybe_resume(now)

    # -- outputs ----------------------------------------------------------------------------

    @property
    def buffered_until_s(self) -> float:
        """End of the contiguous buffer starting at the playhead (the playhead if none)."""
        i = bisect.bisect_right(self._starts, self.playhead_s + _EPS) - 1
        if i < 0 or self._ends[i] < self.playhead_s - _EPS:
            return self.playhead_s
        return self._ends[i]

    @property
    def buffer_s(self) -> float:
        return self.buffered_until_s - self.playhead_s

    @property
    def startup_s(self) -> float | None:
        return None if self.started_at is None else self.started_at - self.created_at

    @property
    def stall_count(self) -> int:
        return len(self.stalls)

    def stall_s(self, now: float) -> float:
        total = 0.0
        for stall in self.stalls:
            total += (stall.ended_at if stall.ended_at is not None else now) - stall.started_at
        return total

    def next_event_at(self) -> float | None:
        """When the playhead will reach the end of the buffer if nothing arrives."""
        if not self.playing:
            return None
        return self._clock + (self.buffered_until_s - self.playhead_s)

    def playhead_at(self, now: float) -> float:
        """Where the playhead will be at ``now`` (>= the model's clock) if nothing arrives."""
        if not self.playing:
            return self.playhead_s
        return min(self.playhead_s + max(0.0, now - self._clock), self.buffered_until_s)

    # -- internals --------------------------------------------------------------------------

    def _insert(self, start: float, end: float) -> None:
        i = bisect.bisect_left(self._starts, start)
        # Merge with the neighbours it touches or overlaps.
        if i > 0 and self._ends[i - 1] >= start - _EPS:
            i -= 1
            start = self._starts[i]
            end = max(end, self._ends[i])
            del self._starts[i], self._ends[i]
        while i < len(self._starts) and self._starts[i] <= end + _EPS:
            end = max(end, self._ends[i])
            del self._starts[i], self._ends[i]
        self._starts.insert(i, start)
        self._ends.insert(i, end)
        # Drop what lies wholly behind the playhead: it has been played.
        while self._ends and self._ends[0] < self.playhead_s - _EPS:
            del self._starts[0], self._ends[0]

    def _maybe_resume(self, now: float) -> None:
        if self.playing or self.ended:
            return
        needed = self.config.startup_buffer_s if self.started_at is None else self.config.rebuffer_s
        ahead = self.buffered_until_s - self.playhead_s
        reaches_end = self.end_s is not None and self.buffered_until_s >= self.end_s - _EPS
        if ahead + _EPS < needed and not (reaches_end and ahead > _EPS):
            return
        self.playing = True
        if self.started_at is None:
            self.started_at = now
        if self._stall_started is not None:
            last = self.stalls[-1]
            self.stalls[-1] = Stall(last.started_at, now, last.position_s)
            self._stall_started = None
