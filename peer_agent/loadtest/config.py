"""The load test's own knobs (the ``[loadtest]`` table), with their defaults in one place.

What the swarm looks like (viewers, live or VOD, segment length, join ramp, churn, leech-only
share, CDN cap and latency...) is a :class:`peer_agent.sim.scenario.Scenario`, read from the
``[scenario]`` table of the same TOML file, so ``p2p-sim --scenario FILE`` runs the same swarm in
the simulator. Only what the simulator has no notion of lives here.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..core.config import SchedulerConfig
from ..sim.scenario import Scenario, load_scenario

#: The shares of agents that attack the swarm.
HOSTILE_FRACTIONS = (
    "malicious_fraction",
    "flood_fraction",
    "rotate_fraction",
    "liar_fraction",
    "staller_fraction",
)


@dataclass(frozen=True)
class LoadTestConfig:
    #: Worker processes running agents (``None``: one per core).
    workers: int | None = None
    #: Origin to use (``None``: start one in this process); its ``/stats`` is the CDN truth.
    origin_url: str | None = None
    #: Signaling server to use (``None``: start ``p2p-signaling`` in a subprocess).
    tracker_url: str | None = None
    #: Stream container when the origin is ours: ``"ts"`` or ``"fmp4"``.
    container: str = "ts"
    #: Rendition index played by the agents (of the origin's master playlist).
    rendition: int = 0
    #: Video size and audio bitrate of the media we generate (the video bitrate is the
    #: scenario's ``bitrate_bits_per_s`` minus the audio).
    video_size: str = "160x90"
    fps: int = 10
    audio_bitrate_bps: int = 32_000
    #: Live: generated content length (it loops); VOD: ``vod_length_s`` or the run's length.
    live_content_s: float = 60.0
    #: Per-response CDN cap (bytes/s, 0: none); the swarm-wide cap is the scenario's
    #: ``cdn_bytes_per_s``, the added first-byte delay its ``cdn_latency_s``.
    cdn_rate_limit_bytes_per_s: int = 0
    #: Share of agents whose uploads are capped to ``slow_upload_bytes_per_s``.
    slow_fraction: float = 0.0
    slow_upload_bytes_per_s: float = 20_000.0
    #: Share of agents that corrupt every segment they upload (byte 0 flipped).
    malicious_fraction: float = 0.0
    #: Shares of hostile agents (peer_agent/hostile.py): request flooders, corrupters that
    #: come back with a new peer id after each ban, liars (HAVE everything, ABSENT to every
    #: request) and stallers (half of each segment, then nothing).
    flood_fraction: float = 0.0
    rotate_fraction: float = 0.0
    liar_fraction: float = 0.0
    staller_fraction: float = 0.0
    #: Churn: share of leavers that close abruptly (no protocol CLOSE, connections dropped);
    #: the others stop gracefully.
    abrupt_fraction: float = 1.0
    #: Neighbours per agent (``None``: the scenario's ``max_peers``, at most 8).
    max_peers: int | None = None
    #: Announce again with fresh offers while neighbour slots are free (docs/signaling.md,
    #: "Filling neighbour slots"); off: only every interval, as before issue 15.
    refill: bool = True
    #: Answer the tracker's split offers when full (docs/signaling.md, "Making room"); off:
    #: full agents refuse every offer, as before issue 15.
    make_room: bool = True
    #: Seconds between the workers' start and the first join (agents import aiortc first).
    start_delay_s: float = 3.0
    #: Progress and time-series sampling period (seconds).
    sample_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError("workers must be >= 1")
        if self.container not in ("ts", "fmp4"):
            raise ValueError("container must be 'ts' or 'fmp4'")
        for name in ("slow_fraction", "abrupt_fraction", *HOSTILE_FRACTIONS):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.slow_fraction + sum(getattr(self, n) for n in HOSTILE_FRACTIONS) > 1.0 + 1e-9:
            raise ValueError(
                "slow_fraction + malicious_fraction + the hostile fractions must not exceed 1"
            )
        if self.slow_upload_bytes_per_s <= 0 or self.sample_interval_s <= 0:
            raise ValueError("slow_upload_bytes_per_s and sample_interval_s must be positive")
        if self.max_peers is not None and self.max_peers < 1:
            raise ValueError("max_peers must be >= 1")
        if self.rendition < 0 or self.start_delay_s < 0 or self.live_content_s <= 0:
            raise ValueError("rendition, start_delay_s must be >= 0; live_content_s positive")

    def with_overrides(self, **overrides: Any) -> LoadTestConfig:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown loadtest keys: {', '.join(unknown)}")
        return replace(self, **overrides)


def load_files(path: Path) -> tuple[Scenario, LoadTestConfig]:
    """The ``[scenario]`` and ``[loadtest]`` tables of a TOML file (both optional). A
    ``[network]`` table may sit beside them: ``--network-profile`` reads it (docs/netbed.md)."""
    with path.open("rb") as f:
        data = tomllib.load(f)
    extra = sorted(set(data) - {"scenario", "loadtest", "network"})
    if extra:
        raise ValueError(f"{path}: unknown tables or keys: {', '.join(extra)}")
    scenario = load_scenario(path) if "scenario" in data else Scenario()
    return scenario, LoadTestConfig().with_overrides(**data.get("loadtest", {}))


def scheduler_for(scenario: Scenario) -> SchedulerConfig:
    """The scheduler's margins, scaled down for short segments (as the agent tests do with
    1-second segments); the defaults hold from 4-second segments up. The simulator runs with
    the same config when a load test is compared with it."""
    base = SchedulerConfig(cdn_latency_s=max(0.02, scenario.cdn_latency_s))
    if scenario.segment_s >= 4.0:
        return base
    return replace(base, min_urgent_window_s=1.0, deadline_margin_s=0.5, backup_delay_s=1.0)
