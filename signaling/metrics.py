"""Prometheus metrics, on a registry of their own so several apps can live in one process."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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
        self.expired_peers = Counter(
            "p2p_signaling_expired_peers", "Peers dropped for not re-announcing", registry=r
        )
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

    def reject(self, reason: str) -> None:
        self.rejections.labels(reason=reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
