"""Reports of misbehaving peers (docs/signaling.md, "Reports"). Pure: time is an argument.

A member of a swarm may report another member it banned or refused. Once reporters from
``threshold_addresses`` distinct addresses (independent peers: several peer ids or connections
on one address count once) hold an open report on the same peer, the server stops pairing that
peer and its connection for ``block_s``. One reporter, or several on one address, never
suffices, so a reporter cannot get an honest peer removed alone. Bounded: each reporter address
holds at most ``max_reports_per_address`` open reports (the oldest is dropped), each swarm at
most ``max_reported_per_swarm`` reported peers, reports expire after ``report_ttl_s``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ReportLimits:
    #: Distinct reporter addresses whose open reports stop the pairing of a peer.
    threshold_addresses: int = 3
    #: How long a report stays open.
    report_ttl_s: float = 600.0
    #: How long a peer reported by enough independent peers is not paired.
    block_s: float = 600.0
    #: Open reports per reporter address (a new one drops its oldest).
    max_reports_per_address: int = 16
    #: Reported peers remembered per swarm (a new one drops the oldest).
    max_reported_per_swarm: int = 1024

    def __post_init__(self) -> None:
        if self.threshold_addresses < 2:
            raise ValueError("threshold_addresses must be >= 2: one reporter never suffices")
        if min(self.report_ttl_s, self.block_s) <= 0:
            raise ValueError("report_ttl_s and block_s must be positive")
        if min(self.max_reports_per_address, self.max_reported_per_swarm) < 1:
            raise ValueError("max_reports_per_address and max_reported_per_swarm must be >= 1")


@dataclass
class _Reported:
    #: reporter address -> when its report expires
    by_address: dict[str, float] = field(default_factory=dict)
    conn_id: str = ""
    blocked_until: float = 0.0


class Reports:
    def __init__(self, limits: ReportLimits | None = None) -> None:
        self.limits = limits or ReportLimits()
        self._swarms: dict[str, dict[str, _Reported]] = {}
        #: reporter address -> its open reports (info_hash, reported peer id), oldest first
        self._by_reporter: dict[str, dict[tuple[str, str], None]] = {}
        self.blocks = 0

    def report(
        self,
        now_s: float,
        info_hash: str,
        reporter_address: str,
        reported_peer_id: str,
        reported_conn_id: str,
    ) -> bool:
        """Record a report; True when it makes the reported peer blocked now."""
        lim = self.limits
        swarm = self._swarms.setdefault(info_hash, {})
        entry = swarm.pop(reported_peer_id, None) or _Reported()
        swarm[reported_peer_id] = entry  # newest last
        while len(swarm) > lim.max_reported_per_swarm:
            del swarm[next(iter(swarm))]
        entry.conn_id = reported_conn_id
        mine = self._by_reporter.setdefault(reporter_address, {})
        mine.pop((info_hash, reported_peer_id), None)
        mine[(info_hash, reported_peer_id)] = None
        while len(mine) > lim.max_reports_per_address:
            old_hash, old_peer = next(iter(mine))
            del mine[(old_hash, old_peer)]
            old = self._swarms.get(old_hash, {}).get(old_peer)
            if old is not None:
                old.by_address.pop(reporter_address, None)
        entry.by_address[reporter_address] = now_s + lim.report_ttl_s
        entry.by_address = {a: t for a, t in entry.by_address.items() if t > now_s}
        if entry.blocked_until > now_s or len(entry.by_address) < lim.threshold_addresses:
            return False
        entry.blocked_until = now_s + lim.block_s
        self.blocks += 1
        return True

    def blocked(self, now_s: float, info_hash: str) -> set[str]:
        """Peer ids and connection ids not to pair in ``info_hash`` now."""
        out: set[str] = set()
        for peer_id, entry in self._swarms.get(info_hash, {}).items():
            if entry.blocked_until > now_s:
                out.add(peer_id)
                out.add(entry.conn_id)
        return out
