"""Choice of offer targets. Pure: the caller passes candidates and a ``random.Random``.

Standard clients send no hints, so they are paired at random. Our own clients may send a playback
position, a region, a peer limit and the peers they are already connected to; then targets are
ranked by (same region, playback distance in buckets, spare capacity, random tie-break). Peers
that are full, or that either side reports as already connected, are skipped; peers the server
recently paired with the offerer (it relayed an answer between them) come last, not never, since
their connection may have failed and standard clients report nothing.

The cost of one choice does not grow with the swarm: at most ``sample_limit`` candidates are
read, drawn by index from a :class:`CandidatePool` (any object with ``len`` and indexing), so the
caller never builds the list of every member. A large swarm is thus paired among a random sample
of it, ranked by the same preferences.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

POSITION_BUCKET_S = 10.0
_UNKNOWN_DISTANCE = 1e12


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
    """Return up to ``count`` distinct peer_ids to relay the offerer's offers to.

    Reads at most ``sample_limit`` entries of ``candidates`` (a uniform sample without
    replacement when there are more); skips the offerer, ``exclude`` (e.g. the offerer
    connection's other peer_ids) and repeated peer_ids.
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
    for cand in pool:
        if cand.peer_id == offerer_id or _reported_connected(offerer_id, offerer_hints, cand):
            continue
        spare = cand.hints.spare_slots()
        if spare is not None and spare <= 0:
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
        return [c.peer_id for c in picked]

    def key(cand: Candidate) -> tuple[int, int, float, float, float]:
        region_penalty = 0
        if offerer_hints.region is not None and cand.hints.region != offerer_hints.region:
            region_penalty = 1
        if offerer_hints.position_s is not None and cand.hints.position_s is not None:
            distance = abs(offerer_hints.position_s - cand.hints.position_s) // POSITION_BUCKET_S
        else:
            distance = _UNKNOWN_DISTANCE
        spare = cand.hints.spare_slots()
        spare_rank = -float(spare) if spare is not None else 0.0
        paired_rank = 1 if _recently_paired(offerer_id, offerer_paired, cand) else 0
        return (paired_rank, region_penalty, distance, spare_rank, rng.random())

    ranked = sorted(fresh + paired, key=key)
    return [c.peer_id for c in ranked[:count]]
