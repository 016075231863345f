"""Swarms through the real tracker with real aiortc links on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
from typing import Any

import pytest

from peer_agent.core.errors import CloseCode
from peer_agent.core.events import (
    HelloReceived,
    PeerHave,
    RequestCompleted,
    ResponseStarted,
    SegmentRequested,
    SessionClosed,
)
from peer_agent.core.ids import SegmentId
from peer_agent.core.overlay import RefillConfig
from peer_agent.core.session import SessionConfig
from peer_agent.net.rtc import PeerLink
from peer_agent.net.swarm import Swarm, SwarmConfig, make_peer_id, swarm_id_for
from peer_agent.net.tracker import RelayedAnswer, RelayedOffer, TrackerConfig
from tests.net.conftest import LOOPBACK, Recorder, RunningServer, ident

SWARM_CONFIG = SwarmConfig(
    max_peers=4,
    offers_per_announce=3,
    host_addresses=LOOPBACK,
    close_timeout_s=1.0,
    session=SessionConfig(),
    tracker=TrackerConfig(reconnect_initial_s=0.05, reconnect_max_s=0.5, min_announce_gap_s=0.2),
)
#: With the overlay options of issue 15 on (off by default).
OVERLAY_CONFIG = dataclasses.replace(SWARM_CONFIG, refill=RefillConfig(), make_room=True)


def test_swarm_id_and_peer_id() -> None:
    url = "https://cdn.example/live/master.m3u8"
    expected = hashlib.sha1(b"p2p-hls/1 " + url.encode()).hexdigest()[:20]
    assert swarm_id_for(url) == expected and len(expected) == 20
    assert swarm_id_for(url + "?x") != expected
    peer_id = make_peer_id(random.Random(1))
    assert len(peer_id) == 20 and peer_id.startswith("-PH0001-") and peer_id.isascii()
    assert make_peer_id(random.Random(1)) == peer_id
    with pytest.raises(ValueError):
        SwarmConfig(offers_per_announce=6)


def members_linked(rec: Recorder, n: int) -> Any:
    """Links of this member that received a HELLO and are still open, once there are n."""
    closed = {id(lk) for lk, e in rec.items if isinstance(e, SessionClosed)}
    live = {lk for lk, e in rec.items if isinstance(e, HelloReceived) and id(lk) not in closed}
    return live if len(live) >= n else None


def link_to(swarm: Swarm, other: Swarm) -> PeerLink:
    return swarm.links[other.peer_id]


@pytest.mark.slow
async def test_three_members_link_pairwise_share_have_and_drop_bad_links(
    server: RunningServer,
) -> None:
    info_hash = swarm_id_for("http://origin.test/stream.m3u8")
    recs = [Recorder() for _ in range(3)]
    swarms = [
        Swarm(
            server.url,
            info_hash,
            make_peer_id(random.Random(i)),
            on_event=recs[i],
            config=SWARM_CONFIG,
            rng=random.Random(100 + i),
            hello=(lambda: ([SegmentId(0, 1)], [])) if i == 0 else None,
        )
        for i in range(3)
    ]
    a, b, c = swarms
    ra, rb, rc = recs
    try:
        for swarm in swarms:  # each newcomer offers to those already announced
            await swarm.start()
        for rec in recs:
            await rec.wait_for(lambda rec=rec: members_linked(rec, 2))
        for swarm in swarms:
            others = {s.peer_id for s in swarms if s is not swarm}
            assert set(swarm.links) == others
        # the HELLO from a carried its availability
        hello_from_a = [
            e for lk, e in rb.items if isinstance(e, HelloReceived) and lk is link_to(b, a)
        ]
        assert hello_from_a[0].have == (SegmentId(0, 1),)

        a.broadcast_have([SegmentId(0, 2)])
        for rec, swarm in ((rb, b), (rc, c)):
            have = await rec.wait_for(
                lambda rec=rec, swarm=swarm: rec.of(PeerHave, link_to(swarm, a))
            )
            assert have[0].segments == (SegmentId(0, 2),)

        # a hostile c sends garbage to a: only that link closes, with PROTOCOL_ERROR
        a_to_c, a_to_b = link_to(a, c), link_to(a, b)
        channel = link_to(c, a).channel
        assert channel is not None
        channel.send(b"\x7f not our protocol")
        closed = await ra.wait_for(lambda: ra.of(SessionClosed, a_to_c))
        assert closed == [SessionClosed(int(CloseCode.PROTOCOL_ERROR), closed[0].reason, False)]
        assert c.peer_id not in a.links and a.links[b.peer_id] is a_to_b
        assert a_to_b.is_open and link_to(b, c).is_open
        await rc.wait_for(lambda: c.peer_id not in a.links and a.peer_id not in c.links)

        # b closes its link to a: a sees SessionClosed from the remote and drops the link
        await link_to(b, a).close(CloseCode.NORMAL, "bye")
        closed = await ra.wait_for(lambda: ra.of(SessionClosed, a_to_b))
        assert closed[0].by_remote and closed[0].code == CloseCode.NORMAL
        assert b.peer_id not in a.links
        assert len(ra.of(SessionClosed, a_to_b)) == 1
    finally:
        for swarm in swarms:
            await swarm.stop()
    assert server.server.runtime.registry.peer_count() == 0
    for swarm in swarms:
        assert swarm.links == {}


def manual_swarm(name: str, rec: Recorder, **overrides: Any) -> Swarm:
    """A swarm whose signalling the test drives by hand (its tracker client is never started)."""
    config = dataclasses.replace(SWARM_CONFIG, **overrides)
    return Swarm(
        "ws://127.0.0.1:9/announce", ident("manual"), ident(name), on_event=rec, config=config
    )


async def cross(offerer: Swarm, answerer: Swarm, offer: tuple[str, str]) -> str | None:
    return await answerer._on_offer(RelayedOffer(offerer.peer_id, offer[0], offer[1]))


async def test_crossed_offers_keep_the_link_offered_by_the_smaller_peer_id() -> None:
    ra, rb = Recorder(), Recorder()
    a, b = manual_swarm("aaa", ra), manual_swarm("bbb", rb)  # a < b
    try:
        offers_a, offers_b = await a._make_offers(), await b._make_offers()
        assert len(offers_a) == SWARM_CONFIG.offers_per_announce
        answer_b = await cross(a, b, offers_a[0])  # both offers are answered before either
        answer_a = await cross(b, a, offers_b[0])  # answer arrives: the pair is linked twice
        assert answer_a is not None and answer_b is not None
        doomed = a.links[b.peer_id]
        await a._on_answer(RelayedAnswer(b.peer_id, offers_a[0][0], answer_b))
        await b._on_answer(RelayedAnswer(a.peer_id, offers_b[0][0], answer_a))
        kept_a, kept_b = a.links[b.peer_id], b.links[a.peer_id]
        assert kept_a.role == "offerer" and kept_b.role == "answerer"
        await ra.wait_for(lambda: ra.of(HelloReceived, kept_a))
        await rb.wait_for(lambda: rb.of(HelloReceived, kept_b))
        closed = await ra.wait_for(lambda: ra.of(SessionClosed, doomed))
        assert closed[0].reason == "duplicate link"
        assert kept_a.is_open and kept_b.is_open
    finally:
        await a.stop()
        await b.stop()


async def test_full_swarm_refuses_offers_and_makes_none() -> None:
    ra, rb, rc = Recorder(), Recorder(), Recorder()
    a = manual_swarm("full-a", ra, max_peers=1)
    b, c = manual_swarm("full-b", rb), manual_swarm("full-c", rc)
    try:
        offer_b = (await b._make_offers())[0]
        answer = await cross(b, a, offer_b)
        assert answer is not None
        assert await cross(b, a, offer_b) is None  # already linked to b
        offer_c = (await c._make_offers())[0]
        assert await cross(c, a, offer_c) is None  # full
        assert await a._make_offers() == []
        assert a.tracker.hints.connected == (b.peer_id,)
        await b._on_answer(RelayedAnswer(a.peer_id, offer_b[0], answer))
        await ra.wait_for(lambda: ra.of(HelloReceived))
        assert list(a.links) == [b.peer_id]
    finally:
        for swarm in (a, b, c):
            await swarm.stop()


async def test_unanswered_offers_expire_silently() -> None:
    rec = Recorder()
    swarm = manual_swarm("ttl", rec, offer_ttl_s=0.2, offers_per_announce=2)
    offers = await swarm._make_offers()
    assert len(offers) == 2 and len(swarm._pending) == 2
    pending = list(swarm._pending.values())
    for link in pending:
        await link.closed.wait()
    assert swarm._pending == {} and swarm.links == {}
    assert rec.items == []  # offers never exposed: the app hears nothing
    assert len(await swarm._make_offers()) == 2  # the slots are free again
    await swarm.stop()


async def test_full_member_answers_a_split_offer_by_closing_the_named_link() -> None:
    ra, rb, rn = Recorder(), Recorder(), Recorder()
    a = manual_swarm("split-a", ra, max_peers=1, make_room=True)
    b, n = manual_swarm("split-b", rb), manual_swarm("split-n", rn)
    try:
        assert "split" in a.tracker.hints.caps
        offer_b = (await b._make_offers())[0]
        answer = await cross(b, a, offer_b)
        assert answer is not None
        await b._on_answer(RelayedAnswer(a.peer_id, offer_b[0], answer))
        ab = a.links[b.peer_id]
        await ra.wait_for(lambda: ra.of(HelloReceived, ab))
        offer_n = (await n._make_offers())[0]
        # Full: a plain offer is refused; a stale split (naming no link of ours) too.
        assert await a._on_offer(RelayedOffer(n.peer_id, offer_n[0], offer_n[1])) is None
        stale = RelayedOffer(n.peer_id, offer_n[0], offer_n[1], drop=ident("nobody"))
        assert await a._on_offer(stale) is None
        split = RelayedOffer(n.peer_id, offer_n[0], offer_n[1], drop=b.peer_id)
        answer_n = await a._on_offer(split)
        assert answer_n is not None
        assert list(a.links) == [n.peer_id] and a.links_split == 1
        closed = await ra.wait_for(lambda: ra.of(SessionClosed, ab))
        assert closed[0].reason == "making room"
        await n._on_answer(RelayedAnswer(a.peer_id, offer_n[0], answer_n))
        await ra.wait_for(lambda: ra.of(HelloReceived, a.links[n.peer_id]))
    finally:
        for swarm in (a, b, n):
            await swarm.stop()


async def linked_full_pair(a: Swarm, b: Swarm, ra: Recorder, rb: Recorder) -> PeerLink:
    """Link b -> a (a full with it) and wait for both HELLOs; return a's link to b."""
    offer_b = (await b._make_offers())[0]
    answer = await cross(b, a, offer_b)
    assert answer is not None
    await b._on_answer(RelayedAnswer(a.peer_id, offer_b[0], answer))
    ab = a.links[b.peer_id]
    await ra.wait_for(lambda: ra.of(HelloReceived, ab))
    await rb.wait_for(lambda: rb.of(HelloReceived, b.links[a.peer_id]))
    return ab


