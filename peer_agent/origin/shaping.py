"""Fault draws and bandwidth pacing. Pure: time and randomness are arguments."""

from __future__ import annotations

import enum
import random

from peer_agent.origin.config import ShapingConfig


class Fault(enum.Enum):
    NONE = "none"
    ERROR = "error"
    TIMEOUT = "timeout"
    TRUNCATE = "truncate"


def draw_fault(shaping: ShapingConfig, rng: random.Random) -> Fault:
    """One uniform draw split into [error | timeout | truncate | none] by the configured rates.

    No draw happens when every rate is zero, so enabling faults later replays the same sequence.
    """
    if not (shaping.error_rate or shaping.timeout_rate or shaping.truncate_rate):
        return Fault.NONE
    u = rng.random()
    if u < shaping.error_rate:
        return Fault.ERROR
    u -= shaping.error_rate
    if u < shaping.timeout_rate:
        return Fault.TIMEOUT
    u -= shaping.timeout_rate
    if u < shaping.truncate_rate:
        return Fault.TRUNCATE
    return Fault.NONE


def truncated_length(body_bytes: int, fraction: float) -> int:
    """How many bytes a truncated response sends: always strictly fewer than the body."""
    if body_bytes <= 0:
        return 0
    return min(body_bytes - 1, int(body_bytes * fraction))


class Pacer:
    """Schedules chunk sends so that bytes go out at ``rate_bytes_per_s`` at most.

    ``reserve(n, now_s)`` books ``n`` bytes and returns how long to wait before sending them.
    One instance per response gives a per-response cap; one shared instance caps the total.
    """

    def __init__(self) -> None:
        self._next_free_s: float | None = None

    def reserve(self, nbytes: int, rate_bytes_per_s: float, now_s: float) -> float:
        if rate_bytes_per_s <= 0:
            return 0.0
        start = now_s if self._next_free_s is None else max(now_s, self._next_free_s)
        self._next_free_s = start + nbytes / rate_bytes_per_s
        return start - now_s


def pacing_chunk_bytes(shaping: ShapingConfig) -> int:
    """Chunk size for a response: small enough that pacing is smooth (<= ~50 ms per chunk)."""
    rates = [
        r for r in (shaping.rate_limit_bytes_per_s, shaping.total_rate_limit_bytes_per_s) if r > 0
    ]
    if not rates:
        return max(shaping.chunk_bytes, 65_536)
    return max(512, min(shaping.chunk_bytes, min(rates) // 20))
