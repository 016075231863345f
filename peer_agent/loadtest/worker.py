"""One worker process: several agents in one asyncio loop, reporting over a queue.

Messages put on the queue (tuples, first item the type):

- ``("sample", worker, dict)``: every ``sample_interval_s``, the worker's cumulative counters
  (CDN, P2P, uploaded bytes, stalls, hash failures, corrupt segments played), agents playing,
  their latency behind live, and the process's CPU seconds;
- ``("agent", worker, dict)``: one agent's record when it stops (its spec, the agent's summary,
  the audit of what it played);
- ``("done", worker, dict)``: the worker's CPU and wall seconds; always the last message;
- ``("error", worker, str)``: the worker failed (``done`` still follows).

The audit is independent of the agent's own verification: the worker fetches the rendition's
SHA-256 manifest from the origin itself and checks the bytes of every segment each agent played
(from the agent's store) against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import resource
import statistics
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpx

from ..agent import Agent, AgentConfig
from ..agent.cdn import CdnConfig
from ..agent.integrity import Manifest, Verdict
from ..agent.playlist import choose_rendition, parse_master
from ..core.ids import SegmentId
from ..core.overlay import RefillConfig
from ..hostile import Attack, make_hostile
from ..net.swarm import SwarmConfig
from ..net.tracker import TrackerConfig
from ..sim.scenario import Scenario
from .config import LoadTestConfig, scheduler_for
from .peers import LoadSwarm, drop_all, swarm_factory
from .plan import AgentSpec, Kind, Leave

logger = logging.getLogger(__name__)

MAX_AGENT_PEERS = 8
#: The event-loop lag probe's sleep (seconds).
LAG_PROBE_S = 0.1
#: Neighbour figures of an agent count from this long after its join.
NEIGHBOURS_SETTLED_S = 10.0


@dataclass(frozen=True)
class WorkerJob:
    worker: int
    specs: tuple[AgentSpec, ...]
    playlist_url: str
    #: ``None``: CDN only (the baseline).
    tracker_url: str | None
    #: ``time.time()`` of the run's start: agent ``i`` joins at ``t0_wall + spec.start_s``.
    t0_wall: float
    scenario: Scenario
    config: LoadTestConfig


@dataclass
class _Audit:
    checked: set[SegmentId] = field(default_factory=set)
    corrupt: int = 0
    unchecked: int = 0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_queue_wait_s() -> float | None:
    """Seconds this process's threads spent runnable but waiting for a CPU (Linux
    ``/proc/self/schedstat``, main thread; None elsewhere): the machine's load, not our work."""
    try:
        with open("/proc/self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def agent_config(job: WorkerJob, spec: AgentSpec) -> AgentConfig:
    sc, cfg = job.scenario, job.config
    max_peers = cfg.max_peers or min(MAX_AGENT_PEERS, sc.max_peers)
    swarm = SwarmConfig(
        max_peers=max_peers,
        refill=RefillConfig() if cfg.refill else None,
        make_room=cfg.make_room,
        split_drain_s=sc.split_drain_s,  # the scenario's: the simulator compares the same
        close_timeout_s=0.5,
        stop_timeout_s=2.0,
        tracker=TrackerConfig(
            reconnect_initial_s=0.2,
            reconnect_max_s=2.0,
            min_announce_gap_s=0.5,
            use_env_proxy=False,
        ),
    )
    return AgentConfig(
        job.playlist_url,
        tracker_url=job.tracker_url,
        # The worker stops every agent itself; this only guards against a lost stop.
        duration_s=spec.duration_s + 30.0,
        rendition=cfg.rendition,
        latency_segments=sc.latency_segments,
        max_peers=max_peers,
        max_uploads=sc.max_uploads,
        leech_only=spec.kind is Kind.LEECH,
        upload_cap_bytes_per_s=cfg.slow_upload_bytes_per_s if spec.kind is Kind.SLOW else None,
        # Each agent its own loopback address, so address-keyed bans are exercised for real.
        host_addresses=(loopback_address(spec.slot),),
        seed=spec.seed,
        connect_grace_s=sc.connect_s,
        busy_backoff_s=sc.busy_retry_s,
        swarm=swarm,
        scheduler=scheduler_for(sc),
        cdn=CdnConfig(read_timeout_s=max(2.0, sc.segment_s), backoff_base_s=0.05),
    )


#: The attack of each hostile kind (``malicious`` is the corrupting swarm factory; ``rotate``
#: runs corrupting agents one after the other in its slot, each with a new peer id).
HOSTILE_ATTACKS = {
    Kind.FLOOD: Attack.FLOOD,
    Kind.LIAR: Attack.LIAR,
    Kind.STALLER: Attack.STALLER,
}


def neighbour_figures(samples: list[tuple[float, int]]) -> dict[str, Any]:
    """An agent's neighbour counts from (seconds since its join, links held) samples: held
    ``NEIGHBOURS_SETTLED_S`` after joining, the median and least held from then on, the most
    held at any time, and the seconds until it first held 5."""
    settled = [n for t, n in samples if t >= NEIGHBOURS_SETTLED_S]
    five = next((t for t, n in samples if n >= 5), None)
    return {
        "neighbours_at_10s": settled[0] if settled else None,
        "neighbours_held_median": statistics.median(settled) if settled else None,
        "neighbours_held_min": min(settled) if settled else None,
        "neighbours_held_max": max((n for _, n in samples), default=None),
        "neighbours_5_after_s": None if five is None else round(five, 1),
    }


#: How often a rotating attacker checks whether a neighbour banned it (seconds).
ROTATE_CHECK_S = 0.5


def _until(stop_wall: float, step_s: float | None) -> float:
    """Seconds to wait: until ``stop_wall`` (wall clock), at most ``step_s``."""
    left_s = max(0.0, stop_wall - time.time())
    return left_s if step_s is None else min(step_s, left_s)


def loopback_address(slot: int) -> str:
    """The slot's own loopback address: 127.0.<1 + slot // 250>.<2 + slot % 250>."""
    return f"127.0.{1 + slot // 250}.{2 + slot % 250}"


class Worker:
    def __init__(self, job: WorkerJob, put: Any) -> None:
        self.job = job
        self.put = put
        self.truth: Manifest | None = None
        self.running: dict[int, tuple[AgentSpec, Agent, _Audit]] = {}
        self.finished = {"bytes_cdn": 0, "bytes_p2p": 0, "bytes_uploaded": 0}
        self.finished_stalls = 0
        self.finished_hash_failures = 0
        self.corrupt_played = 0
        self.agents_done = 0
        #: Per agent (spec index): when it joined (wall) and (seconds since, open links) samples.
        self.joined_wall: dict[int, float] = {}
        self.neighbours: dict[int, list[tuple[float, int]]] = {}
        #: How late the event loop woke from LAG_PROBE_S sleeps (seconds): a starved or
        #: overloaded worker shows here before anywhere else.
        self.loop_lag_s: list[float] = []

    # -- the truth ---------------------------------------------------------------------------

    async def _manifest_url(self, http: httpx.AsyncClient) -> str:
        url = self.job.playlist_url
        response = await http.get(url)
        response.raise_for_status()
        rendition = choose_rendition(parse_master(response.text, url), self.job.config.rendition)
        return urljoin(rendition.uri, "manifest.json")

    async def _truth_loop(self) -> None:
        """Fetch the origin's manifest now and then (a live one is a sliding window)."""
        period = max(2.0, 2 * self.job.scenario.segment_s)
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as http:
            while True:
                try:
                    if self.truth is None:
                        self.truth = Manifest(await self._manifest_url(http))
                    assert self.truth.url is not None
                    response = await http.get(self.truth.url)
                    response.raise_for_status()
                    self.truth.update(response.text)
                except (httpx.HTTPError, ValueError) as exc:
                    logger.warning("audit manifest: %s", exc)
                await asyncio.sleep(period)

    def _audit(self, agent: Agent, audit: _Audit, final: bool) -> None:
        player = agent.player
        if player is None or self.truth is None or not self.truth.loaded:
            return
        head = player.playhead_s
        for segment in list(agent.verified):
            if segment in audit.checked:
                continue
            info = agent.info(segment)
            if info is None or info.start_s >= head - 1e-6:
                if final and info is None:
                    audit.unchecked += 1
                    audit.checked.add(segment)
                continue
            data = agent.store.get(segment)
            verdict = Verdict.UNKNOWN if data is None else self.truth.verify(info, data)
            if verdict is Verdict.UNKNOWN and not final:
                continue  # the audit manifest may not list it yet
            audit.checked.add(segment)
            if verdict is Verdict.MISMATCH:
                audit.corrupt += 1
                self.corrupt_played += 1
                logger.error("agent %s played a corrupt %s", agent.peer_id, segment)
            elif verdict is Verdict.UNKNOWN:
                audit.unchecked += 1

    # -- agents ------------------------------------------------------------------------------

    async def _run_agent(self, spec: AgentSpec) -> None:
        job = self.job
        await asyncio.sleep(max(0.0, job.t0_wall + spec.start_s - time.time()))
        config = agent_config(job, spec)
        made: list[LoadSwarm] = []
        factory = None
        if job.tracker_url is not None:
            factory, made = swarm_factory(config, corrupt=spec.kind is Kind.MALICIOUS)
        agent = Agent(config, swarm_factory=factory)
        attack = Attack.CORRUPT if spec.kind is Kind.ROTATE else HOSTILE_ATTACKS.get(spec.kind)
        hostile = make_hostile(agent, attack) if attack is not None else None
        audit = _Audit()
        self.running[spec.index] = (spec, agent, audit)
        self.joined_wall[spec.index] = time.time()
        joined_at = time.time() - job.t0_wall
        task = asyncio.ensure_future(agent.run())
        error: str | None = None
        summary: dict[str, Any] = {}
        rotations = 0
        former_ids: list[str] = []  # peer ids a rotating attacker used before its current one
        try:
            stop_wall = job.t0_wall + spec.stop_s
            # A rotating attacker is watched every ROTATE_CHECK_S from its start (not only once
            # its stop time came: it would never rotate).
            step_s = ROTATE_CHECK_S if spec.kind is Kind.ROTATE else None
            done, _ = await asyncio.wait({task}, timeout=_until(stop_wall, step_s))
            while spec.kind is Kind.ROTATE and not done and time.time() < stop_wall:
                # Banned somewhere (or not yet): a new agent, so a new peer id, same address.
                assert hostile is not None
                if not hostile.banned_by_remote:
                    done, _ = await asyncio.wait({task}, timeout=_until(stop_wall, step_s))
                    continue
                agent.stop()
                await task
                former_ids.append(agent.peer_id)
                rotations += 1
                config = dataclasses.replace(config, seed=spec.seed + 7919 * rotations)
                agent = Agent(config, swarm_factory=factory)
                hostile = make_hostile(agent, Attack.CORRUPT)
                self.running[spec.index] = (spec, agent, audit)
                task = asyncio.ensure_future(agent.run())
                done = set()
            if not done:
                if spec.leave is Leave.ABRUPT:
                    await drop_all(made)
                agent.stop()
            summary = await task
        except Exception as exc:  # one agent failing must not end the run
            error = f"{type(exc).__name__}: {exc}"
            logger.warning("agent %d failed: %s", spec.index, error)
        finally:
            self.running.pop(spec.index, None)
        self._audit(agent, audit, final=True)
        for key in self.finished:
            self.finished[key] += int(summary.get(key, 0) or 0)
        self.finished_stalls += int(summary.get("stall_count", 0) or 0)
        self.finished_hash_failures += int(summary.get("hash_failures", 0) or 0)
        self.agents_done += 1
        record = {
            **{k: v.value if hasattr(v, "value") else v for k, v in asdict(spec).items()},
            "joined_s": round(joined_at, 3),
            "left_s": round(time.time() - job.t0_wall, 3),
            "error": error,
            "corrupt_segments_played": audit.corrupt,
            "rotations": rotations,
            "former_peer_ids": former_ids,
            "segments_audited": len(audit.checked) - audit.unchecked,
            "segments_unaudited": audit.unchecked,
            **neighbour_figures(self.neighbours.pop(spec.index, [])),
            **summary,
        }
        self.put(("agent", job.worker, record))

    def sample(self) -> dict[str, Any]:
        totals = dict(self.finished)
        stalls, failures, latencies = self.finished_stalls, self.finished_hash_failures, []
        playing = 0
        for spec, agent, audit in list(self.running.values()):
            self._audit(agent, audit, final=False)
            held = getattr(agent.swarm, "neighbours", None)
            if isinstance(held, int) and spec.index in self.joined_wall:
                since_s = time.time() - self.joined_wall[spec.index]
                self.neighbours.setdefault(spec.index, []).append((since_s, held))
            if agent.player is None:
                continue
            status = agent.status()
            for key in totals:
                totals[key] += int(status[key])
            stalls += int(status["stalls"])
            failures += int(status["hash_failures"])
            if agent.player.started_at is not None:
                playing += 1
                if agent.timeline is not None and not agent.timeline.ended:
                    agent.player.advance(agent.now())
                    latencies.append(agent.timeline.edge_s - agent.player.playhead_s)
        return {
            "t_s": round(time.time() - self.job.t0_wall, 3),
            **totals,
            "stall_count": stalls,
            "hash_failures": failures,
            "corrupt_segments_played": self.corrupt_played,
            "agents_running": len(self.running),
            "agents_playing": playing,
            "agents_done": self.agents_done,
            "latency_s_median": round(statistics.median(latencies), 3) if latencies else None,
            "cpu_s": round(cpu_seconds(), 3),
        }

    async def _sample_loop(self) -> None:
        while True:
            await asyncio.sleep(self.job.config.sample_interval_s)
            self.put(("sample", self.job.worker, self.sample()))

    async def _lag_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_PROBE_S)
            self.loop_lag_s.append(max(0.0, loop.time() - before - LAG_PROBE_S))

    def lag_figures(self) -> dict[str, Any]:
        lags = sorted(self.loop_lag_s)
        if not lags:
            return {}

        def at(q: float) -> float:
            return round(1000 * lags[min(len(lags) - 1, int(q * len(lags)))], 1)

        return {"loop_lag_ms_p50": at(0.5), "loop_lag_ms_p99": at(0.99), "loop_lag_ms_max": at(1)}

    async def run(self) -> None:
        truth = asyncio.ensure_future(self._truth_loop())
        sampler = asyncio.ensure_future(self._sample_loop())
        lag = asyncio.ensure_future(self._lag_loop())
        try:
            await asyncio.gather(*(self._run_agent(spec) for spec in self.job.specs))
        finally:
            for task in (truth, sampler, lag):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.put(("sample", self.job.worker, self.sample()))


def worker_main(job: WorkerJob, queue: Any) -> None:
    """Process entry point (``multiprocessing`` target)."""
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    wall0, cpu0, wait0 = time.time(), cpu_seconds(), run_queue_wait_s()
    worker = Worker(job, queue.put)
    try:
        asyncio.run(worker.run())
    except BaseException:
        queue.put(("error", job.worker, traceback.format_exc()))
    finally:
        queue.put(
            (
                "done",
                job.worker,
                {
                    "cpu_s": round(cpu_seconds() - cpu0, 3),
                    "cpu_s_total": round(cpu_seconds(), 3),
                    "wall_s": round(time.time() - wall0, 3),
                    "agents": len(job.specs),
                    **worker.lag_figures(),
                    "run_queue_wait_s": None
                    if wait0 is None or (wait1 := run_queue_wait_s()) is None
                    else round(wait1 - wait0, 3),
                },
            )
        )
