"""Network bed benchmark: real agents behind NATs on impaired links vs a CDN-only baseline.

Two profiles of issue 14, each run by :class:`peer_agent.netbed.loadrun.BedLoadTest` (one bed,
the baseline run then the P2P run, side by side): live, 2 s segments, 3 segments behind live,
uplinks 4 Mbit/s, 60 % port-restricted cone / 30 % symmetric / 10 % no NAT; RTT 80 +- 10 ms with
1 % loss, then RTT 200 ms with 3 % loss. 20 agents, 90 s each (quick: 6 agents, 40 s). Needs
root (namespaces, nftables, TUN); elsewhere the section says it was skipped. Each bed also runs
the P2P agents a second time with the timeouts tuned on loopback
(:mod:`peer_agent.netbed.loopback_agent`), so the round-trip-aware timeouts are compared side by
side in one run.
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
    """One row of issue 14's "Must show": offload against 0.9 x (N-1)/N, stalls against the
    CDN-only baseline of the same bed and run, corrupt segments played, TURN's share."""
    base, p2p = report["baseline"], report["p2p"]
    links = p2p.get("links", {})
    total_links = sum(v["count"] for v in links.values()) or 1
    target = report["offload_target"]
    corrupt = p2p.get("corrupt_played")
    met = (
        p2p["offload"] >= target
        and p2p["stall_count"] <= base["stall_count"]
        and corrupt == 0
        and not p2p["agents_failed"] + base["agents_failed"]
    )
    return {
        "profile": name,
        "agents": report["plan"]["agents"],
        "offload": p2p["offload"],
        "offload_target": target,
        "stalls_p2p": f"{p2p['stall_count']} ({p2p['stall_s']} s)",
        "stalls_cdn_only": f"{base['stall_count']} ({base['stall_s']} s)",
        # every played segment matched its SHA-256 (None: some agent had no manifest)
        "corrupt_played": "unknown" if corrupt is None else corrupt,
        "hash_failures": p2p["hash_failures"],
        "agents_failed": p2p["agents_failed"] + base["agents_failed"],
        "peers_banned": p2p.get("peers_banned"),
        "relay_links_share": round(links.get("relay", {}).get("count", 0) / total_links, 3),
        "turn_share_of_p2p": report["turn_share_of_p2p"],
        "targets_met": "yes" if met else "no",
    }


def setup_rows(name: str, report: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"profile": name, "path": kind, **figures}
        for kind, figures in report["p2p"].get("links", {}).items()
    ]


def request_rows(name: str, report: dict[str, Any]) -> list[dict[str, Any]]:
    """How the P2P runs' downloads from peers ended (agent summaries' ``peer_requests``)."""
    out = []
    for run_name in ("p2p", "p2p_loopback_timeouts"):
        outcomes = report.get(run_name, {}).get("peer_requests")
        if outcomes:
            out.append({"profile": name, "timeouts": TIMEOUTS[run_name], **outcomes})
    return out


TIMEOUTS = {"p2p": "round-trip aware", "p2p_loopback_timeouts": "loopback-tuned"}


def cdn_rows(name: str, report: dict[str, Any]) -> list[dict[str, Any]]:
    """Where the P2P runs' CDN fetches went: by phase (join ramp: each agent's start segment and
    the 3 after it), Range resumes, and by the scheduler's reason (docs/netbed.md)."""
    out = []
    for run_name in ("p2p", "p2p_loopback_timeouts"):
        r = report.get(run_name)
        if r is None or "cdn_fetches_steady" not in r:
            continue
        reasons = r.get("cdn_fetches_by_reason") or {}
        out.append(
            {
                "profile": name,
                "timeouts": TIMEOUTS[run_name],
                "join_ramp": r["cdn_fetches_join_ramp"],
                "steady": r["cdn_fetches_steady"],
                "resumes": r.get("cdn_resumes"),
                # CDN fetches of urgent segments given up, silent or too slow, and fetched
                # again (rule 1)
                "restarts": r.get("cdn_stall_cancels"),
                **{f"reason:{k}": v for k, v in sorted(reasons.items())},
            }
        )
    return out


