"""Per-connection token bucket. Pure: the caller passes monotonic time in seconds."""

from __future__ import annotations


class TokenBucket:
    __slots__ = ("rate_per_s", "burst", "_tokens", "_updated_s")

    def __init__(self, rate_per_s: float, burst: float, now_s: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._updated_s = now_s

    def try_take(self, now_s: float, cost: float = 1.0) -> bool:
        elapsed_s = max(0.0, now_s - self._updated_s)
        self._tokens = min(self.burst, self._tokens + elapsed_s * self.rate_per_s)
        self._updated_s = now_s
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def level(self, now_s: float) -> float:
        """Tokens there would be at ``now_s`` (without taking any)."""
        return min(self.burst, self._tokens + max(0.0, now_s - self._updated_s) * self.rate_per_s)

    @property
    def tokens(self) -> float:
        return self._tokens
