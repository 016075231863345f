"""Load test on the network bed: N real agents behind NATs, against a CDN-only baseline.

``python -m peer_agent.netbed.loadrun --agents 20 --rtt-ms 80 --jitter-ms 10 --loss 0.01
--uplink-kbit 4000 --nat-mix cone=0.6,symmetric=0.3,none=0.1 --duration-s 90 --json``
(root; also ``p2p-loadtest --network-profile FILE``, a TOML ``[network]`` table with the same
names, see docs/netbed.md).

One bed (:class:`NetworkProfile` -> one :class:`PeerSpec` per agent), the origin
(``p2p-origin``, live MPEG-TS, 2 s segments by default), the signaling server and coturn on the
public segment; two runs on the same bed, one after the other: ``baseline`` (every agent from the
CDN only) and ``p2p`` (the same agents with ``--tracker`` and ``--ice-from-tracker``). Each agent
is one ``p2p-agent --json`` process in its peer namespace; they join ``join_over_s`` apart.

Link model: ``rtt_ms`` is the round trip between two peers; each access link adds
``rtt_ms / 4`` one way in each direction (so a peer's RTT to the public segment is half of it);
``jitter_ms`` is split the same way (each of the four one-way legs gets +-jitter/4, uniform);
``loss`` is the one-way loss between two peers, split over the two access links a packet
crosses (each drops ``1 - sqrt(1 - loss)``). ``uplink_kbit``/``downlink_kbit`` shape each access
link (tbf), optionally per NAT kind.

Reported per run: offload (P2P bytes / all bytes), stalls, hash failures, startup; for the P2P
run the path of every link (``host``/``srflx``/``relay``, from the agents' ``link_paths``), the
set-up time distribution per path type, and the bytes coturn moved for its clients
(:meth:`peer_agent.netbed.turn.Coturn.relayed_bytes`: each relayed byte counted once per relaying
side, DTLS/SCTP/ChannelData overhead included).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from peer_agent.agent.requests import outcome_kind
from peer_agent.netbed.bed import (
    NAT_KINDS,
    PUB_ADDRESS,
    BedError,
    LinkShape,
    NatKind,
    NetBed,
    PeerSpec,
)
from peer_agent.netbed.turn import Coturn

logger = logging.getLogger(__name__)

ORIGIN_PORT = 8080
SIGNALING_PORT = 8000
AGENT_GRACE_S = 60.0  # an agent may run this much past its duration before it is killed


@dataclass(frozen=True)
class NetworkProfile:
    """The network of a bed load test (every default documented here)."""

    nat_mix: dict[str, float] = field(
        default_factory=lambda: {"cone": 0.6, "symmetric": 0.3, "none": 0.1}
    )
    rtt_ms: float = 80.0  #: round trip between two peers
    jitter_ms: float = 10.0  #: +- on that round trip (split over the four one-way legs)
    loss: float = 0.01  #: one-way loss between two peers
    uplink_kbit: int = 4000  #: every access link's uplink (tbf); 0: unlimited
    downlink_kbit: int = 50000  #: every access link's downlink; 0: unlimited
    #: per NAT kind overrides of (uplink_kbit, downlink_kbit)
    per_kind_kbit: dict[str, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.nat_mix or any(k not in NAT_KINDS for k in self.nat_mix):
            raise ValueError(f"nat_mix keys must be among {NAT_KINDS}")
        if any(v < 0 for v in self.nat_mix.values()) or sum(self.nat_mix.values()) <= 0:
            raise ValueError("nat_mix fractions must be >= 0 and not all 0")
        if self.rtt_ms < 0 or self.jitter_ms < 0 or not 0 <= self.loss < 1:
            raise ValueError("need rtt_ms >= 0, jitter_ms >= 0, 0 <= loss < 1")

    def kinds(self, n: int, rng: random.Random) -> list[NatKind]:
        """``n`` NAT kinds in the mix's proportions (largest remainder), shuffled."""
        total = sum(self.nat_mix.values())
        exact = {k: n * v / total for k, v in self.nat_mix.items()}
        counts = {k: math.floor(x) for k, x in exact.items()}
        for k in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True):
            if sum(counts.values()) >= n:
                break
            counts[k] += 1
        kinds: list[NatKind] = [k for k, c in counts.items() for _ in range(c)]  # type: ignore[misc]
        rng.shuffle(kinds)
        return kinds

    def spec(self, kind: NatKind) -> PeerSpec:
        up_kbit, down_kbit = self.per_kind_kbit.get(kind, (self.uplink_kbit, self.downlink_kbit))
        leg_loss = 1 - math.sqrt(1 - self.loss)
        leg = {"delay_ms": self.rtt_ms / 4, "jitter_ms": self.jitter_ms / 4, "loss": leg_loss}
        return PeerSpec(
            kind,
            up=LinkShape(rate_kbit=up_kbit, **leg),
            down=LinkShape(rate_kbit=down_kbit, **leg),
        )


