"""The pure parts: URL checks and the entries (keys, URLs, ranges) of a media playlist."""

from __future__ import annotations

import pytest

from signaling.hashsvc import HashServiceConfig
from signaling.hashsvc.errors import BadPlaylistUrl, ConfigError, NotAllowed, NotMediaPlaylist
from signaling.hashsvc.playlist import Entry, check_url, parse_media_playlist

PREFIXES = HashServiceConfig(allow_prefixes=("http://cdn.example",)).allow_prefixes


def test_bare_host_prefix_gains_a_slash() -> None:
    assert PREFIXES == ("http://cdn.example/",)
    assert check_url("http://cdn.example/a/b.m3u8", PREFIXES)
    with pytest.raises(NotAllowed):
        check_url("http://cdn.example.evil.org/a.m3u8", PREFIXES)
    with pytest.raises(BadPlaylistUrl):
        check_url("http://x@cdn.example/a.m3u8", PREFIXES)
    with pytest.raises(ConfigError):
        HashServiceConfig(allow_prefixes=())


def test_byte_ranges_init_and_relative_uris() -> None:
    text = "\n".join(
        [
            "#EXTM3U",
            "#EXT-X-TARGETDURATION:2",
            '#EXT-X-MAP:URI="init.mp4",BYTERANGE="100@0"',
            "#EXTINF:2,",
            "#EXT-X-BYTERANGE:50@100",
            "media.mp4",
            "#EXTINF:2,",
            "#EXT-X-BYTERANGE:70",
            "media.mp4",
            "#EXTINF:2,",
            "../other/seg.m4s",
        ]
    )
    playlist = parse_media_playlist(text, "http://cdn.example/s/lo/index.m3u8")
    assert playlist.live and playlist.target_duration_s == 2.0
    base = "http://cdn.example/s/"
    assert playlist.entries == (
        Entry("init.mp4#0-99", base + "lo/init.mp4", 0, 99),
        # Segments carry their MSN (no EXT-X-MEDIA-SEQUENCE: from 0) and their init section.
        Entry("media.mp4#100-149", base + "lo/media.mp4", 100, 149, 0, "init.mp4#0-99"),
        Entry("media.mp4#150-219", base + "lo/media.mp4", 150, 219, 1, "init.mp4#0-99"),
        Entry("../other/seg.m4s", base + "other/seg.m4s", msn=2, init_key="init.mp4#0-99"),
    )
    assert playlist.entries[1].range_header == "bytes=100-149"


def test_master_and_non_playlists_are_refused() -> None:
    master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlo/index.m3u8\n"
    with pytest.raises(NotMediaPlaylist):
        parse_media_playlist(master, "http://cdn.example/m.m3u8")
    with pytest.raises(NotMediaPlaylist):
        parse_media_playlist("<html>", "http://cdn.example/m.m3u8")
