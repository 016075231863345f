"""Pure helpers: URL checks against the allowlist, and the hashable entries of a media playlist.

Keys are exactly those of the test origin's ``manifest.json``: the URI as written in the
playlist; ``uri#first-last`` (inclusive byte positions) for byte ranges; init sections (EXT-X-MAP)
by their URI (with ``#first-last`` when the map has a byte range).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode, urljoin, urlsplit, urlunsplit

import m3u8

from signaling.hashsvc.errors import BadPlaylistUrl, NotAllowed, NotMediaPlaylist, UpstreamError

MAX_URL_CHARS = 2048


@dataclass(frozen=True)
class Entry:
    """One resource to hash: its manifest key, absolute URL and byte range (inclusive)."""

    key: str
    url: str
    first_byte: int | None = None
    last_byte: int | None = None
    #: A media segment's sequence number (``None`` for an init section).
    msn: int | None = None
    #: The key of the init section (EXT-X-MAP) the segment uses, if any.
    init_key: str | None = None

    @property
    def range_header(self) -> str | None:
        if self.first_byte is None:
            return None
        return f"bytes={self.first_byte}-{self.last_byte}"


@dataclass(frozen=True)
class MediaPlaylist:
    """What the service needs of a parsed media playlist."""

    entries: tuple[Entry, ...]
    live: bool
    target_duration_s: float


def check_url(url: str | None, allow_prefixes: tuple[str, ...]) -> str:
    """``url`` if it is a plain absolute http(s) URL under an allowed prefix; else raise."""
    if not url:
        raise BadPlaylistUrl("missing 'playlist' query parameter")
    if len(url) > MAX_URL_CHARS or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise BadPlaylistUrl("malformed playlist URL")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise BadPlaylistUrl("malformed playlist URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
        raise BadPlaylistUrl("the playlist must be an absolute http(s) URL without a fragment")
    if "@" in parts.netloc:
        raise BadPlaylistUrl("URLs with user info are not accepted")
    if any(seg in (".", "..") for seg in unquote(parts.path).split("/")):
        raise BadPlaylistUrl("URLs with dot segments are not accepted")
    if not url.startswith(allow_prefixes):
        raise NotAllowed("the playlist URL is under none of the allowed prefixes")
    return url


def playlist_identity(url: str, keep_params: tuple[str, ...]) -> str:
    """What makes two (checked) playlist URLs the same playlist: the URL without its query,
    plus the ``keep_params`` it carries, sorted. Other query parameters (cache busters, session
    ids, signed-URL tokens) are ignored, so variants of one playlist share one tracked slot."""
    parts = urlsplit(url)
    kept = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k in keep_params
    )
    return urlunsplit((parts.scheme, parts.netloc.lower(), parts.path, urlencode(kept), ""))


def upstream_of(url: str) -> str:
    """``scheme://host:port`` of a URL: the unit of per-upstream fetch concurrency."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def client_key(address: str | None) -> str:
    """The unit of per-client limits: an IPv4 address, or the /64 of an IPv6 address."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _byte_range(spec: str, previous_end: int | None, *, map_tag: bool = False) -> tuple[int, int]:
    """``(first, last)`` of ``<n>[@<o>]`` (docs/exchange.md, section 11, the same rule as
    ``peer_agent.core.media_ranges``, which this package may not import): without ``@<o>`` a
    segment's range follows the previous range of the same resource, which must exist; an
    EXT-X-MAP range must give its offset."""
    length_text, at, offset_text = spec.strip().partition("@")
    if not length_text.isdigit() or (at and not offset_text.isdigit()):
        raise ValueError(f"bad byte range {spec!r}")
    length = int(length_text)
    if length < 1:
        raise ValueError(f"byte range {spec!r} is empty")
    if at:
        offset = int(offset_text)
    elif map_tag:
        raise ValueError(f"EXT-X-MAP byte range {spec!r} has no offset")
    elif previous_end is not None:
        offset = previous_end
    else:
        raise ValueError(f"byte range {spec!r} has no offset and no previous range to follow")
    return offset, offset + length - 1


def manifest_key(uri: str, first: int | None = None, last: int | None = None) -> str:
    """The canonical manifest key: the URI as the playlist writes it, ``#first-last``
    (inclusive) for a byte range."""
    return uri if first is None else f"{uri}#{first}-{last}"


def parse_media_playlist(text: str, url: str) -> MediaPlaylist:
    """Parse ``text`` (fetched from ``url``); raises NotMediaPlaylist or UpstreamError."""
    if not text.lstrip().startswith("#EXTM3U"):
        raise NotMediaPlaylist("the URL does not serve an HLS playlist")
    try:
        playlist = m3u8.loads(text, uri=url)
    except Exception as exc:  # m3u8 raises assorted errors on bad input
        raise UpstreamError(f"unparsable playlist: {exc}") from exc
    if playlist.is_variant:
        raise NotMediaPlaylist("a master playlist; ask for one of its media playlists")
    entries: dict[str, Entry] = {}
    next_offset: dict[str, int] = {}
    first_msn = int(playlist.media_sequence or 0)
    try:
        for position, segment in enumerate(playlist.segments):
            msn = first_msn + position
            init = segment.init_section
            init_key = None
            if init is not None and init.uri:
                first = last = None
                if init.byterange:
                    first, last = _byte_range(init.byterange, None, map_tag=True)
                init_key = manifest_key(init.uri, first, last)
                entries.setdefault(init_key, Entry(init_key, urljoin(url, init.uri), first, last))
            if not segment.uri:
                continue
            if segment.byterange:
                first, last = _byte_range(segment.byterange, next_offset.get(segment.uri))
                next_offset[segment.uri] = last + 1
                key = manifest_key(segment.uri, first, last)
                entry = Entry(key, urljoin(url, segment.uri), first, last, msn, init_key)
            else:
                key = segment.uri
                entry = Entry(key, urljoin(url, segment.uri), msn=msn, init_key=init_key)
            entries.setdefault(key, entry)
    except ValueError as exc:
        raise UpstreamError(f"bad playlist: {exc}") from exc
    return MediaPlaylist(
        entries=tuple(entries.values()),
        live=not playlist.is_endlist,
        target_duration_s=float(playlist.target_duration or 0.0),
    )
