"""One-off measurement (not collected by pytest): a 4 MiB segment over one PeerLink pair vs a raw
aiortc data channel sending the same bytes in 64 KiB messages, in one process, same run.

    .venv/bin/python -m tests.net.bench_link [--rounds 3] [--mib 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from aiortc import RTCConfiguration, RTCPeerConnection

from peer_agent.core.events import Event, RequestCompleted, SegmentRequested
from peer_agent.core.ids import SegmentId
from peer_agent.net.rtc import PeerLink, ice_host_addresses, raise_udp_receive_buffer
from tests.net.conftest import Recorder, connect_pair, link_config

CHUNK = 64 * 1024


async def over_links(payload: bytes) -> float:
    a_ev, b_ev = Recorder(), Recorder()

    def serve(link: PeerLink, event: Event) -> None:
        if isinstance(event, SegmentRequested):
            link.respond(event.request_id, len(payload))
            link.send_data(event.request_id, 0, payload)

    b_ev.hook = serve
    a, b = await connect_pair(a_ev, b_ev, config=link_config())
    t0 = time.perf_counter()
    a.request(SegmentId(0, 1))
    done = await a_ev.wait_for(lambda: a_ev.of(RequestCompleted, a), timeout_s=120)
    elapsed = time.perf_counter() - t0
    assert done[0].data == payload
    await a.close()
    await b.closed.wait()
    return elapsed


async def over_raw_channel(payload: bytes) -> float:
    raise_udp_receive_buffer(4 * 1024 * 1024)
    pc1 = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc2 = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    received = bytearray()
    done = asyncio.Event()
    opened = asyncio.Event()

    def on_datachannel(channel) -> None:  # type: ignore[no-untyped-def]
        @channel.on("message")
        def on_message(message: bytes) -> None:
            received.extend(message)
            if len(received) >= len(payload):
                done.set()

    pc2.on("datachannel", on_datachannel)
    ch = pc1.createDataChannel("raw", ordered=True)
    ch.on("open", opened.set)
    ch.bufferedAmountLowThreshold = 256 * 1024
    low = asyncio.Event()
    ch.on("bufferedamountlow", low.set)
    with ice_host_addresses(("127.0.0.1",)):
        await pc1.setLocalDescription(await pc1.createOffer())
        await pc2.setRemoteDescription(pc1.localDescription)
        await pc2.setLocalDescription(await pc2.createAnswer())
    await pc1.setRemoteDescription(pc2.localDescription)
    await opened.wait()
    t0 = time.perf_counter()
    for i in range(0, len(payload), CHUNK):
        while ch.bufferedAmount > 1024 * 1024:  # same high-water mark as PeerLink
            low.clear()
            await low.wait()
        ch.send(payload[i : i + CHUNK])
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - t0
    assert bytes(received) == payload
    await pc1.close()
    await pc2.close()
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mib", type=int, default=4)
    args = parser.parse_args()
    payload = os.urandom(args.mib * 1024 * 1024)
    mb = len(payload) / 1e6
    for r in range(args.rounds):
        t_link = await over_links(payload)
        t_raw = await over_raw_channel(payload)
        print(
            f"round {r}: PeerLink {mb / t_link:6.2f} MB/s ({t_link:.2f} s)  "
            f"raw 64 KiB {mb / t_raw:6.2f} MB/s ({t_raw:.2f} s)  ratio {t_raw / t_link:.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