async def split_offer(a: Swarm, n: Swarm, drop: Swarm) -> str:
    """n's offer relayed to a with ``drop`` naming a's link to ``drop``; a's answer."""
    offer_n = (await n._make_offers())[0]
    answer = await a._on_offer(RelayedOffer(n.peer_id, offer_n[0], offer_n[1], drop=drop.peer_id))
    assert answer is not None
    return answer


async def test_a_split_link_drains_a_transfer_in_flight_then_closes() -> None:
    ra, rb, rn = Recorder(), Recorder(), Recorder()
    a = manual_swarm("drain-a", ra, max_peers=1, make_room=True)
    b, n = manual_swarm("drain-b", rb), manual_swarm("drain-n", rn)
    segment = SegmentId(0, 7)
    body = bytes(range(256)) * 400  # 102,400 bytes
    try:
        ab = await linked_full_pair(a, b, ra, rb)
        ba = b.links[a.peer_id]
        request_id = ba.request(segment)  # b asks a: a request in flight on a's link to b
        asked = await ra.wait_for(lambda: ra.of(SegmentRequested, ab))
        ab.respond(asked[0].request_id, len(body))
        ab.send_data(asked[0].request_id, 0, body[:40_000])
        await rb.wait_for(lambda: rb.of(ResponseStarted, ba))
        await split_offer(a, n, b)
        assert list(a.links) == [n.peer_id] and a.links_split == 1
        assert ab in a._draining and ab.is_open  # out of links, still open: it drains
        assert ab.session.inbound_requests == 1
        ab.send_data(asked[0].request_id, 40_000, body[40_000:])
        done = await rb.wait_for(lambda: rb.of(RequestCompleted, ba))
        assert done[0].request_id == request_id and done[0].data == body  # every byte
        closed = await ra.wait_for(lambda: ra.of(SessionClosed, ab))
        assert closed[0].reason == "making room" and not closed[0].by_remote
        seen_by_b = await rb.wait_for(lambda: rb.of(SessionClosed, ba))
        assert seen_by_b[0].reason == "making room" and seen_by_b[0].by_remote
        assert a.links_drain_forced == 0 and a._draining == {}
        async with asyncio.timeout(10):  # the drain ends with the link's teardown
            await asyncio.gather(*list(a._drain_tasks))
        assert not a._drain_tasks
    finally:
        for swarm in (a, b, n):
            await swarm.stop()
    assert not a._drain_tasks


