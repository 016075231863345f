"""Playlist model: master → renditions, media playlists (TS, fMP4 + init, byte ranges),
live refreshes keeping segment identity and start times across a discontinuity."""

from __future__ import annotations

import pytest

from peer_agent.agent.playlist import (
    ByteRange,
    PlaylistError,
    Timeline,
    choose_rendition,
    parse_master,
    parse_media,
)
from peer_agent.core.ids import SegmentId

MASTER = """#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=1280x720
hi/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360
low/index.m3u8
"""


def live(first: int, count: int, *, disc_at: int | None = None, end: bool = False) -> str:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
    for seq in range(first, first + count):
        if seq == disc_at:
            lines.append("#EXT-X-DISCONTINUITY")
        lines += ["#EXTINF:2.000,", f"seg{seq}.ts"]
    if end:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def test_master_lists_renditions_and_default_is_lowest_bandwidth() -> None:
    renditions = parse_master(MASTER, "http://o/s/master.m3u8")
    assert [r.uri for r in renditions] == ["http://o/s/hi/index.m3u8", "http://o/s/low/index.m3u8"]
    assert renditions[0].resolution == (1280, 720)
    assert choose_rendition(renditions, None).index == 1
    assert choose_rendition(renditions, 0).index == 0
    with pytest.raises(PlaylistError):
        choose_rendition(renditions, 5)


def test_media_playlist_is_its_own_single_rendition() -> None:
    renditions = parse_master(live(0, 3), "http://o/live.m3u8")
    assert len(renditions) == 1 and renditions[0].uri == "http://o/live.m3u8"


def test_ts_vod_segments_and_start_times() -> None:
    media = parse_media(live(0, 3, end=True), "http://o/s/index.m3u8")
    assert media.ended and media.target_duration_s == 2
    timeline = Timeline(4)
    timeline.update(media, now=10.0)
    infos = timeline.ordered()
    assert [i.segment_id for i in infos] == [SegmentId(4, n) for n in range(3)]
    assert [i.start_s for i in infos] == [0.0, 2.0, 4.0]
    assert infos[0].uri == "http://o/s/seg0.ts" and infos[0].key == "seg0.ts"
    assert timeline.end_s == 6.0


def test_fmp4_with_init_section_and_byte_ranges() -> None:
    text = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-MAP:URI="init.mp4",BYTERANGE="720@0"
#EXTINF:2.0,
#EXT-X-BYTERANGE:5000@720
media.mp4
#EXTINF:2.0,
#EXT-X-BYTERANGE:4000
media.mp4
#EXT-X-ENDLIST
"""
    media = parse_media(text, "http://o/v/index.m3u8")
    first, second = media.segments
    assert first.byte_range == ByteRange(720, 5000)
    assert second.byte_range == ByteRange(5720, 4000)  # continues the previous range
    assert first.byte_range.header == "bytes=720-5719"
    assert first.init is not None and first.init.uri == "http://o/v/init.mp4"
    assert first.init.byte_range == ByteRange(0, 720)


def test_live_refresh_keeps_identity_across_a_discontinuity() -> None:
    timeline = Timeline(0)
    added = timeline.update(parse_media(live(10, 4), "http://o/l.m3u8"), now=1.0)
    assert len(added) == 4 and timeline.edge_s == 8.0
    assert timeline.live_start_s(3) == 2.0  # 3 segments behind the edge
    added = timeline.update(parse_media(live(12, 4, disc_at=14), "http://o/l.m3u8"), now=3.0)
    assert [i.segment_id.sequence for i in added] == [14, 15]
    assert added[0].discontinuity and added[0].start_s == 8.0
    assert timeline.known_since[11] == 1.0 and timeline.known_since[14] == 3.0
    # Falling behind the window: a gap is filled with the target duration.
    added = timeline.update(parse_media(live(20, 2), "http://o/l.m3u8"), now=9.0)
    assert added[0].start_s == 12.0 + 4 * 2.0
    timeline.forget_before(15.0)
    assert 10 not in timeline.segments and 20 in timeline.segments


def test_bad_playlists_are_rejected() -> None:
    with pytest.raises(PlaylistError):
        parse_media("not a playlist", "http://o/x")
    with pytest.raises(PlaylistError):
        parse_media(MASTER, "http://o/x")
    with pytest.raises(PlaylistError):
        parse_master("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n", "http://o/x")


def test_refresh_interval_is_half_target_at_most_one_second() -> None:
    assert parse_media(live(0, 2), "http://o/x").refresh_interval_s == 1.0
    short = live(0, 2).replace("TARGETDURATION:2", "TARGETDURATION:1")
    assert parse_media(short, "http://o/x").refresh_interval_s == 0.5
