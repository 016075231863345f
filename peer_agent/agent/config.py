"""Every option of the agent, with its default, in one place."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..core.config import PlaybackConfig, SchedulerConfig
from .cdn import CdnConfig
from .integrity import IntegrityConfig


@dataclass(frozen=True)
class AgentConfig:
    #: Master or media playlist URL.
    playlist_url: str
    #: Signaling (tracker) WebSocket URL; ``None``: no swarm, every byte from the CDN.
    tracker_url: str | None = None
    #: Join token for a tracker that requires one (sent as ``?token=``); never logged.
    tracker_token: str | None = field(default=None, repr=False)
    #: Stop after this long (seconds); ``None``: at the end of a VOD or ended live stream.
    duration_s: float | None = None
    #: SHA-256 manifest URL; ``None``: discover it from the origin layout (``discover``).
    manifest_url: str | None = None
    #: Look for ``manifest.json`` beside the media playlist when no manifest URL is given.
    discover_manifest: bool = True
    #: Hash service base URL (``p2p-hashsvc``); when set and ``manifest_url`` is not, the
    #: manifest is ``<URL>/manifest?playlist=<percent-encoded media playlist URL>``.
    hash_service_url: str | None = None
    #: A manifest answer over this many bytes is refused unread past it (docs/exchange.md, 12).
    max_manifest_bytes: int = 1 << 20
    #: Manifest entries held at most (oldest-inserted dropped); an answer listing more is refused.
    max_manifest_entries: int = 4096
    #: Rendition index in the master playlist; ``None``: the lowest bandwidth.
    rendition: int | None = None
    #: Live: start this many segments behind the newest listed one.
    latency_segments: int = 3
    #: Neighbours at most.
    max_peers: int = 8
    #: Upload cap in bytes/s (``None``: none) and concurrent uploads at most (BUSY beyond).
    upload_cap_bytes_per_s: float | None = None
    max_uploads: int = 4
    #: Bytes the upload cap lets through at once (``None``: a quarter second, at least 16 KiB).
    upload_burst_bytes: int | None = None
    #: Never upload (HELLO leech-only flag; every request answered BUSY).
    leech_only: bool = False
    #: ICE server URLs (``stun:``/``turn:``); none by default, so nothing leaves the host.
    ice_servers: tuple[str, ...] = ()
    #: Credentials for the ``turn:``/``turns:`` URLs of ``ice_servers`` (never in the URL, never
    #: logged or shown in ``repr``).
    ice_username: str | None = field(default=None, repr=False)
    ice_credential: str | None = field(default=None, repr=False)
    #: Ask the tracker for ICE servers (STUN + TURN with short-lived credentials) before
    #: offering; they come ahead of ``ice_servers``.
    ice_from_tracker: bool = False
    #: Host addresses to gather ICE candidates on (``None``: aioice's choice, which omits
    #: 127.0.0.1; loopback-only tests pass ``("127.0.0.1",)``).
    host_addresses: tuple[str, ...] | None = None
    #: Seed of the agent's random source (peer choice, peer id, jitter).
    seed: int | None = None
    #: Verified segments kept for peers and the player (oldest evicted first).
    store_max_bytes: int = 256 * 1024 * 1024
    #: Statistics are sent to the tracker this often (seconds).
    stats_interval_s: float = 5.0
    #: Neighbours the tracker offers are given this long to connect before this viewer
    #: elects itself to fetch a segment from the CDN.
    connect_grace_s: float = 1.0
    #: A neighbour that answered BUSY without a hint, or could not take a request, is not
    #: asked again for this long (seconds).
    busy_backoff_s: float = 0.5
    #: Times a segment is refetched from the CDN after failing its hash before giving up.
    max_hash_retries: int = 3
    #: Pass the tracker's swarm size to the scheduler (its seed rule, docs/scheduling.md), as
    #: the simulator does (issue 15, finding 3); load-test figures in docs/signaling.md.
    scheduler_swarm_size: bool = True
    #: Put every download from a peer (sent, first byte, last byte, outcome; at most 4096) in
    #: the summary as ``request_timeline`` (:mod:`peer_agent.agent.requests`).
    request_timeline: bool = False
    #: Base :class:`peer_agent.net.swarm.SwarmConfig` (tracker timings, buffers...); the agent
    #: sets ``max_peers``, ``ice_servers``, ``host_addresses`` and leech-only on top of it.
    swarm: Any = None
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    playback: PlaybackConfig = field(default_factory=PlaybackConfig)
    cdn: CdnConfig = field(default_factory=CdnConfig)
    integrity: IntegrityConfig = field(default_factory=IntegrityConfig)

    def __post_init__(self) -> None:
        _check_url("playlist_url", self.playlist_url, ("http", "https"))
        if self.tracker_url is not None:
            _check_url("tracker_url", self.tracker_url, ("ws", "wss"))
        for name in ("manifest_url", "hash_service_url"):
            if getattr(self, name) is not None:
                _check_url(name, getattr(self, name), ("http", "https"))
        _check_number("duration_s", self.duration_s, minimum=0.0, inclusive=False)
        _check_number("upload_cap_bytes_per_s", self.upload_cap_bytes_per_s, minimum=0.0)
        _check_number("stats_interval_s", self.stats_interval_s, minimum=0.0, inclusive=False)
        _check_number("connect_grace_s", self.connect_grace_s, minimum=0.0)
        _check_number("busy_backoff_s", self.busy_backoff_s, minimum=0.0)
        for name in ("latency_segments", "max_peers", "max_uploads", "max_hash_retries"):
            _check_number(name, getattr(self, name), minimum=0)
        for name in ("rendition", "upload_burst_bytes"):
            _check_number(name, getattr(self, name), minimum=0)
        _check_number("store_max_bytes", self.store_max_bytes, minimum=1)
        _check_number("max_manifest_bytes", self.max_manifest_bytes, minimum=1)
        _check_number("max_manifest_entries", self.max_manifest_entries, minimum=1)


def _check_url(name: str, url: str, schemes: tuple[str, ...]) -> None:
    """An absolute URL with one of ``schemes`` and a host; else ``ValueError`` saying so."""
    parts = urlsplit(url)
    wanted = " or ".join(f"{s}://" for s in schemes)
    if parts.scheme.lower() not in schemes or not parts.hostname:
        hint = ""
        if name == "tracker_url" and parts.scheme.lower() in ("http", "https"):
            hint = " (the tracker is a WebSocket: ws://HOST:PORT/announce)"
        raise ValueError(
            f"{name} must be a URL starting with {wanted} (with a host), got {url!r}{hint}"
        )


def _check_number(
    name: str, value: float | None, *, minimum: float, inclusive: bool = True
) -> None:
    """``None``, or a finite number >= ``minimum`` (> with ``inclusive=False``)."""
    if value is None:
        return
    ok = math.isfinite(value) and (value >= minimum if inclusive else value > minimum)
    if not ok:
        relation = ">=" if inclusive else ">"
        raise ValueError(f"{name} must be a finite number {relation} {minimum:g}, got {value!r}")