async def test_a_split_link_is_closed_at_split_drain_s_and_counted() -> None:
    ra, rb, rn = Recorder(), Recorder(), Recorder()
    a = manual_swarm("bound-a", ra, max_peers=1, make_room=True, split_drain_s=0.5)
    b, n = manual_swarm("bound-b", rb), manual_swarm("bound-n", rn)
    try:
        ab = await linked_full_pair(a, b, ra, rb)
        ba = b.links[a.peer_id]
        ab.request(SegmentId(0, 3))  # a asks b, which answers a part and then stalls
        asked = await rb.wait_for(lambda: rb.of(SegmentRequested, ba))
        ba.respond(asked[0].request_id, 50_000)
        ba.send_data(asked[0].request_id, 0, bytes(10_000))
        await ra.wait_for(lambda: ra.of(ResponseStarted, ab))
        split_at = asyncio.get_running_loop().time()
        await split_offer(a, n, b)
        closed = await ra.wait_for(lambda: ra.of(SessionClosed, ab))
        held_s = asyncio.get_running_loop().time() - split_at
        assert closed[0].reason == "making room"
        assert held_s >= 0.5  # kept until the bound, not closed at once
        assert a.links_split == 1 and a.links_drain_forced == 1
    finally:
        for swarm in (a, b, n):
            await swarm.stop()
    assert not a._drain_tasks


