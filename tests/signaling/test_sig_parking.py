"""Pure unit tests of parked offers (signaling/parking.py): tie-break, single use, bounds."""

from __future__ import annotations

from signaling.messages import Offer
from signaling.parking import ParkedOffers


def offers(n: int, sdp: str = "v=0 x") -> list[Offer]:
    return [Offer(f"o{i}", sdp) for i in range(n)]


def test_only_smaller_peer_ids_offer_and_each_offer_once() -> None:
    parked = ParkedOffers(park_s=10.0, max_bytes=10_000)
    assert parked.park(0.0, "ih", "b", "c1", offers(2))
    assert parked.take_for(1.0, "ih", "a") == []  # "a" < "b": a offers to b, not b to a
    first = parked.take_for(1.0, "ih", "c")
    assert [(p.peer_id, p.conn_id, p.offer.offer_id) for p in first] == [("b", "c1", "o0")]
    assert [p.offer.offer_id for p in parked.take_for(1.0, "ih", "d")] == ["o1"]
    assert parked.take_for(1.0, "ih", "e") == [] and len(parked) == 0 and parked.size_bytes == 0


def test_expired_and_other_swarms_give_nothing() -> None:
    parked = ParkedOffers(park_s=10.0, max_bytes=10_000)
    parked.park(0.0, "ih", "a", "c1", offers(1))
    assert parked.take_for(1.0, "other", "z") == []
    assert parked.take_for(10.0, "ih", "z") == []
    assert parked.expire(10.0) == 1 and len(parked) == 0


def test_bytes_bounded_oldest_evicted_and_connection_drop() -> None:
    sdp = "x" * 98
    parked = ParkedOffers(park_s=10.0, max_bytes=250)  # each offer: 98 + 2 bytes
    assert parked.park(0.0, "ih", "a", "c1", offers(2, sdp))
    assert parked.park(0.0, "ih", "b", "c2", offers(1, sdp))
    assert parked.evicted == 1 and not parked.is_parked("ih", "a") and parked.size_bytes == 100
    assert not parked.park(0.0, "ih", "c", "c3", offers(3, sdp))  # larger than the whole cap
    assert parked.drop_connection("c2") == 1 and parked.size_bytes == 0
    assert not parked.park(0.0, "ih", "d", "c4", [])


def test_off_parks_nothing() -> None:
    assert not ParkedOffers(park_s=0.0, max_bytes=10_000).park(0.0, "ih", "a", "c", offers(1))
