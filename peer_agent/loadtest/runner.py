"""One load-test run: servers up, agents spread over worker processes, samples collected.

:func:`run_once` plays the plan (:mod:`.plan`) with P2P on or off and returns a
:class:`RunResult`: every agent's record, the swarm's counters over time, and the origin's
egress over time (its ``/stats``, the CDN truth).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import queue as queue_module
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..sim.scenario import Scenario
from .config import LoadTestConfig
from .plan import AgentSpec, plan_agents
from .services import Signaling, origin, signaling
from .worker import WorkerJob, cpu_seconds, worker_main

logger = logging.getLogger(__name__)

#: Counters summed over the workers' latest samples.
SUMMED = (
    "bytes_cdn",
    "bytes_p2p",
    "bytes_uploaded",
    "stall_count",
    "hash_failures",
    "corrupt_segments_played",
    "agents_running",
    "agents_playing",
    "agents_done",
    "cpu_s",
)


@dataclass
class RunResult:
    p2p: bool
    specs: list[AgentSpec]
    agents: list[dict[str, Any]] = field(default_factory=list)
    #: The swarm over time: one row per sampling period (worker counters + origin egress).
    samples: list[dict[str, Any]] = field(default_factory=list)
    workers: dict[int, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    origin_bytes_served: int = 0
    origin_segment_bytes: int = 0
    signaling_cpu_s: float | None = None
    parent_cpu_s: float = 0.0
    wall_s: float = 0.0


def merge_samples(latest: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The swarm's counters: the sum of each worker's latest sample (latency: the median of
    the workers' medians)."""
    row: dict[str, Any] = {key: 0 for key in SUMMED}
    latencies = []
    for sample in latest.values():
        for key in SUMMED:
            row[key] += sample.get(key) or 0
        if sample.get("latency_s_median") is not None:
            latencies.append(sample["latency_s_median"])
    latencies.sort()
    row["latency_s_median"] = latencies[len(latencies) // 2] if latencies else None
    row["cpu_s"] = round(row["cpu_s"], 3)
    return row


def _segment_bytes(stats: dict[str, Any]) -> int:
    kinds = stats.get("by_kind", {})
    return sum(int(kinds.get(k, {}).get("bytes_served", 0)) for k in ("segment", "init"))


async def run_once(
    scenario: Scenario,
    config: LoadTestConfig,
    workers: int,
    *,
    p2p: bool,
    on_sample: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    specs = plan_agents(scenario, config, workers)
    result = RunResult(p2p=p2p, specs=specs)
    wall0, cpu0 = time.time(), cpu_seconds()
    async with origin(scenario, config) as org, signaling(config, needed=p2p) as sig:
        tracker = sig.url if isinstance(sig, Signaling) else sig
        sig_cpu0 = sig.cpu_s() if isinstance(sig, Signaling) else None
        stats0 = await org.stats()
        ctx = multiprocessing.get_context("spawn")
        q: Any = ctx.Queue()
        t0 = time.time() + config.start_delay_s
        procs = {}
        for w in range(workers):
            mine = tuple(s for s in specs if s.worker == w)
            if not mine:
                continue
            job = WorkerJob(
                w,
                mine,
                org.playlist_url(scenario.live, config.container),
                tracker,
                t0,
                scenario,
                config,
            )
            proc = ctx.Process(target=worker_main, args=(job, q), name=f"loadtest-worker-{w}")
            proc.start()
            procs[w] = proc
        latest: dict[int, dict[str, Any]] = {}
        stop_sampling = asyncio.Event()

        async def sampler() -> None:
            while not stop_sampling.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(config.sample_interval_s):
                        await stop_sampling.wait()
                stats = await org.stats()
                row = {"t_s": round(time.time() - t0, 3), **merge_samples(latest)}
                row["origin_bytes_served"] = stats["bytes_served"] - stats0["bytes_served"]
                row["origin_segment_bytes"] = _segment_bytes(stats) - _segment_bytes(stats0)
                if isinstance(sig, Signaling):
                    row["signaling_cpu_s"] = sig.cpu_s()
                result.samples.append(row)
                if on_sample is not None:
                    on_sample(row)

        sampling = asyncio.ensure_future(sampler())
        deadline = t0 + scenario.duration_s + 60.0
        try:
            while len(result.workers) < len(procs):
                try:
                    kind, w, body = await asyncio.to_thread(q.get, True, 0.5)
                except queue_module.Empty:
                    for w, proc in procs.items():
                        if w not in result.workers and not proc.is_alive():
                            # It may have sent "done" just before exiting: drain first.
                            await asyncio.sleep(0.5)
                            if w not in result.workers and q.empty():
                                result.errors.append(f"worker {w} died ({proc.exitcode})")
                                result.workers[w] = {"cpu_s": None, "wall_s": None}
                    if time.time() > deadline:
                        result.errors.append("workers did not finish in time")
                        break
                    continue
                if kind == "sample":
                    latest[w] = body
                elif kind == "agent":
                    result.agents.append(body)
                elif kind == "done":
                    result.workers[w] = body
                elif kind == "error":
                    result.errors.append(f"worker {w}: {body}")
        finally:
            for proc in procs.values():
                proc.join(timeout=10)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(timeout=5)
            stop_sampling.set()
            await sampling
        stats = await org.stats()
        result.origin_bytes_served = stats["bytes_served"] - stats0["bytes_served"]
        result.origin_segment_bytes = _segment_bytes(stats) - _segment_bytes(stats0)
        if isinstance(sig, Signaling) and sig_cpu0 is not None:
            now_cpu = sig.cpu_s()
            result.signaling_cpu_s = None if now_cpu is None else round(now_cpu - sig_cpu0, 3)
    result.agents.sort(key=lambda r: r["index"])
    result.parent_cpu_s = round(cpu_seconds() - cpu0, 3)
    result.wall_s = round(time.time() - wall0, 3)
    return result
