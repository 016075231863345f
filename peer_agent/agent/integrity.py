"""Segment integrity: SHA-256 against a trusted manifest, and penalties for peers that lie.

The manifest is JSON, one per rendition: ``{key: sha256 hex}``, published by the origin (or a
hash service). A segment's key is the canonical one of docs/exchange.md, section 11: its URI
exactly as the media playlist writes it, with ``#first-last`` for a byte range
(:func:`peer_agent.core.media_ranges.manifest_key`); no other form is tried.

Without a manifest only sizes can be checked (a byte range's length, or the size the CDN
reported): the mode is ``"size-only"`` and the agent's stats say so. What follows a verdict
(penalties, bans) is the core's rule (:mod:`peer_agent.core.exchange_state`, docs/exchange.md);
``Verdict``, ``IntegrityConfig`` and ``Penalties`` are re-exported from there.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import quote

from ..core.exchange_state import IntegrityConfig, Penalties, Verdict
from ..core.media_ranges import manifest_key
from .playlist import ByteRange, SegmentInfo

#: Defaults of the incremental manifest fetch (docs/exchange.md, section 12).
MAX_MANIFEST_BYTES = 1 << 20
MAX_MANIFEST_ENTRIES = 4096

__all__ = [
    "MAX_MANIFEST_BYTES",
    "MAX_MANIFEST_ENTRIES",
    "IntegrityConfig",
    "Manifest",
    "ManifestRejected",
    "Penalties",
    "Verdict",
    "hash_service_manifest_url",
    "incremental_manifest_url",
    "parse_manifest",
    "sha256_hex",
]


def hash_service_manifest_url(service_url: str, playlist_url: str) -> str:
    """The manifest of the media playlist ``playlist_url`` at a hash service (``p2p-hashsvc``)."""
    return f"{service_url.rstrip('/')}/manifest?playlist={quote(playlist_url, safe='')}"


class ManifestRejected(ValueError):
    """A manifest answer refused whole: ``reason`` is ``manifest_too_large`` or
    ``manifest_invalid`` (the warning it is counted under)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def incremental_manifest_url(url: str, msn: int) -> str:
    """The URL asking ``url`` for the entries from MSN ``msn`` on (docs/exchange.md, section 12):
    any ``#fragment`` and ``from_msn=`` parameter dropped, ``from_msn=<msn>`` appended."""
    if msn < 0:
        raise ValueError(f"bad MSN {msn}")
    base, _, query = url.split("#", 1)[0].partition("?")
    params = [p for p in query.split("&") if p and not p.startswith("from_msn=")]
    params.append(f"from_msn={msn}")
    return f"{base}?{'&'.join(params)}"


def parse_manifest(text: str, max_entries: int = MAX_MANIFEST_ENTRIES) -> dict[str, str]:
    """``{uri: sha256}``, keys as given; hashes lowercased and checked to be 64 hex digits
    (bad entries dropped). Raises :class:`ManifestRejected` for a document that is not a JSON
    object or lists more than ``max_entries`` entries."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ManifestRejected("manifest_invalid", f"a manifest is JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ManifestRejected("manifest_invalid", "a manifest is a JSON object")
    out: dict[str, str] = {}
    entries = raw.get("segments", raw) if isinstance(raw.get("segments"), dict) else raw
    if len(entries) > max_entries:
        raise ManifestRejected(
            "manifest_too_large", f"manifest lists {len(entries)} entries, over {max_entries}"
        )
    for key, value in entries.items():
        if not isinstance(value, str):
            continue
        digest = value.lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            continue
        out[key] = digest
    return out


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Manifest:
    """A rendition's hashes, merged across refreshes (the live manifest grows): at most
    ``max_entries`` keys, the oldest-inserted dropped first. ``fetches``, ``bytes_fetched`` and
    ``rejected`` (by reason) count what the agent's refreshes did."""

    def __init__(
        self,
        url: str | None,
        *,
        max_entries: int = MAX_MANIFEST_ENTRIES,
        max_bytes: int = MAX_MANIFEST_BYTES,
    ) -> None:
        self.url = url
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.hashes: dict[str, str] = {}
        self.loaded = False
        self.fetches = 0
        self.bytes_fetched = 0
        self.rejected: dict[str, int] = {}

    def url_for(self, msn: int | None) -> str | None:
        """What to fetch when segment ``msn`` is not listed: the whole manifest until one was
        loaded (or without an MSN), then only the entries from ``msn`` on."""
        if self.url is None or not self.loaded or msn is None:
            return self.url
        return incremental_manifest_url(self.url, msn)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    @property
    def mode(self) -> str:
        return "sha256" if self.url is not None else "size-only"

    def update(self, text: str) -> None:
        """Merge an answer (raises :class:`ManifestRejected`, holding nothing of it)."""
        if len(text) > self.max_bytes:
            raise ManifestRejected(
                "manifest_too_large", f"manifest of {len(text)} bytes, over {self.max_bytes}"
            )
        self.hashes.update(parse_manifest(text, self.max_entries))
        excess = len(self.hashes) - self.max_entries
        if excess > 0:
            for key in list(self.hashes)[:excess]:
                del self.hashes[key]
        self.loaded = True

    def expected(self, info: SegmentInfo) -> str | None:
        return self.expected_for(info.key, info.uri, info.byte_range)

    def expected_for(self, key: str, uri: str, byte_range: ByteRange | None) -> str | None:
        """The hash listed for a resource (``key``: its URI as the playlist writes it)."""
        br = None if byte_range is None else (byte_range.offset, byte_range.length)
        return self.hashes.get(manifest_key(key, br))

    def verify(self, info: SegmentInfo, data: bytes, expected_size: int | None = None) -> Verdict:
        """Check ``data`` (the whole segment). Size-only mode checks ``expected_size`` (or the
        byte range's length) and reports UNKNOWN when nothing is known."""
        if self.url is None:
            size = info.byte_range.length if info.byte_range is not None else expected_size
            if size is None:
                return Verdict.UNKNOWN if data else Verdict.MISMATCH
            return Verdict.OK if len(data) == size else Verdict.MISMATCH
        digest = self.expected(info)
        if digest is None:
            return Verdict.UNKNOWN
        return Verdict.OK if sha256_hex(data) == digest else Verdict.MISMATCH
