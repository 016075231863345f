"""PNG plots of a run (and of its CDN-only baseline): matplotlib, headless (Agg).

Every plot has a title, axis labels with units, a grid, and its legend beside the axes (never
over the data). matplotlib is a dependency of the package (the load test's plots are part of
what it reports); ``--no-plots`` skips them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .runner import RunResult

PLOTS = (
    "offload.png",
    "cdn_egress.png",
    "stalls.png",
    "startup.png",
    "peer_bytes.png",
    "latency.png",
)


def _series(run: RunResult, key: str) -> tuple[list[float], list[float]]:
    rows = [r for r in run.samples if r.get(key) is not None]
    return [r["t_s"] for r in rows], [float(r[key]) for r in rows]


def _windowed_offload(run: RunResult, window: int = 5) -> tuple[list[float], list[float]]:
    rows = run.samples
    ts, ys = [], []
    for i in range(window, len(rows)):
        cdn = rows[i]["bytes_cdn"] - rows[i - window]["bytes_cdn"]
        p2p = rows[i]["bytes_p2p"] - rows[i - window]["bytes_p2p"]
        if cdn + p2p > 0:
            ts.append(rows[i]["t_s"])
            ys.append(p2p / (cdn + p2p))
    return ts, ys


def write_plots(
    run: RunResult,
    baseline: RunResult | None,
    out_dir: Path,
    *,
    inspect: Callable[[str, Any], None] | None = None,
) -> list[Path]:
    """Write every PNG of :data:`PLOTS`; ``inspect(name, figure)`` sees each figure before it is
    closed (tests check titles, axis labels and legends there)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        for ax in fig.axes:
            ax.grid(True, alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.tight_layout()
        if inspect is not None:
            inspect(name, fig)
        path = out_dir / name
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)

    # Offload over time.
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ts, ys = _windowed_offload(run)
    ax.plot(ts, ys, label="last 5 samples")
    t, cdn = _series(run, "bytes_cdn")
    _, p2p = _series(run, "bytes_p2p")
    ax.plot(
        t,
        [p / (c + p) if c + p else 0.0 for c, p in zip(cdn, p2p, strict=True)],
        label="since the start",
    )
    ax.set(
        xlabel="time since first join (s)",
        ylabel="P2P share of bytes received (0-1)",
        ylim=(0, 1),
        title="Offload over time",
    )
    save(fig, "offload.png")

    # CDN egress vs the CDN-only baseline (the origin's own count).
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for r, label in ((run, "P2P"), (baseline, "CDN only\n(baseline)")):
        if r is not None:
            t, y = _series(r, "origin_segment_bytes")
            ax.plot(t, [v / 1e6 for v in y], label=label)
    ax.set(
        xlabel="time since first join (s)",
        ylabel="origin segment bytes sent (MB)",
        title="CDN egress, cumulative (the origin's /stats)",
    )
    save(fig, "cdn_egress.png")

    # Stalls.
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for r, label in ((run, "P2P"), (baseline, "CDN only\n(baseline)")):
        if r is not None:
            t, y = _series(r, "stall_count")
            ax.step(t, y, where="post", label=label)
    ax.set(
        xlabel="time since first join (s)",
        ylabel="stalls (count, all agents)",
        title="Playback stalls, cumulative",
    )
    save(fig, "stalls.png")

    # Startup distribution.
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for r, label in ((run, "P2P"), (baseline, "CDN only\n(baseline)")):
        if r is not None:
            values = sorted(a["startup_s"] for a in r.agents if a.get("startup_s"))
            if values:
                ax.step(
                    values,
                    [(i + 1) / len(values) for i in range(len(values))],
                    where="post",
                    label=f"{label} (n={len(values)})",
                )
    ax.set(
        xlabel="startup time (s)",
        ylabel="share of agents started (0-1)",
        ylim=(0, 1.05),
        title="Startup time (CDF)",
    )
    save(fig, "startup.png")

    # Per-peer bytes.
    fig, ax = plt.subplots(figsize=(max(7, 0.3 * len(run.agents)), 3.8))
    xs = list(range(len(run.agents)))
    down_cdn = [a.get("bytes_cdn", 0) / 1e6 for a in run.agents]
    down_p2p = [a.get("bytes_p2p", 0) / 1e6 for a in run.agents]
    up = [a.get("bytes_uploaded", 0) / 1e6 for a in run.agents]
    ax.bar([x - 0.2 for x in xs], down_cdn, 0.4, label="received\nfrom the CDN")
    ax.bar([x - 0.2 for x in xs], down_p2p, 0.4, bottom=down_cdn, label="received\nfrom peers")
    ax.bar([x + 0.2 for x in xs], up, 0.4, label="uploaded\nto peers")
    ax.set_xticks(xs, [f"{a['index']}{a['kind'][0]}" for a in run.agents], fontsize=7, rotation=90)
    ax.set(
        xlabel="agent: index + kind (n normal, l leech-only, s slow uplink, m malicious)",
        ylabel="bytes (MB)",
        title="Bytes per agent",
    )
    save(fig, "peer_bytes.png")

    # Latency behind live.
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for r, label in ((run, "P2P"), (baseline, "CDN only\n(baseline)")):
        if r is not None:
            t, y = _series(r, "latency_s_median")
            ax.plot(t, y, label=label)
    ax.set(
        xlabel="time since first join (s)",
        ylabel="median latency behind live (s)",
        title="Latency behind the live edge",
    )
    save(fig, "latency.png")
    return written
