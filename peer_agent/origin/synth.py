"""Synthetic raw media: scrolling colour bars with a frame counter, and a sine tone.

Pure byte manipulation (no numpy): a frame is built from a pre-rendered bar row shifted by the
frame index, with the counter drawn from a 3x5 bitmap font. Output is planar YUV 4:2:0 rows and
little-endian float32 PCM, ready for :mod:`av` frames.
"""

from __future__ import annotations

import array
import math
import random
import sys

# BT.601 limited-range (Y, U, V) of the classic bars: white, yellow, cyan, green, magenta, red,
# blue, black.
_BARS_YUV = (
    (235, 128, 128),
    (210, 16, 146),
    (170, 166, 16),
    (145, 54, 34),
    (106, 202, 222),
    (81, 90, 240),
    (41, 240, 110),
    (16, 128, 128),
)

_FONT_3X5 = {
    "0": ("111", "101", "101", "101", "111"),
    "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"),
    "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"),
    "7": ("111", "001", "010", "010", "010"),
    "8": ("111", "101", "111", "101", "111"),
    "9": ("111", "101", "111", "001", "111"),
}

COUNTER_DIGITS = 6
_TEXT_Y = 235
_BOX_Y = 16
_NEUTRAL_C = 128


_NOISE_STEP = 7919  # a prime: successive frames take unrelated windows of the noise pool
# Maps a random byte into limited-range luma 16..235.
_TO_LIMITED = bytes(16 + (v * 219) // 255 for v in range(256))


class FrameSynth:
    """Makes the Y, U and V planes of frame ``index`` at a fixed size.

    The bottom ``noise_fraction`` of the picture is fresh pseudo-random luma every frame (drawn
    from a seeded pool): scrolling bars alone predict perfectly and would encode far below the
    target bitrate, so renditions would not differ in size as real ones do.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        scroll_px_per_frame: int = 2,
        noise_fraction: float = 0.25,
        seed: int = 1,
    ) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"frame size must be even: {width}x{height}")
        if not 0.0 <= noise_fraction <= 1.0:
            raise ValueError(f"noise_fraction must be in [0, 1], got {noise_fraction}")
        self.width = width
        self.height = height
        self._scroll = scroll_px_per_frame - scroll_px_per_frame % 2
        self._noise_rows = int(height * noise_fraction)
        noise_bytes = self._noise_rows * width
        pool = random.Random(seed).randbytes(noise_bytes + _NOISE_STEP * 64 + 1)
        self._noise_pool = pool.translate(_TO_LIMITED)
        self._noise_bytes = noise_bytes
        y_row = bytearray(width)
        u_row = bytearray(width // 2)
        v_row = bytearray(width // 2)
        for x in range(width):
            y, u, v = _BARS_YUV[x * len(_BARS_YUV) // width]
            y_row[x] = y
            if x % 2 == 0:
                u_row[x // 2] = u
                v_row[x // 2] = v
        self._y_row2 = bytes(y_row) * 2
        self._u_row2 = bytes(u_row) * 2
        self._v_row2 = bytes(v_row) * 2
        self._scale = max(1, height // 36)
        self._digit_rows = _render_digit_rows(self._scale)
        self._box_x = self._scale * 2
        self._box_y = self._scale * 2
        self._box_w = min(width - self._box_x, (COUNTER_DIGITS * 4 + 1) * self._scale)
        self._box_h = min(height - self._box_y, 7 * self._scale)

    def planes(self, index: int) -> tuple[bytes, bytes, bytes]:
        """Planes of frame ``index`` as tightly packed rows (stride = plane width)."""
        w, h = self.width, self.height
        off = (index * self._scroll) % w
        y_plane = bytearray(self._y_row2[off : off + w] * h)
        coff = off // 2
        cw, ch = w // 2, h // 2
        u_plane = bytearray(self._u_row2[coff : coff + cw] * ch)
        v_plane = bytearray(self._v_row2[coff : coff + cw] * ch)
        if self._noise_bytes:
            start = (index * _NOISE_STEP) % (len(self._noise_pool) - self._noise_bytes)
            y_plane[w * h - self._noise_bytes :] = self._noise_pool[
                start : start + self._noise_bytes
            ]
        self._draw_counter(y_plane, u_plane, v_plane, index)
        return bytes(y_plane), bytes(u_plane), bytes(v_plane)

    def _draw_counter(
        self, y_plane: bytearray, u_plane: bytearray, v_plane: bytearray, index: int
    ) -> None:
        w, s = self.width, self._scale
        bx, by, bw, bh = self._box_x, self._box_y, self._box_w, self._box_h
        text = str(index % 10**COUNTER_DIGITS).rjust(COUNTER_DIGITS, "0")
        rows: list[bytearray] = [bytearray([_BOX_Y]) * bw for _ in range(5)]
        for pos, ch in enumerate(text):
            x0 = s + pos * 4 * s
            for r in range(5):
                glyph_row = self._digit_rows[ch][r]
                end = min(bw, x0 + len(glyph_row))
                if x0 < end:
                    rows[r][x0:end] = glyph_row[: end - x0]
        blank = bytes([_BOX_Y]) * bw
        for dy in range(bh):
            glyph_r = (dy - s) // s
            row = bytes(rows[glyph_r]) if 0 <= glyph_r < 5 and dy >= s else blank
            start = (by + dy) * w + bx
            y_plane[start : start + bw] = row
        cw = w // 2
        cbw = bw // 2
        neutral = bytes([_NEUTRAL_C]) * cbw
        for dy in range(by // 2, (by + bh) // 2):
            start = dy * cw + bx // 2
            u_plane[start : start + cbw] = neutral
            v_plane[start : start + cbw] = neutral


def _render_digit_rows(scale: int) -> dict[str, tuple[bytes, ...]]:
    out: dict[str, tuple[bytes, ...]] = {}
    for ch, pattern in _FONT_3X5.items():
        out[ch] = tuple(
            b"".join(bytes([_TEXT_Y if bit == "1" else _BOX_Y]) * scale for bit in row)
            for row in pattern
        )
    return out


def tone_second(sample_rate_hz: int, tone_hz: float, amplitude: float = 0.2) -> bytes:
    """One second of a sine tone as native float32 PCM, to be sliced cyclically.

    The tone is rounded to a whole number of cycles per second so the loop is seamless.
    """
    cycles = max(1, round(tone_hz))
    samples = array.array(
        "f",
        (
            amplitude * math.sin(2 * math.pi * cycles * n / sample_rate_hz)
            for n in range(sample_rate_hz)
        ),
    )
    if sys.byteorder != "little":  # pragma: no cover - PyAV's fltp is native-endian anyway
        samples.byteswap()
    return samples.tobytes()


def pack_plane(rows: bytes, width: int, height: int, line_size: int) -> bytes:
    """Pad tightly packed rows to a plane's ``line_size`` (PyAV may align rows)."""
    if line_size == width:
        return rows
    pad = bytes(line_size - width)
    return b"".join(rows[r * width : (r + 1) * width] + pad for r in range(height))
