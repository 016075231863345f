"""Render HLS playlists (RFC 8216) from plain values. Pure: no clock, no I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

VERSION_TS = 3
VERSION_BYTERANGE = 4
VERSION_FMP4 = 7


@dataclass(frozen=True)
class PlaylistSegment:
    """One ``#EXTINF`` entry of a media playlist."""

    uri: str
    duration_s: float
    byterange: tuple[int, int] | None = None  # (length, offset)
    discontinuity: bool = False
    program_date_time_s: float | None = None  # UNIX seconds


@dataclass(frozen=True)
class Variant:
    """One ``#EXT-X-STREAM-INF`` entry of a master playlist."""

    uri: str
    bandwidth_bps: int
    average_bandwidth_bps: int
    width: int
    height: int
    frame_rate: float
    codecs: str


def target_duration_s(durations_s: Sequence[float]) -> int:
    """``EXT-X-TARGETDURATION``: the longest segment rounded up (at least 1)."""
    return max(1, math.ceil(max(durations_s) - 1e-9)) if durations_s else 1


def format_program_date_time(unix_s: float) -> str:
    moment = datetime.fromtimestamp(unix_s, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def media_playlist(
    segments: Sequence[PlaylistSegment],
    *,
    version: int,
    target_duration: int,
    media_sequence: int = 0,
    discontinuity_sequence: int = 0,
    map_uri: str | None = None,
    vod: bool = True,
) -> str:
    """A media playlist; ``vod`` adds ``PLAYLIST-TYPE:VOD`` and ``ENDLIST``."""
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{version}",
        f"#EXT-X-TARGETDURATION:{target_duration}",
        f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}",
    ]
    if discontinuity_sequence or not vod:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}")
    if vod:
        lines.append("#EXT-X-PLAYLIST-TYPE:VOD")
    lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    if map_uri is not None:
        lines.append(f'#EXT-X-MAP:URI="{map_uri}"')
    for seg in segments:
        if seg.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if seg.program_date_time_s is not None:
            lines.append(
                f"#EXT-X-PROGRAM-DATE-TIME:{format_program_date_time(seg.program_date_time_s)}"
            )
        lines.append(f"#EXTINF:{seg.duration_s:.3f},")
        if seg.byterange is not None:
            length, offset = seg.byterange
            lines.append(f"#EXT-X-BYTERANGE:{length}@{offset}")
        lines.append(seg.uri)
    if vod:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def master_playlist(variants: Sequence[Variant], *, version: int) -> str:
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{version}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in variants:
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={v.bandwidth_bps},"
            f"AVERAGE-BANDWIDTH={v.average_bandwidth_bps},"
            f"RESOLUTION={v.width}x{v.height},FRAME-RATE={v.frame_rate:.3f},"
            f'CODECS="{v.codecs}"'
        )
        lines.append(v.uri)
    return "\n".join(lines) + "\n"
