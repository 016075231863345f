"""Throughput estimation: an exponentially weighted moving average over transfer time.

Each sample is (bytes, seconds). A sample's weight decays with the transfer time that came after
it, so the estimate follows a link that changes speed while ignoring one slow packet. The zero-
factor correction (as in hls.js's EWMA) keeps early estimates unbiased.
"""

from __future__ import annotations

from .config import ThroughputConfig


class ThroughputEstimator:
    """Bytes-per-second estimate of one link; ``None`` until the first sample."""

    __slots__ = ("_alpha_per_s", "_estimate", "_total_weight", "samples")

    def __init__(self, config: ThroughputConfig | None = None) -> None:
        cfg = config or ThroughputConfig()
        if cfg.half_life_s <= 0:
            raise ValueError("half_life_s must be positive")
        self._alpha_per_s = 0.5 ** (1.0 / cfg.half_life_s)
        self._estimate = 0.0
        self._total_weight = 0.0
        self.samples = 0

    def add_sample(self, num_bytes: int, duration_s: float) -> None:
        """Record that ``num_bytes`` moved in ``duration_s`` seconds."""
        if num_bytes < 0:
            raise ValueError("num_bytes must be >= 0")
        if duration_s <= 0:
            return  # no time passed: nothing to learn about the rate
        rate = num_bytes / duration_s
        alpha = self._alpha_per_s**duration_s
        self._estimate = alpha * self._estimate + (1.0 - alpha) * rate
        self._total_weight = alpha * self._total_weight + (1.0 - alpha)
        self.samples += 1

    @property
    def estimate_bytes_per_s(self) -> float | None:
        if self._total_weight <= 0:
            return None
        return self._estimate / self._total_weight


class RttEstimator:
    """Round trip to one peer: the smallest of its last ``window`` request -> RESPONSE delays.

    A REQUEST's RESPONSE comes one round trip later plus whatever the peer took to answer
    (a lost packet, a cut-through relay waiting for its source), so the smallest recent sample
    is the closest to the path's round trip. ``None`` until the first sample.
    """

    __slots__ = ("_samples", "_window")

    def __init__(self, window: int = 8) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self._window = window
        self._samples: list[float] = []

    def add_sample(self, rtt_s: float) -> None:
        if rtt_s < 0:
            return  # a clock that went backwards teaches nothing
        self._samples.append(rtt_s)
        if len(self._samples) > self._window:
            del self._samples[0]

    @property
    def rtt_s(self) -> float | None:
        return min(self._samples) if self._samples else None