@dataclass(frozen=True)
class RunPlan:
    agents: int = 20
    duration_s: float = 90.0  #: each agent plays this long
    join_over_s: float = 10.0  #: agents join spread over this
    segment_s: float = 2.0
    latency_segments: int = 3
    seed: int = 1
    #: agents put every download from a peer in their summary (``--request-timeline``)
    request_timeline: bool = False
    #: a third run on the same bed, ``p2p_loopback_timeouts``: the P2P agents with the
    #: timeouts tuned on loopback (:mod:`peer_agent.netbed.loopback_agent`)
    compare_loopback_timeouts: bool = False
    #: a run on the same bed, ``p2p_compare``: the P2P agents from another checkout of the
    #: project (its directory first on ``PYTHONPATH``), e.g. main beside a change under test
    compare_tree: str | None = None


def path_type(local: str | None, remote: str | None) -> str:
    kinds = {local, remote}
    if "relay" in kinds:
        return "relay"
    if kinds & {"srflx", "prflx"}:
        return "srflx"
    return "host" if local == "host" else "unknown"


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def request_kinds(agents: list[dict[str, Any]]) -> dict[str, int]:
    """Downloads from peers by ``"<reason> <outcome>"`` (``reason``: the scheduler's, ``have`` or
    ``cut_through``; `` no_byte``: given up before any byte came), summed over ``agents``: from
    each agent's request timeline when it has one (so agents of a checkout that does not count
    them are split too), else from its summary's ``outcomes_by_reason``."""
    out: dict[str, int] = {}
    for a in agents:
        records = a.get("request_timeline")
        if records is not None:
            counts: dict[str, int] = {}
            for r in records:
                if r.get("outcome") == "open":
                    continue
                kind = outcome_kind(r["reason"], r["outcome"], r.get("bytes") or 0)
                counts[kind] = counts.get(kind, 0) + 1
        else:
            counts = a.get("peer_requests", {}).get("outcomes_by_reason") or {}
        for kind, n in counts.items():
            out[kind] = out.get(kind, 0) + n
    return dict(sorted(out.items()))


def ban_kind(reason: str) -> str:
    """A ban reason (``SegmentExchange.ban_reasons``) with its subject reduced to its kind:
    ``"penalty points: stall (addr:turn)"`` (``addr:turn``: the bed's TURN relay address, which
    every peer reached through the relay shares), ``(addr)``, ``(id)`` or ``(cert)``."""
    rule, _, rest = reason.partition(" (")
    if not rest:
        return rule
    subject = rest.split()[0].rstrip(")")
    kind, _, value = subject.partition(":")
    if kind == "addr" and value == PUB_ADDRESS:
        kind = "addr:turn"
    return f"{rule} ({kind})"


