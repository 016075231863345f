"""Upload fan-out from a viewer's uplink (docs/scheduling.md, "Upload fan-out").

A viewer that serves more uploads at once than its uplink can carry at the stream's bitrate
feeds each of them slower than real time; as a cut-through relay it then holds back every
viewer below it in the tree, and they all end on urgent CDN fetches. So a viewer serves at most
``floor(uplink / stream rate)`` uploads at once (never more than its configured cap), and one
whose uplink is below the stream's rate serves none: it runs leech-only, so its neighbours never
route a tree through it and the signaling server never picks it to fetch. Pure: no clock, no
I/O; ``web_demo/capacity.js`` is its twin, ``docs/vectors/capacity/upload_slots.json`` the
contract of both.
"""

from __future__ import annotations

import math


def upload_slots(
    uplink_bytes_per_s: float | None, stream_bits_per_s: float | None, max_uploads: int
) -> int:
    """Uploads to serve at once: ``min(max_uploads, floor(uplink_bytes_per_s * 8 /
    stream_bits_per_s))``; ``max_uploads`` when either rate is unknown (``None``). Raises
    :class:`ValueError` for a negative or non-finite rate, a zero stream rate or a negative
    ``max_uploads``."""
    if max_uploads < 0:
        raise ValueError(f"max_uploads must be >= 0, got {max_uploads}")
    if uplink_bytes_per_s is None or stream_bits_per_s is None:
        return max_uploads
    if not math.isfinite(uplink_bytes_per_s) or uplink_bytes_per_s < 0:
        raise ValueError(f"uplink_bytes_per_s must be finite and >= 0, got {uplink_bytes_per_s}")
    if not math.isfinite(stream_bits_per_s) or stream_bits_per_s <= 0:
        raise ValueError(f"stream_bits_per_s must be finite and > 0, got {stream_bits_per_s}")
    # The product first: 1_250_000 * 8 / 2_000_000 is exactly 5, not a hair below it.
    return min(max_uploads, math.floor(uplink_bytes_per_s * 8 / stream_bits_per_s))
