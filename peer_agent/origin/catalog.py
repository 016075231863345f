"""What the origin serves: the URL layout, playlists, segments and SHA-256 manifests.

URL layout (all under ``/hls/``)::

    <stream>/master.m3u8                 master playlist, one variant per rendition
    <stream>/<rendition>/index.m3u8      media playlist
    <stream>/<rendition>/manifest.json   {segment uri: sha256 hex}
    <stream>/<rendition>/seg-<n>.ts      MPEG-TS segment (vod-ts, live-ts)
    <stream>/<rendition>/init.mp4        fMP4 init segment (vod-fmp4, live-fmp4)
    <stream>/<rendition>/seg-<n>.m4s     fMP4 media segment
    <stream>/<rendition>/stream.ts       one file per rendition (vod-byterange)

``<n>`` is the media sequence number: the segment index for VOD, the ever-growing MSN for live,
so a segment's URI is its identity. Pure apart from ``now_s`` passed in.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from peer_agent.origin.errors import BadQuery, NotFound
from peer_agent.origin.live import LiveTimeline
from peer_agent.origin.media import MediaSet, RenditionMedia
from peer_agent.origin.playlists import (
    VERSION_BYTERANGE,
    VERSION_FMP4,
    VERSION_TS,
    PlaylistSegment,
    Variant,
    master_playlist,
    media_playlist,
    target_duration_s,
)

HLS_PREFIX = "/hls/"
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
TS_TYPE = "video/mp2t"
MP4_TYPE = "video/mp4"
JSON_TYPE = "application/json"

ResourceKind = Literal["playlist", "manifest", "init", "segment"]

CACHE_VOD_PLAYLIST = "public, max-age=60"
CACHE_LIVE_PLAYLIST = "no-cache"
CACHE_SEGMENT = "public, max-age=3600"
#: An incremental manifest answer that lists its ``from_msn`` segment (docs/exchange.md, 12).
CACHE_MANIFEST_DELTA = "public, max-age=60"
_FROM_MSN_RE = re.compile(r"[0-9]{1,15}")


def parse_from_msn(query: str) -> int | None:
    """The ``from_msn`` of a manifest request's query string (None when absent); raises
    :class:`BadQuery` for a repeated or malformed one."""
    values = [p[len("from_msn=") :] for p in query.split("&") if p.startswith("from_msn=")]
    if not values:
        return None
    if len(values) > 1 or _FROM_MSN_RE.fullmatch(values[0]) is None:
        raise BadQuery("from_msn must be given once, as at most 15 decimal digits")
    return int(values[0])


_SEGMENT_RE = re.compile(r"^seg-(0|[1-9][0-9]{0,9})\.(ts|m4s)$")


@dataclass(frozen=True)
class StreamSpec:
    name: str
    live: bool
    container: Literal["ts", "fmp4"]
    byterange: bool = False

    @property
    def segment_ext(self) -> str:
        return "m4s" if self.container == "fmp4" else "ts"

    @property
    def version(self) -> int:
        if self.container == "fmp4":
            return VERSION_FMP4
        return VERSION_BYTERANGE if self.byterange else VERSION_TS


STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec("vod-ts", live=False, container="ts"),
    StreamSpec("vod-fmp4", live=False, container="fmp4"),
    StreamSpec("vod-byterange", live=False, container="ts", byterange=True),
    StreamSpec("live-ts", live=True, container="ts"),
    StreamSpec("live-fmp4", live=True, container="fmp4"),
)


@dataclass(frozen=True)
class Resource:
    """One response body with what the HTTP layer needs to serve and account for it."""

    body: bytes
    content_type: str
    kind: ResourceKind
    stream: str
    rendition: str | None
    cache_control: str


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def byterange_key(uri: str, start: int, length: int) -> str:
    """Manifest key of a byte-range segment: ``uri#first-last`` (inclusive, as in HTTP)."""
    return f"{uri}#{start}-{start + length - 1}"


class _RenditionTables:
    """Per-rendition bytes and hashes, computed once."""

    def __init__(self, media: RenditionMedia) -> None:
        self.media = media
        self.ts_hashes = tuple(sha256_hex(s) for s in media.ts_segments)
        self.fmp4_hashes = tuple(sha256_hex(s) for s in media.fmp4_segments)
        self.init_hash = sha256_hex(media.fmp4_init)
        self.byterange_file = b"".join(media.ts_segments)
        offsets: list[tuple[int, int]] = []
        pos = 0
        for seg in media.ts_segments:
            offsets.append((len(seg), pos))
            pos += len(seg)
        self.byteranges = tuple(offsets)

    def segments(self, container: str) -> tuple[bytes, ...]:
        return self.media.fmp4_segments if container == "fmp4" else self.media.ts_segments

    def hashes(self, container: str) -> tuple[str, ...]:
        return self.fmp4_hashes if container == "fmp4" else self.ts_hashes

    def variant_bandwidth(self, spec: StreamSpec) -> tuple[int, int]:
        """(peak, average) bits per second of this rendition's segments in ``spec``."""
        segs = self.segments(spec.container)
        durations = self.media.durations_s
        extra = len(self.media.fmp4_init) if spec.container == "fmp4" else 0
        peak = max((len(s) + extra) * 8 / d for s, d in zip(segs, durations, strict=True))
        average = sum(map(len, segs)) * 8 / sum(durations)
        return round(peak), round(average)


