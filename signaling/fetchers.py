"""Swarm-wide choice of the peers that fetch new segments from the CDN (docs/signaling.md,
"Fetcher assignment").

Pure: no sockets, no clock reads (``now_s`` monotonic and ``wall_s`` Unix seconds are passed
in), no global random. :func:`pick_fetchers` is deterministic given the members, their
capacities, a seed and the time slot, so every process of a cluster that sees the same members
picks the same fetchers. :class:`FetcherBoard` holds, per swarm, the lists last picked and the
local connections to tell, and says what to send; :mod:`signaling.service` drives it.

Only our own clients take part: a member whose announce ``caps`` hold ``"fetchers"`` is told
the assignment and may be picked; ``"uplink:<bytes per second>"`` in its caps is its claimed
upload capacity, and a claim of ``uplink:0`` (a leech-only client, or one whose uplink cannot
carry the stream: docs/scheduling.md, "Upload fan-out") is told the assignment but never picked.
Standard WebTorrent clients send neither and never see the message.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from signaling.pairing import PeerHints

#: The cap our clients announce: they understand the ``fetchers`` message and may fetch.
FETCHERS_CAP = "fetchers"
#: Claimed upload capacity: ``"uplink:<decimal bytes per second>"`` (1..12 digits).
UPLINK_CAP_PREFIX = "uplink:"
MAX_UPLINK_DIGITS = 12


@dataclass(frozen=True)
class FetcherConfig:
    """What the server picks and sends (defaults documented in docs/signaling.md)."""

    #: Fetchers listed per swarm (per region): one per segment, the rest its backups in turn.
    #: 0 turns the assignment off (clients then elect locally).
    count: int = 4
    #: A claimed uplink at least this (bytes/s) ranks before members that claim less or none.
    min_uplink_bytes_per_s: int = 250_000
    #: The picks rotate every ``slot_s`` of wall-clock time (processes share it).
    slot_s: float = 600.0
    #: Shared by every process of a cluster; a secret one stops anyone predicting picks.
    seed: str = "p2p-hls fetchers/1"
    #: Distinct regions given their own fetchers per swarm; members of further regions (the
    #: smallest) share the region-less list.
    max_regions_per_swarm: int = 8
    #: A swarm's lists are picked again at most this often (each pick reads every member).
    refresh_s: float = 2.0
    #: Clients hold an assignment this long after receiving it (``valid_s`` in the message).
    valid_s: float = 300.0


def parse_uplink(cap: str) -> int | None:
    """The bytes/s of an ``uplink:`` cap, or ``None`` when ``cap`` is not one. Raises
    :class:`ValueError` for an ``uplink:`` cap that is not 1..12 decimal digits."""
    if not cap.startswith(UPLINK_CAP_PREFIX):
        return None
    digits = cap[len(UPLINK_CAP_PREFIX) :]
    if not 0 < len(digits) <= MAX_UPLINK_DIGITS or not digits.isascii() or not digits.isdigit():
        raise ValueError(f"{UPLINK_CAP_PREFIX}<bytes per second> takes 1..12 decimal digits")
    return int(digits)


def takes_part(hints: PeerHints) -> bool:
    return FETCHERS_CAP in hints.caps


def uplink_of(hints: PeerHints) -> int | None:
    """Claimed uplink in bytes/s (``None`` when none; caps were validated on the way in)."""
    for cap in hints.caps:
        if cap.startswith(UPLINK_CAP_PREFIX):
            try:
                return parse_uplink(cap)
            except ValueError:
                return None
    return None


def slot_of(wall_s: float, slot_s: float) -> int:
    return math.floor(wall_s / slot_s)


def fetcher_key(seed: str, slot: int, info_hash: str, peer_id: str) -> bytes:
    """Keyed hash ordering the members of one swarm in one slot: BLAKE2b-64 of the peer_id
    under SHA-256(``"<seed>/<slot>/<info_hash>"``). Without the seed nobody can grind peer_ids
    to come first."""
    key = hashlib.sha256(f"{seed}/{slot}/".encode() + info_hash.encode("latin-1")).digest()
    return hashlib.blake2b(peer_id.encode("latin-1"), key=key, digest_size=8).digest()


@dataclass(frozen=True)
class Member:
    """What the pick needs of one swarm member."""

    peer_id: str
    region: str | None
    #: Claimed uplink (``None``: no claim; 0: it uploads nothing and is never picked).
    uplink_bytes_per_s: int | None


def members_of(candidates: Iterable[tuple[str, PeerHints]]) -> Iterator[Member]:
    """The members that take part (``fetchers`` in their caps)."""
    for peer_id, hints in candidates:
        if takes_part(hints):
            yield Member(peer_id, hints.region, uplink_of(hints))


def pick_fetchers(
    members: Iterable[Member],
    info_hash: str,
    *,
    config: FetcherConfig,
    slot: int,
    exclude: frozenset[str] = frozenset(),
) -> dict[str, tuple[str, ...]]:
    """Per region (``""``: members without one, and those of regions beyond
    ``max_regions_per_swarm``), the ``count`` members ranked first by: a claimed uplink of at
    least ``min_uplink_bytes_per_s`` first, then :func:`fetcher_key`, then peer_id. A claim
    above the threshold ranks no better than the threshold: nobody wins by claiming more.
    Members claiming an uplink of 0 (they upload nothing) are never picked."""
    groups: dict[str, list[tuple[int, bytes, str]]] = {}
    for m in members:
        uplink = m.uplink_bytes_per_s
        if m.peer_id in exclude or uplink == 0:
            continue
        tier = 0 if uplink is not None and uplink >= config.min_uplink_bytes_per_s else 1
        entry = (tier, fetcher_key(config.seed, slot, info_hash, m.peer_id), m.peer_id)
        groups.setdefault(m.region or "", []).append(entry)
    named = sorted((r for r in groups if r), key=lambda r: (-len(groups[r]), r))
    keep = config.max_regions_per_swarm - (1 if "" in groups else 0)
    for region in named[max(0, keep) :]:
        groups.setdefault("", []).extend(groups.pop(region))
    return {
        region: tuple(e[2] for e in heapq.nsmallest(config.count, entries))
        for region, entries in groups.items()
    }


@dataclass
class _SwarmState:
    slot: int = -1
    picked_s: float = -math.inf
    lists: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: What subscribers of each region were last told in a push.
    pushed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: (conn_id, peer_id) -> region of local members that take part.
    subscribers: dict[tuple[str, str], str] = field(default_factory=dict)


class FetcherBoard:
    """Per swarm: the lists last picked and this process's members to tell. What it holds is
    bounded by membership: one entry per local member that takes part (a connection holds at
    most ``max_swarms_per_connection`` memberships) and at most ``max_regions_per_swarm``
    lists of ``count`` peer_ids per swarm."""

    def __init__(self, config: FetcherConfig) -> None:
        self.config = config
        self._swarms: dict[str, _SwarmState] = {}
        self._by_conn: dict[str, set[tuple[str, str]]] = {}
        #: Picks made (each reads every member of the swarm).
        self.picks = 0

    @property
    def enabled(self) -> bool:
        return self.config.count > 0

    def subscribe(self, info_hash: str, conn_id: str, peer_id: str, region: str | None) -> None:
        state = self._swarms.setdefault(info_hash, _SwarmState())
        state.subscribers[(conn_id, peer_id)] = region or ""
        self._by_conn.setdefault(conn_id, set()).add((info_hash, peer_id))

    def unsubscribe(self, info_hash: str, conn_id: str, peer_id: str) -> None:
        state = self._swarms.get(info_hash)
        if state is not None:
            state.subscribers.pop((conn_id, peer_id), None)
            if not state.subscribers:
                del self._swarms[info_hash]
        subs = self._by_conn.get(conn_id)
        if subs is not None:
            subs.discard((info_hash, peer_id))
            if not subs:
                del self._by_conn[conn_id]

    def drop_connection(self, conn_id: str) -> None:
        for info_hash, peer_id in list(self._by_conn.get(conn_id, ())):
            self.unsubscribe(info_hash, conn_id, peer_id)

    def subscribers(self, info_hash: str) -> list[tuple[str, str]]:
        state = self._swarms.get(info_hash)
        return list(state.subscribers) if state is not None else []

    def swarm_ids(self) -> list[str]:
        return list(self._swarms)

    def subscriber_count(self) -> int:
        return sum(len(s.subscribers) for s in self._swarms.values())

    def lists(
        self,
        info_hash: str,
        now_s: float,
        wall_s: float,
        members: Iterable[Member],
        exclude: frozenset[str] = frozenset(),
    ) -> tuple[int, dict[str, tuple[str, ...]]]:
        """The slot and lists of a swarm with subscribers, picked again when the slot changed
        or the last pick is older than ``refresh_s``."""
        state = self._swarms.setdefault(info_hash, _SwarmState())
        slot = slot_of(wall_s, self.config.slot_s)
        if slot != state.slot or now_s - state.picked_s >= self.config.refresh_s:
            state.lists = pick_fetchers(
                members, info_hash, config=self.config, slot=slot, exclude=exclude
            )
            state.slot = slot
            state.picked_s = now_s
            self.picks += 1
        return state.slot, state.lists

    @staticmethod
    def list_for(
        lists: dict[str, tuple[str, ...]], region: str | None
    ) -> tuple[str, tuple[str, ...]]:
        """The region whose list a member of ``region`` follows (its own, else ``""``), and
        that list."""
        group = region if region and region in lists else ""
        return group, lists.get(group, ())

    def changed(self, info_hash: str) -> list[tuple[str, tuple[str, ...], list[tuple[str, str]]]]:
        """Regions whose list differs from the last push, with the subscribers to tell
        (``(conn_id, peer_id)``); records them as pushed."""
        state = self._swarms.get(info_hash)
        if state is None:
            return []
        out = []
        audience: dict[str, list[tuple[str, str]]] = {}
        for sub, region in state.subscribers.items():
            group = region if region in state.lists else ""
            audience.setdefault(group, []).append(sub)
        for group, subs in audience.items():
            current = state.lists.get(group, ())
            if current and state.pushed.get(group) != current:
                state.pushed[group] = current
                out.append((group, current, subs))
        return out
