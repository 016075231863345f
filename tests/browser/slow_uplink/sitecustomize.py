"""A slow uplink for one test agent process (tests/browser/test_abr.py), at the UDP socket: with
``P2P_TEST_UPLINK_BYTES_PER_S`` set, every datagram aioice sends (all of WebRTC's DTLS/SCTP
traffic) leaves at that pace behind a queue of at most ``MAX_QUEUE_S`` seconds, and what would
wait longer is dropped (a router's tail drop; SCTP's congestion control then slows down), like a
viewer's slow home uplink. The agent itself does not know: an upload cap it declared below the
stream's bitrate would make it leech-only (docs/scheduling.md, "Upload fan-out"), so the slow
neighbour a viewer can meet is one whose network is slow. Loaded as ``sitecustomize`` by putting
this directory first on PYTHONPATH; without the variable it changes nothing.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

MAX_QUEUE_S = 1.0

_RATE = os.environ.get("P2P_TEST_UPLINK_BYTES_PER_S")

if _RATE:
    import aioice.ice

    _rate_bytes_per_s = float(_RATE)
    if not _rate_bytes_per_s > 0:
        raise ValueError(f"P2P_TEST_UPLINK_BYTES_PER_S must be > 0, got {_RATE!r}")
    _free_at = [0.0]  # when the shaped link is next idle (loop time)

    async def _paced_send_data(self: Any, data: bytes, addr: Any) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, _free_at[0])
        if start - now > MAX_QUEUE_S:
            return  # tail drop
        _free_at[0] = start + len(data) / _rate_bytes_per_s
        transport = self.transport

        def send() -> None:
            if transport is not None and not transport.is_closing():
                transport.sendto(data, addr)

        if start <= now:
            send()
        else:
            loop.call_at(start, send)

    aioice.ice.StunProtocol.send_data = _paced_send_data  # type: ignore[method-assign]
