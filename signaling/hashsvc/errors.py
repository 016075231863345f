"""Typed errors, split by who is at fault; each maps to one HTTP status of the app."""

from __future__ import annotations


class HashServiceError(Exception):
    """Base class. ``status`` is the HTTP answer, ``reason`` a stable snake_case label."""

    status: int = 500
    reason: str = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ConfigError(HashServiceError, ValueError):
    """Our own misuse: an invalid :class:`HashServiceConfig`."""

    reason = "config"


class BadPlaylistUrl(HashServiceError):
    """The client's fault: a missing or malformed playlist URL (400)."""

    status = 400
    reason = "bad_url"


class BadFromMsn(HashServiceError):
    """The client's fault: a repeated or malformed ``from_msn`` (400)."""

    status = 400
    reason = "bad_from_msn"


class BadForwardedForHeader(HashServiceError):
    """A trusted proxy sent an ``X-Forwarded-For`` entry that is not an address (400): a proxy
    misconfiguration, refused loudly rather than counted against the proxy's own address."""

    status = 400
    reason = "bad_forwarded_for"


class NotMediaPlaylist(HashServiceError):
    """The client's fault: the URL is a master playlist or not a playlist at all (400)."""

    status = 400
    reason = "not_media_playlist"


class NotAllowed(HashServiceError):
    """The client's fault: the URL is under none of the allowed prefixes (403)."""

    status = 403
    reason = "not_allowed"


class HashServiceUnavailable(HashServiceError):
    """Our limit: ``max_playlists`` playlists are tracked already, or we are shutting down."""

    status = 503
    reason = "unavailable"


class UpstreamError(HashServiceError):
    """The origin's fault: the playlist could not be fetched or parsed (502)."""

    status = 502
    reason = "upstream"


class ClientBusy(HashServiceError):
    """The client's fault: ``max_requests_per_client`` requests of its address in flight (429)."""

    status = 429
    reason = "client_busy"


class ClientPlaylistLimit(HashServiceError):
    """The client's fault: its address started ``max_playlists_per_client`` tracked playlists
    already (429)."""

    status = 429
    reason = "client_playlists"
