"""Generate a real H.264/AAC stream with PyAV and cut it into HLS segments in memory.

Per rendition, one encode pass (libx264 ``ultrafast``, closed GOP of exactly one segment, no
scene-cut keyframes; AAC-LC mono) muxes straight into a fragmented MP4 (``frag_keyframe``), so
each ``moof``+``mdat`` pair is one fMP4 segment and ``ftyp``+``moov`` is the init segment. The
same packets are then demuxed and remuxed, one MPEG-TS file per segment, with the timestamps kept
continuous. Everything lives in memory; nothing touches an ffmpeg binary.
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from peer_agent.origin.config import MediaConfig, Rendition
from peer_agent.origin.errors import MediaGenerationError
from peer_agent.origin.synth import FrameSynth, pack_plane, tone_second

logger = logging.getLogger(__name__)

AUDIO_CODEC = "mp4a.40.2"  # AAC-LC
_AAC_FRAME_SAMPLES = 1024
_FMP4_FLAGS = "frag_keyframe+empty_moov+default_base_moof"


@dataclass(frozen=True)
class RenditionMedia:
    """The encoded content of one rendition, cut into segments (TS and fMP4 cut alike)."""

    rendition: Rendition
    video_codec: str
    durations_s: tuple[float, ...]
    ts_segments: tuple[bytes, ...]
    fmp4_init: bytes
    fmp4_segments: tuple[bytes, ...]
    encode_s: float

    @property
    def codecs(self) -> str:
        """The RFC 6381 ``CODECS`` value for the master playlist."""
        return f"{self.video_codec},{AUDIO_CODEC}"

    @property
    def segment_count(self) -> int:
        return len(self.durations_s)


@dataclass(frozen=True)
class MediaSet:
    """Everything generated for one :class:`MediaConfig`."""

    config: MediaConfig
    renditions: tuple[RenditionMedia, ...]

    def rendition(self, name: str) -> RenditionMedia:
        for media in self.renditions:
            if media.rendition.name == name:
                return media
        raise KeyError(name)

    @property
    def segment_count(self) -> int:
        return self.renditions[0].segment_count


def generate_media(config: MediaConfig) -> MediaSet:
    """Encode every rendition of ``config`` (CPU-bound; run it in a thread from async code)."""
    return MediaSet(config, tuple(encode_rendition(config, r) for r in config.renditions))


def encode_rendition(config: MediaConfig, rendition: Rendition) -> RenditionMedia:
    started = time.perf_counter()
    try:
        fmp4 = _encode_fmp4(config, rendition)
        init, fragments = split_fmp4(fmp4)
        ts_segments, durations_s, video_codec = _remux_ts(config, fmp4)
    except (av.FFmpegError, ValueError, IndexError) as exc:
        raise MediaGenerationError(f"generating rendition {rendition.name}: {exc}") from exc
    if len(fragments) != len(ts_segments):
        raise MediaGenerationError(
            f"rendition {rendition.name}: {len(fragments)} fMP4 fragments "
            f"but {len(ts_segments)} TS segments"
        )
    encode_s = time.perf_counter() - started
    logger.info(
        "generated rendition %s (%dx%d): %d segments, %.0f kB TS, in %.2f s",
        rendition.name,
        rendition.width,
        rendition.height,
        len(ts_segments),
        sum(map(len, ts_segments)) / 1000,
        encode_s,
    )
    return RenditionMedia(
        rendition=rendition,
        video_codec=video_codec,
        durations_s=durations_s,
        ts_segments=ts_segments,
        fmp4_init=init,
        fmp4_segments=fragments,
        encode_s=encode_s,
    )


def _encode_fmp4(config: MediaConfig, rendition: Rendition) -> bytes:
    fps = config.fps
    gop = config.frames_per_segment
    total_frames = config.segment_count * gop
    sample_rate = config.audio_sample_rate_hz
    buf = io.BytesIO()
    out: Any = av.open(buf, mode="w", format="mp4", options={"movflags": _FMP4_FLAGS})
    try:
        kbps = rendition.video_bitrate_bps // 1000
        video: Any = out.add_stream(
            "libx264",
            rate=fps,
            options={
                "preset": "ultrafast",
                "profile": "baseline",
                "x264-params": (
                    f"keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0:"
                    f"vbv-maxrate={kbps}:vbv-bufsize={kbps * 2}"
                ),
            },
        )
        video.width = rendition.width
        video.height = rendition.height
        video.pix_fmt = "yuv420p"
        video.bit_rate = rendition.video_bitrate_bps
        video.codec_context.gop_size = gop
        video.codec_context.time_base = Fraction(1, fps)
        audio: Any = out.add_stream("aac", rate=sample_rate, layout="mono")
        audio.bit_rate = config.audio_bitrate_bps

        synth = FrameSynth(rendition.width, rendition.height)
        tone = tone_second(sample_rate, config.tone_hz)
        audio_frames = _audio_frames(tone, sample_rate)
        audio_samples = 0
        for index in range(total_frames):
            frame = av.VideoFrame(rendition.width, rendition.height, "yuv420p")
            for plane, rows, (w, h) in zip(
                frame.planes,
                synth.planes(index),
                (
                    (rendition.width, rendition.height),
                    (rendition.width // 2, rendition.height // 2),
                    (rendition.width // 2, rendition.height // 2),
                ),
                strict=True,
            ):
                plane.update(pack_plane(rows, w, h, plane.line_size))
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            for packet in video.encode(frame):
                out.mux(packet)
            video_end_samples = (index + 1) * sample_rate // fps
            while audio_samples < video_end_samples:
                aframe = next(audio_frames)
                # Offset by the encoder delay so the first packet lands at 0, not at -1024:
                # negative timestamps would make the muxer shift every track (and edit lists).
                aframe.pts = audio_samples + _AAC_FRAME_SAMPLES
                audio_samples += _AAC_FRAME_SAMPLES
                for packet in audio.encode(aframe):
                    out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        for packet in audio.encode(None):
            out.mux(packet)
    finally:
        out.close()
    return buf.getvalue()


def _audio_frames(tone: bytes, sample_rate: int) -> Iterator[av.AudioFrame]:
    bytes_per_frame = _AAC_FRAME_SAMPLES * 4
    doubled = tone * 2
    offset = 0
    while True:
        frame = av.AudioFrame(format="fltp", layout="mono", samples=_AAC_FRAME_SAMPLES)
        frame.sample_rate = sample_rate
        frame.time_base = Fraction(1, sample_rate)
        frame.planes[0].update(doubled[offset : offset + bytes_per_frame])
        offset = (offset + bytes_per_frame) % len(tone)
        yield frame


def iter_boxes(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """Top-level ISO-BMFF boxes as ``(type, start, end)``; raises ValueError on bad sizes."""
    pos = 0
    while pos < len(data):
        if len(data) - pos < 8:
            raise ValueError(f"truncated box header at {pos}")
        size = int.from_bytes(data[pos : pos + 4], "big")
        box_type = data[pos + 4 : pos + 8]
        if size == 1:
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        elif size == 0:
            size = len(data) - pos
        if size < 8 or pos + size > len(data):
            raise ValueError(f"bad size {size} of box {box_type!r} at {pos}")
        yield box_type, pos, pos + size
        pos += size


def split_fmp4(data: bytes) -> tuple[bytes, tuple[bytes, ...]]:
    """Split a fragmented MP4 into its init segment and one segment per ``moof``+``mdat``."""
    init_end: int | None = None
    fragments: list[bytes] = []
    current_start: int | None = None
    for box_type, start, end in iter_boxes(data):
        if box_type in (b"styp", b"sidx", b"moof") and current_start is None:
            current_start = start
            if init_end is None:
                init_end = start
        elif box_type == b"mdat" and current_start is not None:
            fragments.append(data[current_start:end])
            current_start = None
        elif box_type == b"mfra":
            break
    if init_end is None or not fragments:
        raise ValueError("no fragments in the fMP4 output")
    return data[:init_end], tuple(fragments)


def _remux_ts(config: MediaConfig, fmp4: bytes) -> tuple[tuple[bytes, ...], tuple[float, ...], str]:
    n = config.segment_count
    seg_s = config.segment_duration_s
    groups: list[list[Any]] = [[] for _ in range(n)]
    video_frames = [0] * n
    inp: Any = av.open(io.BytesIO(fmp4), mode="r", format="mp4")
    try:
        vstream = inp.streams.video[0]
        astream = inp.streams.audio[0]
        video_codec = avc_codec_string(bytes(vstream.codec_context.extradata or b""))
        for packet in inp.demux(vstream, astream):
            if packet.dts is None or packet.size == 0:
                continue
            ts = packet.pts if packet.pts is not None else packet.dts
            t = float(ts * packet.time_base)
            is_video = packet.stream.index == vstream.index
            index = min(n - 1, max(0, math.floor(t / seg_s + 1e-6)))
            if is_video:
                if video_frames[index] == 0 and not packet.is_keyframe:
                    raise ValueError(f"segment {index} does not start with a keyframe")
                video_frames[index] += 1
            groups[index].append(packet)
        segments = tuple(_mux_ts(group, vstream, astream) for group in groups)
    finally:
        inp.close()
    durations = tuple(frames / config.fps for frames in video_frames)
    if any(d <= 0 for d in durations):
        raise ValueError(f"empty segment in {durations}")
    return segments, durations, video_codec


def _mux_ts(packets: list[Any], vstream: Any, astream: Any) -> bytes:
    buf = io.BytesIO()
    out: Any = av.open(buf, mode="w", format="mpegts")
    try:
        ovideo = out.add_stream_from_template(vstream)
        oaudio = out.add_stream_from_template(astream)
        for packet in packets:
            packet.stream = ovideo if packet.stream.index == vstream.index else oaudio
            out.mux(packet)
    finally:
        out.close()
    return buf.getvalue()


def avc_codec_string(extradata: bytes) -> str:
    """``avc1.PPCCLL`` from an avcC record or from Annex B SPS bytes."""
    if len(extradata) >= 4 and extradata[0] == 1:
        profile, compat, level = extradata[1], extradata[2], extradata[3]
        return f"avc1.{profile:02X}{compat:02X}{level:02X}"
    for marker in (b"\x00\x00\x00\x01", b"\x00\x00\x01"):
        pos = 0
        while (pos := extradata.find(marker, pos)) >= 0:
            nal = pos + len(marker)
            if nal + 3 < len(extradata) and extradata[nal] & 0x1F == 7:
                p, c, lv = extradata[nal + 1], extradata[nal + 2], extradata[nal + 3]
                return f"avc1.{p:02X}{c:02X}{lv:02X}"
            pos = nal
    raise ValueError("no H.264 SPS in the codec extradata")
