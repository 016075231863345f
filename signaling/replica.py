"""Swarm members held by *other* signaling processes, as this process last heard of them.

Pure: no Redis, no clock reads (``now_s`` is passed in). The Redis adapter
(:mod:`signaling.cluster`) feeds it the records other processes publish; the registry
(:class:`signaling.registry.InMemorySwarmRegistry`) reads it when pairing, counting, checking
peer_id bindings and listing swarms, so the same rules and limits apply to peers wherever they
are connected.

Records travel as small JSON objects (:func:`encode_record` / :func:`decode_record`). A record
that is not refreshed within ``peer_ttl_s`` is dropped, as are all records of a process that
stops its heartbeat.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from signaling.pairing import PeerHints


@dataclass(frozen=True)
class ByteTotals:
    """Cumulative byte counters reported by peers (``stats`` messages)."""

    p2p_down: int = 0
    p2p_up: int = 0
    cdn: int = 0

    def __add__(self, other: ByteTotals) -> ByteTotals:
        return ByteTotals(
            self.p2p_down + other.p2p_down, self.p2p_up + other.p2p_up, self.cdn + other.cdn
        )


@dataclass(frozen=True)
class PeerRecord:
    """One swarm member as its own process publishes it, with that process's swarm aggregates."""

    info_hash: str
    peer_id: str
    conn_id: str
    seeding: bool
    hints: PeerHints
    bytes: ByteTotals
    swarm_downloaded: int = 0  # completions counted by the publishing process in this swarm
    swarm_retired: ByteTotals = ByteTotals()  # bytes of peers that left it on that process
    parked: bool = False  # joined an empty-looking swarm and holds parked offers (parking.py)


@dataclass(frozen=True)
class MemberChange:
    """A change to this process's own membership, to publish: ``up`` carries the new record,
    ``down`` the peer that left (with the swarm aggregates that remain), ``unbind`` a peer_id
    released by a closed connection."""

    kind: str  # "up" | "down" | "unbind"
    info_hash: str
    peer_id: str
    conn_id: str
    record: PeerRecord | None = None
    swarm_downloaded: int = 0
    swarm_retired: ByteTotals = ByteTotals()


class BadRecord(ValueError):
    """A record from another process that cannot be decoded (version skew or corruption)."""


def node_of(conn_id: str) -> str:
    """Connection ids are ``<node_id>-<n>``: the process that owns the socket."""
    return conn_id.rsplit("-", 1)[0]


def _totals(value: Any) -> ByteTotals:
    if not isinstance(value, list) or len(value) != 3:
        raise BadRecord("totals must be a list of 3 ints")
    if not all(isinstance(v, int) and v >= 0 for v in value):
        raise BadRecord("totals must be non-negative ints")
    return ByteTotals(value[0], value[1], value[2])


def encode_record(rec: PeerRecord) -> str:
    h = rec.hints
    obj: dict[str, Any] = {
        "ih": rec.info_hash,
        "p": rec.peer_id,
        "c": rec.conn_id,
        "s": 1 if rec.seeding else 0,
        "b": [rec.bytes.p2p_down, rec.bytes.p2p_up, rec.bytes.cdn],
        "d": rec.swarm_downloaded,
        "r": [rec.swarm_retired.p2p_down, rec.swarm_retired.p2p_up, rec.swarm_retired.cdn],
    }
    if h.position_s is not None:
        obj["pos"] = h.position_s
    if h.region is not None:
        obj["reg"] = h.region
    if h.max_peers is not None:
        obj["max"] = h.max_peers
    if h.caps:
        obj["caps"] = list(h.caps)
    if h.connected:
        obj["con"] = sorted(h.connected)
    if rec.parked:
        obj["pk"] = 1
    return json.dumps(obj, separators=(",", ":"))


