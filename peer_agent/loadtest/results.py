"""From a run's raw records to the summary the CLI prints (and its JSON), baseline ratios and
the simulator's prediction for the same scenario. Pure: no I/O."""

from __future__ import annotations

import statistics
from dataclasses import replace
from typing import Any

from ..core.cdn_phase import JOIN_RAMP_SEGMENTS
from ..sim.engine import simulate
from ..sim.scenario import Scenario
from .config import LoadTestConfig, scheduler_for
from .plan import Kind, Leave
from .runner import RunResult
from .worker import MAX_AGENT_PEERS


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def _sum(rows: list[dict[str, Any]], key: str) -> int:
    return sum(int(r.get(key) or 0) for r in rows)


def cdn_fetch_split(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """CDN fetches of the agents split into join ramp and steady state (core.cdn_phase).

    Per rendition, the steady span is the segments from the first that is past some agent's
    join ramp (its ``start_sequence`` + ``JOIN_RAMP_SEGMENTS``) to the last any agent played;
    steady-state fetches per segment are the steady fetches of that rendition's agents over the
    span's length. ``cdn_fetches_per_segment_steady`` pools the renditions (fetches over
    segments of every rendition); agents without a start or a played segment add their
    fetches but no span."""
    spans: dict[int, tuple[int, int]] = {}
    steady: dict[int, int] = {}
    for r in rows:
        rendition, start = r.get("rendition"), r.get("start_sequence")
        last = r.get("last_sequence_played")
        if not isinstance(rendition, int):
            continue
        steady[rendition] = steady.get(rendition, 0) + int(r.get("cdn_fetches_steady") or 0)
        if isinstance(start, int) and isinstance(last, int):
            first = start + JOIN_RAMP_SEGMENTS
            lo, hi = spans.get(rendition, (first, last))
            spans[rendition] = (min(lo, first), max(hi, last))
    by_rendition: dict[str, float | None] = {}
    fetches = segments = 0
    for rendition in sorted(steady):
        lo, hi = spans.get(rendition, (0, -1))
        n = max(0, hi - lo + 1)
        by_rendition[str(rendition)] = round(steady[rendition] / n, 3) if n else None
        fetches += steady[rendition]
        segments += n
    ramp = _sum(rows, "cdn_fetches_join_ramp")
    return {
        "cdn_fetches_join_ramp": ramp,
        "cdn_fetches_steady": _sum(rows, "cdn_fetches_steady"),
        "cdn_fetches_join_ramp_per_agent": round(ramp / len(rows), 3) if rows else None,
        "cdn_fetches_per_segment_steady": round(fetches / segments, 3) if segments else None,
        "cdn_fetches_per_segment_steady_by_rendition": by_rendition,
    }


def media_bitrate(run: RunResult, segment_s: float) -> float | None:
    """Average bits per second of the media the agents received (bytes per verified segment)."""
    rows = run.agents
    segments = _sum(rows, "segments_verified")
    if not segments:
        return None
    received = _sum(rows, "bytes_cdn") + _sum(rows, "bytes_p2p")
    return received / segments * 8 / segment_s


def summarize(run: RunResult, scenario: Scenario) -> dict[str, Any]:
    rows = run.agents
    cdn, p2p = _sum(rows, "bytes_cdn"), _sum(rows, "bytes_p2p")
    malicious = [r for r in rows if r["kind"] == Kind.MALICIOUS.value]
    bad_ids = {r.get("peer_id") for r in malicious}
    # Every hostile agent's ids (a rotating one's former ids too): none of them is "honest".
    hostile = [
        r for r in rows if r["kind"] not in (Kind.NORMAL.value, Kind.LEECH.value, Kind.SLOW.value)
    ]
    hostile_ids = {r.get("peer_id") for r in hostile}
    hostile_ids.update(pid for r in hostile for pid in r.get("former_peer_ids") or [])
    banned_by: dict[str, int] = {}
    for r in rows:
        for pid in r.get("peers_banned") or []:
            banned_by[pid] = banned_by.get(pid, 0) + 1
    honest_banned = sorted(pid for pid in banned_by if pid not in hostile_ids)
    worker_cpu = sum(float(w.get("cpu_s") or 0.0) for w in run.workers.values())
    wall = max((float(w.get("wall_s") or 0.0) for w in run.workers.values()), default=0.0)
    busiest = max(
        (
            float(w["cpu_s"]) / float(w["wall_s"])
            for w in run.workers.values()
            if w.get("cpu_s") and w.get("wall_s")
        ),
        default=0.0,
    )
    cores = worker_cpu / wall if wall else 0.0
    kinds = {k.value: sum(1 for r in rows if r["kind"] == k.value) for k in Kind}
    return {
        "p2p": run.p2p,
        "agents": scenario.peers,
        "agents_total": len(rows),
        "workers": len(run.workers),
        "live": scenario.live,
        "segment_s": scenario.segment_s,
        "duration_s": scenario.duration_s,
        "offload_ratio": round(p2p / (p2p + cdn), 4) if p2p + cdn else 0.0,
        "cdn_bytes": cdn,
        "p2p_bytes": p2p,
        "uploaded_bytes": _sum(rows, "bytes_uploaded"),
        "origin_bytes_served": run.origin_bytes_served,
        "origin_segment_bytes": run.origin_segment_bytes,
        "stall_count": _sum(rows, "stall_count"),
        "stall_s": round(sum(float(r.get("stall_s") or 0.0) for r in rows), 3),
        "agents_with_stalls": sum(1 for r in rows if (r.get("stall_count") or 0) > 0),
        "startup_s_median": _median([r["startup_s"] for r in rows if r.get("startup_s")]),
        "startup_s_p90": _quantile([r["startup_s"] for r in rows if r.get("startup_s")], 0.9),
        "latency_s_median": _median(
            [r["latency_s_median"] for r in rows if r.get("latency_s_median") is not None]
        ),
        "segments_played": _sum(rows, "segments_played"),
        **cdn_fetch_split(rows),
        "segments_audited": _sum(rows, "segments_audited"),
        "segments_unaudited": _sum(rows, "segments_unaudited"),
        "corrupt_segments_played": _sum(rows, "corrupt_segments_played"),
        "hash_failures": _sum(rows, "hash_failures"),
        "kinds": kinds,
        "malicious_agents": len(malicious),
        "malicious_agents_banned": sum(1 for r in malicious if r.get("peer_id") in banned_by),
        "bans_of_malicious": sum(banned_by.get(str(pid), 0) for pid in bad_ids),
        "honest_peers_banned": len(honest_banned),
        "churn_leaves_abrupt": sum(1 for r in rows if r["leave"] == Leave.ABRUPT.value),
        "churn_leaves_graceful": sum(1 for r in rows if r["leave"] == Leave.GRACEFUL.value),
        "agent_errors": sum(1 for r in rows if r.get("error")),
        "errors": list(run.errors),
        "media_bitrate_bits_per_s": _round0(media_bitrate(run, scenario.segment_s)),
        "worker_cpu_s": round(worker_cpu, 2),
        "worker_cores_used": round(cores, 3),
        "busiest_worker_cpu_share": round(busiest, 3),
        "agents_per_core": round(scenario.peers / cores, 1) if cores else None,
        "p2p_mb_per_cpu_s": round(p2p / 1e6 / worker_cpu, 3) if worker_cpu else None,
        **overlay_figures(rows),
        **loop_lag_figures(run.workers.values()),
        "origin_and_harness_cpu_s": run.parent_cpu_s,
        "signaling_cpu_s": run.signaling_cpu_s,
        "wall_s": run.wall_s,
    }


def overlay_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Neighbours held by the agents (each agent's median from 10 s after its join: the
    least and the median over agents) and the connection churn behind them (per agent: peer
    connections opened, offers made, links closed to make room)."""
    held = [
        float(r["neighbours_held_median"])
        for r in rows
        if r.get("neighbours_held_median") is not None
    ]
    n = len(rows)
    return {
        "neighbours_held_min_agent": min(held) if held else None,
        "neighbours_held_median": _median(held),
        "links_opened_per_agent": round(sum(len(r.get("link_paths") or []) for r in rows) / n, 2)
        if n
        else None,
        "offers_sent_per_agent": round(_sum(rows, "tracker_offers_sent") / n, 2) if n else None,
        "links_split": _sum(rows, "links_split"),
        "links_drain_forced": _sum(rows, "links_drain_forced"),
    }


def loop_lag_figures(workers: Any) -> dict[str, Any]:
    """The workers' event-loop lag (the worst worker's p50 and p99, ms) and CPU wait."""
    workers = list(workers)
    lags = [w for w in workers if w.get("loop_lag_ms_p50") is not None]
    waits = [
        float(w["run_queue_wait_s"]) / float(w["wall_s"])
        for w in workers
        if w.get("run_queue_wait_s") is not None and w.get("wall_s")
    ]
    return {
        # Share of the wall time the busiest-waiting worker was runnable but had no CPU.
        "worker_run_queue_wait_share": round(max(waits), 3) if waits else None,
        "worker_loop_lag_ms_p50": max((w["loop_lag_ms_p50"] for w in lags), default=None),
        "worker_loop_lag_ms_p99": max((w["loop_lag_ms_p99"] for w in lags), default=None),
    }


def _round0(x: float | None) -> float | None:
    return None if x is None else round(x)


def add_baseline(summary: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """The P2P run's summary with the CDN-only run's figures and the ratios between them."""
    out = dict(summary)
    for key in (
        "stall_count",
        "stall_s",
        "cdn_bytes",
        "origin_bytes_served",
        "origin_segment_bytes",
        "startup_s_median",
        "latency_s_median",
        "corrupt_segments_played",
    ):
        out[f"baseline_{key}"] = baseline[key]
    base_egress = baseline["origin_segment_bytes"]
    out["cdn_egress_ratio_vs_baseline"] = (
        round(summary["origin_segment_bytes"] / base_egress, 4) if base_egress else None
    )
    out["stalls_within_baseline"] = summary["stall_count"] <= baseline["stall_count"]
    return out


def sim_scenario(
    scenario: Scenario, config: LoadTestConfig, bitrate_bits_per_s: float | None
) -> Scenario:
    """The scenario as the simulator should run it to predict this load test: the media's
    measured bitrate and the agents' neighbour limit."""
    max_peers = config.max_peers or min(MAX_AGENT_PEERS, scenario.max_peers)
    changes: dict[str, Any] = {"max_peers": max_peers}
    if bitrate_bits_per_s:
        changes["bitrate_bits_per_s"] = bitrate_bits_per_s
    return replace(scenario, **changes)


def simulate_like(
    scenario: Scenario, config: LoadTestConfig, bitrate: float | None
) -> dict[str, Any]:
    sim = simulate(sim_scenario(scenario, config, bitrate), scheduler_for(scenario)).summary()
    return {
        f"sim_{k}": sim[k]
        for k in (
            "offload_ratio",
            "stall_count",
            "startup_s_median",
            "latency_s_median",
            "bytes_cdn",
            "bytes_p2p",
            "cdn_fetches_per_segment_steady",
        )
        if k in sim
    }