class Catalog:
    """Resolves ``/hls/...`` paths to resources; live resources depend on ``now_s``."""

    def __init__(
        self,
        media: MediaSet,
        *,
        live_start_s: float,
        live_window_segments: int = 6,
        live_history_segments: int = 6,
        streams: tuple[StreamSpec, ...] = STREAMS,
    ) -> None:
        self.media = media
        self.streams = {s.name: s for s in streams}
        self.tables = {r.rendition.name: _RenditionTables(r) for r in media.renditions}
        self.timeline = LiveTimeline(
            start_s=live_start_s,
            segment_s=media.config.segment_duration_s,
            window=live_window_segments,
            content_segments=media.segment_count,
            history=live_history_segments,
        )
        self._vod_durations = media.renditions[0].durations_s

    # -- resolution ---------------------------------------------------------------------------

    def resolve(self, path: str, now_s: float, query: str = "") -> Resource:
        """The resource at ``path`` (starting with ``/hls/``); raises :class:`NotFound`, or
        :class:`BadQuery` for a manifest's bad ``from_msn``."""
        if not path.startswith(HLS_PREFIX):
            raise NotFound(path)
        parts = path[len(HLS_PREFIX) :].split("/")
        spec = self.streams.get(parts[0])
        if spec is None:
            raise NotFound(f"unknown stream {parts[0]!r}")
        if len(parts) == 2 and parts[1] == "master.m3u8":
            return Resource(
                self.master(spec).encode(),
                PLAYLIST_TYPE,
                "playlist",
                spec.name,
                None,
                CACHE_LIVE_PLAYLIST if spec.live else CACHE_VOD_PLAYLIST,
            )
        if len(parts) != 3:
            raise NotFound(path)
        rendition, name = parts[1], parts[2]
        tables = self.tables.get(rendition)
        if tables is None:
            raise NotFound(f"unknown rendition {rendition!r}")
        playlist_cache = CACHE_LIVE_PLAYLIST if spec.live else CACHE_VOD_PLAYLIST

        def make(body: bytes, ctype: str, kind: ResourceKind, cache: str) -> Resource:
            return Resource(body, ctype, kind, spec.name, rendition, cache)

        if name == "index.m3u8":
            text = self.media_playlist(spec, rendition, now_s)
            return make(text.encode(), PLAYLIST_TYPE, "playlist", playlist_cache)
        if name == "manifest.json":
            from_msn = parse_from_msn(query)
            entries = self.manifest(spec, rendition, now_s, from_msn)
            cache = playlist_cache
            if from_msn is not None and self._lists_msn(spec, entries, from_msn):
                cache = CACHE_MANIFEST_DELTA
            body = json.dumps(entries, separators=(",", ":")).encode()
            return make(body, JSON_TYPE, "manifest", cache)
        if spec.container == "fmp4" and name == "init.mp4":
            return make(tables.media.fmp4_init, MP4_TYPE, "init", CACHE_SEGMENT)
        if spec.byterange:
            if name == "stream.ts":
                return make(tables.byterange_file, TS_TYPE, "segment", CACHE_SEGMENT)
            raise NotFound(path)
        match = _SEGMENT_RE.match(name)
        if match is None or match.group(2) != spec.segment_ext:
            raise NotFound(path)
        msn = int(match.group(1))
        index = self._content_index(spec, msn, now_s)
        ctype = MP4_TYPE if spec.container == "fmp4" else TS_TYPE
        return make(tables.segments(spec.container)[index], ctype, "segment", CACHE_SEGMENT)

    def _content_index(self, spec: StreamSpec, msn: int, now_s: float) -> int:
        if not spec.live:
            if msn >= self.media.segment_count:
                raise NotFound(f"no segment {msn}")
            return msn
        if msn not in self.timeline.served_range(now_s):
            raise NotFound(f"segment {msn} is outside the live window")
        return self.timeline.content_index(msn)

    # -- playlists ----------------------------------------------------------------------------

    def master(self, spec: StreamSpec) -> str:
        variants = []
        for tables in self.tables.values():
            r = tables.media.rendition
            peak, average = tables.variant_bandwidth(spec)
            variants.append(
                Variant(
                    uri=f"{r.name}/index.m3u8",
                    bandwidth_bps=peak,
                    average_bandwidth_bps=average,
                    width=r.width,
                    height=r.height,
                    frame_rate=float(self.media.config.fps),
                    codecs=tables.media.codecs,
                )
            )
        return master_playlist(variants, version=spec.version)

    def media_playlist(self, spec: StreamSpec, rendition: str, now_s: float) -> str:
        tables = self.tables[rendition]
        durations = tables.media.durations_s
        map_uri = "init.mp4" if spec.container == "fmp4" else None
        if not spec.live:
            segments = [
                PlaylistSegment(
                    uri="stream.ts" if spec.byterange else f"seg-{i}.{spec.segment_ext}",
                    duration_s=d,
                    byterange=tables.byteranges[i] if spec.byterange else None,
                )
                for i, d in enumerate(durations)
            ]
            return media_playlist(
                segments,
                version=spec.version,
                target_duration=target_duration_s(durations),
                map_uri=map_uri,
                vod=True,
            )
        tl = self.timeline
        window = tl.window_at(now_s)
        segments = [
            PlaylistSegment(
                uri=f"seg-{msn}.{spec.segment_ext}",
                duration_s=durations[tl.content_index(msn)],
                discontinuity=tl.starts_loop(msn) and msn != window.first_msn,
                program_date_time_s=tl.program_date_time_s(msn),
            )
            for msn in window.msns
        ]
        return media_playlist(
            segments,
            version=spec.version,
            target_duration=target_duration_s(durations),
            media_sequence=window.first_msn,
            discontinuity_sequence=window.discontinuity_sequence,
            map_uri=map_uri,
            vod=False,
        )

    def manifest(
        self, spec: StreamSpec, rendition: str, now_s: float, from_msn: int | None = None
    ) -> dict[str, str]:
        """``{segment uri: sha256 hex}``; byte ranges keyed ``stream.ts#first-last``. With
        ``from_msn``, only segments from that MSN on, and the init section when any is listed
        (docs/exchange.md, section 12)."""
        tables = self.tables[rendition]
        out: dict[str, str] = {}
        first = 0 if from_msn is None else from_msn
        if spec.byterange:
            pairs = zip(tables.byteranges, tables.ts_hashes, strict=True)
            for msn, ((length, offset), digest) in enumerate(pairs):
                if msn >= first:
                    out[byterange_key("stream.ts", offset, length)] = digest
            return out
        hashes = tables.hashes(spec.container)
        if spec.live:
            msns: range = self.timeline.served_range(now_s)
        else:
            msns = range(len(hashes))
        msns = range(max(first, msns.start), max(first, msns.stop))
        if spec.container == "fmp4" and (from_msn is None or msns):
            out["init.mp4"] = tables.init_hash
        for msn in msns:
            out[f"seg-{msn}.{spec.segment_ext}"] = hashes[self.timeline.content_index(msn)]
        return out

    def _lists_msn(self, spec: StreamSpec, entries: dict[str, str], msn: int) -> bool:
        if spec.byterange:
            return msn < len(self.media.renditions[0].durations_s) and bool(entries)
        return f"seg-{msn}.{spec.segment_ext}" in entries

    # -- description --------------------------------------------------------------------------

    def describe(self, base_url: str) -> dict[str, Any]:
        """The ``GET /streams`` document."""
        base = base_url.rstrip("/") + HLS_PREFIX.rstrip("/")
        config = self.media.config
        renditions = [
            {
                "name": t.media.rendition.name,
                "index": i,
                "width": t.media.rendition.width,
                "height": t.media.rendition.height,
                "video_bitrate_bps": t.media.rendition.video_bitrate_bps,
                "codecs": t.media.codecs,
            }
            for i, t in enumerate(self.tables.values())
        ]
        streams = []
        for spec in self.streams.values():
            streams.append(
                {
                    "name": spec.name,
                    "type": "live" if spec.live else "vod",
                    "container": spec.container,
                    "byterange": spec.byterange,
                    "master_url": f"{base}/{spec.name}/master.m3u8",
                    "renditions": [
                        {
                            "name": r["name"],
                            "index": r["index"],
                            "playlist_url": f"{base}/{spec.name}/{r['name']}/index.m3u8",
                            "manifest_url": f"{base}/{spec.name}/{r['name']}/manifest.json",
                        }
                        for r in renditions
                    ],
                }
            )
        return {
            "segment_duration_s": config.segment_duration_s,
            "content_segments": self.media.segment_count,
            "content_duration_s": sum(self._vod_durations),
            "live_window_segments": self.timeline.window,
            "live_history_segments": self.timeline.history,
            "renditions": renditions,
            "streams": streams,
        }
