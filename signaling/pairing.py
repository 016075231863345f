"""Choice of offer targets. Pure: the caller passes candidates and a ``random.Random``.

Standard clients send no hints, so they are paired at random. Our own clients may send a playback
position, a region, a peer limit and the peers they are already connected to; then targets are
ranked by (same region, playback distance in buckets, random tie-break): spare capacity is not
preferred, so a newcomer meets random members of the whole swarm rather than the other recent
newcomers (which alone have free slots). Peers that either side reports as already connected
are skipped; so are full peers, except those that can make room (capability ``split``): for a
full one, the server *splits a link*: it picks one of its neighbours that can make room too and
relays one offer to each, with ``drop`` naming the other; both answer by closing their link to
each other, so the newcomer gains two links and nobody is left with a free slot (no cascade).
Peers the server recently paired with the offerer (it relayed an answer between them) come
last, not never, since their connection may have failed and standard clients report nothing.

The cost of one choice does not grow with the swarm: at most ``sample_limit`` candidates are
read, drawn by index from a :class:`CandidatePool` (any object with ``len`` and indexing), so the
caller never builds the list of every member. A large swarm is thus paired among a random sample
of it, ranked by the same preferences.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

POSITION_BUCKET_S = 10.0
_UNKNOWN_DISTANCE = 1e12
#: The capability (``caps``) of a client that answers ``drop`` offers when full.
SPLIT_CAP = "split"
#: Links split per announce at most (each takes two offers; announces carry at most 5).
MAX_SPLITS_PER_ANNOUNCE = 2
#: Neighbours of a full candidate examined for a split partner at most.
SPLIT_PARTNER_TRIES = 8


@dataclass(frozen=True, slots=True)
class PeerHints:
    """Optional announce fields sent by p2p-hls clients (absent for standard clients)."""

    position_s: float | None = None
    region: str | None = None
    max_peers: int | None = None
    caps: tuple[str, ...] = ()
    connected: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return (
            self.position_s is None
            and self.region is None
            and self.max_peers is None
            and not self.connected
        )

    def spare_slots(self) -> int | None:
        if self.max_peers is None:
            return None
        return self.max_peers - len(self.connected)

    @property
    def can_split(self) -> bool:
        return SPLIT_CAP in self.caps


NO_HINTS = PeerHints()


class Candidate(Protocol):
    @property
    def peer_id(self) -> str: ...

    @property
    def hints(self) -> PeerHints: ...

    @property
    def paired(self) -> Collection[str]: ...


class CandidatePool(Protocol):
    """Swarm members readable by position: ``len`` and ``pool[i]`` in O(1)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Candidate: ...


def _reported_connected(offerer_id: str, offerer_hints: PeerHints, cand: Candidate) -> bool:
    """Either side says (in its ``connected`` hint) that they are already connected."""
    return cand.peer_id in offerer_hints.connected or offerer_id in cand.hints.connected


def _recently_paired(offerer_id: str, offerer_paired: Collection[str], cand: Candidate) -> bool:
    """The server relayed an answer between them: probably connected, but it may have failed."""
    return cand.peer_id in offerer_paired or offerer_id in cand.paired


class Target(NamedTuple):
    """Relay one offer to ``peer_id``; with ``drop``, it closes its link to ``drop`` for it."""

    peer_id: str
    drop: str | None = None


def choose_targets(
    offerer_id: str,
    offerer_hints: PeerHints,
    offerer_paired: Collection[str],
    candidates: CandidatePool,
    count: int,
    rng: random.Random,
    *,
    sample_limit: int = 256,
    exclude: Collection[str] = frozenset(),
) -> list[str]:
    """:func:`choose_offer_targets` without splits: the peer_ids only."""
    got = choose_offer_targets(
        offerer_id,
        offerer_hints,
        offerer_paired,
        candidates,
        count,
        rng,
        sample_limit=sample_limit,
        exclude=exclude,
    )
    return [t.peer_id for t in got]