def decode_record(text: str | bytes) -> PeerRecord:
    try:
        obj = json.loads(text)
        hints = PeerHints(
            position_s=obj.get("pos"),
            region=obj.get("reg"),
            max_peers=obj.get("max"),
            caps=tuple(obj.get("caps", ())),
            connected=frozenset(obj.get("con", ())),
        )
        rec = PeerRecord(
            info_hash=obj["ih"],
            peer_id=obj["p"],
            conn_id=obj["c"],
            seeding=bool(obj["s"]),
            hints=hints,
            bytes=_totals(obj["b"]),
            swarm_downloaded=int(obj.get("d", 0)),
            swarm_retired=_totals(obj.get("r", [0, 0, 0])),
            parked=obj.get("pk") == 1,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadRecord(f"undecodable peer record: {type(exc).__name__}") from exc
    for name in ("info_hash", "peer_id", "conn_id"):
        if not isinstance(getattr(rec, name), str):
            raise BadRecord(f"{name} must be a string")
    return rec


def record_field(info_hash: str, peer_id: str) -> str:
    """Hash field name for a member: both ids as hex, so Redis keys stay ASCII."""
    return info_hash.encode("latin-1").hex() + ":" + peer_id.encode("latin-1").hex()


@dataclass
class RemotePeer:
    """A member connected to another process. Satisfies ``pairing.Candidate``."""

    peer_id: str
    info_hash: str
    node_id: str
    conn_id: str
    seeding: bool
    hints: PeerHints
    bytes: ByteTotals
    seen_s: float
    expires_s: float
    paired: tuple[str, ...] = field(default=())  # kept by the peer's own process
    slot: int = field(default=-1, compare=False)  # position in its swarm's sampling list


class RemoteMembers:
    """Members of every swarm held by other processes. All operations are O(1) per record,
    except :meth:`drop_node` and :meth:`expire` (O(records of that node / expired))."""

    def __init__(self, peer_ttl_s: float) -> None:
        self.peer_ttl_s = peer_ttl_s
        self._swarms: dict[str, dict[str, RemotePeer]] = {}
        # The same members per swarm in a list, for O(1) sampling by position (swap-remove).
        self._order: dict[str, list[RemotePeer]] = {}
        self._owners: dict[str, str] = {}  # peer_id -> conn_id
        self._owner_refs: dict[str, int] = {}  # peer_id -> records holding it
        self._by_node: dict[str, set[tuple[str, str]]] = {}
        self._aggs: dict[
            str, dict[str, tuple[int, ByteTotals]]
        ] = {}  # info_hash -> node -> aggregates
        self._node_counts: dict[tuple[str, str], int] = {}  # (info_hash, node) -> members
        self._complete: dict[str, int] = {}
        self._count = 0

    # -- updates -------------------------------------------------------------------------------

    def upsert(self, now_s: float, node_id: str, rec: PeerRecord) -> None:
        swarm = self._swarms.setdefault(rec.info_hash, {})
        old = swarm.get(rec.peer_id)
        if old is not None and old.conn_id != rec.conn_id:
            self._remove(rec.info_hash, rec.peer_id)
            swarm = self._swarms.setdefault(rec.info_hash, {})
            old = None
        if old is None:
            self._count += 1
            self._owner_refs[rec.peer_id] = self._owner_refs.get(rec.peer_id, 0) + 1
            self._by_node.setdefault(node_id, set()).add((rec.info_hash, rec.peer_id))
            key = (rec.info_hash, node_id)
            self._node_counts[key] = self._node_counts.get(key, 0) + 1
        elif old.seeding:
            self._complete[rec.info_hash] -= 1
        if rec.seeding:
            self._complete[rec.info_hash] = self._complete.get(rec.info_hash, 0) + 1
        self._owners[rec.peer_id] = rec.conn_id
        order = self._order.setdefault(rec.info_hash, [])
        peer = swarm[rec.peer_id] = RemotePeer(
            rec.peer_id,
            rec.info_hash,
            node_id,
            rec.conn_id,
            rec.seeding,
            rec.hints,
            rec.bytes,
            now_s,
            now_s + self.peer_ttl_s,
        )
        if old is None:
            peer.slot = len(order)
            order.append(peer)
        else:
            peer.slot = old.slot
            order[old.slot] = peer
        self._aggs.setdefault(rec.info_hash, {})[node_id] = (
            rec.swarm_downloaded,
            rec.swarm_retired,
        )

    def remove(
        self,
        node_id: str,
        info_hash: str,
        peer_id: str,
        swarm_downloaded: int = 0,
        swarm_retired: ByteTotals = ByteTotals(),  # noqa: B008 (frozen, immutable)
    ) -> bool:
        peer = self._swarms.get(info_hash, {}).get(peer_id)
        if peer is None or peer.node_id != node_id:
            return False
        self._remove(info_hash, peer_id)
        per_node = self._aggs.get(info_hash)
        if per_node is not None and node_id in per_node:
            per_node[node_id] = (swarm_downloaded, swarm_retired)
        return True

    def _remove(self, info_hash: str, peer_id: str) -> None:
        swarm = self._swarms[info_hash]
        peer = swarm.pop(peer_id)
        order = self._order[info_hash]
        last = order.pop()
        if last is not peer:
            last.slot = peer.slot
            order[peer.slot] = last
        self._count -= 1
        if peer.seeding:
            self._complete[info_hash] -= 1
        refs = self._owner_refs[peer_id] - 1
        if refs:
            self._owner_refs[peer_id] = refs
        else:
            del self._owner_refs[peer_id]
            self._owners.pop(peer_id, None)
        members = self._by_node.get(peer.node_id)
        if members is not None:
            members.discard((info_hash, peer_id))
            if not members:
                del self._by_node[peer.node_id]
        key = (info_hash, peer.node_id)
        left = self._node_counts[key] - 1
        if left:
            self._node_counts[key] = left
        else:
            del self._node_counts[key]
            per_node = self._aggs.get(info_hash)
            if per_node is not None:
                per_node.pop(peer.node_id, None)
                if not per_node:
                    del self._aggs[info_hash]
        if not swarm:
            del self._swarms[info_hash]
            del self._order[info_hash]
            self._complete.pop(info_hash, None)

    def forget_peer_id(self, peer_id: str) -> int:
        """Drop every record of ``peer_id`` (it was taken over by a connection of ours)."""
        gone = [(ih, pid) for ih, swarm in self._swarms.items() for pid in swarm if pid == peer_id]
        for ih, pid in gone:
            self._remove(ih, pid)
        return len(gone)

    def drop_node(self, node_id: str) -> int:
        members = list(self._by_node.get(node_id, ()))
        for info_hash, peer_id in members:
            self._remove(info_hash, peer_id)
        self._by_node.pop(node_id, None)
        for info_hash in [ih for ih, per_node in self._aggs.items() if node_id in per_node]:
            del self._aggs[info_hash][node_id]
            if not self._aggs[info_hash]:
                del self._aggs[info_hash]
        return len(members)

    def replace_node(self, now_s: float, node_id: str, records: Iterable[PeerRecord]) -> int:
        self.drop_node(node_id)
        n = 0
        for rec in records:
            if node_of(rec.conn_id) == node_id:
                self.upsert(now_s, node_id, rec)
                n += 1
        return n

    def clear(self) -> None:
        self.__init__(self.peer_ttl_s)  # type: ignore[misc]

    def expire(self, now_s: float) -> int:
        gone = [
            (p.info_hash, p.peer_id)
            for swarm in self._swarms.values()
            for p in swarm.values()
            if p.expires_s <= now_s
        ]
        for info_hash, peer_id in gone:
            self._remove(info_hash, peer_id)
        return len(gone)

    # -- queries -------------------------------------------------------------------------------

    def owner_conn(self, peer_id: str) -> str | None:
        return self._owners.get(peer_id)

    def has(self, info_hash: str, peer_id: str) -> bool:
        return peer_id in self._swarms.get(info_hash, {})

    def members(self, info_hash: str) -> list[RemotePeer]:
        swarm = self._swarms.get(info_hash)
        return list(swarm.values()) if swarm else []

    def sequence(self, info_hash: str) -> Sequence[RemotePeer]:
        """The swarm's members readable by position, without a copy (for sampling)."""
        return self._order.get(info_hash, ())

    def get(self, info_hash: str, peer_id: str) -> RemotePeer | None:
        return self._swarms.get(info_hash, {}).get(peer_id)

    def size(self, info_hash: str) -> int:
        swarm = self._swarms.get(info_hash)
        return len(swarm) if swarm else 0

    def complete(self, info_hash: str) -> int:
        return self._complete.get(info_hash, 0)

    def aggregates(self, info_hash: str) -> tuple[int, ByteTotals]:
        """Completions and departed peers' bytes counted by other processes in this swarm."""
        downloaded = 0
        d, u, c = 0, 0, 0
        for dl, ret in self._aggs.get(info_hash, {}).values():
            downloaded += dl
            d, u, c = d + ret.p2p_down, u + ret.p2p_up, c + ret.cdn
        return downloaded, ByteTotals(d, u, c)

    def swarm_ids(self) -> Iterator[str]:
        return iter(self._swarms)

    def peer_count(self) -> int:
        return self._count

    def nodes(self) -> set[str]:
        return set(self._by_node)
