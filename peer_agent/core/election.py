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


#: Election keys kept, per segment, at most this many in all; past it the segments first asked
#: about go first. A live swarm elects for its newest few segments, each among all its viewers:
#: at 100,000 simulated viewers that outgrew an LRU of 65,536 (peer, segment) pairs, which then
#: missed on nearly every key (issue 16). About 16 MiB when full.
KEY_CACHE_MAX = 1 << 17
_keys: dict[SegmentId, dict[str, tuple[int, str]]] = {}
_keys_held = 0


def election_key(peer_id: str, segment: SegmentId) -> tuple[int, str]:
    """The sort key of ``peer_id`` in the election for ``segment``."""
    global _keys_held
    keys = _keys.get(segment)
    if keys is None:
        keys = _keys[segment] = {}
    else:
        key = keys.get(peer_id)
        if key is not None:
            return key
    suffix = f"{segment.rendition}/{segment.sequence}".encode()
    key = keys[peer_id] = (fnv1a32(suffix, _peer_prefix_hash(peer_id)), peer_id)
    _keys_held += 1
    if _keys_held > KEY_CACHE_MAX:
        while _keys and _keys_held > KEY_CACHE_MAX // 2:
            _keys_held -= len(_keys.pop(next(iter(_keys))))
    return key


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
