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


class FetchTimeEstimator:
    """A tail of one path's fetch times: the smoothed value of its recent samples plus
    ``deviations`` times their smoothed deviation, as TCP estimates its retransmission timeout
    from round trips (RFC 6298: gains 1/8 and 1/4, 4 deviations, the first sample's deviation
    half of it). ``None`` until the first sample.

    The exchange feeds it each CDN fetch's excess over its bytes at the mean rate
    (:class:`ThroughputEstimator`): on a lossy path a share of fetches wait for TCP's loss
    recovery and take far longer than the mean says, which the deviation term covers
    (docs/scheduling.md, "The CDN's tail").
    """

    __slots__ = ("_deviation_gain", "_deviation_s", "_deviations", "_gain", "_smoothed_s")

    def __init__(
        self, gain: float = 0.125, deviation_gain: float = 0.25, deviations: float = 4.0
    ) -> None:
        if not (0 < gain <= 1 and 0 < deviation_gain <= 1):
            raise ValueError("gains must be in (0, 1]")
        if deviations < 0:
            raise ValueError("deviations must be >= 0")
        self._gain = gain
        self._deviation_gain = deviation_gain
        self._deviations = deviations
        self._smoothed_s: float | None = None
        self._deviation_s = 0.0

    def add_sample(self, duration_s: float) -> None:
        """Record one sample of ``duration_s`` seconds."""
        if not duration_s >= 0:  # negative or NaN: a clock that went backwards teaches nothing
            return
        smoothed = self._smoothed_s
        if smoothed is None:
            self._smoothed_s = duration_s
            self._deviation_s = duration_s / 2
            return
        dg = self._deviation_gain
        self._deviation_s = (1 - dg) * self._deviation_s + dg * abs(smoothed - duration_s)
        self._smoothed_s = (1 - self._gain) * smoothed + self._gain * duration_s

    @property
    def tail_s(self) -> float | None:
        if self._smoothed_s is None:
            return None
        return self._smoothed_s + self._deviations * self._deviation_s
