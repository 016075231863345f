"""The signaling server's swarm-wide fetcher assignment, as the simulator models it
(docs/signaling.md, "Fetcher assignment"; the server's code is ``signaling/fetchers.py``, which
``peer_agent`` may not import).

Per region, the ``count`` uploading viewers (not leech-only, which includes those with no upload
slot: docs/scheduling.md "Upload fan-out"; the server never picks a claimant of ``uplink:0``)
ranked first by: uplink of at least ``min_uplink_bytes_per_s`` first, then a fixed hash of the
peer_id (FNV-1a of ``"fetchers/<peer_id>"``; the server uses a keyed hash, any fair order does
here). Picked again
at most every ``refresh_s`` of simulated time, as the server does; every viewer hears the new
list at once (the server pushes it within a sweep interval).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Protocol

from ..core.election import fnv1a32


class _Member(Protocol):
    peer_id: str
    region: int
    uploads_allowed: bool
    uplink_bytes_per_s: float


class ServerFetchers:
    def __init__(
        self, count: int, refresh_s: float = 2.0, min_uplink_bytes_per_s: float = 250_000.0
    ) -> None:
        self.count = count
        self.refresh_s = refresh_s
        self.min_uplink_bytes_per_s = min_uplink_bytes_per_s
        self._picked_at = float("-inf")
        self._lists: dict[int, tuple[str, ...]] = {}
        self._keys: dict[str, int] = {}
        #: Picks made. Each reads every viewer: O(N) once per ``refresh_s`` of simulated time,
        #: about 15 ms at 33,000 viewers (0.2 % of such a run), so not kept incrementally.
        self.picks = 0

    def lists(self, now: float, viewers: Iterable[_Member]) -> dict[int, tuple[str, ...]]:
        if now - self._picked_at >= self.refresh_s:
            groups: dict[int, list[tuple[int, int, str]]] = {}
            for v in viewers:
                if not v.uploads_allowed:
                    continue
                key = self._keys.get(v.peer_id)
                if key is None:
                    key = self._keys[v.peer_id] = fnv1a32(f"fetchers/{v.peer_id}".encode())
                tier = 0 if v.uplink_bytes_per_s >= self.min_uplink_bytes_per_s else 1
                groups.setdefault(v.region, []).append((tier, key, v.peer_id))
            self._lists = {
                region: tuple(e[2] for e in heapq.nsmallest(self.count, entries))
                for region, entries in groups.items()
            }
            self._picked_at = now
            self.picks += 1
        return self._lists
