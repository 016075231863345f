"""Swarm registry: who is in which swarm, bound to which connection, with which pending offers.

Pure state: no asyncio, no sockets, no clock reads. Time comes in as ``now_s`` (monotonic
seconds) and randomness from the ``random.Random`` given to the constructor. The registry names
connections by opaque ``conn_id`` strings; which socket a ``conn_id`` is, and how a message gets
there, is the router's business (:mod:`signaling.router`). :class:`SwarmRegistry` (in
:mod:`signaling.registry_api`, re-exported here) is the interface; :class:`InMemorySwarmRegistry`
implements it, alone or with a replica of other processes' members (scale-out).
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from signaling.errors import (
    NotInSwarm,
    PeerIdTaken,
    SwarmFull,
    TooManySwarms,
    UnknownOffer,
    UsageError,
)
from signaling.pairing import NO_HINTS, Candidate, PeerHints, choose_offer_targets
from signaling.registry_api import (
    AnnounceResult,
    Event,
    ExpiryResult,
    PeerRef,
    PeerSnapshot,
    RegistryLimits,
    SwarmCounts,
    SwarmRegistry,
    SwarmSnapshot,
)
from signaling.replica import ByteTotals, MemberChange, PeerRecord, RemoteMembers

__all__ = [
    "AnnounceResult",
    "ByteTotals",
    "Event",
    "ExpiryResult",
    "InMemorySwarmRegistry",
    "PeerRef",
    "PeerSnapshot",
    "RegistryLimits",
    "SwarmCounts",
    "SwarmRegistry",
    "SwarmSnapshot",
]

MAX_PAIRED_REMEMBERED = 256


@dataclass(eq=False, slots=True)
class _Peer:
    peer_id: str
    info_hash: str
    conn_id: str
    last_seen_s: float
    seeding: bool = False
    hints: PeerHints = NO_HINTS
    paired: dict[str, None] = field(default_factory=dict)
    bytes: ByteTotals = field(default_factory=ByteTotals)
    slot: int = -1  # position in its swarm's ``members`` list


@dataclass
class _Swarm:
    """One swarm's local members: by peer_id, and in a list for O(1) sampling by position
    (removal swaps the last member into the hole). ``complete`` counts seeders as they change,
    so counting a swarm of any size is O(1)."""

    info_hash: str
    peers: dict[str, _Peer] = field(default_factory=dict)
    members: list[_Peer] = field(default_factory=list)
    complete: int = 0
    downloaded: int = 0
    retired_bytes: ByteTotals = field(default_factory=ByteTotals)

    def add(self, peer: _Peer) -> None:
        peer.slot = len(self.members)
        self.members.append(peer)
        self.peers[peer.peer_id] = peer
        if peer.seeding:
            self.complete += 1

    def remove(self, peer_id: str) -> _Peer:
        peer = self.peers.pop(peer_id)
        last = self.members.pop()
        if last is not peer:
            last.slot = peer.slot
            self.members[peer.slot] = last
        if peer.seeding:
            self.complete -= 1
        return peer

    def set_seeding(self, peer: _Peer, seeding: bool) -> None:
        if seeding != peer.seeding:
            self.complete += 1 if seeding else -1
            peer.seeding = seeding

    def counts(self) -> SwarmCounts:
        return SwarmCounts(self.complete, len(self.peers) - self.complete, self.downloaded)

    def byte_totals(self) -> ByteTotals:
        total = self.retired_bytes
        for peer in self.peers.values():
            total = total + peer.bytes
        return total


class _CandidateView:
    """This swarm's local members then the other processes' (scale-out), readable by position
    without copying either: what pairing samples from. Counts the entries read."""

    __slots__ = ("_local", "_remote", "read")

    def __init__(self, local: list[_Peer], remote: Sequence[Candidate]) -> None:
        self._local = local
        self._remote = remote
        self.read = 0

    def __len__(self) -> int:
        return len(self._local) + len(self._remote)

    def __getitem__(self, index: int) -> Candidate:
        self.read += 1
        n = len(self._local)
        return self._local[index] if index < n else self._remote[index - n]


# A pending offer is a plain (from_peer, expires_s) tuple, not an object: tens of thousands live
# for offer_ttl_s, and CPython's GC stops tracking tuples of strings and floats, so they do not
# drive full collections (which pause the loop for ~1 s with 10k connections).
_PendingOffer = tuple[str, float]


class InMemorySwarmRegistry:
    """This process's swarm members. Every operation is O(1) except pairing (bounded by sampling).

    Alone, it is the whole truth. With ``remote`` (scale-out), members held by other processes
    join pairing, counts, limits, peer_id bindings and listings, under the same rules; with
    ``track_changes``, every change to this process's own members is logged for
    :meth:`drain_changes`, so an adapter can publish it.
    """

    def __init__(
        self,
        limits: RegistryLimits,
        rng: random.Random,
        *,
        remote: RemoteMembers | None = None,
        track_changes: bool = False,
    ) -> None:
        self.limits = limits
        self._rng = rng
        self.remote = remote
        self._changes: OrderedDict[tuple[str, str], tuple[str, str]] | None = (
            OrderedDict() if track_changes else None
        )
        self._unbound: list[tuple[str, str]] = []
        self._swarms: dict[str, _Swarm] = {}
        self._owners: dict[str, str] = {}  # peer_id -> conn_id
        self._conn_peer_ids: dict[str, set[str]] = {}
        self._conn_members: dict[str, set[tuple[str, str]]] = {}
        self._by_seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._pending: OrderedDict[tuple[str, str, str], _PendingOffer] = OrderedDict()
        self._peer_total = 0
        #: Swarm members read by pairing, in total (bounded per announce by the sample limit).
        self.pairing_candidates_read = 0

    # -- binding ---------------------------------------------------------------------------

    def owner_of(self, peer_id: str) -> str | None:
        return self._owners.get(peer_id)

    def member_hints(self, info_hash: str) -> Iterator[tuple[str, PeerHints]]:
        """Every member of a swarm (this process's, then the others'), with its hints: what
        the swarm-wide fetcher pick reads (:mod:`signaling.fetchers`)."""
        swarm = self._swarms.get(info_hash)
        if swarm is not None:
            for peer in swarm.members:
                yield peer.peer_id, peer.hints
        if self.remote is not None:
            for rp in self.remote.sequence(info_hash):
                yield rp.peer_id, rp.hints

    def _check_owner(self, conn_id: str, peer_id: str) -> None:
        owner = self._owners.get(peer_id)
        if owner is None and self.remote is not None:
            owner = self.remote.owner_conn(peer_id)
        if owner is not None and owner != conn_id:
            raise PeerIdTaken("peer_id is bound to another connection")

    def _note(self, kind: str, info_hash: str, peer_id: str, conn_id: str) -> None:
        if self._changes is not None:
            key = (info_hash, peer_id)
            self._changes.pop(key, None)
            self._changes[key] = (kind, conn_id)

    def _remote_size(self, info_hash: str) -> int:
        return self.remote.size(info_hash) if self.remote is not None else 0

    def _counts(self, info_hash: str) -> SwarmCounts:
        swarm = self._swarms.get(info_hash)
        counts = swarm.counts() if swarm is not None else SwarmCounts(0, 0, 0)
        if self.remote is None:
            return counts
        size = self.remote.size(info_hash)
        complete = self.remote.complete(info_hash)
        downloaded, _ = self.remote.aggregates(info_hash)
        return SwarmCounts(
            counts.complete + complete,
            counts.incomplete + size - complete,
            counts.downloaded + downloaded,
        )

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
        blocked: Collection[str] = frozenset(),
    ) -> AnnounceResult:
        self._check_owner(conn_id, peer_id)
        swarm = self._swarms.get(info_hash)
        if event == "stopped":
            left = False
            if swarm is not None and peer_id in swarm.peers:
                self._remove_peer(swarm, peer_id)
                left = True
            self._drop_if_empty(info_hash)
            return AnnounceResult(self._counts(info_hash), (), joined=False, left=left)

        joined = False
        peer = swarm.peers.get(peer_id) if swarm is not None else None
        if peer is None:
            members = self._conn_members.get(conn_id, set())
            if len(members) >= self.limits.max_swarms_per_connection:
                raise TooManySwarms(
                    f"at most {self.limits.max_swarms_per_connection} swarms per connection"
                )
            size = (len(swarm.peers) if swarm is not None else 0) + self._remote_size(info_hash)
            if size >= self.limits.max_peers_per_swarm:
                raise SwarmFull(
                    f"swarm is full: it holds max_peers_per_swarm = "
                    f"{self.limits.max_peers_per_swarm} peers (a server limit)"
                )
            self._bind(conn_id, peer_id)
            if swarm is None:
                swarm = self._swarms[info_hash] = _Swarm(info_hash)
            peer = _Peer(peer_id, info_hash, conn_id, now_s)
            swarm.add(peer)
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
            swarm.set_seeding(peer, True)
        elif seeding is not None:
            swarm.set_seeding(peer, seeding)
        self._note("up", info_hash, peer_id, conn_id)

        targets: tuple[PeerRef, ...] = ()
        remote_size = self._remote_size(info_hash)
        if want_targets > 0 and len(swarm.peers) + remote_size > 1:
            remote: Sequence[Candidate] = ()
            if remote_size and self.remote is not None:
                remote = self.remote.sequence(info_hash)
            view = _CandidateView(swarm.members, remote)
            chosen = choose_offer_targets(
                peer_id,
                hints,
                peer.paired,
                view,
                want_targets,
                self._rng,
                sample_limit=self.limits.pairing_sample_limit,
                exclude=self._conn_peer_ids.get(conn_id, frozenset()) | set(blocked)
                if blocked
                else self._conn_peer_ids.get(conn_id, frozenset()),
                lookup=lambda pid: self._member(info_hash, pid),
            )
            self.pairing_candidates_read += view.read
            targets = tuple(
                PeerRef(t.peer_id, self._conn_of(info_hash, t.peer_id), t.drop) for t in chosen
            )
        return AnnounceResult(self._counts(info_hash), targets, joined=joined, left=False)

    def _member(self, info_hash: str, peer_id: str) -> Candidate | None:
        """A member of the swarm by peer_id (local first, then remote), or None."""
        swarm = self._swarms.get(info_hash)
        local = swarm.peers.get(peer_id) if swarm is not None else None
        if local is not None:
            return local
        if self.remote is None:
            return None
        return self.remote.get(info_hash, peer_id)

    def _conn_of(self, info_hash: str, peer_id: str) -> str:
        """The connection of a member just chosen by pairing (local first, then remote)."""
        swarm = self._swarms.get(info_hash)
        local = swarm.peers.get(peer_id) if swarm is not None else None
        if local is not None:
            return local.conn_id
        assert self.remote is not None
        remote = self.remote.get(info_hash, peer_id)
        assert remote is not None
        return remote.conn_id

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
        if target_conn is None and self.remote is not None:
            target_conn = self.remote.owner_conn(to_peer)
        if target_conn is None:
            raise UnknownOffer("the offering peer has gone")
        self.note_paired(info_hash, answerer, to_peer)
        return PeerRef(to_peer, target_conn)

    def note_paired(self, info_hash: str, a: str, b: str) -> None:
        """The server relayed an answer between ``a`` and ``b``: remember it on local peers."""
        swarm = self._swarms.get(info_hash)
        if swarm is None:
            return
        for x, y in ((a, b), (b, a)):
            peer = swarm.peers.get(x)
            if peer is not None:
                peer.paired.pop(y, None)
                peer.paired[y] = None
                if len(peer.paired) > MAX_PAIRED_REMEMBERED:
                    peer.paired.pop(next(iter(peer.paired)))

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
        self._note("up", info_hash, peer_id, conn_id)

    # -- queries --------------------------------------------------------------------------

    def scrape(self, info_hashes: Iterable[str]) -> dict[str, SwarmCounts]:
        out: dict[str, SwarmCounts] = {}
        for info_hash in info_hashes:
            out[info_hash] = self._counts(info_hash)
        return out

    def _all_swarm_ids(self) -> Iterable[str]:
        yield from self._swarms
        if self.remote is not None:
            for info_hash in self.remote.swarm_ids():
                if info_hash not in self._swarms:
                    yield info_hash

    def swarm_ids(self, limit: int) -> list[str]:
        out: list[str] = []
        for info_hash in self._all_swarm_ids():
            if len(out) >= limit:
                break
            out.append(info_hash)
        return out

    def snapshot(self, now_s: float, max_swarms: int, max_peers: int) -> list[SwarmSnapshot]:
        if max_swarms < 0 or max_peers < 0:
            raise UsageError("limits must be >= 0")
        out: list[SwarmSnapshot] = []
        for info_hash in self.swarm_ids(max_swarms):
            swarm = self._swarms.get(info_hash)
            local = list(swarm.peers.values()) if swarm is not None else []
            peers = [
                PeerSnapshot(
                    p.peer_id, p.seeding, p.hints, max(0.0, now_s - p.last_seen_s), p.bytes
                )
                for p in local[:max_peers]
            ]
            totals = swarm.byte_totals() if swarm is not None else ByteTotals()
            if self.remote is not None:
                members = self.remote.members(info_hash)
                _, retired = self.remote.aggregates(info_hash)
                totals = totals + retired
                for rp in members:
                    totals = totals + rp.bytes
                for rp in members[: max(0, max_peers - len(peers))]:
                    idle_s = max(0.0, now_s - rp.seen_s)
                    peers.append(PeerSnapshot(rp.peer_id, rp.seeding, rp.hints, idle_s, rp.bytes))
            out.append(SwarmSnapshot(info_hash, self._counts(info_hash), totals, tuple(peers)))
        return out

    def peer_count(self) -> int:
        """Members of every swarm, this process's and (with scale-out) the others'."""
        return self._peer_total + (self.remote.peer_count() if self.remote is not None else 0)

    def swarm_count(self) -> int:
        if self.remote is None:
            return len(self._swarms)
        return sum(1 for _ in self._all_swarm_ids())

    def local_peer_count(self) -> int:
        """Members connected to this process."""
        return self._peer_total

    def local_swarm_count(self) -> int:
        return len(self._swarms)

    # -- change log (scale-out) ---------------------------------------------------------------

    def _record(self, swarm: _Swarm, peer: _Peer) -> PeerRecord:
        return PeerRecord(
            swarm.info_hash,
            peer.peer_id,
            peer.conn_id,
            peer.seeding,
            peer.hints,
            peer.bytes,
            swarm.downloaded,
            swarm.retired_bytes,
        )

    def drain_changes(self) -> list[MemberChange]:
        """Changes to this process's members since the last call (latest state per member)."""
        if self._changes is None:
            return []
        out: list[MemberChange] = []
        for (info_hash, peer_id), (kind, conn_id) in self._changes.items():
            swarm = self._swarms.get(info_hash)
            peer = swarm.peers.get(peer_id) if swarm is not None else None
            if kind == "up" and swarm is not None and peer is not None:
                rec = self._record(swarm, peer)
                out.append(MemberChange("up", info_hash, peer_id, peer.conn_id, rec))
            else:
                downloaded = swarm.downloaded if swarm is not None else 0
                retired = swarm.retired_bytes if swarm is not None else ByteTotals()
                out.append(
                    MemberChange("down", info_hash, peer_id, conn_id, None, downloaded, retired)
                )
        self._changes.clear()
        for peer_id, conn_id in self._unbound:
            out.append(MemberChange("unbind", "", peer_id, conn_id))
        self._unbound.clear()
        return out

    def local_records(self) -> list[PeerRecord]:
        """Every member of this process (to publish in full after a reconnect)."""
        return [self._record(s, p) for s in self._swarms.values() for p in s.peers.values()]

    def local_bindings(self) -> list[tuple[str, str]]:
        """(peer_id, conn_id) of every peer_id bound on this process."""
        return list(self._owners.items())

    def membership_count(self, conn_id: str) -> int:
        """Swarms the connection's peers are members of (per-address limits sum these)."""
        return len(self._conn_members.get(conn_id, ()))

    def is_member(self, conn_id: str, info_hash: str, peer_id: str) -> bool:
        return (info_hash, peer_id) in self._conn_members.get(conn_id, ())

    def pending_offer_count(self) -> int:
        return len(self._pending)

    # -- removal --------------------------------------------------------------------------

    def _remove_peer(self, swarm: _Swarm, peer_id: str) -> None:
        peer = swarm.remove(peer_id)
        swarm.retired_bytes = swarm.retired_bytes + peer.bytes
        self._by_seen.pop((swarm.info_hash, peer_id), None)
        members = self._conn_members.get(peer.conn_id)
        if members is not None:
            members.discard((swarm.info_hash, peer_id))
        self._peer_total -= 1
        self._note("down", swarm.info_hash, peer_id, peer.conn_id)

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
                if self._changes is not None:
                    self._unbound.append((peer_id, conn_id))
        return removed

    def release_peer_id(self, peer_id: str) -> str | None:
        """Unbind ``peer_id`` from its connection here and drop it from that connection's
        swarms (a keyed peer_id proven on another connection took it over). Returns the
        connection it was bound to, or None."""
        conn_id = self._owners.pop(peer_id, None)
        if conn_id is None:
            return None
        ids = self._conn_peer_ids.get(conn_id)
        if ids is not None:
            ids.discard(peer_id)
        mine = [m for m in self._conn_members.get(conn_id, ()) if m[1] == peer_id]
        for info_hash, pid in mine:
            swarm = self._swarms.get(info_hash)
            if swarm is not None and pid in swarm.peers:
                self._remove_peer(swarm, pid)
                self._drop_if_empty(info_hash)
        if self._changes is not None:
            self._unbound.append((peer_id, conn_id))
        return conn_id

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
        if self.remote is not None:
            self.remote.expire(now_s)
        return ExpiryResult(tuple(gone), offers)
