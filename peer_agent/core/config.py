"""Every tunable of the core, with its default, in one place.

All configs are frozen dataclasses; units are in the names (``_s`` seconds, ``_bytes``,
``_bytes_per_s``). The simulator and the agent build them from the same defaults, so a scenario
run in either behaves alike.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SchedulerConfig:
    """Rules for choosing where each segment comes from (see docs/scheduling.md)."""

    #: How far ahead of the playhead segments are fetched at all (media seconds).
    prefetch_window_s: float = 30.0
    #: Slack kept between a projected finish and the deadline: covers SCTP's ~1 s minimum
    #: retransmission timeout, which stalls about 1 transfer in 20 on loopback.
    deadline_margin_s: float = 1.0
    #: A segment is urgent (goes to the CDN) when its deadline is closer than the time a CDN
    #: fetch needs plus the margin; never less than this.
    min_urgent_window_s: float = 1.5
    #: CDN time to first byte, and CDN throughput assumed until one is measured (bytes/s).
    cdn_latency_s: float = 0.1
    assumed_cdn_bytes_per_s: float = 1_000_000.0
    #: A peer transfer that delivers no byte for this long, plus ``stall_timeout_rtts`` round
    #: trips to that peer, is cancelled and re-planned.
    peer_stall_timeout_s: float = 1.5
    #: Round trips added to ``peer_stall_timeout_s``: SCTP recovers a lost packet after its
    #: retransmission timeout (at least 1 s, which ``peer_stall_timeout_s`` covers) and the
    #: retransmission and its acknowledgement still need their trips; on loopback (RTT ~0)
    #: nothing is added. The stretch ends at the last moment the CDN can still make the
    #: deadline (docs/scheduling.md; 1 round trip was tried on the bed and cancelled three
    #: times as many silent downloads, with more stalls: docs/loadtest.md).
    stall_timeout_rtts: float = 2.0
    #: A CDN fetch of an urgent segment that delivers no byte for this long is cancelled and
    #: resumed from the byte it reached on a new request (0: never): on a lossy path a lost
    #: SYN or a retransmission timeout holds a TCP connection silent for 1 s and more (on the
    #: bed at 200 ms / 3 % loss, 3 of ~440 CDN fetches took 1.9-3.6 s against 0.4 s median,
    #: and each made the player stall); a fresh request usually delivers in well under that.
    cdn_stall_timeout_s: float = 0.6
    #: Throughput assumed for a peer never measured (the floor for untried peers), bytes/s.
    untried_peer_bytes_per_s: float = 500_000.0
    #: Downloads from peers in flight at once, in all and from any one peer.
    max_downloads_from_peers: int = 6
    max_downloads_per_peer: int = 2
    #: Non-urgent CDN fetches (elected or backup) in flight at once; urgent ones ignore this.
    max_cdn_downloads: int = 2
    #: Whether a segment a neighbour is still downloading may be requested from it (its bytes
    #: are relayed as they arrive).
    cut_through: bool = True
    #: Backup fetchers: rank k fetches from the CDN once the segment has been wanted for
    #: k * backup_delay_s and no neighbour has or is fetching it.
    backup_delay_s: float = 2.0
    #: A neighbour takes part in the election for segment n only if it has, or is fetching, one
    #: of the previous ``election_lookback_segments`` segments of that rendition (it is watching
    #: close by).
    election_lookback_segments: int = 3
    #: In a swarm of known size S, a local election winner fetches at once only if its key is
    #: within the lowest ``seed_fetchers / S`` share of the hash space; other winners wait one
    #: ``backup_delay_s`` for a neighbour's copy (0 disables the threshold).
    seed_fetchers: float = 4.0
    #: When nothing else asks for an earlier decision, decide again after this long; never
    #: sooner than ``min_recheck_s``.
    idle_recheck_s: float = 0.5
    min_recheck_s: float = 0.05


@dataclass(frozen=True)
class PlaybackConfig:
    """The virtual player: when it starts, stalls and resumes."""

    #: Media seconds that must be buffered before playback starts.
    startup_buffer_s: float = 0.5
    #: Media seconds that must be buffered before a stalled player resumes.
    rebuffer_s: float = 1.0


@dataclass(frozen=True)
class ThroughputConfig:
    """Exponentially weighted throughput estimate (bytes/s)."""

    #: Age, in seconds of transfer time, at which a sample's weight halves.
    half_life_s: float = 3.0
