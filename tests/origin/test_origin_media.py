"""Generated media decodes with PyAV: H.264 + AAC, a keyframe at every segment start."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
from origin_support import TEST_MEDIA

from peer_agent.origin import (
    MediaConfig,
    MediaSet,
    OriginConfig,
    Rendition,
    generate_stream,
    load_or_generate,
    read_media,
)
from peer_agent.origin.errors import ConfigError
from peer_agent.origin.media import avc_codec_string, iter_boxes, split_fmp4
from peer_agent.origin.synth import FrameSynth


@dataclass(frozen=True)
class Pkt:
    kind: str
    pts_s: float
    is_keyframe: bool


def demux(data: bytes) -> list[Pkt]:
    """Packets as plain values (PyAV packets must not outlive their container)."""
    with av.open(io.BytesIO(data), mode="r") as container:
        kinds = sorted(s.codec_context.name for s in container.streams)
        assert kinds == ["aac", "h264"]
        return [
            Pkt(p.stream.type, float(p.pts * p.time_base), bool(p.is_keyframe))
            for p in container.demux()
            if p.size and p.pts is not None
        ]


def check_segment(packets: list[Pkt], expected_start_s: float, fps: int) -> None:
    video = [p for p in packets if p.kind == "video"]
    audio = [p for p in packets if p.kind == "audio"]
    assert video and audio
    first = min(video, key=lambda p: p.pts_s)
    assert first.is_keyframe
    assert first.pts_s == pytest.approx(expected_start_s, abs=1e-3)
    assert len(video) == round(TEST_MEDIA.segment_duration_s * fps)
    assert sum(p.is_keyframe for p in video) == 1


def test_every_ts_segment_decodes(media: MediaSet) -> None:
    for rendition in media.renditions:
        assert rendition.segment_count == TEST_MEDIA.segment_count == 3
        for index, segment in enumerate(rendition.ts_segments):
            assert segment[0] == 0x47 and len(segment) % 188 == 0  # MPEG-TS sync, whole packets
            check_segment(demux(segment), index * TEST_MEDIA.segment_duration_s, TEST_MEDIA.fps)


def test_every_fmp4_segment_decodes_after_its_init(media: MediaSet) -> None:
    for rendition in media.renditions:
        init_boxes = [t for t, _, _ in iter_boxes(rendition.fmp4_init)]
        assert init_boxes == [b"ftyp", b"moov"]
        for index, fragment in enumerate(rendition.fmp4_segments):
            assert [t for t, _, _ in iter_boxes(fragment)] == [b"moof", b"mdat"]
            packets = demux(rendition.fmp4_init + fragment)
            check_segment(packets, index * TEST_MEDIA.segment_duration_s, TEST_MEDIA.fps)


def test_decoded_frames_have_the_rendition_size(media: MediaSet) -> None:
    rendition = media.rendition("hi")
    with av.open(io.BytesIO(rendition.ts_segments[1]), mode="r") as container:
        frames = list(container.decode(video=0))
        assert len(frames) == 25
        assert (frames[0].width, frames[0].height) == (320, 180)
        assert frames[0].key_frame
    with av.open(
        io.BytesIO(rendition.fmp4_init + rendition.fmp4_segments[0]), mode="r"
    ) as container:
        audio = list(container.decode(audio=0))
        assert audio and audio[0].sample_rate == TEST_MEDIA.audio_sample_rate_hz


def test_timestamps_are_continuous_across_segments(media: MediaSet) -> None:
    rendition = media.rendition("lo")
    ends = []
    for segment in rendition.ts_segments:
        video = [p.pts_s for p in demux(segment) if p.kind == "video"]
        ends.append((min(video), max(video)))
    for (_, prev_last), (next_first, _) in zip(ends, ends[1:], strict=False):
        assert next_first - prev_last == pytest.approx(1 / TEST_MEDIA.fps, abs=1e-3)


def test_codecs_strings(media: MediaSet) -> None:
    for rendition in media.renditions:
        assert rendition.codecs.startswith("avc1.42")  # baseline profile
        assert rendition.codecs.endswith(",mp4a.40.2")
    assert avc_codec_string(bytes([1, 0x4D, 0x40, 0x1F, 0xFF])) == "avc1.4D401F"
    assert avc_codec_string(b"\x00\x00\x00\x01\x67\x64\x00\x28rest") == "avc1.640028"
    with pytest.raises(ValueError):
        avc_codec_string(b"\x00\x00\x01\x68\x00")


def test_split_fmp4_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        split_fmp4(b"\x00\x00\x00\x10ftypisom")
    with pytest.raises(ValueError):
        split_fmp4(b"\x00\x00\x00\x08ftyp")  # no fragments


def test_frame_synth_moves_and_counts() -> None:
    synth = FrameSynth(160, 90)
    y0, u0, v0 = synth.planes(0)
    y1, _, _ = synth.planes(1)
    assert len(y0) == 160 * 90 and len(u0) == len(v0) == 80 * 45
    assert y0 != y1
    assert synth.planes(7) == synth.planes(7)


def test_media_config_validation() -> None:
    with pytest.raises(ConfigError):
        MediaConfig(segment_duration_s=1.01)  # not a whole number of frames at 25 fps
    with pytest.raises(ConfigError):
        MediaConfig(renditions=())
    with pytest.raises(ConfigError):
        MediaConfig(renditions=(Rendition("a", 160, 90, 100_000), Rendition("a", 320, 180, 1e5)))  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Rendition("bad name", 160, 90, 100_000)
    with pytest.raises(ConfigError):
        Rendition("odd", 161, 90, 100_000)
    assert Rendition.parse("360p:640x360@800000") == Rendition("360p", 640, 360, 800_000)
    with pytest.raises(ConfigError):
        Rendition.parse("360p:640x360")
    assert TEST_MEDIA.cache_key() == MediaConfig(**TEST_MEDIA.__dict__).cache_key()
    assert TEST_MEDIA.cache_key() != MediaConfig().cache_key()


def test_write_and_read_back(media: MediaSet, tmp_path: Path) -> None:
    from peer_agent.origin.store import write_media

    out = write_media(media, tmp_path / "stream")
    assert (out / "vod-ts" / "master.m3u8").exists()
    assert (out / "vod-fmp4" / "lo" / "init.mp4").exists()
    assert (out / "vod-byterange" / "hi" / "stream.ts").stat().st_size == sum(
        map(len, media.rendition("hi").ts_segments)
    )
    again = read_media(out)
    assert again.config == media.config
    assert again.renditions[1].ts_segments == media.renditions[1].ts_segments
    assert again.renditions[0].fmp4_init == media.renditions[0].fmp4_init
    assert again.renditions[0].codecs == media.renditions[0].codecs


def test_generate_stream_and_cache(tmp_path: Path) -> None:
    small = MediaConfig(
        segment_duration_s=0.4,
        content_duration_s=0.8,
        renditions=(Rendition("a", 64, 64, 50_000),),
    )
    made = generate_stream(small, tmp_path / "out")
    assert made.segment_count == 2
    assert sorted(p.name for p in (tmp_path / "out" / "vod-ts" / "a").iterdir()) == [
        "index.m3u8",
        "manifest.json",
        "seg-0.ts",
        "seg-1.ts",
    ]
    config = OriginConfig(cache_dir=str(tmp_path / "cache"), media=small)
    first = load_or_generate(config)
    cached = tmp_path / "cache" / "p2p-origin-cache" / small.cache_key() / "media.json"
    assert cached.exists()
    second = load_or_generate(config)
    assert second.renditions[0].ts_segments == first.renditions[0].ts_segments
    cached.write_text("{broken")
    third = load_or_generate(config)  # a broken cache is regenerated, not fatal
    assert third.segment_count == 2
