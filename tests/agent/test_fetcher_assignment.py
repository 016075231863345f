"""A hostile viewer that makes itself the server's first-listed fetcher (it claims a huge
uplink) and then never fetches: real agents over real aiortc, the real signaling server and the
real test origin. The honest agents' backups take over (docs/scheduling.md rule 8): nobody
stalls, and the segments reach them without the attacker."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from peer_agent.agent import Agent, AgentConfig
from peer_agent.core.election import rank_candidates
from peer_agent.core.scheduler import FetchFromCdn
from peer_agent.origin import MediaSet, run_origin
from tests.agent.conftest import origin_config
from tests.agent.test_integration import FAST_CDN, SCHED, SWARM, signaling
from tests.loop_lag import LoopLag, assert_no_unexplained_stall

pytestmark = pytest.mark.slow

RUN_S = 10.0
HONEST = ("127.0.0.2", "127.0.0.3")


def config(
    url: str, tracker: str, address: str, seed: int, duration_s: float = RUN_S, **swarm: Any
) -> AgentConfig:
    return AgentConfig(
        url,
        tracker_url=tracker,
        host_addresses=(address,),
        swarm=dataclasses.replace(SWARM, tracker=dataclasses.replace(SWARM.tracker, **swarm)),
        max_peers=4,
        scheduler=SCHED,
        cdn=FAST_CDN,
        latency_segments=4,
        seed=seed,
        duration_s=duration_s,
    )


async def test_a_silent_claimed_fetcher_starves_nobody(media: MediaSet, loop_lag: LoopLag) -> None:
    async with run_origin(origin_config(), media=media) as origin, signaling() as sig:
        url = origin.url("hls/live-ts/master.m3u8")
        attacker = Agent(
            config(url, sig.url, "127.0.0.9", 9, RUN_S + 4.0, uplink_bytes_per_s=10**11)
        )
        dropped: list[FetchFromCdn] = []
        original = attacker.exchange.apply

        def silent(actions: Any, now: float) -> None:
            """Claims the fetcher's role, fetches nothing from the CDN."""
            keep = []
            for action in actions:
                if isinstance(action, FetchFromCdn):
                    dropped.append(action)
                else:
                    keep.append(action)
            original(keep, now)

        attacker.exchange.apply = silent  # type: ignore[method-assign]
        attack = asyncio.create_task(attacker.run())
        await asyncio.sleep(1.0)
        honest = [Agent(config(url, sig.url, a, 2 + i)) for i, a in enumerate(HONEST)]
        cdn_reasons: dict[Any, set[str]] = {}
        for agent in honest:
            watch(agent, cdn_reasons)
        tasks = []
        for agent in honest:
            tasks.append(asyncio.create_task(agent.run()))
            await asyncio.sleep(1.0)
        listed_first: list[bool] = []
        lists: set[tuple[str, ...]] = set()
        while not all(t.done() for t in tasks):
            for agent in honest:
                swarm = agent.swarm
                if swarm is not None:
                    fetchers, _ = swarm.fetcher_assignment()
                    if fetchers:
                        listed_first.append(fetchers[0] == attacker.peer_id)
                        lists.add(tuple(fetchers))
            await asyncio.sleep(0.5)
        summaries = [t.result() for t in tasks]
        attacker_summary = await attack
    # the server listed the claimant first (its claim ranks it before those that claim none)
    assert listed_first and all(listed_first), listed_first
    # it fetched nothing the scheduler elected it for, so nothing it was first to fetch came
    # from it. Its exchange may still refetch a relayed segment from the CDN when the relay's
    # bytes could not be verified (the hash manifest's refresh lagged on a busy machine, or
    # the bytes failed): those refetches are counted, and they are all it fetched.
    assert dropped, attacker_summary
    counts = attacker.cdn_fetch_counts
    refetches = attacker.exchange.unverifiable + attacker.exchange.hash_failures
    assert counts.join_ramp + counts.steady <= refetches, (attacker_summary, refetches)
    # segments the attacker was to fetch first (rank 0 of its list for that segment) reached
    # the honest agents through a backup's (or, late, an urgent) CDN fetch; which segments
    # those are depends on the fresh keyed peer_ids (about a third of them)
    (final,) = {max(lists, key=len)}
    its_turn = [seg for seg in cdn_reasons if rank_candidates(final, seg)[0] == attacker.peer_id]
    for seg in its_turn:
        assert cdn_reasons[seg] <= {"backup", "urgent"}, (seg, cdn_reasons[seg])
    for agent, summary in zip(honest, summaries, strict=True):
        # no player stall that the process's own starvation does not explain (tests/loop_lag.py)
        assert_no_unexplained_stall(agent, loop_lag, summary)
        assert summary["segments_played"] >= 4, summary
        assert summary["bytes_cdn"] + summary["bytes_p2p"] > 0, summary


def watch(agent: Agent, reasons: dict[Any, set[str]]) -> None:
    """Record why ``agent`` fetches each segment from the CDN (changes nothing)."""
    original = agent.exchange.apply

    def apply(actions: Any, now: float) -> None:
        for action in actions:
            if isinstance(action, FetchFromCdn):
                reasons.setdefault(action.segment, set()).add(action.reason)
        original(actions, now)

    agent.exchange.apply = apply  # type: ignore[method-assign]
