"""Shared helpers for the signaling tests: a running server handle and small tracker clients.

A uniquely named module (not conftest) so that any order of test paths collects."""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

from signaling.app import SignalingRuntime
from signaling.server import SignalingServer

#: How long a test waits for a message it expects (a reply, a relayed offer, a close). Generous:
#: waiting costs only when something is wrong, and a server in another process on a busy
#: 2-core machine can take seconds to answer. Tests that expect silence pass their own timeout.
RECV_TIMEOUT_S = 10.0


@dataclass
class RunningServer:
    server: SignalingServer
    task: asyncio.Task[None]
    port: int

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/announce"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def runtime(self) -> SignalingRuntime:
        return self.server.runtime

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.http, timeout=5.0) as client:
            return await client.get(path)

    async def metric(self, name: str, **labels: str) -> float:
        text = (await self.get("/metrics")).text
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)"
        match = re.search("^" + pattern + "$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    async def rejections(self, reason: str) -> float:
        return await self.metric("p2p_signaling_rejections_total", reason=reason)

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 15.0)


ServerFactory = Callable[..., Awaitable[RunningServer]]


def pid(name: str) -> str:
    """A 20-character peer_id / info_hash from a short name."""
    return (name + "-" * 20)[:20]


@dataclass
class Client:
    ws: websockets.ClientConnection
    peer_id: str
    inbox: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, obj: Any) -> None:
        await self.ws.send(obj if isinstance(obj, str | bytes) else json.dumps(obj))

    async def recv(self, timeout_s: float = RECV_TIMEOUT_S) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout_s)
        return json.loads(raw)

    async def recv_where(
        self, pred: Callable[[dict[str, Any]], bool], timeout_s: float = RECV_TIMEOUT_S
    ) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while True:
                msg = await self.recv(timeout_s)
                if pred(msg):
                    return msg
                self.inbox.append(msg)

    async def announce(
        self, info_hash: str, offers: int = 0, *, sdp: str = "v=0 fake", **extra: Any
    ) -> dict[str, Any]:
        """Announce and return the tracker's announce reply (offers are tagged by peer)."""
        msg: dict[str, Any] = {
            "action": "announce",
            "info_hash": info_hash,
            "peer_id": self.peer_id,
            "numwant": max(offers, 1),
            "offers": [
                {
                    "offer_id": f"{self.peer_id[:8]}-{n}-{random.random()}"[:20],
                    "offer": {"type": "offer", "sdp": sdp},
                }
                for n in range(offers)
            ],
        }
        msg.update(extra)
        await self.send(msg)
        return await self.recv_where(lambda m: "interval" in m or "failure reason" in m)

    async def answer(self, offer_msg: dict[str, Any], sdp: str = "v=0 answer") -> None:
        await self.send(
            {
                "action": "announce",
                "info_hash": offer_msg["info_hash"],
                "peer_id": self.peer_id,
                "to_peer_id": offer_msg["peer_id"],
                "offer_id": offer_msg["offer_id"],
                "answer": {"type": "answer", "sdp": sdp},
            }
        )

    async def next_offer(self, timeout_s: float = RECV_TIMEOUT_S) -> dict[str, Any]:
        for i, msg in enumerate(self.inbox):
            if "offer" in msg:
                return self.inbox.pop(i)
        return await self.recv_where(lambda m: "offer" in m, timeout_s)

    async def next_answer(self, timeout_s: float = RECV_TIMEOUT_S) -> dict[str, Any]:
        for i, msg in enumerate(self.inbox):
            if "answer" in msg:
                return self.inbox.pop(i)
        return await self.recv_where(lambda m: "answer" in m, timeout_s)

    async def closed_with(self, timeout_s: float = RECV_TIMEOUT_S) -> int | None:
        """Wait for the server to close the socket; return the close code."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    await self.ws.recv()
        except websockets.ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else None

    async def close(self) -> None:
        await self.ws.close()


async def connect(url: str, name: str, **kwargs: Any) -> Client:
    ws = await websockets.connect(url, max_size=None, open_timeout=5, **kwargs)
    return Client(ws, pid(name))


async def exchange_works(server: RunningServer, swarm: str = "still-works") -> None:
    """Two fresh clients complete an offer/answer round trip: the server still serves."""
    info_hash = pid(swarm)
    a = await connect(server.url, f"ok-a-{random.randrange(10**6)}")
    b = await connect(server.url, f"ok-b-{random.randrange(10**6)}")
    try:
        await a.announce(info_hash)
        reply = await b.announce(info_hash, offers=1, sdp="v=0 still")
        assert reply.get("incomplete", 0) >= 2, reply
        offer = await a.next_offer()
        assert offer["offer"]["sdp"] == "v=0 still"
        await a.answer(offer, sdp="v=0 still-answer")
        answer = await b.next_answer()
        assert answer["answer"]["sdp"] == "v=0 still-answer"
    finally:
        await a.close()
        await b.close()
