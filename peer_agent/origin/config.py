"""Origin configuration: frozen dataclasses, every default documented in one place.

Three groups, each one frozen dataclass:

- :class:`MediaConfig`: what is generated (segment length, content length, renditions). Its hash
  keys the on-disk cache, so a second start with the same media is instant.
- :class:`ShapingConfig`: bandwidth caps, added latency and fault rates. Changeable at runtime
  (``POST /control``) without regenerating anything.
- :class:`OriginConfig`: the server (host, port, live window, cache, logging) plus the two above.

Every scalar field is also a CLI flag (``--error-rate``) and an environment variable
(``P2P_ORIGIN_ERROR_RATE``); see :mod:`peer_agent.origin.cli` and docs/origin.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from peer_agent.origin.errors import ConfigError

ENV_PREFIX = "P2P_ORIGIN_"
# Part of the media cache key: bump whenever the generator's output bytes change.
GENERATOR_VERSION = 2

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_RENDITION_RE = re.compile(r"^([A-Za-z0-9_-]{1,32}):(\d+)x(\d+)@(\d+)$")


def _opt(default: Any, help_text: str, **kwargs: Any) -> Any:
    return field(default=default, metadata={"help": help_text}, **kwargs)


@dataclass(frozen=True)
class Rendition:
    """One video rendition: a name (URL path element), a resolution and a target bitrate."""

    name: str
    width: int
    height: int
    video_bitrate_bps: int

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ConfigError(f"rendition name must match {_NAME_RE.pattern}: {self.name!r}")
        if self.width < 64 or self.height < 64 or self.width % 2 or self.height % 2:
            raise ConfigError(f"rendition size must be even and >= 64: {self.width}x{self.height}")
        if self.width > 1920 or self.height > 1080:
            raise ConfigError(f"rendition size above 1920x1080: {self.width}x{self.height}")
        if self.video_bitrate_bps < 10_000:
            raise ConfigError(f"video_bitrate_bps too small: {self.video_bitrate_bps}")

    @classmethod
    def parse(cls, text: str) -> Rendition:
        """Parse ``name:WIDTHxHEIGHT@BITRATE_BPS``, e.g. ``360p:640x360@800000``."""
        match = _RENDITION_RE.match(text.strip())
        if match is None:
            raise ConfigError(f"rendition must look like 360p:640x360@800000, got {text!r}")
        name, width, height, bitrate = match.groups()
        return cls(name, int(width), int(height), int(bitrate))

    def spec(self) -> str:
        return f"{self.name}:{self.width}x{self.height}@{self.video_bitrate_bps}"


DEFAULT_RENDITIONS = (
    Rendition("360p", 640, 360, 800_000),
    Rendition("180p", 320, 180, 250_000),
)


def parse_renditions(text: str) -> tuple[Rendition, ...]:
    """Parse a comma-separated list of :meth:`Rendition.parse` specs."""
    parts = [p for p in (s.strip() for s in text.split(",")) if p]
    return tuple(Rendition.parse(p) for p in parts)


@dataclass(frozen=True)
class MediaConfig:
    """What the origin generates at start-up (one encode per rendition, shared by all streams)."""

    segment_duration_s: float = _opt(
        4.0, "segment duration; also the GOP, so every segment starts with a keyframe"
    )
    content_duration_s: float = _opt(
        60.0, "length of the generated content (the VOD length; live loops over it)"
    )
    fps: int = _opt(25, "video frame rate; segment_duration_s * fps must be a whole number")
    renditions: tuple[Rendition, ...] = _opt(
        DEFAULT_RENDITIONS, "comma-separated renditions name:WxH@bitrate_bps (at least one)"
    )
    audio_bitrate_bps: int = _opt(64_000, "AAC-LC bitrate (mono)")
    audio_sample_rate_hz: int = _opt(48_000, "AAC sample rate")
    tone_hz: float = _opt(440.0, "frequency of the synthetic audio tone")

    def __post_init__(self) -> None:
        if not self.renditions:
            raise ConfigError("at least one rendition is required")
        names = [r.name for r in self.renditions]
        if len(set(names)) != len(names):
            raise ConfigError(f"rendition names must be unique: {names}")
        if not 1 <= self.fps <= 60:
            raise ConfigError(f"fps must be in 1..60, got {self.fps}")
        if not 0.2 <= self.segment_duration_s <= 20.0:
            raise ConfigError(
                f"segment_duration_s must be in 0.2..20, got {self.segment_duration_s}"
            )
        frames = self.segment_duration_s * self.fps
        if abs(frames - round(frames)) > 1e-6:
            raise ConfigError("segment_duration_s * fps must be a whole number of frames")
        if self.content_duration_s < self.segment_duration_s or self.content_duration_s > 3600:
            raise ConfigError(
                "content_duration_s must be at least one segment and at most 3600 s, "
                f"got {self.content_duration_s}"
            )
        if self.audio_sample_rate_hz not in (22_050, 32_000, 44_100, 48_000):
            raise ConfigError(f"unsupported audio_sample_rate_hz {self.audio_sample_rate_hz}")
        if not 16_000 <= self.audio_bitrate_bps <= 320_000:
            raise ConfigError("audio_bitrate_bps must be in 16000..320000")
        if not 20.0 <= self.tone_hz <= self.audio_sample_rate_hz / 4:
            raise ConfigError(f"tone_hz out of range: {self.tone_hz}")

    @property
    def frames_per_segment(self) -> int:
        return round(self.segment_duration_s * self.fps)

    @property
    def segment_count(self) -> int:
        """Whole segments in the content (the content is rounded down to whole segments)."""
        return max(1, int(self.content_duration_s / self.segment_duration_s + 1e-9))

    def cache_key(self) -> str:
        """A short stable hash of everything that changes the generated bytes."""
        data = dataclasses.asdict(self)
        data["generator"] = GENERATOR_VERSION
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class ShapingConfig:
    """Bandwidth, latency and faults, applied per response. Changeable at runtime."""

    rate_limit_bytes_per_s: int = _opt(
        0, "per-response bandwidth cap, body paced in chunks (0 = unlimited)"
    )
    total_rate_limit_bytes_per_s: int = _opt(
        0, "cap on the origin's total egress, shared by all responses (0 = unlimited)"
    )
    latency_s: float = _opt(0.0, "added delay before the first byte of a response")
    error_rate: float = _opt(0.0, "probability that a request is answered with error_status")
    error_status: int = _opt(503, "the 5xx status of injected errors")
    truncate_rate: float = _opt(
        0.0, "probability that a body stops short of its Content-Length and the connection closes"
    )
    truncate_fraction: float = _opt(0.5, "fraction of the body sent before a truncation")
    timeout_rate: float = _opt(
        0.0, "probability that a request hangs with no answer until the client gives up"
    )
    timeout_hang_s: float = _opt(
        120.0, "longest a 'timeout' request hangs before it is answered 504"
    )
    faults_on_playlists: bool = _opt(
        False, "also apply latency, caps and faults to playlists and manifests (not only segments)"
    )
    seed: int = _opt(0, "seed of the random draws that pick faults")
    chunk_bytes: int = _opt(16_384, "body chunk size when pacing")

    def __post_init__(self) -> None:
        for name in ("error_rate", "truncate_rate", "timeout_rate", "truncate_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value!r}")
        if self.error_rate + self.truncate_rate + self.timeout_rate > 1.0 + 1e-9:
            raise ConfigError("error_rate + truncate_rate + timeout_rate must not exceed 1")
        if self.rate_limit_bytes_per_s < 0 or self.total_rate_limit_bytes_per_s < 0:
            raise ConfigError("bandwidth caps must be >= 0 (0 = unlimited)")
        if self.latency_s < 0 or self.latency_s > 600:
            raise ConfigError(f"latency_s must be in [0, 600], got {self.latency_s}")
        if not 500 <= self.error_status <= 599:
            raise ConfigError(f"error_status must be a 5xx status, got {self.error_status}")
        if self.timeout_hang_s <= 0:
            raise ConfigError("timeout_hang_s must be positive")
        if not 512 <= self.chunk_bytes <= 1 << 20:
            raise ConfigError(f"chunk_bytes must be in 512..1048576, got {self.chunk_bytes}")

    @property
    def active(self) -> bool:
        """True when any shaping or fault is configured."""
        return bool(
            self.rate_limit_bytes_per_s
            or self.total_rate_limit_bytes_per_s
            or self.latency_s
            or self.error_rate
            or self.truncate_rate
            or self.timeout_rate
        )


@dataclass(frozen=True)
class OriginConfig:
    """The whole origin: server options plus the media and shaping groups."""

    host: str = _opt("127.0.0.1", "interface to listen on")
    port: int = _opt(8080, "TCP port to listen on (0 = any free port)")
    live_window_segments: int = _opt(6, "segments in a live playlist window")
    live_history_segments: int = _opt(
        6, "segments behind the live window still served and listed in the live manifest"
    )
    cache_dir: str = _opt(
        "", "directory caching generated media by config hash ('' = system temp dir)"
    )
    cache: bool = _opt(True, "reuse/keep generated media in cache_dir")
    shutdown_grace_s: float = _opt(3.0, "on shutdown, wait this long for responses to finish")
    log_level: str = _opt("info", "logging level")
    media: MediaConfig = field(default_factory=MediaConfig)
    shaping: ShapingConfig = field(default_factory=ShapingConfig)

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise ConfigError(f"port out of range: {self.port}")
        if not 1 <= self.live_window_segments <= 1000:
            raise ConfigError("live_window_segments must be in 1..1000")
        if not 0 <= self.live_history_segments <= 10_000:
            raise ConfigError("live_history_segments must be in 0..10000")
        if self.shutdown_grace_s < 0:
            raise ConfigError("shutdown_grace_s must be >= 0")

    def with_changes(self, **changes: Any) -> OriginConfig:
        return dataclasses.replace(self, **changes)


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()
