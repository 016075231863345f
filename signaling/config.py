"""Server configuration: one frozen dataclass, every default documented in one place.

Each field is also a CLI flag (``--announce-interval-s``) and an environment variable
(``P2P_SIGNALING_ANNOUNCE_INTERVAL_S``); see :mod:`signaling.cli` and docs/signaling.md.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from signaling.errors import UsageError
from signaling.ice import MAX_ICE_URLS, check_ice_url

ENV_PREFIX = "P2P_SIGNALING_"


def _opt(default: Any, help_text: str, **kwargs: Any) -> Any:
    return field(default=default, metadata={"help": help_text}, **kwargs)


@dataclass(frozen=True)
class SignalingConfig:
    host: str = _opt("127.0.0.1", "interface to listen on")
    port: int = _opt(8000, "TCP port to listen on")
    announce_interval_s: float = _opt(
        120.0, "re-announce interval sent to clients (the `interval` field)"
    )
    peer_ttl_s: float = _opt(300.0, "a peer that has not re-announced for this long is dropped")
    offer_ttl_s: float = _opt(50.0, "how long a relayed offer accepts an answer")
    sweep_interval_s: float = _opt(5.0, "how often expired peers and offers are swept")
    idle_timeout_s: float = _opt(
        300.0, "close a connection that sends nothing for this long (code 4000)"
    )
    max_message_bytes: int = _opt(65536, "largest accepted text frame (close code 1009 above)")
    max_sdp_bytes: int = _opt(16384, "largest accepted SDP in an offer or answer")
    max_offers_per_announce: int = _opt(5, "most offers in one announce")
    max_swarms_per_connection: int = _opt(20, "most swarms (and peer_ids) on one socket")
    max_peers_per_swarm: int = _opt(
        100_000, "most peers in one swarm (one more is refused with swarm_full)"
    )
    max_connections: int = _opt(50000, "most concurrent WebSocket connections (1013 above)")
    max_scrape_hashes: int = _opt(50, "most info_hashes answered in one scrape")
    rate_per_s: float = _opt(5.0, "token bucket refill: messages per second per connection")
    rate_burst: int = _opt(40, "token bucket size: burst of messages per connection")
    send_queue_max: int = _opt(256, "outgoing messages queued per connection (4008 above)")
    send_queue_max_bytes: int = _opt(
        262144,
        "outgoing bytes held per connection, queued plus unsent in the transport (4008 above)",
    )
    write_timeout_s: float = _opt(
        5.0,
        "close a connection whose pending writes make no progress for this long (4009); a "
        "closing socket that still cannot drain is dropped after the same time",
    )
    max_connections_per_address: int = _opt(
        100, "most concurrent connections from one address (IPv4 /32, IPv6 /64; 1013 above)"
    )
    max_swarms_per_address: int = _opt(
        200, "most swarm memberships held by the connections of one address (a failure reply)"
    )
    rate_per_address_s: float = _opt(
        50.0, "token bucket refill: messages (and new connections) per second per address"
    )
    rate_burst_per_address: int = _opt(
        200, "token bucket size per address; empty closes the connection that sent (4029)"
    )
    connect_rate_per_address_s: float = _opt(
        20.0,
        "token bucket refill: TCP connection attempts per second per address, taken when the "
        "connection is accepted, before any HTTP or WebSocket work; an empty bucket resets the "
        "connection at once (counted as connection_attempts_per_address)",
    )
    connect_burst_per_address: int = _opt(
        200, "token bucket size of connection attempts per address (a NAT's clients reconnecting)"
    )
    address_limits_exempt: tuple[str, ...] = _opt(
        ("127.0.0.0/8", "::1/128"),
        "comma-separated addresses/CIDRs whose clients skip the per-address limits (loopback: "
        "local load tests, and a same-host proxy not listed in trusted_proxies); empty: none",
    )
    trusted_proxies: tuple[str, ...] = _opt(
        (),
        "comma-separated addresses/CIDRs of reverse proxies whose X-Forwarded-For names the "
        "client; empty trusts none",
    )
    origins: tuple[str, ...] = _opt(
        (), "comma-separated Origin allowlist; empty allows every Origin"
    )
    allow_missing_origin: bool = _opt(
        True, "with an allowlist, still accept clients that send no Origin (non-browsers)"
    )
    token_secret: str | None = _opt(
        None, "HMAC secret for join tokens; when set, every connection needs ?token=", repr=False
    )
    admin_token: str | None = _opt(
        None,
        "bearer credential for /metrics and /api/admin/swarms (per-peer detail); unset: those "
        "answer only direct requests on loopback",
        repr=False,
    )
    ice_urls: tuple[str, ...] = _opt(
        (),
        "comma-separated STUN/TURN URLs (stun:H:P, turn:H:P?transport=udp) handed to clients "
        "that ask (action ice_servers); empty: such requests fail with ice_unavailable",
    )
    turn_secret: str | None = _opt(
        None,
        "shared secret of the TURN server (coturn static-auth-secret): TURN URLs are handed out "
        "with TURN REST API credentials (username expiry:user, HMAC-SHA1)",
        repr=False,
    )
    turn_credential_ttl_s: float = _opt(
        3600.0, "lifetime of the TURN credentials handed out (clients ask again before expiry)"
    )
    shutdown_grace_s: float = _opt(5.0, "on shutdown, wait this long for sockets to close")
    ws_per_message_deflate: bool = _opt(False, "negotiate permessage-deflate")
    ws_ping_interval_s: float = _opt(20.0, "WebSocket ping interval (0 disables)")
    gc_thresholds: tuple[int, ...] = _opt(
        (50000, 20, 100),
        "CPython GC thresholds for the server process (CPython's default is 700,10,10, whose "
        "full collections pause a 10k-connection server for ~1 s); empty keeps the default",
    )
    gc_collect_after_closes: int = _opt(
        200,
        "run a full garbage collection from the sweeper once this many connections closed "
        "since the last one (each leaves ~120 objects in reference cycles that the raised GC "
        "thresholds would keep for a long time); 0 disables",
    )
    gc_collect_interval_s: float = _opt(
        30.0, "at most one such collection per this many seconds (bounds the pauses)"
    )
    log_level: str = _opt("info", "logging level")
    api_docs: bool = _opt(
        False,
        "serve the API docs pages /docs (Swagger UI) and /redoc; they load their scripts from "
        "a public CDN (cdn.jsdelivr.net), so they are blank offline. /openapi.json is always "
        "served",
    )
    metrics_max_swarms: int = _opt(
        50,
        "swarms exported with per-swarm byte counters on /metrics (3 series each; the first "
        "ones listed, as /api/swarms lists them); 0: none",
    )
    redis_url: str | None = _opt(
        None,
        "Redis URL (redis://HOST:PORT/DB) joining several processes into one cluster; unset: "
        "this process runs alone, in memory",
        repr=False,
    )
    redis_prefix: str = _opt(
        "p2p-signaling:", "with Redis: prefix of every key and channel (clusters may share a Redis)"
    )
    heartbeat_interval_s: float = _opt(
        1.0, "with Redis: how often this process refreshes its liveness key and checks the others'"
    )
    node_ttl_s: float = _opt(
        5.0,
        "with Redis: a process silent this long is dead: its peers leave pairing and their "
        "peer_ids may bind on another process",
    )
    redis_timeout_s: float = _opt(
        2.0, "with Redis: a command slower than this marks Redis unreachable (degraded mode)"
    )
    redis_retry_s: float = _opt(1.0, "with Redis: wait between reconnection attempts when degraded")
    bus_queue_max: int = _opt(
        100000, "with Redis: most writes waiting for Redis; more are dropped and counted"
    )
    join_park_s: float = _opt(
        10.0,
        "with Redis: a peer whose joining announce found the swarm (nearly) empty parks its "
        "unused offers this long for peers joining other processes at the same moment (0: off)",
    )
    max_parked_bytes: int = _opt(
        8 * 1024 * 1024, "with Redis: most SDP bytes parked in total; the oldest go first"
    )

    fetcher_count: int = _opt(
        4,
        "fetchers listed per swarm (per region) in the fetcher assignment sent to our clients: "
        "one fetches each segment from the CDN, the others back it up in turn; 0: off",
    )
    fetcher_min_uplink_bytes_per_s: int = _opt(
        250_000,
        "members claiming at least this uplink (cap uplink:<bytes/s>) are picked first",
    )
    fetcher_slot_s: float = _opt(600.0, "the fetcher picks rotate every this many seconds")
    fetcher_seed: str = _opt(
        "p2p-hls fetchers/1",
        "seed of the fetcher picks: every process of a cluster needs the same one; set a "
        "secret one so nobody can predict the picks",
        repr=False,
    )
    fetcher_max_regions: int = _opt(
        8, "regions per swarm given their own fetchers; further ones share the region-less list"
    )
    fetcher_refresh_s: float = _opt(
        2.0, "a swarm's fetchers are picked again at most this often (a pick reads every member)"
    )
    fetcher_valid_s: float = _opt(
        300.0, "clients hold a fetcher assignment this long (valid_s in the message)"
    )

    def __post_init__(self) -> None:
        positive = (
            "fetcher_slot_s",
            "fetcher_refresh_s",
            "fetcher_valid_s",
            "fetcher_max_regions",
            "announce_interval_s",
            "peer_ttl_s",
            "offer_ttl_s",
            "sweep_interval_s",
            "idle_timeout_s",
            "max_message_bytes",
            "max_sdp_bytes",
            "max_swarms_per_connection",
            "max_peers_per_swarm",
            "max_connections",
            "max_scrape_hashes",
            "rate_per_s",
            "rate_burst",
            "send_queue_max",
            "send_queue_max_bytes",
            "write_timeout_s",
            "max_connections_per_address",
            "max_swarms_per_address",
            "rate_per_address_s",
            "rate_burst_per_address",
            "connect_rate_per_address_s",
            "connect_burst_per_address",
            "heartbeat_interval_s",
            "node_ttl_s",
            "redis_timeout_s",
            "redis_retry_s",
            "bus_queue_max",
            "max_parked_bytes",
            "turn_credential_ttl_s",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise UsageError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.gc_collect_after_closes < 0 or self.gc_collect_interval_s < 0:
            raise UsageError("gc_collect_after_closes and gc_collect_interval_s must be >= 0")
        if not 0 <= self.fetcher_count <= 16:
            raise UsageError("fetcher_count must be in 0..16")
        if self.fetcher_min_uplink_bytes_per_s < 0 or not self.fetcher_seed:
            raise UsageError("fetcher_min_uplink_bytes_per_s must be >= 0, fetcher_seed non-empty")
        if self.fetcher_valid_s > 3600:
            raise UsageError("fetcher_valid_s must be at most 3600 (clients refuse more)")
        if self.metrics_max_swarms < 0:
            raise UsageError("metrics_max_swarms must be >= 0")
        if self.max_offers_per_announce < 0:
            raise UsageError("max_offers_per_announce must be >= 0")
        if not 0 < self.port < 65536 and self.port != 0:
            raise UsageError(f"port out of range: {self.port}")
        if self.shutdown_grace_s < 0 or self.ws_ping_interval_s < 0 or self.join_park_s < 0:
            raise UsageError("shutdown_grace_s, ws_ping_interval_s and join_park_s must be >= 0")
        if self.gc_thresholds and (
            len(self.gc_thresholds) != 3 or any(t < 0 for t in self.gc_thresholds)
        ):
            raise UsageError("gc_thresholds takes three non-negative integers")
        if self.node_ttl_s <= self.heartbeat_interval_s:
            raise UsageError("node_ttl_s must be longer than heartbeat_interval_s")
        if self.redis_url is not None and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise UsageError("redis_url must start with redis://, rediss:// or unix://")
        for proxy in self.trusted_proxies + self.address_limits_exempt:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError as exc:
                raise UsageError(f"trusted_proxies: not an address or CIDR: {proxy!r}") from exc
        if self.token_secret is not None and len(self.token_secret) < 16:
            raise UsageError("token_secret must be at least 16 characters")
        if self.admin_token is not None and len(self.admin_token) < 16:
            raise UsageError("admin_token must be at least 16 characters")
        if self.turn_secret is not None and len(self.turn_secret) < 16:
            raise UsageError("turn_secret must be at least 16 characters")
        if len(self.ice_urls) > MAX_ICE_URLS:
            raise UsageError(f"at most {MAX_ICE_URLS} ice_urls")
        for url in self.ice_urls:
            problem = check_ice_url(url)
            if problem is not None:
                raise UsageError(f"ice_urls: {problem}")
        if self.turn_secret is None and any(not u.startswith("stun:") for u in self.ice_urls):
            raise UsageError("TURN URLs in ice_urls need turn_secret (for their credentials)")

    def with_changes(self, **changes: Any) -> SignalingConfig:
        return dataclasses.replace(self, **changes)


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def config_fields() -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(SignalingConfig)
