"""The Agent against a synthetic origin on a real HTTP server, with peers linked in-process
(real PeerSessions, bytes moved by a small hub): P2P offload, integrity, caps, leech-only,
origin faults. The real aiortc swarm is exercised in test_integration.py."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from peer_agent.agent import Agent, AgentConfig
from peer_agent.agent.cdn import CdnConfig
from peer_agent.agent.integrity import IntegrityConfig
from peer_agent.core.config import SchedulerConfig
from tests.agent.fakes import FakeHub, SynthStream, build_app, corrupt_uploads, serve

# One-second segments: margins scaled down so there is room for P2P 3 segments behind live.
SCHED = SchedulerConfig(min_urgent_window_s=0.6, deadline_margin_s=0.3, backup_delay_s=0.5)
FAST_CDN = CdnConfig(read_timeout_s=1.0, backoff_base_s=0.02, backoff_max_s=0.1)


def config(base: str, **kw: Any) -> AgentConfig:
    kw.setdefault("scheduler", SCHED)
    kw.setdefault("cdn", FAST_CDN)
    return AgentConfig(base + "/live/index.m3u8", **kw)


def agent(hub: FakeHub | None, n: int, cfg: AgentConfig, **kw: Any) -> Agent:
    return Agent(
        cfg,
        swarm_factory=hub.factory(**kw) if hub else None,
        peer_id=f"-PH0001-{n:012d}",
        info_hash="s" * 20,
    )


def assert_store_genuine(stream: SynthStream, a: Agent) -> None:
    for segment in a.store:
        data = a.store.get(segment)
        assert data == stream.data(segment.sequence), f"{segment} in the store is not genuine"


async def test_cdn_only_live_plays_without_stalls() -> None:
    stream = SynthStream(segment_s=0.5)
    async with serve(build_app(stream)) as base:
        a = agent(None, 0, config(base, duration_s=3.0))
        summary = await a.run()
    assert summary["stall_count"] == 0 and summary["hash_failures"] == 0
    assert summary["integrity"] == "sha256"
    assert summary["segments_played"] >= 4
    assert summary["segments_verified"] >= summary["segments_played"]
    assert summary["bytes_p2p"] == 0 and summary["bytes_cdn"] > 0
    assert summary["startup_s"] is not None and summary["startup_s"] < 1.0
    assert_store_genuine(stream, a)


async def test_vod_plays_to_the_end_and_stops() -> None:
    stream = SynthStream(live=False, vod_segments=5, segment_s=0.3)
    async with serve(build_app(stream)) as base:
        summary = await agent(None, 0, config(base, duration_s=20.0)).run()
    assert summary["ended"] and summary["segments_played"] == 5
    assert summary["duration_s"] < 5.0 and summary["stall_count"] == 0


async def test_without_manifest_only_sizes_are_checked() -> None:
    stream = SynthStream(segment_s=0.5)
    async with serve(build_app(stream)) as base:
        summary = await agent(None, 0, config(base, duration_s=1.5, discover_manifest=False)).run()
    assert summary["integrity"] == "size-only" and summary["segments_verified"] > 0


async def run_swarm(
    stream: SynthStream, configs: list[tuple[AgentConfig, dict[str, Any]]], stagger_s: float
) -> tuple[list[Agent], list[dict[str, Any]]]:
    hub = FakeHub()
    agents: list[Agent] = []
    tasks = []
    for n, (cfg, kw) in enumerate(configs):
        a = agent(hub, n, cfg, **kw.get("swarm", {}))
        if kw.get("evil"):
            corrupt_uploads(a)
        agents.append(a)
        tasks.append(asyncio.create_task(a.run()))
        await asyncio.sleep(stagger_s)
    return agents, list(await asyncio.gather(*tasks))


async def test_later_viewers_get_most_bytes_from_peers() -> None:
    stream = SynthStream(segment_s=1.0, segment_bytes=40_000)
    async with serve(build_app(stream)) as base:
        cfgs: list[tuple[AgentConfig, dict[str, Any]]] = [
            (config(base, duration_s=7.0 - i, seed=i), {}) for i in range(3)
        ]
        agents, results = await run_swarm(stream, cfgs, stagger_s=1.0)
    for a, r in zip(agents, results, strict=True):
        assert r["stall_count"] == 0 and r["hash_failures"] == 0
        assert_store_genuine(stream, a)
    for r in results[1:]:
        assert r["bytes_p2p"] > 2 * r["bytes_cdn"], r
    assert results[0]["bytes_uploaded"] > 0
    played = sum(r["bytes_cdn"] + r["bytes_p2p"] for r in results)
    assert stream.bytes_served < 0.6 * played


async def test_corrupting_peer_is_detected_penalised_and_banned() -> None:
    stream = SynthStream(segment_s=1.0, segment_bytes=40_000)
    async with serve(build_app(stream)) as base:
        victim_cfg = config(
            base,
            duration_s=6.0,
            seed=2,
            integrity=IntegrityConfig(ban_after_failures=2, penalty_s=0.2),
        )
        cfgs = [
            (config(base, duration_s=8.5, seed=1), {"evil": True}),
            (victim_cfg, {}),
            (config(base, duration_s=5.5, seed=3), {}),  # a later viewer, served by both
        ]
        agents, results = await run_swarm(stream, cfgs, stagger_s=1.5)
    evil, victim, later = agents
    r = results[1]
    assert r["hash_failures"] >= 2
    assert evil.peer_id in r["peers_banned"]
    assert r["stall_count"] == 0
    # Nothing bad reached the victim's store, player or uploads: every verified segment is
    # genuine, and what it stored is what the origin published.
    assert_store_genuine(stream, victim)
    assert r["segments_verified"] >= r["segments_played"] > 0
    assert evil.exchange.bytes_uploaded > 0
    hashes = {hashlib.sha256(victim.store.get(s) or b"").hexdigest() for s in victim.store}
    assert hashes <= set(stream.manifest().values())
    # The victim never passed the bad bytes on: the later viewer blames only the corrupter.
    assert victim.exchange.bytes_uploaded > 0
    assert victim.peer_id not in later.penalties.failures
    assert results[2]["stall_count"] == 0
    assert_store_genuine(stream, later)


async def test_leech_only_never_uploads() -> None:
    stream = SynthStream(segment_s=1.0, segment_bytes=40_000)
    async with serve(build_app(stream)) as base:
        cfgs = [
            (
                config(base, duration_s=5.0, seed=1, leech_only=True),
                {"swarm": {"leech_only": True}},
            ),
            (config(base, duration_s=4.0, seed=2), {}),
        ]
        agents, results = await run_swarm(stream, cfgs, stagger_s=1.0)
    assert results[0]["bytes_uploaded"] == 0
    assert results[1]["bytes_p2p"] == 0  # the only neighbour never uploads
    assert all(r["stall_count"] == 0 for r in results)


async def test_upload_cap_holds() -> None:
    stream = SynthStream(segment_s=1.0, segment_bytes=60_000)
    cap = 30_000.0
    async with serve(build_app(stream)) as base:
        cfgs: list[tuple[AgentConfig, dict[str, Any]]] = [
            (config(base, duration_s=6.0, seed=1, upload_cap_bytes_per_s=cap), {}),
            (config(base, duration_s=5.0, seed=2), {}),
        ]
        agents, results = await run_swarm(stream, cfgs, stagger_s=1.0)
    uploaded = results[0]["bytes_uploaded"]
    assert 0 < uploaded <= cap * 5.0 + agents[0].exchange.bucket.burst_bytes  # type: ignore[union-attr]
    assert all(r["stall_count"] == 0 for r in results)


async def test_origin_5xx_and_stalls_are_survived() -> None:
    stream = SynthStream(segment_s=1.0, segment_bytes=40_000)
    async with serve(build_app(stream)) as base:
        a = agent(None, 0, config(base, duration_s=5.0))
        task = asyncio.create_task(a.run())
        await asyncio.sleep(1.5)
        stream.faults.fail_next = 3
        await asyncio.sleep(1.0)
        stream.faults.stall_next = 1
        stream.faults.truncate_at = 10_000
        stream.faults.stall_s = 3.0
        summary = await task
    assert summary["cdn_retries"] >= 3
    assert summary["stall_count"] == 0 and summary["hash_failures"] == 0