def _split_partner(
    offerer_id: str,
    offerer_hints: PeerHints,
    cand: Candidate,
    lookup: Callable[[str], Candidate | None],
    taken: set[str],
    exclude: Collection[str],
    rng: random.Random,
) -> Candidate | None:
    """A neighbour of the full ``cand`` whose link to it can be split for the offerer: a member
    that can make room, reports ``cand`` as connected (both ends agree on the link), is not
    the offerer, excluded, already chosen, or connected to the offerer."""
    linked = sorted(cand.hints.connected)
    tries = rng.sample(linked, min(SPLIT_PARTNER_TRIES, len(linked)))
    for pid in tries:
        if pid == offerer_id or pid in taken or pid in exclude:
            continue
        other = lookup(pid)
        if other is None or not other.hints.can_split:
            continue
        if cand.peer_id not in other.hints.connected:
            continue
        if _reported_connected(offerer_id, offerer_hints, other):
            continue
        return other
    return None


def choose_offer_targets(
    offerer_id: str,
    offerer_hints: PeerHints,
    offerer_paired: Collection[str],
    candidates: CandidatePool,
    count: int,
    rng: random.Random,
    *,
    sample_limit: int = 256,
    exclude: Collection[str] = frozenset(),
    lookup: Callable[[str], Candidate | None] | None = None,
) -> list[Target]:
    """Return up to ``count`` targets (distinct peer_ids) to relay the offerer's offers to.

    Reads at most ``sample_limit`` entries of ``candidates`` (a uniform sample without
    replacement when there are more); skips the offerer, ``exclude`` (e.g. the offerer
    connection's other peer_ids) and repeated peer_ids. With ``lookup`` (a swarm member by
    peer_id) and an offerer that sent hints, full members that can make room are split
    (at most :data:`MAX_SPLITS_PER_ANNOUNCE` per call, two offers each).
    """
    size = len(candidates)
    if count <= 0 or size == 0:
        return []
    indices: Sequence[int] = range(size)
    if size > sample_limit:
        indices = rng.sample(range(size), sample_limit)  # O(sample_limit), no copy of the pool
    pool: list[Candidate] = []
    seen: set[str] = set()
    for i in indices:
        cand = candidates[i]
        if cand.peer_id in seen or cand.peer_id in exclude:
            continue
        seen.add(cand.peer_id)
        pool.append(cand)
    fresh: list[Candidate] = []
    paired: list[Candidate] = []
    any_hints = not offerer_hints.empty
    splitting = lookup is not None and not offerer_hints.empty
    for cand in pool:
        if cand.peer_id == offerer_id or _reported_connected(offerer_id, offerer_hints, cand):
            continue
        spare = cand.hints.spare_slots()
        if spare is not None and spare <= 0 and not (splitting and cand.hints.can_split):
            continue
        any_hints = any_hints or not cand.hints.empty
        if _recently_paired(offerer_id, offerer_paired, cand):
            paired.append(cand)
        else:
            fresh.append(cand)
    if not any_hints:
        picked = rng.sample(fresh, min(count, len(fresh)))
        if len(picked) < count and paired:
            picked += rng.sample(paired, min(count - len(picked), len(paired)))
        return [Target(c.peer_id) for c in picked]

    def key(cand: Candidate) -> tuple[int, int, float, float]:
        region_penalty = 0
        if offerer_hints.region is not None and cand.hints.region != offerer_hints.region:
            region_penalty = 1
        if offerer_hints.position_s is not None and cand.hints.position_s is not None:
            distance = abs(offerer_hints.position_s - cand.hints.position_s) // POSITION_BUCKET_S
        else:
            distance = _UNKNOWN_DISTANCE
        paired_rank = 1 if _recently_paired(offerer_id, offerer_paired, cand) else 0
        return (paired_rank, region_penalty, distance, rng.random())

    ranked = sorted(fresh + paired, key=key)
    out: list[Target] = []
    taken: set[str] = set()
    splits = 0
    for cand in ranked:
        left = count - len(out)
        if left <= 0:
            break
        if cand.peer_id in taken:
            continue
        spare = cand.hints.spare_slots()
        if spare is None or spare > 0:
            out.append(Target(cand.peer_id))
            taken.add(cand.peer_id)
            continue
        if lookup is None or left < 2 or splits >= MAX_SPLITS_PER_ANNOUNCE:
            continue
        other = _split_partner(offerer_id, offerer_hints, cand, lookup, taken, exclude, rng)
        if other is None:
            continue
        out.append(Target(cand.peer_id, drop=other.peer_id))
        out.append(Target(other.peer_id, drop=cand.peer_id))
        taken.update((cand.peer_id, other.peer_id))
        splits += 1
    return out
