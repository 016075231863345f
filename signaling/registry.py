"""Swarm registry: who is in which swarm, bound to which connection, with which pending offers.

Pure state: no asyncio, no sockets, no clock reads. Time comes in as ``now_s`` (monotonic
seconds) and randomness from the ``random.Random`` given to the constructor. The registry names
connections by opaque ``conn_id`` strings; which socket a ``conn_id`` is, and how a message gets
there, is the router's business (:mod:`signaling.router`). :class:`SwarmRegistry` is the interface
a future shared (Redis) backend implements; :class:`InMemorySwarmRegistry` is the one we have.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from signaling.errors import (
    NotInSwarm,
    PeerIdTaken,
    SwarmFull,
    TooManySwarms,
    UnknownOffer,
    UsageError,
)
from signaling.pairing import NO_HINTS, PeerHints, choose_targets

Event = Literal["started", "stopped", "completed", "update", "paused"]

MAX_PAIRED_REMEMBERED = 256


@dataclass(frozen=True)
class RegistryLimits:
    peer_ttl_s: float = 300.0
    offer_ttl_s: float = 50.0
    max_swarms_per_connection: int = 20
    max_peers_per_swarm: int = 20000
    pairing_sample_limit: int = 256


@dataclass(frozen=True)
class PeerRef:
    peer_id: str
    conn_id: str


@dataclass(frozen=True)
class SwarmCounts:
    complete: int
    incomplete: int
    downloaded: int


@dataclass(frozen=True)
class AnnounceResult:
    counts: SwarmCounts
    targets: tuple[PeerRef, ...]
    joined: bool
    left: bool


@dataclass(frozen=True)
class ExpiryResult:
    peers: tuple[tuple[str, str], ...]  # (info_hash, peer_id)
    offers: int


@dataclass(frozen=True)
class ByteTotals:
    p2p_down: int = 0
    p2p_up: int = 0
    cdn: int = 0

    def __add__(self, other: ByteTotals) -> ByteTotals:
        return ByteTotals(
            self.p2p_down + other.p2p_down, self.p2p_up + other.p2p_up, self.cdn + other.cdn
        )


@dataclass(frozen=True)
class PeerSnapshot:
    peer_id: str
    seeding: bool
    hints: PeerHints
    idle_s: float
    bytes: ByteTotals


@dataclass(frozen=True)
class SwarmSnapshot:
    info_hash: str
    counts: SwarmCounts
    bytes: ByteTotals
    peers: tuple[PeerSnapshot, ...]


@dataclass
class _Peer:
    peer_id: str
    info_hash: str
    conn_id: str
    last_seen_s: float
    seeding: bool = False
    hints: PeerHints = NO_HINTS
    paired: dict[str, None] = field(default_factory=dict)
    bytes: ByteTotals = field(default_factory=ByteTotals)


@dataclass
class _Swarm:
    info_hash: str
    peers: dict[str, _Peer] = field(default_factory=dict)
    downloaded: int = 0
    retired_bytes: ByteTotals = field(default_factory=ByteTotals)

    def counts(self) -> SwarmCounts:
        complete = sum(1 for p in self.peers.values() if p.seeding)
        return SwarmCounts(complete, len(self.peers) - complete, self.downloaded)

    def byte_totals(self) -> ByteTotals:
        total = self.retired_bytes
        for peer in self.peers.values():
            total = total + peer.bytes
        return total


# A pending offer is a plain (from_peer, expires_s) tuple, not an object: tens of thousands live
# for offer_ttl_s, and CPython's GC stops tracking tuples of strings and floats, so they do not
# drive full collections (which pause the loop for ~1 s with 10k connections).
_PendingOffer = tuple[str, float]


class SwarmRegistry(Protocol):
    """What the service needs from swarm state; implemented in memory now, Redis later."""

    def announce(
        self,
        now_s: float,
        conn_id: str,
        info_hash: str,
        peer_id: str,
        *,
        event: Event | None,
        seeding: bool | None,
        hints: PeerHints,
        want_targets: int,
    ) -> AnnounceResult: ...

    def record_offer(
        self, now_s: float, info_hash: str, offer_id: str, from_peer: str, to_peer: str
    ) -> None: ...

    def claim_answer(
        self,
        now_s: float,
        conn_id: str,
        info_hash: str,
        answerer: str,
        to_peer: str,
        offer_id: str,
    ) -> PeerRef: ...

    def record_stats(
        self, now_s: float, conn_id: str, info_hash: str, peer_id: str, totals: ByteTotals
    ) -> None: ...

    def scrape(self, info_hashes: Iterable[str]) -> dict[str, SwarmCounts]: ...

    def swarm_ids(self, limit: int) -> list[str]: ...

    def drop_connection(self, conn_id: str) -> int: ...

    def expire(self, now_s: float) -> ExpiryResult: ...

    def snapshot(self, now_s: float, max_swarms: int, max_peers: int) -> list[SwarmSnapshot]: ...

    def peer_count(self) -> int: ...

    def swarm_count(self) -> int: ...


class InMemorySwarmRegistry:
    """Single-process registry. Every operation is O(1) except pairing (bounded by sampling)."""

    def __init__(self, limits: RegistryLimits, rng: random.Random) -> None:
        self.limits = limits
        self._rng = rng
        self._swarms: dict[str, _Swarm] = {}
        self._owners: dict[str, str] = {}  # peer_id -> conn_id
        self._conn_peer_ids: dict[str, set[str]] = {}
        self._conn_members: dict[str, set[tuple[str, str]]] = {}
        self._by_seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._pending: OrderedDict[tuple[str, str, str], _PendingOffer] = OrderedDict()
        self._peer_total = 0

    # -- binding ---------------------------------------------------------------------------

    def owner_of(self, peer_id: str) -> str | None:
        return self._owners.get(peer_id)

    def _check_owner(self, conn_id: str, peer_id: str) -> None:
        owner = self._owners.get(peer_id)
        if owner is not None and owner != conn_id:
            raise PeerIdTaken("peer_id is bound to another connection")

    def _bind(self, conn_id: str, peer_id: str) -> None:
        if self._owners.get(peer_id) == conn_id:
            return
        ids = self._conn_peer_ids.setdefault(conn_id, set())
        if len(ids) >= self.limits.max_swarms_per_connection:
            raise TooManySwarms(
                f"at most {self.limits.max_swarms_per_connection} peer_ids per connection"
            )
        ids.add(peer_id)
        self._owners[peer_id] = conn_id

    # -- announce ----------------------------------------------------------------------------

    def announce(
        self,
        now_s: float,
        conn_id: str,
        info_hash: str,
        peer_id: str,
        *,
        event: Event | None,
        seeding: bool | None,
        hints: PeerHints,
        want_targets: int,
    ) -> AnnounceResult:
        self._check_owner(conn_id, peer_id)
        swarm = self._swarms.get(info_hash)
        if event == "stopped":
            left = False
            if swarm is not None and peer_id in swarm.peers:
                self._remove_peer(swarm, peer_id)
                left = True
            counts = swarm.counts() if swarm is not None else SwarmCounts(0, 0, 0)
            self._drop_if_empty(info_hash)
            return AnnounceResult(counts, (), joined=False, left=left)

        joined = False
        peer = swarm.peers.get(peer_id) if swarm is not None else None
        if peer is None:
            members = self._conn_members.get(conn_id, set())
            if len(members) >= self.limits.max_swarms_per_connection:
                raise TooManySwarms(
                    f"at most {self.limits.max_swarms_per_connection} swarms per connection"
                )
            if swarm is not None and len(swarm.peers) >= self.limits.max_peers_per_swarm:
                raise SwarmFull(f"swarm holds {self.limits.max_peers_per_swarm} peers")
            self._bind(conn_id, peer_id)
            if swarm is None:
                swarm = self._swarms[info_hash] = _Swarm(info_hash)
            peer = _Peer(peer_id, info_hash, conn_id, now_s)
            swarm.peers[peer_id] = peer
            self._conn_members.setdefault(conn_id, set()).add((info_hash, peer_id))
            self._peer_total += 1
            joined = True
        assert swarm is not None
        peer.last_seen_s = now_s
        self._by_seen[(info_hash, peer_id)] = None
        self._by_seen.move_to_end((info_hash, peer_id))
        peer.hints = hints
        if event == "completed" and not peer.seeding:
            swarm.downloaded += 1
            peer.seeding = True
        elif seeding is not None:
            peer.seeding = seeding

        targets: tuple[PeerRef, ...] = ()
        if want_targets > 0 and len(swarm.peers) > 1:
            exclude = self._conn_peer_ids.get(conn_id, set())
            candidates = [p for p in swarm.peers.values() if p.peer_id not in exclude]
            chosen = choose_targets(
                peer_id,
                hints,
                peer.paired,
                candidates,
                want_targets,
                self._rng,
                sample_limit=self.limits.pairing_sample_limit,
            )
            targets = tuple(PeerRef(pid, swarm.peers[pid].conn_id) for pid in chosen)
        return AnnounceResult(swarm.counts(), targets, joined=joined, left=False)

    # -- offers and answers ----------------------------------------------------------------

    def record_offer(
        self, now_s: float, info_hash: str, offer_id: str, from_peer: str, to_peer: str
    ) -> None:
        key = (info_hash, to_peer, offer_id)
        self._pending.pop(key, None)
        self._pending[key] = (from_peer, now_s + self.limits.offer_ttl_s)

    def claim_answer(
        self,
        now_s: float,
        conn_id: str,
        info_hash: str,
        answerer: str,
        to_peer: str,
        offer_id: str,
    ) -> PeerRef:
        if self._owners.get(answerer) != conn_id:
            raise PeerIdTaken("answer from a peer_id not bound to this connection")
        key = (info_hash, answerer, offer_id)
        pending = self._pending.get(key)
        if pending is None or pending[0] != to_peer:
            raise UnknownOffer("no offer with this offer_id was relayed to you from to_peer_id")
        del self._pending[key]
        if pending[1] <= now_s:
            raise UnknownOffer("the offer has expired")
        target_conn = self._owners.get(to_peer)
        if target_conn is None:
            raise UnknownOffer("the offering peer has gone")
        swarm = self._swarms.get(info_hash)
        if swarm is not None:
            for a, b in ((answerer, to_peer), (to_peer, answerer)):
                peer = swarm.peers.get(a)
                if peer is not None:
                    peer.paired.pop(b, None)
                    peer.paired[b] = None
                    if len(peer.paired) > MAX_PAIRED_REMEMBERED:
                        peer.paired.pop(next(iter(peer.paired)))
        return PeerRef(to_peer, target_conn)

    # -- stats ----------------------------------------------------------------------------

    def record_stats(
        self, now_s: float, conn_id: str, info_hash: str, peer_id: str, totals: ByteTotals
    ) -> None:
        self._check_owner(conn_id, peer_id)
        swarm = self._swarms.get(info_hash)
        peer = swarm.peers.get(peer_id) if swarm is not None else None
        if swarm is None or peer is None or peer.conn_id != conn_id:
            raise NotInSwarm("announce to the swarm before sending stats")
        old = peer.bytes
        # Counters are cumulative; a decrease means the client restarted them: keep what was
        # counted so far so the swarm total never goes backwards.
        swarm.retired_bytes = swarm.retired_bytes + ByteTotals(
            old.p2p_down if totals.p2p_down < old.p2p_down else 0,
            old.p2p_up if totals.p2p_up < old.p2p_up else 0,
            old.cdn if totals.cdn < old.cdn else 0,
        )
        peer.bytes = totals

    # -- queries --------------------------------------------------------------------------

    def scrape(self, info_hashes: Iterable[str]) -> dict[str, SwarmCounts]:
        out: dict[str, SwarmCounts] = {}
        for info_hash in info_hashes:
            swarm = self._swarms.get(info_hash)
            out[info_hash] = swarm.counts() if swarm is not None else SwarmCounts(0, 0, 0)
        return out

    def swarm_ids(self, limit: int) -> list[str]:
        out: list[str] = []
        for info_hash in self._swarms:
            if len(out) >= limit:
                break
            out.append(info_hash)
        return out

    def snapshot(self, now_s: float, max_swarms: int, max_peers: int) -> list[SwarmSnapshot]:
        if max_swarms < 0 or max_peers < 0:
            raise UsageError("limits must be >= 0")
        out: list[SwarmSnapshot] = []
        for swarm in list(self._swarms.values())[:max_swarms]:
            peers = tuple(
                PeerSnapshot(
                    p.peer_id, p.seeding, p.hints, max(0.0, now_s - p.last_seen_s), p.bytes
                )
                for p in list(swarm.peers.values())[:max_peers]
            )
            out.append(SwarmSnapshot(swarm.info_hash, swarm.counts(), swarm.byte_totals(), peers))
        return out

    def peer_count(self) -> int:
        return self._peer_total

    def swarm_count(self) -> int:
        return len(self._swarms)

    def pending_offer_count(self) -> int:
        return len(self._pending)

    # -- removal --------------------------------------------------------------------------

    def _remove_peer(self, swarm: _Swarm, peer_id: str) -> None:
        peer = swarm.peers.pop(peer_id)
        swarm.retired_bytes = swarm.retired_bytes + peer.bytes
        self._by_seen.pop((swarm.info_hash, peer_id), None)
        members = self._conn_members.get(peer.conn_id)
        if members is not None:
            members.discard((swarm.info_hash, peer_id))
        self._peer_total -= 1

    def _drop_if_empty(self, info_hash: str) -> None:
        swarm = self._swarms.get(info_hash)
        if swarm is not None and not swarm.peers:
            del self._swarms[info_hash]

    def drop_connection(self, conn_id: str) -> int:
        removed = 0
        for info_hash, peer_id in self._conn_members.pop(conn_id, set()):
            swarm = self._swarms.get(info_hash)
            if swarm is not None and peer_id in swarm.peers:
                self._remove_peer(swarm, peer_id)
                self._drop_if_empty(info_hash)
                removed += 1
        for peer_id in self._conn_peer_ids.pop(conn_id, set()):
            if self._owners.get(peer_id) == conn_id:
                del self._owners[peer_id]
        return removed

    def expire(self, now_s: float) -> ExpiryResult:
        gone: list[tuple[str, str]] = []
        deadline_s = now_s - self.limits.peer_ttl_s
        while self._by_seen:
            info_hash, peer_id = next(iter(self._by_seen))
            swarm = self._swarms.get(info_hash)
            peer = swarm.peers.get(peer_id) if swarm is not None else None
            if swarm is None or peer is None:
                self._by_seen.popitem(last=False)
                continue
            if peer.last_seen_s > deadline_s:
                break
            self._remove_peer(swarm, peer_id)
            self._drop_if_empty(info_hash)
            gone.append((info_hash, peer_id))
        offers = 0
        while self._pending:
            key, pending = next(iter(self._pending.items()))
            if pending[1] > now_s:
                break
            del self._pending[key]
            offers += 1
        return ExpiryResult(tuple(gone), offers)