def comparison_rows(name: str, report: dict[str, Any]) -> list[dict[str, Any]]:
    """The same bed's P2P runs side by side: round-trip-aware against loopback-tuned timeouts."""
    out = []
    for run_name in ("p2p", "p2p_loopback_timeouts"):
        r = report.get(run_name)
        if r is None:
            continue
        share = report["turn_share_of_p2p"] if run_name == "p2p" else r.get("turn_share_of_p2p")
        out.append(
            {
                "profile": name,
                "timeouts": TIMEOUTS[run_name],
                "offload": r["offload"],
                "stalls": f"{r['stall_count']} ({r['stall_s']} s)",
                "peers_banned": r.get("peers_banned"),
                "hash_failures": r["hash_failures"],
                "turn_share_of_p2p": share,
            }
        )
    return out


def table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    cols = list(dict.fromkeys(c for r in rows for c in r))  # every row's columns, in order
    out = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    out += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return out


def section(reports: list[tuple[str, dict[str, Any]]], command: str) -> str:
    rows = [row(name, rep) for name, rep in reports]
    setups = [r for name, rep in reports for r in setup_rows(name, rep)]
    requests = [r for name, rep in reports for r in request_rows(name, rep)]
    compared = [r for name, rep in reports for r in comparison_rows(name, rep)]
    cdn = [r for name, rep in reports for r in cdn_rows(name, rep)]
    fall = ""
    if len(rows) == 2 and rows[0]["offload"]:
        fall = (
            f"Offload falls from {rows[0]['offload']} to {rows[1]['offload']} "
            f"({rows[1]['offload'] / rows[0]['offload']:.2f} of it) from the first profile to "
            "the second."
        )
    return "\n".join(
        [
            "## Network bed",
            "",
            f"`{command}`: one bed per profile (docs/netbed.md), baseline (CDN only) then P2P "
            "on the same bed; live, 2 s segments, 3 segments behind live, uplinks 4 Mbit/s, "
            "60 % cone / 30 % symmetric / 10 % no NAT. `offload_target` is 0.9 x (N-1)/N. "
            "`relay_links_share`: links whose nominated pair uses the TURN relay; "
            "`turn_share_of_p2p`: bytes coturn exchanged with its clients / P2P payload bytes "
            "(each relayed byte counted once per relaying side, with DTLS/SCTP overhead). "
            "`corrupt_played` is 0 when every agent verified every segment against the SHA-256 "
            "manifest. `targets_met`: offload >= target, stalls <= CDN only, 0 corrupt, no agent "
            "failed.",
            "",
            *table(rows),
            "",
            fall,
            "",
            "Link set-up time (link created -> peer's HELLO) per path type, seconds:",
            "",
            *table(setups),
            "",
            "The same beds' P2P runs with round-trip-aware timeouts (above) and with the "
            "timeouts tuned on loopback (run after it; docs/scheduling.md):",
            "",
            *table(compared),
            "",
            "How the P2P runs' downloads from peers ended (count of requests):",
            "",
            *table(requests),
            "",
            "The P2P runs' CDN segment fetches: by phase, Range resumes after a peer transfer "
            "was given up, fetches of urgent segments given up (silent, or too slow for this "
            "viewer's CDN tail) and fetched again (docs/scheduling.md rule 1), and by the "
            "scheduler's reason (`_resume`: a resume):",
            "",
            *table(cdn),
            "",
        ]
    )


def run(out_dir: Path, quick: bool = False) -> str:
    if os.geteuid() != 0:
        return "## Network bed\n\nSkipped: the network bed needs root.\n"
    agents, duration_s = (6, 40.0) if quick else (20, 90.0)
    plan = RunPlan(
        agents=agents, duration_s=duration_s, join_over_s=15.0, compare_loopback_timeouts=True
    )
    reports = [(name, BedLoadTest(profile, plan).run()) for name, profile in PROFILES]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "netbed.json").write_text(json.dumps(dict(reports), indent=1))
    command = (
        f"python -m peer_agent.netbed.loadrun --agents {agents} --duration-s {duration_s:g} "
        "--join-over-s 15 --rtt-ms R --jitter-ms 10 --loss L --compare-loopback-timeouts"
    )
    return section(reports, command)
