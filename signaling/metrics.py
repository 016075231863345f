"""Prometheus metrics, on a registry of their own so several apps can live in one process."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from signaling.messages import id_hex
from signaling.registry_api import SwarmSnapshot

#: ``source`` label values of the byte counters: what peers received from peers, sent to
#: peers, and received from the CDN.
BYTE_SOURCES = ("p2p_down", "p2p_up", "cdn")
#: ``phase`` label values of the CDN fetch counter (docs/simulator.md, "Join ramp and steady
#: state").
FETCH_PHASES = ("join_ramp", "steady")

LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip


class SignalingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Gauge(
            "p2p_signaling_connections", "Open WebSocket connections", registry=r
        )
        self.peers = Gauge("p2p_signaling_peers", "Peers across all swarms", registry=r)
        self.swarms = Gauge("p2p_signaling_swarms", "Swarms with at least one peer", registry=r)
        self.messages = Counter(
            "p2p_signaling_messages", "Valid messages received, by action", ["action"], registry=r
        )
        self.relays = Counter(
            "p2p_signaling_relays", "Offers and answers relayed", ["kind"], registry=r
        )
        self.rejections = Counter(
            "p2p_signaling_rejections",
            "Rejected messages and connections, by reason",
            ["reason"],
            registry=r,
        )
        self.peer_id_takeovers = Counter(
            "p2p_signaling_peer_id_takeovers",
            "Keyed peer_ids taken over by a connection proving their peer_key (the same client's "
            "newer socket), by where the old binding was (local, remote)",
            ["where"],
            registry=r,
        )
        self.fetcher_messages = Counter(
            "p2p_signaling_fetcher_messages",
            "Fetcher assignments sent to our clients, by kind: reply (after an announce), "
            "push (the list changed)",
            ["kind"],
            registry=r,
        )
        self.fetcher_picks = Counter(
            "p2p_signaling_fetcher_picks",
            "Swarm-wide fetcher picks made (each reads every member of the swarm)",
            registry=r,
        )
        self.expired_peers = Counter(
            "p2p_signaling_expired_peers", "Peers dropped for not re-announcing", registry=r
        )
        self.peer_bytes = Counter(
            "p2p_signaling_peer_bytes",
            "Media bytes reported by the peers of this process (stats messages), by source: "
            "p2p_down received from peers, p2p_up sent to peers, cdn received from the CDN. "
            "Offload = p2p_down / (p2p_down + cdn). Sums across processes.",
            ["source"],
            registry=r,
        )
        for source in BYTE_SOURCES:
            self.peer_bytes.labels(source=source)
        self.peer_cdn_fetches = Counter(
            "p2p_signaling_peer_cdn_fetches",
            "CDN segment fetches reported by the peers of this process (stats messages that "
            "carry them), by phase: join_ramp (each viewer's start segment and the 3 after it) "
            "or steady. Sums across processes.",
            ["phase"],
            registry=r,
        )
        for phase in FETCH_PHASES:
            self.peer_cdn_fetches.labels(phase=phase)
        self.relay_latency = Histogram(
            "p2p_signaling_relay_latency_seconds",
            "From receiving an offer/answer to handing it to the target's socket",
            ["kind"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )

    def enable_cluster(
        self, peer_count: Callable[[], float], swarm_count: Callable[[], float]
    ) -> None:
        """Scale-out metrics (only with Redis). Cluster-wide gauges are as this process sees the
        cluster; counters are this process's own and add up across processes."""
        r = self.registry
        self.cluster_peers = Gauge(
            "p2p_signaling_cluster_peers", "Peers across all processes, as seen here", registry=r
        )
        self.cluster_swarms = Gauge(
            "p2p_signaling_cluster_swarms", "Swarms across all processes, as seen here", registry=r
        )
        self.cluster_peers.set_function(peer_count)
        self.cluster_swarms.set_function(swarm_count)
        self.cluster_nodes = Gauge(
            "p2p_signaling_cluster_nodes", "Live signaling processes seen in Redis", registry=r
        )
        self.cluster_degraded = Gauge(
            "p2p_signaling_cluster_degraded",
            "1 while Redis is unreachable (this process pairs only its own peers)",
            registry=r,
        )
        self.bus_messages = Counter(
            "p2p_signaling_bus_messages",
            "Messages over Redis pub/sub, by direction (out, in) and kind (offer, answer, member)",
            ["direction", "kind"],
            registry=r,
        )
        self.bus_dropped = Counter(
            "p2p_signaling_bus_dropped",
            "Writes to Redis dropped (Redis unreachable or queue full), by kind",
            ["kind"],
            registry=r,
        )
        self.redis_failures = Counter(
            "p2p_signaling_redis_failures", "Times Redis became unreachable", registry=r
        )
        self.parked_offers = Counter(
            "p2p_signaling_parked_offers",
            "Offers of peers that joined an empty-looking swarm: parked, relayed to a peer "
            "joining another process, or evicted (max_parked_bytes)",
            ["event"],
            registry=r,
        )
        self.bind_conflicts = Counter(
            "p2p_signaling_bind_conflicts",
            "peer_ids found bound on another process when re-publishing after an outage",
            registry=r,
        )

    def bind_registry_gauges(
        self, peer_count: Callable[[], float], swarm_count: Callable[[], float]
    ) -> None:
        self.peers.set_function(peer_count)
        self.swarms.set_function(swarm_count)

    def count_peer_bytes(self, *, p2p_down: int, p2p_up: int, cdn: int) -> None:
        for source, value in (("p2p_down", p2p_down), ("p2p_up", p2p_up), ("cdn", cdn)):
            if value > 0:
                self.peer_bytes.labels(source=source).inc(value)

    def count_peer_cdn_fetches(self, *, join_ramp: int, steady: int) -> None:
        for phase, value in (("join_ramp", join_ramp), ("steady", steady)):
            if value > 0:
                self.peer_cdn_fetches.labels(phase=phase).inc(value)

    def bind_swarm_bytes(self, swarms: Callable[[], Iterable[SwarmSnapshot]]) -> None:
        """Per-swarm byte counters read at scrape time from ``swarms()`` (which must bound how
        many it returns: each swarm is three series)."""
        self.registry.register(_SwarmBytes(swarms))

    def reject(self, reason: str) -> None:
        self.rejections.labels(reason=reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _SwarmBytes(Collector):
    """``p2p_signaling_swarm_bytes_total{info_hash, source}``: the bytes the members of a swarm
    reported (departed members included while the swarm exists; the series goes when the
    swarm does). ``info_hash`` is the hex of its 20 bytes, as /api/swarms shows it."""

    def __init__(self, swarms: Callable[[], Iterable[SwarmSnapshot]]) -> None:
        self._swarms = swarms

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for snap in self._swarms():
            info_hash = id_hex(snap.info_hash)
            totals = snap.bytes
            for source, value in zip(
                BYTE_SOURCES, (totals.p2p_down, totals.p2p_up, totals.cdn), strict=True
            ):
                family.add_metric([info_hash, source], value)
        yield family

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily(
            "p2p_signaling_swarm_bytes",
            "Media bytes reported by a swarm's peers, by source (p2p_down, p2p_up, cdn); "
            "only the first metrics_max_swarms swarms are exported (label cardinality)",
            labels=["info_hash", "source"],
        )
