"""Protocol vs raw data channel: one segment agent to agent over our wire protocol (PeerLink +
PeerSession) against the same bytes sent on a bare aiortc data channel in 64 KiB messages.

Both run in this one process on loopback, alternating round by round, so the ratio is what to
read (raw time / protocol time; 1.0 means the protocol costs nothing). CPU seconds per MB
count both ends (sender and receiver share the process).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection

from peer_agent.core.events import Event, HelloReceived, RequestCompleted, SegmentRequested
from peer_agent.core.ids import SegmentId
from peer_agent.core.session import SessionConfig
from peer_agent.net.rtc import LinkConfig, PeerLink, ice_host_addresses, raise_udp_receive_buffer

CHUNK_BYTES = 64 * 1024
HIGH_WATER_BYTES = 1024 * 1024  # the same high-water mark PeerLink uses by default
LOOPBACK = ("127.0.0.1",)


class _Waiter:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.changed = asyncio.Event()

    def __call__(self, link: PeerLink, event: Event) -> None:
        self.events.append(event)
        self.changed.set()

    async def first(self, kind: type) -> Any:
        async with asyncio.timeout(120):
            while True:
                for event in self.events:
                    if isinstance(event, kind):
                        return event
                self.changed.clear()
                await self.changed.wait()


async def over_protocol(payload: bytes) -> float:
    config = LinkConfig(host_addresses=LOOPBACK, session=SessionConfig())
    a_events, b_events = _Waiter(), _Waiter()

    def serve(link: PeerLink, event: Event) -> None:
        b_events(link, event)
        if isinstance(event, SegmentRequested):
            link.respond(event.request_id, len(payload))
            link.send_data(event.request_id, 0, payload)

    swarm = b"bench-link-swarm-000"
    a = PeerLink(
        swarm_id=swarm,
        local_peer_id=b"-PH0001-benchaaaaaaa",
        on_event=a_events,
        config=config,
        remote_peer_id="-PH0001-benchbbbbbbb",
    )
    b = PeerLink(
        swarm_id=swarm,
        local_peer_id=b"-PH0001-benchbbbbbbb",
        on_event=serve,
        config=config,
        remote_peer_id="-PH0001-benchaaaaaaa",
    )
    answer = await b.accept_offer(await a.create_offer())
    assert answer is not None
    await a.accept_answer(answer)
    await a_events.first(HelloReceived)
    await b_events.first(HelloReceived)
    start = time.perf_counter()
    a.request(SegmentId(0, 1))
    done = await a_events.first(RequestCompleted)
    elapsed = time.perf_counter() - start
    assert done.data == payload
    await a.close()
    await b.closed.wait()
    return elapsed


async def over_raw_channel(payload: bytes) -> float:
    pc1 = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc2 = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    received = bytearray()
    done, opened, low = asyncio.Event(), asyncio.Event(), asyncio.Event()

    def on_datachannel(channel: Any) -> None:
        @channel.on("message")
        def on_message(message: bytes) -> None:
            received.extend(message)
            if len(received) >= len(payload):
                done.set()

    pc2.on("datachannel", on_datachannel)
    channel = pc1.createDataChannel("raw", ordered=True)
    channel.on("open", opened.set)
    channel.bufferedAmountLowThreshold = 256 * 1024
    channel.on("bufferedamountlow", low.set)
    with ice_host_addresses(LOOPBACK):
        await pc1.setLocalDescription(await pc1.createOffer())
        await pc2.setRemoteDescription(pc1.localDescription)
        await pc2.setLocalDescription(await pc2.createAnswer())
    await pc1.setRemoteDescription(pc2.localDescription)
    await opened.wait()
    start = time.perf_counter()
    for i in range(0, len(payload), CHUNK_BYTES):
        while channel.bufferedAmount > HIGH_WATER_BYTES:
            low.clear()
            await low.wait()
        channel.send(payload[i : i + CHUNK_BYTES])
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - start
    assert bytes(received) == payload
    await pc1.close()
    await pc2.close()
    return elapsed


async def _measure(size_mib: int, rounds: int) -> dict[str, Any]:
    payload = os.urandom(size_mib * 1024 * 1024)
    mb = len(payload) / 1e6
    proto_s: list[float] = []
    raw_s: list[float] = []
    proto_cpu = raw_cpu = 0.0
    for _ in range(rounds):
        cpu = time.process_time()
        proto_s.append(await over_protocol(payload))
        proto_cpu += time.process_time() - cpu
        cpu = time.process_time()
        raw_s.append(await over_raw_channel(payload))
        raw_cpu += time.process_time() - cpu
    p, r = statistics.median(proto_s), statistics.median(raw_s)
    return {
        "segment_mib": size_mib,
        "rounds": rounds,
        "protocol_mb_per_s": round(mb / p, 2),
        "raw_mb_per_s": round(mb / r, 2),
        "ratio_protocol_vs_raw": round(r / p, 3),
        "protocol_cpu_s_per_mb": round(proto_cpu / (mb * rounds), 4),
        "raw_cpu_s_per_mb": round(raw_cpu / (mb * rounds), 4),
    }


def run(out_dir: Path, quick: bool = False) -> str:
    raise_udp_receive_buffer(4 * 1024 * 1024)
    rounds = 2 if quick else 5
    rows = [asyncio.run(_measure(size, rounds)) for size in (1, 4)]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "link.json").write_text(json.dumps({"rows": rows}, indent=1))
    cols = list(rows[0])
    lines = [
        "## Protocol vs raw data channel",
        "",
        "One segment over our protocol (PeerLink + PeerSession, 64 KiB DATA frames, flow control",
        "on bufferedAmount) against the same bytes in 64 KiB messages on a bare aiortc channel,",
        "loopback, one process (both ends), alternating round by round; medians. Ratio = raw",
        "time / protocol time (target >= 0.8). CPU s per MB counts sender and receiver.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(str(row[c]) for c in cols) + " |" for row in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run(Path("bench/results"), quick="--quick" in sys.argv))