async def test_stop_closes_a_draining_link_and_ends_its_drain() -> None:
    ra, rb, rn = Recorder(), Recorder(), Recorder()
    a = manual_swarm("stopd-a", ra, max_peers=1, make_room=True, split_drain_s=60.0)
    b, n = manual_swarm("stopd-b", rb), manual_swarm("stopd-n", rn)
    try:
        ab = await linked_full_pair(a, b, ra, rb)
        ab.request(SegmentId(0, 4))  # never answered: the drain would wait for the bound
        await rb.wait_for(lambda: rb.of(SegmentRequested, b.links[a.peer_id]))
        await split_offer(a, n, b)
        assert ab in a._draining and len(a._drain_tasks) == 1
        await a.stop()
        assert ab.is_closed and not a._drain_tasks and a._draining == {}
        closed = ra.of(SessionClosed, ab)
        assert closed[0].reason == "leaving the swarm" and a.links_drain_forced == 0
    finally:
        for swarm in (a, b, n):
            await swarm.stop()


def test_split_drain_s_is_checked() -> None:
    with pytest.raises(ValueError, match="split_drain_s"):
        SwarmConfig(split_drain_s=-1.0)
    with pytest.raises(ValueError, match="split_drain_s"):
        SwarmConfig(split_drain_s=float("nan"))


