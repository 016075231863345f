"""Per-address limits: who a client is (behind trusted proxies), and what one address may hold.

Pure: the caller passes monotonic ``now_s``. An address is an IPv4 /32 or an IPv6 /64 (one
subscriber's prefix; an IPv4-mapped IPv6 address counts as its IPv4 address). Behind a reverse
proxy the TCP peer is the proxy: only when it is one of ``trusted_proxies`` is the client taken
from ``X-Forwarded-For`` (the rightmost entry that is not itself a trusted proxy, since a client
can write anything to the left of what the proxy appends).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from signaling.errors import UsageError
from signaling.ratelimit import TokenBucket

IPV6_PREFIX_BITS = 64
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BadForwardedFor(ValueError):
    """A trusted proxy sent an X-Forwarded-For that names no client address."""


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    out: list[Network] = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError as exc:
            raise UsageError(f"not an address or CIDR: {item!r}") from exc
    return tuple(out)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(text.strip().strip("[]"))
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: tuple[Network, ...]
) -> bool:
    return any(ip.version == net.version and ip in net for net in proxies)


def client_ip(peer: str | None, forwarded_for: str | None, proxies: tuple[Network, ...]) -> str:
    """The client's address as text. ``peer`` is the TCP peer (None on a Unix socket)."""
    if peer is None:
        return "unix"
    try:
        ip = _ip(peer)
    except ValueError:
        return peer
    if not proxies or not _trusted(ip, proxies):
        return str(ip)
    if not forwarded_for:
        return str(ip)  # the proxy itself (a health check, or a client on the proxy's host)
    for entry in reversed(forwarded_for.split(",")):
        try:
            hop = _ip(entry)
        except ValueError as exc:
            raise BadForwardedFor(f"X-Forwarded-For entry {entry.strip()[:64]!r}") from exc
        if not _trusted(hop, proxies):
            return str(hop)
    return str(hop)  # every hop is a proxy: the leftmost one


def is_exempt(ip_text: str, networks: tuple[Network, ...]) -> bool:
    try:
        return _trusted(_ip(ip_text), networks)
    except ValueError:
        return False


def address_key(ip_text: str) -> str:
    """The unit limits apply to: the address itself for IPv4, its /64 for IPv6."""
    try:
        ip = _ip(ip_text)
    except ValueError:
        return ip_text
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX_BITS), strict=False))
    return str(ip)


@dataclass(frozen=True)
class AddressLimits:
    max_connections: int = 100
    max_swarms: int = 200
    rate_per_s: float = 50.0
    rate_burst: int = 200


@dataclass
class _Entry:
    bucket: TokenBucket
    conns: set[str] = field(default_factory=set)


class AddressTable:
    """Connections and a message bucket per address. An address's entry outlives its last
    connection until its bucket is full again (:meth:`prune`), so reconnecting does not refill
    it."""

    def __init__(self, limits: AddressLimits) -> None:
        self.limits = limits
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _entry(self, key: str, now_s: float) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            bucket = TokenBucket(self.limits.rate_per_s, self.limits.rate_burst, now_s)
            entry = self._entries[key] = _Entry(bucket)
        return entry

    def open(self, key: str, conn_id: str, now_s: float) -> str | None:
        """Admit a new connection (it costs one message token); or say why not."""
        entry = self._entry(key, now_s)
        if len(entry.conns) >= self.limits.max_connections:
            return "too_many_connections_per_address"
        if not entry.bucket.try_take(now_s):
            return "address_rate_limited"
        entry.conns.add(conn_id)
        return None

    def close(self, key: str, conn_id: str) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.conns.discard(conn_id)

    def take(self, key: str, now_s: float) -> bool:
        entry = self._entries.get(key)
        return entry is None or entry.bucket.try_take(now_s, 1.0)

    def connections(self, key: str) -> set[str]:
        entry = self._entries.get(key)
        return entry.conns if entry is not None else set()

    def prune(self, now_s: float) -> int:
        """Forget addresses with no connection whose bucket has refilled."""
        gone = [
            key
            for key, entry in self._entries.items()
            if not entry.conns and entry.bucket.level(now_s) >= entry.bucket.burst
        ]
        for key in gone:
            del self._entries[key]
        return len(gone)


#: Most addresses :class:`AttemptTable` tracks at once; beyond, a new address is admitted
#: untracked until :meth:`AttemptTable.prune` makes room (a flood from that many addresses is
#: not one address's flood; the table stays ~20 MB at most).
MAX_TRACKED_ADDRESSES = 100_000


class AttemptTable:
    """TCP connection attempts per address: one token bucket each, taken when the server
    accepts a connection, before any HTTP or WebSocket work (:mod:`signaling.admission`). An
    entry lives until its bucket has refilled (:meth:`prune`)."""

    def __init__(
        self, rate_per_s: float, burst: int, max_tracked: int = MAX_TRACKED_ADDRESSES
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_tracked = max_tracked
        self._buckets: dict[str, TokenBucket] = {}
        self._pruned_s = float("-inf")

    def __len__(self) -> int:
        return len(self._buckets)

    def admit(self, key: str, now_s: float) -> bool:
        """Take one attempt from ``key``'s bucket; False when it is empty."""
        bucket = self._buckets.get(key)
        if bucket is None:
            # full: at most one pruning pass per second (a scan per attempt would be the
            # flood's lever), and untracked until that makes room
            if len(self._buckets) >= self.max_tracked and (
                now_s - self._pruned_s < 1.0 or not self.prune(now_s)
            ):
                return True
            bucket = self._buckets[key] = TokenBucket(self.rate_per_s, self.burst, now_s)
        return bucket.try_take(now_s)

    def prune(self, now_s: float) -> int:
        """Forget addresses whose bucket has refilled; returns how many."""
        self._pruned_s = now_s
        gone = [k for k, b in self._buckets.items() if b.level(now_s) >= b.burst]
        for key in gone:
            del self._buckets[key]
        return len(gone)
