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

__all__ = [
    "IntegrityConfig",
    "Manifest",
    "Penalties",
    "Verdict",
    "hash_service_manifest_url",
    "parse_manifest",
    "sha256_hex",
]


def hash_service_manifest_url(service_url: str, playlist_url: str) -> str:
    """The manifest of the media playlist ``playlist_url`` at a hash service (``p2p-hashsvc``)."""
    return f"{service_url.rstrip('/')}/manifest?playlist={quote(playlist_url, safe='')}"


def parse_manifest(text: str) -> dict[str, str]:
    """``{uri: sha256}``, keys as given; hashes lowercased and checked to be 64 hex digits."""
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("a manifest is a JSON object")
    out: dict[str, str] = {}
    entries = raw.get("segments", raw) if isinstance(raw.get("segments"), dict) else raw
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
    """A rendition's hashes, merged across refreshes (the live manifest grows)."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.hashes: dict[str, str] = {}
        self.loaded = False

    @property
    def mode(self) -> str:
        return "sha256" if self.url is not None else "size-only"

    def update(self, text: str) -> None:
        self.hashes.update(parse_manifest(text))
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
