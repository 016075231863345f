"""Hash service configuration: one frozen dataclass, every default documented in one place.

Each field is also a CLI flag (``--max-playlists``) and an environment variable
(``P2P_HASHSVC_MAX_PLAYLISTS``); see :mod:`signaling.hashsvc.cli` and docs/hashsvc.md.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from signaling.hashsvc.errors import ConfigError

ENV_PREFIX = "P2P_HASHSVC_"


def _opt(default: Any, help_text: str) -> Any:
    return field(default=default, metadata={"help": help_text})


def normalise_prefix(prefix: str) -> str:
    """``http://host[:port]`` gains a trailing ``/`` so it cannot match ``http://host.evil``."""
    parts = urlsplit(prefix)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"allow prefix must be an http(s) URL with a host: {prefix!r}")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ConfigError(f"allow prefix must not carry a query, fragment or userinfo: {prefix!r}")
    if not parts.path:
        prefix += "/"
    return prefix


@dataclass(frozen=True)
class HashServiceConfig:
    #: Playlist (and segment) URLs must start with one of these; the service is no open
    #: fetcher. A bare ``scheme://host[:port]`` is taken as ``scheme://host[:port]/``.
    allow_prefixes: tuple[str, ...] = field(
        metadata={"help": "URL prefix a playlist must start with (repeatable; required)"}
    )
    host: str = _opt("127.0.0.1", "interface to listen on")
    port: int = _opt(8090, "TCP port to listen on (0: any free port)")
    max_playlists: int = _opt(64, "most playlists tracked at once (503 above)")
    history_segments: int = _opt(
        30, "live: hashes kept per playlist for segments that left the live window"
    )
    min_refresh_s: float = _opt(
        1.0, "live playlists are refreshed every max(this, target duration / 2) seconds"
    )
    idle_expiry_s: float = _opt(300.0, "stop tracking a playlist nobody asked for in this long")
    max_segment_bytes: int = _opt(64 * 1024 * 1024, "larger segments are refused (not hashed)")
    max_playlist_bytes: int = _opt(4 * 1024 * 1024, "larger playlists are refused")
    fetch_timeout_s: float = _opt(10.0, "timeout of each HTTP fetch (connect, read, pool)")
    max_concurrent_fetches: int = _opt(4, "segment fetches in flight at once, all playlists")
    fetch_deadline_s: float = _opt(
        30.0, "one fetch attempt (playlist or segment) not finished in this long is abandoned"
    )
    min_rate_bps: int = _opt(
        16384,
        "after min_rate_grace_s, a fetch averaging fewer bytes per second than this is "
        "abandoned (0: no minimum)",
    )
    min_rate_grace_s: float = _opt(3.0, "how long a fetch may run before min_rate_bps applies")
    max_fetches_per_upstream: int = _opt(
        2, "segment fetches in flight to one upstream (scheme://host:port), all playlists"
    )
    max_requests_per_client: int = _opt(
        8, "/manifest requests in flight from one client address (IPv4 /32, IPv6 /64); 429 above"
    )
    max_playlists_per_client: int = _opt(
        16, "tracked playlists one client address started (and still tracked); 429 above"
    )
    trusted_proxies: tuple[str, ...] = _opt(
        (),
        "comma-separated addresses/CIDRs of reverse proxies whose X-Forwarded-For names the "
        "client (for the per-client limits); empty trusts none: the client is the TCP peer",
    )
    identity_query_params: tuple[str, ...] = _opt(
        (),
        "comma-separated query parameters that make two playlist URLs different playlists; every "
        "other parameter is ignored for identity (empty: the whole query is)",
    )
    evict_idle_s: float = _opt(
        10.0,
        "with max_playlists tracked, a new playlist evicts one nobody asked for in this long "
        "(from the client holding the most, least recently asked first); none: 503",
    )
    max_range_overread_bytes: int = _opt(
        1024 * 1024,
        "a server that ignores Range: most bytes read before the requested range; above, the "
        "fetch is refused (segment_range_ignored)",
    )
    retries: int = _opt(2, "extra attempts after a failed fetch")
    retry_backoff_s: float = _opt(0.25, "wait before retry n: this times 2**(n-1)")
    cache_max_age_s: int = _opt(1, "Cache-Control max-age of manifest answers")
    shutdown_grace_s: float = _opt(3.0, "on shutdown, wait this long for requests to finish")
    log_level: str = _opt("info", "logging level")

    def __post_init__(self) -> None:
        if isinstance(self.allow_prefixes, str):
            raise ConfigError("allow_prefixes is a tuple of URL prefixes, not a string")
        prefixes = tuple(normalise_prefix(p) for p in self.allow_prefixes if p)
        if not prefixes:
            raise ConfigError("at least one allow prefix is required")
        object.__setattr__(self, "allow_prefixes", prefixes)
        for name in ("max_playlists", "max_segment_bytes", "max_playlist_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        for name in (
            "max_concurrent_fetches",
            "max_fetches_per_upstream",
            "max_requests_per_client",
            "max_playlists_per_client",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if isinstance(self.trusted_proxies, str):
            raise ConfigError("trusted_proxies is a tuple of addresses/CIDRs, not a string")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy.strip(), strict=False)
            except ValueError as exc:
                raise ConfigError(f"trusted_proxies: not an address or CIDR: {proxy!r}") from exc
        if isinstance(self.identity_query_params, str):
            raise ConfigError("identity_query_params is a tuple of names, not a string")
        for name in (
            "history_segments",
            "retries",
            "cache_max_age_s",
            "min_rate_bps",
            "min_rate_grace_s",
            "evict_idle_s",
            "max_range_overread_bytes",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative")
        for name in ("min_refresh_s", "idle_expiry_s", "fetch_timeout_s", "fetch_deadline_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive")
        if self.retry_backoff_s < 0 or self.shutdown_grace_s < 0:
            raise ConfigError("retry_backoff_s and shutdown_grace_s must not be negative")

    def with_changes(self, **changes: Any) -> HashServiceConfig:
        return dataclasses.replace(self, **changes)


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def config_fields() -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(HashServiceConfig)