async def test_make_room_off_refuses_split_offers() -> None:
    ra, rb, rn = Recorder(), Recorder(), Recorder()
    a = manual_swarm("nosplit-a", ra, max_peers=1, make_room=False)
    b, n = manual_swarm("nosplit-b", rb), manual_swarm("nosplit-n", rn)
    try:
        assert "split" not in a.tracker.hints.caps
        offer_b = (await b._make_offers())[0]
        assert await cross(b, a, offer_b) is not None
        offer_n = (await n._make_offers())[0]
        split = RelayedOffer(n.peer_id, offer_n[0], offer_n[1], drop=b.peer_id)
        assert await a._on_offer(split) is None
        assert list(a.links) == [b.peer_id]
    finally:
        for swarm in (a, b, n):
            await swarm.stop()


@pytest.mark.slow
async def test_members_joining_one_by_one_all_fill_their_slots(server: RunningServer) -> None:
    """Issue 15: with two slots each, the third member finds the first two full; the tracker
    splits their link for it, and refill announces fill every slot, whatever the join order
    (before, the first two stayed a pair and later joiners paired only among themselves)."""
    info_hash = swarm_id_for("http://origin.test/overlay.m3u8")
    config = dataclasses.replace(
        OVERLAY_CONFIG,
        max_peers=2,
        offers_per_announce=2,
        tracker=dataclasses.replace(SWARM_CONFIG.tracker, min_announce_gap_s=0.5),
    )
    recs = [Recorder() for _ in range(4)]
    swarms = [
        Swarm(
            server.url,
            info_hash,
            make_peer_id(random.Random(200 + i)),
            on_event=recs[i],
            config=config,
            rng=random.Random(300 + i),
        )
        for i in range(4)
    ]
    try:
        # Generous waits: an offer the tracker sent on a stale view is refused silently and
        # replaced only after offer_reserve_s (10 s).
        await swarms[0].start()
        await swarms[1].start()
        await recs[1].wait_for(lambda: members_linked(recs[1], 1), 30.0)
        for i in (2, 3):
            await swarms[i].start()
            await recs[i].wait_for(lambda i=i: members_linked(recs[i], 1), 30.0)
        for rec in recs:
            await rec.wait_for(lambda rec=rec: members_linked(rec, 2), 30.0)
        assert sum(s.links_split for s in swarms) >= 2  # the first pair was split
        # The size each last heard from the tracker (the scheduler's swarm_size).
        assert swarms[3].swarm_size == 4 and all(s.swarm_size >= 2 for s in swarms)
    finally:
        for swarm in swarms:
            await swarm.stop()


async def test_offers_the_tracker_relayed_to_nobody_free_their_slots() -> None:
    rec = Recorder()
    swarm = manual_swarm("unused", rec, max_peers=3, offers_per_announce=3, refill=RefillConfig())
    try:
        offers = await swarm._make_offers()
        assert len(offers) == 3 and await swarm._make_offers() == []  # all slots reserved
        pending = [swarm._pending[offer_id] for offer_id, _ in offers[1:]]
        swarm._on_unused_offers([offer_id for offer_id, _ in offers[1:]] + ["unknown"])
        for link in pending:
            await link.closed.wait()
        assert list(swarm._pending) == [offers[0][0]]
        assert len(await swarm._make_offers()) == 2
    finally:
        await swarm.stop()


