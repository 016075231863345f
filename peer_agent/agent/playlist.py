"""HLS playlists (parsed with the ``m3u8`` package) turned into the agent's segment model.

Parsing is pure: :func:`parse_master` and :func:`parse_media` take playlist text and its URL.
:class:`Timeline` merges successive refreshes of one media playlist: a segment keeps its
identity (``SegmentId(rendition, media sequence)``) and its media start time across refreshes,
so the scheduler sees one stable list however often the live window slides.
"""

from __future__ import annotations

from dataclasses import dataclass

import m3u8

from ..core.ids import SegmentId
from ..core.media_ranges import ByteRangeError, parse_byte_range

#: Refresh a live playlist at least this often (seconds), or every half target duration.
MAX_REFRESH_INTERVAL_S = 1.0


class PlaylistError(ValueError):
    """A playlist that cannot be used (malformed, empty, or not the kind expected)."""


@dataclass(frozen=True)
class ByteRange:
    """``length`` bytes of a resource from ``offset`` (EXT-X-BYTERANGE)."""

    offset: int
    length: int

    @property
    def header(self) -> str:
        return f"bytes={self.offset}-{self.offset + self.length - 1}"


@dataclass(frozen=True)
class InitMap:
    """EXT-X-MAP: the initialisation section fMP4 segments need."""

    uri: str  # absolute URL
    key: str  # the URI as written in the playlist (the integrity manifest's key)
    byte_range: ByteRange | None = None


@dataclass(frozen=True)
class ParsedSegment:
    """A segment of one playlist load, before it is placed on the timeline."""

    sequence: int
    uri: str  # absolute URL
    key: str  # the URI as written in the playlist
    byte_range: ByteRange | None
    duration_s: float
    discontinuity: bool
    init: InitMap | None


@dataclass(frozen=True)
class SegmentInfo:
    """A segment on the timeline: what the scheduler, the fetchers and the player use."""

    segment_id: SegmentId
    uri: str
    key: str
    byte_range: ByteRange | None
    duration_s: float
    start_s: float
    discontinuity: bool
    init: InitMap | None

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class Rendition:
    """One variant of a master playlist (or the media playlist itself, when there is none)."""

    index: int
    uri: str
    bandwidth_bits_per_s: int | None = None
    resolution: tuple[int, int] | None = None


@dataclass(frozen=True)
class MediaPlaylist:
    media_sequence: int
    target_duration_s: float
    segments: tuple[ParsedSegment, ...]
    #: EXT-X-ENDLIST seen: nothing will be added (VOD, or a live stream that ended).
    ended: bool

    @property
    def refresh_interval_s(self) -> float:
        """How long to wait before reloading a live playlist."""
        return min(MAX_REFRESH_INTERVAL_S, max(0.1, self.target_duration_s / 2))


def is_master(text: str) -> bool:
    return "#EXT-X-STREAM-INF" in text


def parse_master(text: str, url: str) -> list[Rendition]:
    """The variants of a master playlist, in playlist order (their index is the rendition id).

    A media playlist is one rendition: itself, index 0."""
    if not text.lstrip().startswith("#EXTM3U"):
        raise PlaylistError("not an M3U8 playlist (no #EXTM3U)")
    if not is_master(text):
        return [Rendition(0, url)]
    playlist = m3u8.loads(text, uri=url)
    renditions = []
    for index, variant in enumerate(playlist.playlists):
        info = variant.stream_info
        resolution = tuple(info.resolution) if info.resolution else None
        renditions.append(
            Rendition(
                index,
                variant.absolute_uri,
                info.bandwidth,
                resolution,
            )
        )
    if not renditions:
        raise PlaylistError("master playlist lists no variant")
    return renditions


def choose_rendition(renditions: list[Rendition], wanted: int | None) -> Rendition:
    """``wanted`` by index; by default the lowest bandwidth (the one every viewer can play)."""
    if wanted is not None:
        if not 0 <= wanted < len(renditions):
            raise PlaylistError(f"rendition {wanted} not in 0..{len(renditions) - 1}")
        return renditions[wanted]
    return min(renditions, key=lambda r: (r.bandwidth_bits_per_s or 0, r.index))


def _byte_range(
    spec: str | None, previous_end: int | None, *, map_tag: bool = False
) -> ByteRange | None:
    """The range of ``n[@o]`` (docs/exchange.md, section 11: without ``@o`` it follows the
    previous range of the same resource, which must exist; a map's offset is required)."""
    if not spec:
        return None
    try:
        offset, length = parse_byte_range(spec, previous_end, map_tag=map_tag)
    except ByteRangeError as exc:
        raise PlaylistError(str(exc)) from exc
    return ByteRange(offset, length)


