"""The fetcher assignment as our tracker client reads it: the message vectors
(docs/vectors/signaling/fetchers_message.json) and a real server telling real clients."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from peer_agent.net.fetchers import BadFetchersMessage, parse_fetchers
from peer_agent.net.tracker import TrackerClient
from tests.net.conftest import ServerFactory, ident
from tests.net.test_tracker import FAST, Probe

DOC = json.loads(
    (Path(__file__).parents[2] / "docs/vectors/signaling/fetchers_message.json").read_text()
)


@pytest.mark.parametrize("case", DOC["cases"], ids=[c["name"] for c in DOC["cases"]])
def test_message_vector(case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(BadFetchersMessage, match=case["error"]):
            parse_fetchers(case["message"], DOC["info_hash"])
        return
    got = parse_fetchers(case["message"], DOC["info_hash"])
    want = case["expect"]
    assert list(got.fetchers) == want["fetchers"] and got.valid_s == want["valid_s"]
    assert got.slot == want["slot"] and got.region == want["region"]


async def _until(pred: Any, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not pred():
            await asyncio.sleep(0.02)


async def test_clients_follow_the_servers_assignment(start_server: ServerFactory) -> None:
    server = await start_server(sweep_interval_s=0.2, fetcher_refresh_s=0.1)
    pa, pb, pc = Probe(), Probe(), Probe()
    a = pa.client(server, "fa", config=dataclasses.replace(FAST, uplink_bytes_per_s=10**6))
    b = pb.client(server, "fb")
    c = pc.client(server, "fc", config=dataclasses.replace(FAST, fetcher_assignment=False))
    clients: list[TrackerClient] = [a, b, c]
    for t in clients:
        await t.start()
    try:
        both = {ident("fa"), ident("fb")}
        await _until(lambda: all(set(t.fetcher_assignment()[0]) == both for t in (a, b)))
        loop = asyncio.get_running_loop()
        fetchers, until = a.fetcher_assignment()
        assert until > loop.time() + 100  # valid_s 300 by default
        # the uplink claim went out with the cap, and only a claimant ranks first
        assert fetchers[0] == ident("fa")
        # a client that did not ask is neither told nor picked
        assert c.fetcher_assignment() == ((), 0.0) and c.stats.fetchers_received == 0

        # a malformed message is counted and changes nothing
        a._on_fetchers({"action": "fetchers", "info_hash": a.info_hash, "fetchers": []})
        assert a.stats.fetchers_refused == 1 and a.fetcher_assignment() == (fetchers, until)

        # the server goes away: its word goes with it (the local election decides again)
        await server.stop()
        # each client drops it when its own socket closes (b's may come after a's)
        await _until(lambda: all(t.fetcher_assignment() == ((), 0.0) for t in (a, b)))
    finally:
        for t in clients:
            await t.stop()