async def test_only_a_link_that_had_opened_restarts_the_refill_backoff() -> None:
    """A link that never opened (here: its answer never reached the offerer) waits for the
    refill backoff when it closes; one lost after its HELLO is replaced at once."""
    ra, rb = Recorder(), Recorder()
    a = manual_swarm("reopen-a", ra, refill=RefillConfig())
    b = manual_swarm("reopen-b", rb, refill=RefillConfig())
    try:
        assert a._refill is not None
        offer = (await b._make_offers())[0]
        assert await cross(b, a, offer) is not None  # a answers; b never gets the answer
        unopened = a.links[b.peer_id]
        assert a.neighbours == 0  # in links from the SDP exchange on, not open
        a._refill.streak = 3
        a.tracker._wake.clear()
        await unopened.close(CloseCode.NORMAL, "never opened")
        await ra.wait_for(lambda: ra.of(SessionClosed, unopened))
        assert b.peer_id not in a.links
        assert a._refill.streak == 3 and not a.tracker._wake.is_set()

        offer = (await b._make_offers())[0]
        answer = await cross(b, a, offer)
        assert answer is not None
        await b._on_answer(RelayedAnswer(a.peer_id, offer[0], answer))
        opened = a.links[b.peer_id]
        await ra.wait_for(lambda: ra.of(HelloReceived, opened))
        assert a.neighbours == 1
        a._refill.streak = 3
        a.tracker._wake.clear()
        await opened.close(CloseCode.NORMAL, "bye")
        await ra.wait_for(lambda: ra.of(SessionClosed, opened))
        assert a._refill.streak == 0 and a.tracker._wake.is_set()
    finally:
        await a.stop()
        await b.stop()


async def test_a_refused_link_is_not_re_paired_during_the_back_off() -> None:
    """A link closed BANNED (a refused b at HELLO, as an exchange does) brings no announce at
    once, and for the back-off neither side answers the other's offers nor opens a link from
    its answer (docs/signaling.md, "After a refusal, no re-pairing")."""
    ra, rb = Recorder(), Recorder()
    a = manual_swarm("refuse-a", ra, refill=RefillConfig())
    b = manual_swarm("refuse-b", rb, refill=RefillConfig())
    try:
        offer = (await b._make_offers())[0]
        answer = await cross(b, a, offer)
        assert answer is not None
        await b._on_answer(RelayedAnswer(a.peer_id, offer[0], answer))
        link_a, link_b = a.links[b.peer_id], b.links[a.peer_id]
        await ra.wait_for(lambda: ra.of(HelloReceived, link_a))
        await rb.wait_for(lambda: rb.of(HelloReceived, link_b))
        for swarm in (a, b):
            swarm.tracker._wake.clear()
        await link_a.close(CloseCode.BANNED, "refused for misbehaviour")
        closed_a = await ra.wait_for(lambda: ra.of(SessionClosed, link_a))
        closed_b = await rb.wait_for(lambda: rb.of(SessionClosed, link_b))
        assert closed_a[0].code == CloseCode.BANNED and not closed_a[0].by_remote
        assert closed_b[0].code == CloseCode.BANNED and closed_b[0].by_remote
        for swarm, other in ((a, b), (b, a)):
            assert not swarm.tracker._wake.is_set()  # no announce at once for a refusal
            assert swarm.refusals.blocked(other.peer_id, swarm._now())
            back_off_s = swarm.config.refusals.base_s
            assert not swarm.refusals.blocked(other.peer_id, swarm._now() + back_off_s + 1)

        # the refused side offers again: the refusing side does not answer
        assert await cross(b, a, (await b._make_offers())[0]) is None
        assert a.pairings_refused == 1 and b.peer_id not in a.links
        # the refusing side's offer reaches the refused side: no answer either
        offer_a = (await a._make_offers())[0]
        assert await cross(a, b, offer_a) is None
        assert b.pairings_refused == 1 and a.peer_id not in b.links
        # an answer from a blocked peer id (a third party relayed it anyway) opens no link
        pending = a._pending[offer_a[0]]
        await a._on_answer(RelayedAnswer(b.peer_id, offer_a[0], "v=0"))
        assert pending.is_closed and a.pairings_refused == 2 and b.peer_id not in a.links
        # a peer id that was never refused is answered as before
        rc = Recorder()
        c = manual_swarm("refuse-c", rc)
        try:
            assert await cross(c, a, (await c._make_offers())[0]) is not None
        finally:
            await c.stop()
    finally:
        await a.stop()
        await b.stop()
