"""What a simulated (or load-tested) swarm looks like: one frozen dataclass of knobs."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

#: Pairing rules of the simulated tracker (``Scenario.pairing``).
PAIRINGS = ("split", "free")


@dataclass(frozen=True)
class Scenario:
    #: Viewers in the swarm (at once; churn replaces leavers with newcomers).
    peers: int = 10
    live: bool = True
    segment_s: float = 4.0
    #: Wall time simulated from the first join.
    duration_s: float = 300.0
    #: Viewers join evenly spread over this many seconds.
    join_over_s: float = 20.0
    #: Live: how many segment durations behind the live edge viewers start playing.
    latency_segments: int = 3
    #: ``False`` runs the same viewers from the CDN only (the baseline).
    p2p: bool = True
    seed: int = 1
    #: Media bitrate; a segment is ``bitrate * segment_s / 8`` bytes, +-10 %.
    bitrate_bits_per_s: float = 2_000_000.0
    #: Each viewer's access link, bytes/s.
    downlink_bytes_per_s: float = 3_000_000.0
    uplink_bytes_per_s: float = 1_250_000.0
    #: CDN egress for the whole swarm, bytes/s (0: unlimited).
    cdn_bytes_per_s: float = 0.0
    cdn_latency_s: float = 0.05
    #: Round-trip time between two viewers.
    peer_rtt_s: float = 0.05
    #: Neighbours a viewer keeps (the tracker pairs up to this many).
    max_peers: int = 20
    #: Uploads one viewer serves at once, at most; more requests are answered BUSY. Each viewer
    #: serves ``core.capacity.upload_slots(uplink, bitrate, max_uploads)`` (docs/scheduling.md,
    #: "Upload fan-out"): none, leech-only, when its uplink is below the bitrate.
    max_uploads: int = 4
    busy_retry_s: float = 0.5
    #: Time from join (or from losing a neighbour) to a working data channel.
    connect_s: float = 1.0
    #: Live playlist refresh period of each viewer (each with its own phase).
    playlist_refresh_s: float = 1.0
    #: Share of viewers that leave abruptly each minute (replaced by newcomers).
    churn_per_min: float = 0.0
    #: Share of viewers that never upload (leech-only).
    leech_fraction: float = 0.0
    #: Capacity mix: share of (uploading) viewers whose uplink is ``low_uplink_bytes_per_s``
    #: instead of ``uplink_bytes_per_s``; the default low uplink is below the default bitrate,
    #: so those viewers serve no uploads (see ``max_uploads``).
    low_uplink_fraction: float = 0.0
    low_uplink_bytes_per_s: float = 125_000.0
    #: Regions viewers are spread over evenly (at random). The tracker pairs within a region
    #: first (as the signaling server does with region hints); two viewers of different regions
    #: are ``cross_region_rtt_s`` apart instead of ``peer_rtt_s``.
    regions: int = 1
    cross_region_rtt_s: float = 0.15
    #: Candidates the tracker examines per pairing: a uniform sample of the swarm of at most
    #: this size (as the signaling server's ``pairing_sample_limit``), ranked by region then
    #: playback distance. 0 examines every viewer.
    pairing_sample: int = 256
    #: Fetchers the signaling server lists per region (its swarm-wide fetcher assignment,
    #: docs/signaling.md); 0: none, every viewer elects among its neighbours.
    server_fetchers: int = 0
    #: How the tracker pairs: ``split`` (a newcomer meets random members of the whole swarm;
    #: for a full one the tracker splits one of its links, as the signaling server does with
    #: clients that can make room) or ``free`` (only members with a free slot: the pairing
    #: before issue 15, which chains the overlay by join time).
    pairing: str = "split"
    #: VOD stream length (media seconds); defaults to duration_s + join_over_s.
    vod_length_s: float | None = None
    #: Simulation step; smaller is more precise and slower.
    tick_s: float = 0.05
    #: The scheduler's idle recheck in the simulator. Every change reaches a simulated viewer
    #: as an event, so this is only a safety net (the agent's ``idle_recheck_s`` is 0.5 s);
    #: 0.5 reproduces the agent's cadence at a higher CPU cost.
    idle_recheck_s: float = 5.0
    #: A link the tracker splits for a newcomer (``pairing="split"``) drains, as our clients
    #: do (docs/signaling.md, "Making room"): nothing new is asked over it and it closes once
    #: its transfers end, after this many seconds at the latest. 0 closes it at once (the
    #: clients before 2026-12-03), cutting the transfers over it.
    split_drain_s: float = 5.0

    def __post_init__(self) -> None:
        if self.peers < 1:
            raise ValueError("peers must be >= 1")
        for name in ("segment_s", "duration_s", "tick_s", "bitrate_bits_per_s", "idle_recheck_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("churn_per_min", "leech_fraction", "low_uplink_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if not 0 <= self.server_fetchers <= 16:
            raise ValueError("server_fetchers must be within 0..16")
        if self.latency_segments < 1:
            raise ValueError("latency_segments must be >= 1")
        if self.regions < 1:
            raise ValueError("regions must be >= 1")
        if self.pairing_sample < 0:
            raise ValueError("pairing_sample must be >= 0")
        if self.pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {', '.join(PAIRINGS)}")
        for name in (
            "low_uplink_bytes_per_s",
            "cross_region_rtt_s",
            "uplink_bytes_per_s",
            "split_drain_s",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    def with_overrides(self, **overrides: Any) -> Scenario:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown scenario keys: {', '.join(unknown)}")
        return replace(self, **overrides)


def load_scenario(path: Path, base: Scenario | None = None) -> Scenario:
    """A scenario from a TOML file whose top-level keys are :class:`Scenario` fields."""
    with path.open("rb") as f:
        data = tomllib.load(f)
    return (base or Scenario()).with_overrides(**data.get("scenario", data))
