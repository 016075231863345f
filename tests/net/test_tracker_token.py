"""Join-token refresh: the client reads a token's expiry (vectors), sends a new token on the open
socket before it expires, and a real server keeps the socket past the first token's expiry;
without a refresh the server closes it with 4002, and with a provider the client reconnects."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from peer_agent.net.tracker import token_expiry_unix_s
from signaling.messages import id_hex
from signaling.tokens import mint_token
from tests.net.conftest import RunningServer, ServerFactory, ident
from tests.net.test_tracker import FAST, Probe

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "docs/vectors/signaling/token_refresh.json").read_text()
)
SECRET = "tracker-token-secret-0123456789"
SWARM = ident("swarm-t")


@pytest.mark.parametrize("case", VECTORS["expiry_cases"], ids=lambda c: c["name"])
def test_token_expiry_vectors(case: dict[str, Any]) -> None:
    assert token_expiry_unix_s(case["token"]) == case["exp"]


def token(ttl_s: float) -> str:
    return mint_token(SECRET, [id_hex(SWARM)], int(time.time() + ttl_s))


def rejections(server: RunningServer, reason: str) -> float:
    registry = server.server.runtime.metrics.registry
    value = registry.get_sample_value("p2p_signaling_rejections_total", {"reason": reason})
    return value or 0.0


async def poll(pred: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Wait for a condition on the wall clock or the client's counters (no event to wait on)."""
    async with asyncio.timeout(timeout_s):
        while not pred():
            await asyncio.sleep(0.05)


async def test_refresh_on_the_open_socket_outlives_the_first_token(
    start_server: ServerFactory,
) -> None:
    server = await start_server(token_secret=SECRET, sweep_interval_s=0.2)

    async def provider() -> str:
        return token(3600)

    probe = Probe()
    first = token(3)
    config = dataclasses.replace(FAST, token_refresh_fraction=0.5)
    client = probe.client(server, "refresher", config=config, token=first, token_provider=provider)
    await client.start()
    try:
        await poll(lambda: client.stats.token_refreshes == 1)
        first_exp = token_expiry_unix_s(first)
        assert first_exp is not None
        await poll(lambda: time.time() > first_exp + 1.0)  # past the first token, + 5 sweeps
        before = client.stats.announce_replies
        client.announce_now()
        await poll(lambda: client.stats.announce_replies > before)
        assert client.stats.connects == 1 and client.stats.disconnects == 0
        assert rejections(server, "token_expired") == 0
    finally:
        await client.stop()


async def test_without_refresh_4002_then_a_provider_reconnects(start_server: ServerFactory) -> None:
    server = await start_server(token_secret=SECRET, sweep_interval_s=0.2)
    probe = Probe()
    plain = probe.client(server, "no-refresh", token=token(2))
    await plain.start()
    try:
        await poll(lambda: plain.stats.gave_up)
        assert plain.stats.last_error is not None and "4002" in plain.stats.last_error
    finally:
        await plain.stop()
    assert rejections(server, "token_expired") == 1

    async def provider() -> str:
        return token(3600)

    # a refresh that arrives too late (fraction ~0): the server closes with 4002, and the client
    # reconnects with a fresh token instead of giving up
    late = dataclasses.replace(FAST, token_refresh_fraction=1e-9)
    probe2 = Probe()
    client = probe2.client(
        server, "reconnects", config=late, token=token(2), token_provider=provider
    )
    await client.start()
    try:
        await poll(lambda: client.stats.connects >= 2 and client.stats.announce_replies >= 2)
        assert not client.stats.gave_up
    finally:
        await client.stop()


async def test_bad_refresh_is_refused_and_the_socket_stays(start_server: ServerFactory) -> None:
    server = await start_server(token_secret=SECRET)

    async def provider() -> str:
        return mint_token("another secret of enough length", [id_hex(SWARM)], 2**40)

    probe = Probe()
    config = dataclasses.replace(FAST, token_refresh_fraction=0.99, token_retry_s=0.2)
    client = probe.client(server, "badref", config=config, token=token(60), token_provider=provider)
    await client.start()
    try:
        await poll(lambda: client.stats.token_refresh_failures >= 2)
        assert ("token_invalid", "bad token signature") in probe.failures
        assert client.stats.disconnects == 0 and client.stats.token_refreshes == 0
    finally:
        await client.stop()
    assert rejections(server, "token_invalid") >= 2
