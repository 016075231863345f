"""Network bed benchmark: real agents behind NATs on impaired links vs a CDN-only baseline.

Two profiles of issue 14, each run by :class:`peer_agent.netbed.loadrun.BedLoadTest` (one bed,
the baseline run then the P2P run, side by side): live, 2 s segments, 3 segments behind live,
uplinks 4 Mbit/s, 60 % port-restricted cone / 30 % symmetric / 10 % no NAT; RTT 80 +- 10 ms with
1 % loss, then RTT 200 ms with 3 % loss. 20 agents, 90 s each (quick: 6 agents, 40 s). Needs
root (namespaces, nftables, TUN); elsewhere the section says it was skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from peer_agent.netbed.loadrun import BedLoadTest, NetworkProfile, RunPlan

PROFILES = [
    ("RTT 80 ms +- 10, 1 % loss", NetworkProfile(rtt_ms=80, jitter_ms=10, loss=0.01)),
    ("RTT 200 ms +- 10, 3 % loss", NetworkProfile(rtt_ms=200, jitter_ms=10, loss=0.03)),
]


def row(name: str, report: dict[str, Any]) -> dict[str, Any]:
    base, p2p = report["baseline"], report["p2p"]
    links = p2p.get("links", {})
    total_links = sum(v["count"] for v in links.values()) or 1
    return {
        "profile": name,
        "agents": report["plan"]["agents"],
        "offload": p2p["offload"],
        "offload_target": report["offload_target"],
        "stalls_p2p": p2p["stall_count"],
        "stalls_cdn_only": base["stall_count"],
        "stall_s_p2p": p2p["stall_s"],
        "stall_s_cdn_only": base["stall_s"],
        "hash_failures": p2p["hash_failures"],
        "agents_failed": p2p["agents_failed"] + base["agents_failed"],
        "relay_links_share": round(links.get("relay", {}).get("count", 0) / total_links, 3),
        "turn_share_of_p2p": report["turn_share_of_p2p"],
    }


def setup_rows(name: str, report: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"profile": name, "path": kind, **figures}
        for kind, figures in report["p2p"].get("links", {}).items()
    ]


def table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    out += ["| " + " | ".join(str(r.get(c)) for c in cols) + " |" for r in rows]
    return out


def section(reports: list[tuple[str, dict[str, Any]]], command: str) -> str:
    rows = [row(name, rep) for name, rep in reports]
    setups = [r for name, rep in reports for r in setup_rows(name, rep)]
    return "\n".join(
        [
            "## Network bed",
            "",
            f"`{command}`: one bed per profile (docs/netbed.md), baseline (CDN only) then P2P "
            "on the same bed; live, 2 s segments, 3 segments behind live, uplinks 4 Mbit/s, "
            "60 % cone / 30 % symmetric / 10 % no NAT. `offload_target` is 0.9 x (N-1)/N. "
            "`relay_links_share`: links whose nominated pair uses the TURN relay; "
            "`turn_share_of_p2p`: bytes coturn exchanged with its clients / P2P payload bytes "
            "(each relayed byte counted once per relaying side, with DTLS/SCTP overhead).",
            "",
            *table(rows),
            "",
            "Link set-up time (link created -> peer's HELLO) per path type, seconds:",
            "",
            *table(setups),
            "",
        ]
    )


def run(out_dir: Path, quick: bool = False) -> str:
    if os.geteuid() != 0:
        return "## Network bed\n\nSkipped: the network bed needs root.\n"
    agents, duration_s = (6, 40.0) if quick else (20, 90.0)
    plan = RunPlan(agents=agents, duration_s=duration_s, join_over_s=15.0)
    reports = [(name, BedLoadTest(profile, plan).run()) for name, profile in PROFILES]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "netbed.json").write_text(json.dumps(dict(reports), indent=1))
    command = (
        f"python -m peer_agent.netbed.loadrun --agents {agents} --duration-s {duration_s:g} "
        "--join-over-s 15 --rtt-ms R --jitter-ms 10 --loss L"
    )
    return section(reports, command)