def parse_media(text: str, url: str) -> MediaPlaylist:
    if not text.lstrip().startswith("#EXTM3U"):
        raise PlaylistError("not an M3U8 playlist (no #EXTM3U)")
    if is_master(text):
        raise PlaylistError("expected a media playlist, got a master playlist")
    playlist = m3u8.loads(text, uri=url)
    first = playlist.media_sequence or 0
    segments: list[ParsedSegment] = []
    next_offset: dict[str, int] = {}
    for i, seg in enumerate(playlist.segments):
        uri = seg.absolute_uri
        byte_range = _byte_range(seg.byterange, next_offset.get(uri))
        if byte_range is not None:
            next_offset[uri] = byte_range.offset + byte_range.length
        init = None
        if seg.init_section is not None and seg.init_section.uri:
            section = seg.init_section
            init = InitMap(
                section.absolute_uri,
                section.uri,
                _byte_range(section.byterange, None, map_tag=True),
            )
        if seg.duration is None or seg.duration <= 0:
            raise PlaylistError(f"segment {seg.uri!r} has no positive duration")
        segments.append(
            ParsedSegment(
                first + i,
                uri,
                seg.uri,
                byte_range,
                float(seg.duration),
                bool(seg.discontinuity),
                init,
            )
        )
    target = float(playlist.target_duration or max((s.duration_s for s in segments), default=1))
    return MediaPlaylist(first, target, tuple(segments), bool(playlist.is_endlist))


class Timeline:
    """The segments of one rendition seen so far, merged across playlist refreshes.

    The first segment ever seen starts at media time 0; every later one starts where its
    predecessor ends. When a refresh skips sequences we never saw (we fell behind the live
    window), the gap is filled with the target duration per missing segment.
    """

    def __init__(self, rendition: int) -> None:
        self.rendition = rendition
        self.segments: dict[int, SegmentInfo] = {}
        self.known_since: dict[int, float] = {}
        self.ended = False
        self.target_duration_s = 0.0
        self.last_sequence: int | None = None

    def update(self, playlist: MediaPlaylist, now: float) -> list[SegmentInfo]:
        """Merge one load; returns the segments that are new."""
        self.target_duration_s = playlist.target_duration_s
        self.ended = self.ended or playlist.ended
        added: list[SegmentInfo] = []
        for parsed in playlist.segments:
            if parsed.sequence in self.segments:
                continue
            start = self._start_of(parsed.sequence, playlist.target_duration_s)
            info = SegmentInfo(
                SegmentId(self.rendition, parsed.sequence),
                parsed.uri,
                parsed.key,
                parsed.byte_range,
                parsed.duration_s,
                start,
                parsed.discontinuity,
                parsed.init,
            )
            self.segments[parsed.sequence] = info
            self.known_since[parsed.sequence] = now
            if self.last_sequence is None or parsed.sequence > self.last_sequence:
                self.last_sequence = parsed.sequence
            added.append(info)
        return added

    def _start_of(self, sequence: int, target_s: float) -> float:
        previous = self.segments.get(sequence - 1)
        if previous is not None:
            return previous.end_s
        if not self.segments:
            return 0.0
        below = [s for s in self.segments if s < sequence]
        if below:
            nearest = self.segments[max(below)]
            return nearest.end_s + (sequence - nearest.segment_id.sequence - 1) * target_s
        above = self.segments[min(self.segments)]
        return max(0.0, above.start_s - (above.segment_id.sequence - sequence) * target_s)

    def get(self, sequence: int) -> SegmentInfo | None:
        return self.segments.get(sequence)

    def ordered(self) -> list[SegmentInfo]:
        return [self.segments[s] for s in sorted(self.segments)]

    @property
    def edge_s(self) -> float:
        """End of the newest segment listed (the live edge as this viewer knows it)."""
        if self.last_sequence is None:
            return 0.0
        return self.segments[self.last_sequence].end_s

    @property
    def end_s(self) -> float | None:
        """Where the stream ends, once EXT-X-ENDLIST was seen."""
        return self.edge_s if self.ended else None

    def live_start_s(self, latency_segments: int) -> float:
        """Start position ``latency_segments`` segments behind the edge (0 for VOD)."""
        ordered = self.ordered()
        if not ordered:
            raise PlaylistError("the playlist lists no segment")
        index = max(0, len(ordered) - max(1, latency_segments))
        return ordered[index].start_s

    def forget_before(self, start_s: float) -> None:
        """Drop segments that end before ``start_s`` (played, out of the live window)."""
        for sequence in [s for s, i in self.segments.items() if i.end_s < start_s]:
            if sequence != self.last_sequence:
                del self.segments[sequence]
                self.known_since.pop(sequence, None)
