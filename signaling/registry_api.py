"""The swarm registry's interface and the values it returns (frozen dataclasses).

:class:`SwarmRegistry` is what :mod:`signaling.service` needs from swarm state;
:class:`signaling.registry.InMemorySwarmRegistry` implements it (alone, or with the members of
other processes when scaled out over Redis).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

from signaling.pairing import PeerHints
from signaling.replica import ByteTotals, MemberChange

Event = Literal["started", "stopped", "completed", "update", "paused"]


@dataclass(frozen=True)
class RegistryLimits:
    peer_ttl_s: float = 300.0
    offer_ttl_s: float = 50.0
    max_swarms_per_connection: int = 20
    max_peers_per_swarm: int = 100_000
    pairing_sample_limit: int = 256


@dataclass(frozen=True)
class PeerRef:
    peer_id: str
    conn_id: str
    #: Pairing splits this target's link to ``drop`` (docs/signaling.md, "Making room").
    drop: str | None = None


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


class SwarmRegistry(Protocol):
    """What the service needs from swarm state. One implementation holds this process's peers;
    with scale-out it also reads the members other processes publish (``RemoteMembers``)."""

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
        blocked: Collection[str] = frozenset(),
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

    def note_paired(self, info_hash: str, a: str, b: str) -> None: ...

    def owner_of(self, peer_id: str) -> str | None: ...

    def member_hints(self, info_hash: str) -> Iterator[tuple[str, PeerHints]]: ...

    def scrape(self, info_hashes: Iterable[str]) -> dict[str, SwarmCounts]: ...

    def swarm_ids(self, limit: int) -> list[str]: ...

    def drop_connection(self, conn_id: str) -> int: ...

    def release_peer_id(self, peer_id: str) -> str | None: ...

    def membership_count(self, conn_id: str) -> int: ...

    def is_member(self, conn_id: str, info_hash: str, peer_id: str) -> bool: ...

    def expire(self, now_s: float) -> ExpiryResult: ...

    def snapshot(self, now_s: float, max_swarms: int, max_peers: int) -> list[SwarmSnapshot]: ...

    def peer_count(self) -> int: ...

    def swarm_count(self) -> int: ...

    def local_peer_count(self) -> int: ...

    def local_swarm_count(self) -> int: ...

    def drain_changes(self) -> list[MemberChange]: ...
