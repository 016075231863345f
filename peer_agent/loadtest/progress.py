"""The live progress line: a pure function of a sample row."""

from __future__ import annotations

from typing import Any


def progress_line(
    row: dict[str, Any], duration_s: float, agents: int, label: str, width: int = 24
) -> str:
    t = max(0.0, float(row.get("t_s") or 0.0))
    done = min(1.0, t / duration_s) if duration_s > 0 else 1.0
    bar = "#" * int(done * width) + "." * (width - int(done * width))
    cdn, p2p = row.get("bytes_cdn", 0), row.get("bytes_p2p", 0)
    offload = p2p / (cdn + p2p) if cdn + p2p else 0.0
    latency = row.get("latency_s_median")
    return (
        f"{label} [{bar}] {done * 100:3.0f}% t={t:5.0f}/{duration_s:.0f}s "
        f"agents={row.get('agents_playing', 0)}/{agents} offload={offload:.2f} "
        f"cdn={cdn / 1e6:.1f}MB p2p={p2p / 1e6:.1f}MB stalls={row.get('stall_count', 0)} "
        f"bad={row.get('hash_failures', 0)} corrupt={row.get('corrupt_segments_played', 0)} "
        f"lat={'-' if latency is None else f'{latency:.1f}s'} cpu={row.get('cpu_s', 0):.0f}s"
    )
