"""Deterministic election of the peer that fetches a new segment from the CDN.

Every peer ranks the candidates (itself and its neighbours watching close by) by
``fnv1a32(f"{peer_id}/{rendition}/{sequence}")``, lowest first; ties break on the peer id. All
neighbours compute the same ranking from the same inputs, so exactly one of them (rank 0) fetches
the segment from the CDN at once and the others take it from peers; rank k is the k-th backup.
The hash is FNV-1a (32 bit) over the UTF-8 key: cheap, and identical in Python and JavaScript
(see docs/scheduling.md and docs/vectors/scheduler/election.json).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from .ids import SegmentId

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def fnv1a32(data: bytes, h: int = _FNV_OFFSET) -> int:
    """FNV-1a (32 bit) of ``data``; ``h`` continues from the hash of a prefix."""
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h


@lru_cache(maxsize=1 << 18)
def _peer_prefix_hash(peer_id: str) -> int:
    """FNV-1a state after ``"<peer_id>/"``: FNV-1a is sequential, so a key is this state
    continued over ``"<rendition>/<sequence>"`` (the same hash, without rehashing the id)."""
    return fnv1a32(f"{peer_id}/".encode())


@lru_cache(maxsize=65536)
def election_key(peer_id: str, segment: SegmentId) -> tuple[int, str]:
    """The sort key of ``peer_id`` in the election for ``segment``."""
    suffix = f"{segment.rendition}/{segment.sequence}".encode()
    return fnv1a32(suffix, _peer_prefix_hash(peer_id)), peer_id


def rank_candidates(candidates: Iterable[str], segment: SegmentId) -> list[str]:
    """Candidates in election order: the fetcher first, then backups by rank."""
    return sorted(set(candidates), key=lambda peer_id: election_key(peer_id, segment))


def election_rank(self_id: str, candidates: Iterable[str], segment: SegmentId) -> int:
    """Rank of ``self_id`` among ``candidates`` (itself included whether listed or not)."""
    own = election_key(self_id, segment)
    return sum(
        1
        for peer_id in set(candidates)
        if peer_id != self_id and election_key(peer_id, segment) < own
    )