def summarise(agents: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [a for a in agents if "error" not in a]
    cdn = sum(a["bytes_cdn"] for a in ok)
    p2p = sum(a["bytes_p2p"] for a in ok)
    out: dict[str, Any] = {
        "agents": len(agents),
        "agents_failed": len(agents) - len(ok),
        "bytes_cdn": cdn,
        "bytes_p2p": p2p,
        "offload": round(p2p / (cdn + p2p), 4) if cdn + p2p else 0.0,
        "stall_count": sum(a["stall_count"] for a in ok),
        "stall_s": round(sum(a["stall_s"] for a in ok), 3),
        "hash_failures": sum(a["hash_failures"] for a in ok),
        "segments_played": sum(a["segments_played"] for a in ok),
        "startup_s_median": _pct([a["startup_s"] for a in ok if a["startup_s"] is not None], 0.5),
    }
    # With the manifest (SHA-256 mode) an agent plays only segments that matched their hash or
    # came from the CDN (peer bytes with no listed hash are refetched: ``unverifiable``), so no
    # corrupt segment was played; an agent in size-only mode cannot tell.
    sha256 = bool(ok) and all(a.get("integrity") == "sha256" for a in ok)
    out["corrupt_played"] = 0 if sha256 else None
    out["unverifiable"] = sum(a.get("unverifiable", 0) for a in ok)
    out["peers_banned"] = sum(len(a.get("peers_banned", [])) for a in ok)
    # Why (agents that report it): the rule and the kind of subject that tipped each ban. Every
    # agent of the bed is honest, so each ban here is an honest peer banned.
    by_reason: dict[str, int] = {}
    offences: dict[str, int] = {}
    for a in ok:
        for reason in (a.get("ban_reasons") or {}).values():
            by_reason[ban_kind(reason)] = by_reason.get(ban_kind(reason), 0) + 1
        for name, count in (a.get("offences") or {}).items():
            offences[name] = offences.get(name, 0) + count
    out["peers_banned_by_reason"] = dict(sorted(by_reason.items()))
    out["refusals"] = sum(a.get("refusals") or 0 for a in ok)
    out["offences"] = dict(sorted(offences.items()))
    outcomes: dict[str, int] = {}
    for a in ok:
        for name, count in a.get("peer_requests", {}).get("outcomes", {}).items():
            outcomes[name] = outcomes.get(name, 0) + count
    if outcomes:
        out["peer_requests"] = dict(sorted(outcomes.items()))
    kinds = request_kinds(ok)
    if kinds:
        out["peer_requests_by_reason"] = kinds
    # Where the CDN bytes went: fetches by phase (join ramp, steady state) and, from agents that
    # report it, by the scheduler's reason (urgent, elected, assigned, backup; _resume: a Range
    # request after a peer transfer was given up).
    for key in ("cdn_fetches_join_ramp", "cdn_fetches_steady", "cdn_resumes", "cdn_stall_cancels"):
        out[key] = sum(a.get(key) or 0 for a in ok)
    reasons: dict[str, int] = {}
    for a in ok:
        for name, count in (a.get("cdn_fetches_by_reason") or {}).items():
            reasons[name] = reasons.get(name, 0) + count
    if reasons:
        out["cdn_fetches_by_reason"] = dict(sorted(reasons.items()))
    paths: dict[str, list[float]] = {}
    for a in ok:
        for link in a.get("link_paths", []):
            kind = path_type(link["local"], link["remote"])
            paths.setdefault(kind, [])
            if link["setup_s"] is not None:
                paths[kind].append(link["setup_s"])
    if paths:
        out["links"] = {
            kind: {
                "count": len(times),
                "setup_s_p50": _pct(times, 0.5),
                "setup_s_p90": _pct(times, 0.9),
                "setup_s_max": _pct(times, 1.0),
            }
            for kind, times in sorted(paths.items())
        }
    return out


class BedLoadTest:
    def __init__(self, profile: NetworkProfile, plan: RunPlan) -> None:
        self.profile = profile
        self.plan = plan
        rng = random.Random(plan.seed)
        self.kinds = profile.kinds(plan.agents, rng)
        self.bed = NetBed([profile.spec(k) for k in self.kinds], seed=plan.seed)
        self.turn = Coturn(self.bed)
        #: every agent's summary of the last :meth:`run`, per run (``baseline``, ``p2p``)
        self.results: dict[str, list[dict[str, Any]]] = {}

    def _wait_tcp(self, port: int, timeout_s: float) -> None:
        probe = [sys.executable, "-m", "peer_agent.netbed.probe", "tcp-wait", PUB_ADDRESS]
        self.bed.run(
            self.bed.pub_ns, [*probe, str(port), "--timeout-s", str(timeout_s)], timeout_s + 10
        )

    def _start_services(self) -> None:
        self.turn.start()
        origin = [sys.executable, "-m", "peer_agent.origin.cli", "--host", PUB_ADDRESS]
        origin += ["--port", str(ORIGIN_PORT), "--segment-duration-s", str(self.plan.segment_s)]
        origin += ["--log-level", "warning"]
        self.bed.popen(self.bed.pub_ns, origin, stdout=subprocess.DEVNULL)
        env = {
            "P2P_SIGNALING_TURN_SECRET": self.turn.config.secret,
            "P2P_SIGNALING_ICE_URLS": ",".join(self.turn.config.urls),
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        }
        signaling = [sys.executable, "-m", "signaling.cli", "--host", PUB_ADDRESS]
        signaling += ["--port", str(SIGNALING_PORT), "--log-level", "warning"]
        self.bed.popen(self.bed.pub_ns, signaling, env=env, stdout=subprocess.DEVNULL)
        self._wait_tcp(SIGNALING_PORT, 90)  # a busy machine starts uvicorn slowly
        self._wait_tcp(ORIGIN_PORT, 240)  # the origin generates its media before it listens

    def _run(
        self, p2p: bool, module: str = "peer_agent.agent.cli", tree: str | None = None
    ) -> list[dict[str, Any]]:
        plan = self.plan
        url = f"http://{PUB_ADDRESS}:{ORIGIN_PORT}/hls/live-ts/master.m3u8"
        procs = []
        gap_s = plan.join_over_s / max(1, plan.agents - 1)
        for host in self.bed.hosts:
            argv = [sys.executable, "-m", module, url, "--json", "--quiet"]
            argv += ["--duration-s", str(plan.duration_s)]
            argv += ["--latency-segments", str(plan.latency_segments)]
            argv += ["--seed", str(plan.seed * 1000 + host.index)]
            if p2p:
                tracker = f"ws://{PUB_ADDRESS}:{SIGNALING_PORT}/announce"
                argv += ["--tracker", tracker, "--ice-from-tracker"]
                if plan.request_timeline:
                    argv += ["--request-timeline"]
            env = None if tree is None else {**os.environ, "PYTHONPATH": tree}
            proc = self.bed.popen(
                host.ns,
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=env,
                cwd=tree,
            )
            procs.append((host, proc))
            time.sleep(gap_s)
        results = []
        deadline = time.monotonic() + plan.duration_s + AGENT_GRACE_S
        for host, proc in procs:
            try:
                out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate(timeout=10)
                results.append({"error": "timed out", "nat": host.nat})
                continue
            lines = [line for line in out.splitlines() if line.startswith("{")]
            if not lines:
                results.append({"error": f"exit {proc.returncode}, no summary", "nat": host.nat})
                continue
            record = json.loads(lines[-1])
            record["nat"] = host.nat
            results.append(record)
        return results

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        with self.bed:
            try:
                self._start_services()
                # let the live window fill so both runs start at the same depth behind live
                time.sleep(self.plan.segment_s * (self.plan.latency_segments + 3))
                baseline = self._run(p2p=False)
                turn_before = self.turn.relayed_bytes()
                p2p = self._run(p2p=True)
                self.results = {"baseline": baseline, "p2p": p2p}
                turn_mid = None
                extra_turn: dict[str, int] = {}
                if self.plan.compare_loopback_timeouts:
                    time.sleep(2.0)  # coturn logs a closed allocation's usage on its 1 s tick
                    turn_mid = self.turn.relayed_bytes()
                    loop = self._run(p2p=True, module="peer_agent.netbed.loopback_agent")
                    self.results["p2p_loopback_timeouts"] = loop
                if self.plan.compare_tree is not None:
                    time.sleep(2.0)
                    before = self.turn.relayed_bytes()
                    if turn_mid is None:
                        turn_mid = before
                    else:
                        extra_turn["p2p_loopback_timeouts"] = before - turn_mid
                    other = self._run(p2p=True, tree=self.plan.compare_tree)
                    self.results["p2p_compare"] = other
            finally:
                self.turn.stop()
            turn_end = self.turn.relayed_bytes()
            turn_bytes = (turn_end if turn_mid is None else turn_mid) - turn_before
        report: dict[str, Any] = {
            "profile": asdict(self.profile),
            "plan": asdict(self.plan),
            "nat_kinds": {k: self.kinds.count(k) for k in NAT_KINDS},
            "baseline": summarise(baseline),
            "p2p": summarise(p2p),
            "turn_client_bytes": turn_bytes,
            "wall_s": round(time.monotonic() - started, 1),
        }
        p2p_bytes = report["p2p"]["bytes_p2p"]
        report["turn_share_of_p2p"] = round(turn_bytes / p2p_bytes, 4) if p2p_bytes else None
        n = self.plan.agents
        report["offload_target"] = round(0.9 * (n - 1) / n, 4)
        for name in ("p2p_loopback_timeouts", "p2p_compare"):
            if name not in self.results:
                continue
            extra = summarise(self.results[name])
            assert turn_mid is not None
            used = extra_turn.get(name)
            if used is None:  # the last run: from its start to coturn's end
                used = turn_end - turn_mid - sum(extra_turn.values())
            extra["turn_client_bytes"] = used
            extra["turn_share_of_p2p"] = (
                round(used / extra["bytes_p2p"], 4) if extra["bytes_p2p"] else None
            )
            report[name] = extra
        report["impair"] = {k: v for k, v in self.bed.impair_stats.items() if k == "sink_packets"}
        return report


PROFILE_KEYS = {
    "nat_mix",
    "rtt_ms",
    "jitter_ms",
    "loss",
    "uplink_kbit",
    "downlink_kbit",
    "per_kind_kbit",
}


def load_profile(path: str) -> NetworkProfile:
    """A :class:`NetworkProfile` from the ``[network]`` table of a TOML file (ValueError with
    the reason for unknown keys or bad values)."""
    import tomllib

    with open(path, "rb") as f:
        table = tomllib.load(f).get("network")
    if not isinstance(table, dict):
        raise ValueError(f"{path}: no [network] table")
    unknown = set(table) - PROFILE_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown [network] keys {sorted(unknown)}")
    if "per_kind_kbit" in table:
        table["per_kind_kbit"] = {k: tuple(v) for k, v in table["per_kind_kbit"].items()}
    return NetworkProfile(**table)


def _mix(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(","):
        kind, _, share = part.partition("=")
        out[kind.strip()] = float(share)
    return out


def main(argv: list[str] | None = None) -> int:
    d, dp = RunPlan(), NetworkProfile()
    p = argparse.ArgumentParser(prog="python -m peer_agent.netbed.loadrun")
    p.add_argument("--agents", type=int, default=d.agents)
    p.add_argument("--duration-s", type=float, default=d.duration_s)
    p.add_argument("--join-over-s", type=float, default=d.join_over_s)
    p.add_argument("--segment-s", type=float, default=d.segment_s)
    p.add_argument("--latency-segments", type=int, default=d.latency_segments)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--nat-mix", type=_mix, default=dp.nat_mix, help="cone=0.6,symmetric=0.3,...")
    p.add_argument("--rtt-ms", type=float, default=dp.rtt_ms)
    p.add_argument("--jitter-ms", type=float, default=dp.jitter_ms)
    p.add_argument("--loss", type=float, default=dp.loss)
    p.add_argument("--uplink-kbit", type=int, default=dp.uplink_kbit)
    p.add_argument("--downlink-kbit", type=int, default=dp.downlink_kbit)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--compare-loopback-timeouts",
        action="store_true",
        help="a third run with the P2P agents' timeouts tuned on loopback (side by side)",
    )
    p.add_argument(
        "--compare-tree",
        metavar="DIR",
        help="a further run with the P2P agents of another checkout (e.g. main), side by side",
    )
    p.add_argument(
        "--agents-out",
        metavar="FILE",
        help="write every agent's summary (with its request timeline) to FILE as JSON",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        profile = NetworkProfile(
            nat_mix=args.nat_mix,
            rtt_ms=args.rtt_ms,
            jitter_ms=args.jitter_ms,
            loss=args.loss,
            uplink_kbit=args.uplink_kbit,
            downlink_kbit=args.downlink_kbit,
        )
        plan = RunPlan(
            agents=args.agents,
            duration_s=args.duration_s,
            join_over_s=args.join_over_s,
            segment_s=args.segment_s,
            latency_segments=args.latency_segments,
            seed=args.seed,
            request_timeline=args.agents_out is not None,
            compare_loopback_timeouts=args.compare_loopback_timeouts,
            compare_tree=args.compare_tree,
        )
    except ValueError as exc:
        print(f"loadrun: {exc}", file=sys.stderr)
        return 2
    if plan.compare_tree is not None and not os.path.isdir(
        os.path.join(plan.compare_tree, "peer_agent")
    ):
        print(f"loadrun: --compare-tree {plan.compare_tree}: no peer_agent/ there", file=sys.stderr)
        return 2
    test = BedLoadTest(profile, plan)
    try:
        report = test.run()
    except BedError as exc:
        print(f"loadrun: {exc}", file=sys.stderr)
        return 1
    if args.agents_out:
        with open(args.agents_out, "w") as f:
            json.dump(test.results, f)
    print(json.dumps(report, indent=None if args.json else 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
