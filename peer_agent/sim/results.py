"""What a simulation run reports: swarm totals, per-viewer rows, and how they are computed."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..core.cdn_phase import CdnFetchCounts
from ..core.playback import PlaybackModel
from .scenario import Scenario


@dataclass(frozen=True)
class SimResult:
    scenario: Scenario
    #: Viewers that took part (more than ``scenario.peers`` when churn replaced some).
    viewers_total: int
    offload_ratio: float
    cdn_fetches_per_segment: float
    cdn_fetches_per_segment_all: float
    cdn_fetches: int
    #: ``cdn_fetches_per_segment`` split by phase (core.cdn_phase): fetches by viewers past
    #: their join ramp, and by viewers in it, per segment the whole swarm played.
    cdn_fetches_per_segment_steady: float
    cdn_fetches_per_segment_join_ramp: float
    #: Join-ramp CDN fetches in all, and per viewer that took part.
    cdn_fetches_join_ramp: int
    cdn_fetches_join_ramp_per_viewer: float
    bytes_cdn: int
    bytes_p2p: int
    stall_count: int
    stall_s: float
    startup_s_median: float | None
    latency_s_median: float | None
    segments_played: int
    decisions: int
    #: One row per viewer (empty when the run was asked not to keep them).
    by_peer: list[dict[str, float | int | str | None]]
    #: The overlay at the end (``Simulation.overlay_stats``): neighbour join-order distance
    #: median, mean neighbours, diameter in hops, splits; None without P2P.
    overlay: dict[str, float | int | None] | None = None
    #: Peer transfers by cut-through depth as they started (:func:`cut_through_summary`).
    cut_through: dict[str, int | None] | None = None

    def summary(self) -> dict[str, object]:
        return {
            "peers": self.scenario.peers,
            "viewers_total": self.viewers_total,
            "live": self.scenario.live,
            "p2p": self.scenario.p2p,
            "offload_ratio": round(self.offload_ratio, 4),
            "cdn_fetches_per_segment": round(self.cdn_fetches_per_segment, 3),
            "cdn_fetches_per_segment_all": round(self.cdn_fetches_per_segment_all, 3),
            "cdn_fetches": self.cdn_fetches,
            "cdn_fetches_per_segment_steady": round(self.cdn_fetches_per_segment_steady, 3),
            "cdn_fetches_per_segment_join_ramp": round(self.cdn_fetches_per_segment_join_ramp, 3),
            "cdn_fetches_join_ramp": self.cdn_fetches_join_ramp,
            "cdn_fetches_join_ramp_per_viewer": round(self.cdn_fetches_join_ramp_per_viewer, 3),
            "bytes_cdn": self.bytes_cdn,
            "bytes_p2p": self.bytes_p2p,
            "stall_count": self.stall_count,
            "stall_s": round(self.stall_s, 3),
            "startup_s_median": _round(self.startup_s_median),
            "latency_s_median": _round(self.latency_s_median),
            "segments_played": self.segments_played,
            "decisions": self.decisions,
            "overlay": self.overlay,
            "cut_through": self.cut_through,
        }


class ViewerRecord(Protocol):
    """What the result needs from one simulated viewer."""

    @property
    def peer_id(self) -> str: ...
    @property
    def joined_at(self) -> float: ...
    @property
    def left_at(self) -> float | None: ...
    @property
    def player(self) -> PlaybackModel: ...
    @property
    def bytes_cdn(self) -> float: ...
    @property
    def bytes_p2p(self) -> float: ...
    @property
    def bytes_up(self) -> float: ...
    @property
    def cdn_fetches(self) -> int: ...
    @property
    def cdn_fetch_counts(self) -> CdnFetchCounts: ...
    @property
    def segments_played(self) -> int: ...
    @property
    def latency_samples(self) -> Sequence[float]: ...


def cut_through_summary(depths: Mapping[int | str, int]) -> dict[str, int | None]:
    """Peer transfers as they started, by cut-through depth (the relays between the new
    transfer and a verified copy or the CDN that had not verified the segment yet): how many,
    the median, 99th percentile and largest depth of those with a source, and how many had none
    (``unanchored``: the chain ended at a viewer with no transfer of it) or ran in a ``loop``."""
    anchored = sorted((d, n) for d, n in depths.items() if isinstance(d, int))
    total = sum(n for _, n in anchored)

    def quantile(q: float) -> int | None:
        seen = 0
        for d, n in anchored:
            seen += n
            if seen >= q * total:
                return d
        return None

    return {
        "transfers": sum(depths.values()),
        "depth_p50": quantile(0.5),
        "depth_p99": quantile(0.99),
        "depth_max": anchored[-1][0] if anchored else None,
        "unanchored": depths.get("unanchored", 0),
        "loops": depths.get("loop", 0),
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def build_result(
    scenario: Scenario,
    everyone: Iterable[ViewerRecord],
    *,
    now: float,
    t0: float,
    plays: dict[int, int],
    cdn_fetches: dict[int, int],
    decisions: int,
    cdn_fetches_join_ramp: dict[int, int] | None = None,
    per_peer: bool,
    cut_through_depths: Mapping[int | str, int] | None = None,
) -> SimResult:
    viewers = list(everyone)
    bytes_cdn = sum(v.bytes_cdn for v in viewers)
    bytes_p2p = sum(v.bytes_p2p for v in viewers)
    total = bytes_cdn + bytes_p2p
    played = [seq for seq, n in plays.items() if n > 0]
    # Segments the whole swarm played (past the join ramp): the steady-state cost.
    full_swarm = [seq for seq in played if plays[seq] >= scenario.peers]
    fetches = sum(cdn_fetches.values())
    ramp = cdn_fetches_join_ramp or {}
    startups = [v.player.startup_s for v in viewers if v.player.startup_s is not None]
    latencies = [statistics.median(v.latency_samples) for v in viewers if v.latency_samples]
    by_peer: list[dict[str, float | int | str | None]] = []
    if per_peer:
        by_peer = [
            {
                "peer_id": v.peer_id,
                "joined_at": round(v.joined_at - t0, 3),
                "left_at": None if v.left_at is None else round(v.left_at - t0, 3),
                "bytes_cdn": int(v.bytes_cdn),
                "bytes_p2p": int(v.bytes_p2p),
                "bytes_up": int(v.bytes_up),
                "cdn_fetches": v.cdn_fetches,
                "cdn_fetches_join_ramp": v.cdn_fetch_counts.join_ramp,
                "cdn_fetches_steady": v.cdn_fetch_counts.steady,
                "stall_count": v.player.stall_count,
                "stall_s": round(v.player.stall_s(now), 3),
                "startup_s": _round(v.player.startup_s),
                "segments_played": v.segments_played,
            }
            for v in viewers
        ]
    return SimResult(
        scenario=scenario,
        viewers_total=len(viewers),
        offload_ratio=bytes_p2p / total if total else 0.0,
        cdn_fetches_per_segment=(
            statistics.mean(cdn_fetches.get(s, 0) for s in full_swarm) if full_swarm else 0.0
        ),
        cdn_fetches_per_segment_all=fetches / len(played) if played else 0.0,
        cdn_fetches=fetches,
        cdn_fetches_per_segment_steady=(
            statistics.mean(cdn_fetches.get(s, 0) - ramp.get(s, 0) for s in full_swarm)
            if full_swarm
            else 0.0
        ),
        cdn_fetches_per_segment_join_ramp=(
            statistics.mean(ramp.get(s, 0) for s in full_swarm) if full_swarm else 0.0
        ),
        cdn_fetches_join_ramp=sum(ramp.values()),
        cdn_fetches_join_ramp_per_viewer=sum(ramp.values()) / len(viewers) if viewers else 0.0,
        bytes_cdn=int(bytes_cdn),
        bytes_p2p=int(bytes_p2p),
        stall_count=sum(v.player.stall_count for v in viewers),
        stall_s=sum(v.player.stall_s(now) for v in viewers),
        startup_s_median=statistics.median(startups) if startups else None,
        latency_s_median=statistics.median(latencies) if latencies else None,
        segments_played=sum(v.segments_played for v in viewers),
        decisions=decisions,
        by_peer=by_peer,
        cut_through=None if cut_through_depths is None else cut_through_summary(cut_through_depths),
    )
