"""Hostile peers over real aiortc (docs/exchange.md 8a, 8b): a live stream from the real test
origin, the real signaling server, two honest agents and one attacker built with
:mod:`peer_agent.hostile`, each agent on its own loopback address (127.0.0.x, ``host_addresses``)
so that the address-keyed rules are exercised for real. Each test asserts bounded harm."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from peer_agent.agent import Agent, AgentConfig
from peer_agent.hostile import Attack, HostileStats, make_hostile, run_rotating
from peer_agent.origin import MediaSet, run_origin
from tests.agent.conftest import origin_config
from tests.agent.test_integration import FAST_CDN, SCHED, SWARM, signaling

pytestmark = pytest.mark.slow

RUN_S = 10.0
HONEST = ("127.0.0.2", "127.0.0.3")
ATTACKER = "127.0.0.9"


def config(url: str, tracker: str, address: str, seed: int, duration_s: float) -> AgentConfig:
    return AgentConfig(
        url,
        tracker_url=tracker,
        host_addresses=(address,),
        swarm=SWARM,
        max_peers=4,
        scheduler=SCHED,
        cdn=FAST_CDN,
        latency_segments=4,
        seed=seed,
        duration_s=duration_s,
    )


async def swarm_run(
    media: MediaSet, attack: Attack
) -> tuple[list[Agent], list[dict[str, Any]], HostileStats]:
    """Two honest agents and an attacker for RUN_S."""
    async with run_origin(origin_config(), media=media) as origin, signaling() as sig:
        url = origin.url("hls/live-ts/master.m3u8")
        attacker = Agent(config(url, sig.url, ATTACKER, 9, RUN_S + 1.0))
        stats = make_hostile(attacker, attack)
        tasks = [asyncio.create_task(attacker.run())]
        await asyncio.sleep(1.0)
        honest = [Agent(config(url, sig.url, a, 2 + i, RUN_S)) for i, a in enumerate(HONEST)]
        results = []
        for agent in honest:
            results.append(asyncio.create_task(agent.run()))
            await asyncio.sleep(1.0)
        summaries = list(await asyncio.gather(*results))
        await asyncio.gather(*tasks)
    for summary in summaries:
        assert summary["stall_count"] == 0, summary
    return honest, summaries, stats


def attacker_subjects(agent: Agent) -> tuple[float, bool]:
    """(refused until, banned) of the attacker's address on ``agent``."""
    rep = agent.exchange.reputation
    key = f"addr:{ATTACKER}"
    return rep.refused_until([key]), key in rep.banned


async def test_request_flood_is_bounded(media: MediaSet) -> None:
    """The flooder (8 requests in flight per link, again and again) gets each segment whole at
    most once from each honest agent (max_serves_per_segment 1); the rest is refused BUSY.
    (Offload and upload side by side with and without attackers: bench/hostile_bench.py.)"""
    honest, summaries, stats = await swarm_run(media, Attack.FLOOD)
    assert stats is not None and stats.flood_requests > 0 and stats.flood_bytes
    assert sum(a.exchange.server.unfair_refusals for a in honest) > 0
    sizes = {s: n for a in honest for s, n in a.sizes.items()}
    for (peer, segment), drawn in stats.flood_bytes.items():
        assert drawn <= sizes.get(segment, 0), (peer, segment, drawn, sizes.get(segment))
    # Nobody drew more than one copy of the stream's bytes from an honest agent's uploads.
    for agent, summary in zip(honest, summaries, strict=True):
        stream = sum(agent.sizes.get(s, 0) for s in agent.verified)
        assert summary["bytes_uploaded"] <= 2 * max(stream, 1), (summary, stream)


@pytest.mark.parametrize(
    "attack", [Attack.LIAR, Attack.STALLER, Attack.GARBAGE, Attack.UNKNOWN_IDS]
)
async def test_liars_are_penalised_and_refused(media: MediaSet, attack: Attack) -> None:
    honest, summaries, stats = await swarm_run(media, attack)
    key = f"addr:{ATTACKER}"
    # Every kind costs the attacker's address penalty points (or a refusal or ban) on an
    # honest agent; the liars, garbage and unknown ids are refused within the run (a staller
    # is refused at its second stall on one agent, which a 10 s run may not reach).
    penalised = [
        (a.exchange.reputation.points_of(key, a.now()), *attacker_subjects(a)) for a in honest
    ]
    assert any(p > 0 or until > 0 or banned for p, until, banned in penalised), (penalised, stats)
    if attack is not Attack.STALLER:
        assert any(until > 0 or banned for _, until, banned in penalised), (penalised, stats)
        assert stats.banned_by_remote >= 1, stats
        assert sum(a.exchange.reputation.refusals for a in honest) >= 1
    else:
        assert stats.stalled > 0, stats
    assert all(s["segments_played"] > 0 for s in summaries), summaries


async def test_id_rotation_gains_nothing(media: MediaSet) -> None:
    """A corrupter that comes back with a new peer id after each ban, from one address, costs
    each honest viewer at most 2 hash failures over the whole run."""
    async with run_origin(origin_config(), media=media) as origin, signaling() as sig:
        url = origin.url("hls/live-ts/master.m3u8")

        def attacker(round_: int) -> Agent:
            return Agent(config(url, sig.url, ATTACKER, 100 + round_, RUN_S + 2.0))

        rotating = asyncio.create_task(run_rotating(attacker, RUN_S + 2.0))
        await asyncio.sleep(1.0)
        honest = [Agent(config(url, sig.url, a, 2 + i, RUN_S)) for i, a in enumerate(HONEST)]
        tasks = []
        for agent in honest:
            tasks.append(asyncio.create_task(agent.run()))
            await asyncio.sleep(1.0)
        summaries = await asyncio.gather(*tasks)
        rounds = await rotating
    assert len(rounds) >= 2, rounds  # it did rotate
    for agent, summary in zip(honest, summaries, strict=True):
        assert summary["hash_failures"] <= 2, (summary["hash_failures"], agent.penalties.failures)
        assert summary["stall_count"] == 0, summary
    assert any(attacker_subjects(a)[1] for a in honest)  # the address is banned
