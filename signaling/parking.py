"""Offers parked by a peer that joined a swarm which looked empty (scale-out only).

Why: with several processes, two peers that join the same swarm at the same moment on two
processes each see an empty swarm (the other's "up" event is still on its way through Redis), so
their offers go nowhere and they meet only at the next re-announce (``interval``, 120 s). A peer
whose joining announce found fewer targets than it sent offers *parks* the unused offers here for
``join_park_s``; its published member record says so (``parked``). When a process learns of a
*new* member of another process whose record is parked too, the member with the smaller peer_id
hands it one parked offer, so exactly one side of each pair offers and no pair is linked twice.
A member that joined after seeing the other paired normally and is not parked.

Pure: no clock reads (``now_s`` comes in), no I/O. Bounded: at most ``max_bytes`` of SDP in
total, the oldest parked peer dropped first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from signaling.messages import Offer


@dataclass
class _Parked:
    conn_id: str
    offers: list[Offer]
    expires_s: float
    size_bytes: int


@dataclass(frozen=True)
class ParkedOffer:
    """One parked offer taken for a new member: who offers, on which connection."""

    info_hash: str
    peer_id: str
    conn_id: str
    offer: Offer


class ParkedOffers:
    def __init__(self, park_s: float, max_bytes: int) -> None:
        self.park_s = park_s
        self.max_bytes = max_bytes
        self._by_key: OrderedDict[tuple[str, str], _Parked] = OrderedDict()
        self._by_swarm: dict[str, set[str]] = {}
        self._bytes = 0
        self.evicted = 0  # parked peers dropped to stay within max_bytes

    def __len__(self) -> int:
        return len(self._by_key)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def is_parked(self, info_hash: str, peer_id: str) -> bool:
        return (info_hash, peer_id) in self._by_key

    def park(
        self, now_s: float, info_hash: str, peer_id: str, conn_id: str, offers: Iterable[Offer]
    ) -> bool:
        offers = list(offers)
        if not offers or self.park_s <= 0:
            return False
        size = sum(len(o.sdp) + len(o.offer_id) for o in offers)
        if size > self.max_bytes:
            return False
        self.drop(info_hash, peer_id)
        while self._bytes + size > self.max_bytes and self._by_key:
            (ih, pid), _ = next(iter(self._by_key.items()))
            self.drop(ih, pid)
            self.evicted += 1
        self._by_key[(info_hash, peer_id)] = _Parked(conn_id, offers, now_s + self.park_s, size)
        self._by_swarm.setdefault(info_hash, set()).add(peer_id)
        self._bytes += size
        return True

    def drop(self, info_hash: str, peer_id: str) -> None:
        parked = self._by_key.pop((info_hash, peer_id), None)
        if parked is None:
            return
        self._bytes -= parked.size_bytes
        peers = self._by_swarm.get(info_hash)
        if peers is not None:
            peers.discard(peer_id)
            if not peers:
                del self._by_swarm[info_hash]

    def drop_connection(self, conn_id: str) -> int:
        gone = [key for key, p in self._by_key.items() if p.conn_id == conn_id]
        for info_hash, peer_id in gone:
            self.drop(info_hash, peer_id)
        return len(gone)

    def expire(self, now_s: float) -> int:
        gone = [key for key, p in self._by_key.items() if p.expires_s <= now_s]
        for info_hash, peer_id in gone:
            self.drop(info_hash, peer_id)
        return len(gone)

    def take_for(self, now_s: float, info_hash: str, newcomer: str) -> list[ParkedOffer]:
        """One parked offer from every live parked peer of ``info_hash`` whose peer_id is smaller
        than ``newcomer``'s (the tie-break that makes one side of a pair offer)."""
        out: list[ParkedOffer] = []
        for peer_id in sorted(self._by_swarm.get(info_hash, ())):
            if peer_id >= newcomer:
                continue
            parked = self._by_key[(info_hash, peer_id)]
            if parked.expires_s <= now_s:
                continue
            offer = parked.offers.pop(0)
            out.append(ParkedOffer(info_hash, peer_id, parked.conn_id, offer))
            parked.size_bytes -= len(offer.sdp) + len(offer.offer_id)
            self._bytes -= len(offer.sdp) + len(offer.offer_id)
            if not parked.offers:
                self.drop(info_hash, peer_id)
        return out
