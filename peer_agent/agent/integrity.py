"""Segment integrity: SHA-256 against a trusted manifest, and penalties for peers that lie.

The manifest is JSON, one per rendition: ``{segment uri: sha256 hex}``, published by the origin
(or a hash service). Keys are matched against the URI as written in the playlist, then its
absolute URL, its path and its last path component, so manifests keyed either way work.

Without a manifest only sizes can be checked (a byte range's length, or the size the CDN
reported): the mode is ``"size-only"`` and the agent's stats say so.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urljoin, urlsplit

from .playlist import ByteRange, SegmentInfo


class Verdict(enum.Enum):
    OK = "ok"
    MISMATCH = "mismatch"
    #: The manifest has no entry (yet) for this segment.
    UNKNOWN = "unknown"


def manifest_keys(key: str, uri: str) -> list[str]:
    """Keys under which a segment may be listed: as written, absolute, path, file name."""
    path = urlsplit(uri).path
    name = path.rsplit("/", 1)[-1]
    keys = [key, uri, path, path.lstrip("/"), name]
    return list(dict.fromkeys(k for k in keys if k))


def range_suffixes(br: ByteRange | None) -> list[str]:
    """Extra key forms for a byte-range segment (several segments share one URI)."""
    if br is None:
        return []
    return [f"{br.offset}-{br.offset + br.length - 1}", f"{br.length}@{br.offset}"]


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
        entries = parse_manifest(text)
        base = self.url or ""
        for key, digest in entries.items():
            self.hashes[key] = digest
            if base and not key.startswith(("http://", "https://")):
                self.hashes.setdefault(urljoin(base, key), digest)
        self.loaded = True

    def expected(self, info: SegmentInfo) -> str | None:
        return self.expected_for(info.key, info.uri, info.byte_range)

    def expected_for(self, key: str, uri: str, byte_range: ByteRange | None) -> str | None:
        """The hash listed for a resource (or a byte range of it), if any."""
        keys = manifest_keys(key, uri)
        for suffix in range_suffixes(byte_range):
            for key in list(keys):
                keys.insert(0, f"{key}#{suffix}")
                keys.insert(0, f"{key}@{suffix}")
        for key in keys:
            digest = self.hashes.get(key)
            if digest is not None:
                return digest
        return None

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


@dataclass(frozen=True)
class IntegrityConfig:
    #: Hash failures a peer may contribute to before it is banned (its session closed with
    #: BANNED and new sessions from it refused).
    ban_after_failures: int = 2
    #: A peer that contributed to a bad segment is not asked for anything for this long.
    penalty_s: float = 10.0


@dataclass
class Penalties:
    """Per-peer hash-failure counts, bans and penalty windows."""

    config: IntegrityConfig = field(default_factory=IntegrityConfig)
    failures: dict[str, int] = field(default_factory=dict)
    banned: set[str] = field(default_factory=set)
    penalised_until: dict[str, float] = field(default_factory=dict)

    def record(self, peer_id: str, now: float) -> bool:
        """``peer_id`` contributed to a segment that failed its hash; True: ban it now."""
        count = self.failures.get(peer_id, 0) + 1
        self.failures[peer_id] = count
        self.penalised_until[peer_id] = now + self.config.penalty_s
        if count >= self.config.ban_after_failures and peer_id not in self.banned:
            self.banned.add(peer_id)
            return True
        return False

    def is_banned(self, peer_id: str) -> bool:
        return peer_id in self.banned

    def blocked_until(self, peer_id: str) -> float:
        if peer_id in self.banned:
            return float("inf")
        return self.penalised_until.get(peer_id, 0.0)

    def snapshot(self) -> Mapping[str, int]:
        return dict(self.failures)
