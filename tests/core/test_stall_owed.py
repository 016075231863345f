"""Who owes bytes, on a lossy network (docs/exchange.md 8b, "Stall suspicions"): a silent
download makes its peer a stall suspect only when the peer had announced the segment HAVE (a
verified copy); a cut-through relay that only announced FETCHING is never charged for its
source's silence, however often, while a peer that holds a verified copy back still is. What a
cut-through relay owes is the segment's HAVE, however late (or an ABORT): one that promises every
segment and never delivers is refused, then banned ("Broken promises"). And why
a TURN relay's address is no identity key (peer_agent/net/rtc.py, web_demo/rtc.js): every
relayed peer would share it, and their honest losses would add up on it. Pure: time is an
argument; the exchange is driven as the agent drives it."""

from __future__ import annotations

from peer_agent.core import events as ev
from peer_agent.core.exchange import SegmentExchange
from peer_agent.core.exchange_actions import CloseLink, ExchangeConfig, SegmentEntry
from peer_agent.core.exchange_reputation import Offence
from peer_agent.core.ids import SegmentId
from peer_agent.core.scheduler import CancelTransfer, FetchFromPeer
from peer_agent.core.wire import FetchingEntry

SEGMENTS = 200


def exchange() -> SegmentExchange:
    ex = SegmentExchange(ExchangeConfig(self_id="me"))
    timeline = [SegmentEntry(SegmentId(0, i), 2.0 * i, 2.0, 0.0) for i in range(SEGMENTS)]
    ex.set_timeline(timeline, bandwidth_bits_per_s=500_000)
    ex.set_sha256(True)
    return ex


def join(ex: SegmentExchange, link: str, peer: str, keys: tuple[str, ...], now: float) -> None:
    ex.set_link_keys(link, keys)
    hello = ev.HelloReceived(peer.encode(), 0, (), ())
    ex.on_peer_event(link, peer, hello, now)


def silent_download(
    ex: SegmentExchange,
    link: str,
    peer: str,
    seq: int,
    now: float,
    *,
    have: bool,
    have_after_s: float | None = None,
) -> None:
    """The peer announces ``seq`` (HAVE, or FETCHING as a cut-through relay), answers our
    request 0.2 s later, sends 1000 bytes, then nothing; we cancel 2 s later (past stall_s and
    two round trips) and then fire the exchange's timers for 10 s. A relay that gets the segment
    after all announces it HAVE ``have_after_s`` after our cancel."""
    segment = SegmentId(0, seq)
    if have:
        ex.on_peer_event(link, peer, ev.PeerHave((segment,)), now)
    else:
        ex.on_peer_event(link, peer, ev.PeerFetching((FetchingEntry(segment, 100_000),)), now)
    ex.apply([FetchFromPeer(segment, peer, 0, "have" if have else "cut_through")], now)
    ex.request_sent(link, segment, seq + 1)
    ex.on_peer_event(link, peer, ev.ResponseStarted(seq + 1, segment, 100_000), now + 0.2)
    data = ev.DataReceived(seq + 1, segment, 0, bytes(1000))
    ex.on_peer_event(link, peer, data, now + 0.2)
    ex.apply([CancelTransfer(segment, peer, "stalled")], now + 2.2)
    for t in range(1, 11):
        if have_after_s is not None and t - 1 < have_after_s <= t:
            ex.on_peer_event(link, peer, ev.PeerHave((segment,)), now + 2.2 + have_after_s)
        ex.handle_timer(now + 2.2 + t)


def closed_links(ex: SegmentExchange) -> list[str]:
    out = []
    while (action := ex.next_action()) is not None:
        if isinstance(action, CloseLink):
            out.append(action.link)
    return out


def test_an_honest_relay_silent_on_every_cut_through_download_is_never_charged() -> None:
    ex = exchange()
    join(ex, "L1", "relay", ("addr:10.0.0.7",), 0.0)
    # a silent cut-through download every 4 s for 10 minutes: 150 of them; the relay's own
    # download completes after we gave up (its HAVE comes 1-9 s late), and the exchange forgets
    # what falls behind a playhead 10 s back, so every promise is judged
    for i in range(150):
        silent_download(ex, "L1", "relay", i, 4.0 * i, have=False, have_after_s=1.0 + i % 9)
        ex.forget_before(4.0 * i - 10.0, 4.0 * i + 12.2)
    ex.forget_before(1e6, 600.0)
    now = 600.0
    assert len(ex.promises) == 0
    assert closed_links(ex) == []
    assert not ex.refused("relay", "L1", now) and not ex.penalties.banned
    assert ex.reputation.points_of("id:relay", now) == 0.0
    assert ex.reputation.offences == {} and ex.ban_reasons == {}


def test_a_peer_silent_on_segments_it_announced_is_refused_then_banned() -> None:
    ex = exchange()
    join(ex, "L1", "staller", ("addr:10.0.0.8",), 0.0)
    for i in range(3):
        silent_download(ex, "L1", "staller", i, 4.0 * i, have=True)
    # three stalls within the decay (2 points each): refused, its link closed BANNED, and its
    # address with it (a new peer id from there is refused too)
    assert closed_links(ex) == ["L1"] and ex.reputation.refusals == 1
    ex.set_link_keys("L9", ("addr:10.0.0.8",))
    assert ex.refused("a-new-id", "L9", 20.0)
    # back after the refusal (30 s), one more: banned
    join(ex, "L2", "staller", ("addr:10.0.0.8",), 50.0)
    silent_download(ex, "L2", "staller", 3, 50.0, have=True)
    assert "staller" in ex.penalties.banned, ex.offence_log
    assert ex.ban_reasons["staller"].startswith("penalty points: stall")


def test_a_relay_whose_have_overtook_its_queued_data_is_no_suspect() -> None:
    """FETCHING when we asked, HAVE before we gave up, no byte: a control message (HAVE) goes
    out ahead of the DATA the relay queued on its uplink, so its HAVE proves nothing about our
    bytes (on the bed at 200 ms / 3 %, 10 of 11 stall offences were such downloads). What is
    owed is fixed when we ask: a later request for a segment it announced owes."""
    ex = exchange()
    join(ex, "L1", "relay", (), 0.0)
    segment = SegmentId(0, 5)
    ex.on_peer_event("L1", "relay", ev.PeerFetching((FetchingEntry(segment, 0),)), 0.0)
    ex.apply([FetchFromPeer(segment, "relay", 0, "cut_through")], 0.0)
    ex.request_sent("L1", segment, 1)
    ex.on_peer_event("L1", "relay", ev.ResponseStarted(1, segment, 100_000), 0.2)
    ex.on_peer_event("L1", "relay", ev.PeerHave((segment,)), 0.5)
    ex.apply([CancelTransfer(segment, "relay", "stalled")], 2.0)
    ex.handle_timer(10.0)
    assert len(ex.stalls) == 0 and list(ex.offence_log) == []
    # asked again (a resume) now that it announced the segment: this time it owes
    ex.apply([FetchFromPeer(segment, "relay", 0, "have")], 10.0)
    ex.request_sent("L1", segment, 2)
    ex.apply([CancelTransfer(segment, "relay", "stalled")], 12.0)
    ex.handle_timer(20.0)
    assert [entry[2] for entry in ex.offence_log] == ["stall"]


def test_honest_losses_of_peers_behind_one_shared_address_add_up_on_it() -> None:
    """Why a TURN relay's address is no key: peers reached through one relay would all carry
    the relay's address, and one stall offence each (an honest peer's bad luck on a lossy link)
    refuses all of them at the third; with their own keys (certificates) nobody is refused."""
    for shared in (True, False):
        ex = exchange()
        for i in range(3):
            keys = ("addr:10.241.0.1",) if shared else (f"cert:sha-256 {i:02X}",)
            join(ex, f"L{i}", f"peer{i}", keys, 0.0)
            silent_download(ex, f"L{i}", f"peer{i}", i, 20.0 * i, have=True)
        refused = [ex.refused(f"peer{i}", f"L{i}", 70.0) for i in range(3)]
        assert refused == ([True] * 3 if shared else [False] * 3), (shared, ex.offence_log)


def ask_cut_through(
    ex: SegmentExchange, link: str, peer: str, segment: SegmentId, req: int, now: float
) -> None:
    """The peer announces ``segment`` FETCHING (100,000 bytes reached), we ask it (cut-through,
    request ``req``) and it answers 0.2 s later."""
    ex.on_peer_event(link, peer, ev.PeerFetching((FetchingEntry(segment, 100_000),)), now)
    ex.apply([FetchFromPeer(segment, peer, 0, "cut_through")], now)
    ex.request_sent(link, segment, req)
    ex.on_peer_event(link, peer, ev.ResponseStarted(req, segment, 100_000), now + 0.2)


def cut_through_attempt(ex: SegmentExchange, link: str, peer: str, seq: int, now: float) -> None:
    """The peer announces ``seq`` FETCHING, answers our request, and never sends a byte; we
    give up 2 s later."""
    segment = SegmentId(0, seq)
    ask_cut_through(ex, link, peer, segment, seq + 1, now)
    ex.apply([CancelTransfer(segment, peer, "stalled")], now + 2.0)


def test_a_peer_that_promises_every_segment_and_never_delivers_is_refused_then_banned() -> None:
    """One cut-through promise per 2-s segment, never kept: each is judged when its segment
    leaves what the exchange retains (30 s behind the playhead), 1 point each, so the peer is
    refused about four segments after the first judgement and banned soon after (its open
    promises are judged on while it is refused), within a bounded number of segments."""
    ex = exchange()
    join(ex, "L1", "liar", ("addr:10.0.0.9",), 0.0)
    refused_at = banned_at = None
    for i in range(60):
        now = 2.0 * i
        if not ex.refused("liar", "L1", now):
            cut_through_attempt(ex, "L1", "liar", i, now)
        ex.forget_before(now, now + 2.0)
        if refused_at is None and closed_links(ex):
            refused_at = i
        if "liar" in ex.penalties.banned:
            banned_at = i
            break
    assert refused_at is not None and banned_at is not None, ex.offence_log
    # the first promise (segment 0, ends at 2 s) is judged at playhead 34 s (segment 17)
    assert 17 <= refused_at <= 22 and refused_at < banned_at <= 26, (refused_at, banned_at)
    assert {entry[2] for entry in ex.offence_log} == {"broken_promise"}
    assert ex.ban_reasons["liar"].startswith("penalty points: broken_promise")
    # its address goes with it: a new peer id from there is refused
    ex.set_link_keys("L9", ("addr:10.0.0.9",))
    assert ex.refused("a-new-id", "L9", 2.0 * banned_at)
    assert len(ex.promises) == 0


def test_an_upstream_failure_or_a_have_after_a_reconnect_keeps_the_promise() -> None:
    """The relay ABORTs (its own source failed): no promise. It announces the segment HAVE in
    the HELLO of a new link after its first closed: the promise is kept. It leaves for good
    before it got the segment: the promise stays and costs one point, no refusal."""
    ex = exchange()
    join(ex, "L1", "relay", ("cert:sha-256 AA",), 0.0)
    s0, s1 = SegmentId(0, 0), SegmentId(0, 1)
    ex.on_peer_event("L1", "relay", ev.PeerFetching((FetchingEntry(s0, 0),)), 0.0)
    ex.apply([FetchFromPeer(s0, "relay", 0, "cut_through")], 0.0)
    ex.request_sent("L1", s0, 1)
    ex.on_peer_event("L1", "relay", ev.RequestFailed(1, s0, "aborted"), 1.0)
    assert len(ex.promises) == 0
    cut_through_attempt(ex, "L1", "relay", 1, 2.0)
    assert len(ex.promises) == 1
    ex.on_peer_event("L1", "relay", ev.SessionClosed(0, "", True), 5.0)
    ex.set_link_keys("L2", ("cert:sha-256 BB",))
    ex.on_peer_event("L2", "relay", ev.HelloReceived(b"relay", 0, (s1,), ()), 6.0)
    assert len(ex.promises) == 0
    cut_through_attempt(ex, "L2", "relay", 2, 7.0)
    ex.on_peer_event("L2", "relay", ev.SessionClosed(0, "", True), 9.0)
    ex.forget_before(1e6, 60.0)
    assert [entry[2] for entry in ex.offence_log] == ["broken_promise"]
    assert ex.reputation.points_of("cert:sha-256 BB", 60.0) == 1.0
    assert not ex.refused("relay", None, 60.0) and ex.reputation.refusals == 0


def test_open_promises_are_bounded_per_peer() -> None:
    ex = SegmentExchange(ExchangeConfig(self_id="me", max_promises_per_peer=4))
    ex.set_timeline([SegmentEntry(SegmentId(0, i), 2.0 * i, 2.0, 0.0) for i in range(20)])
    join(ex, "L1", "liar", (), 0.0)
    for i in range(10):
        cut_through_attempt(ex, "L1", "liar", i, 0.1 * i)
    assert len(ex.promises) == 4
    ex.forget_before(1e6, 10.0)
    assert len(ex.promises) == 0 and ex.reputation.offences[Offence.BROKEN_PROMISE] == 4


def test_a_relay_cancelled_while_its_bytes_still_came_promised_nothing() -> None:
    """Too slow, not silent: a cut-through download cancelled 0.5 s after its last byte (short
    of stall_s) opens no promise, even if the relay never announces the segment HAVE."""
    ex = exchange()
    join(ex, "L1", "slow", (), 0.0)
    segment = SegmentId(0, 0)
    ask_cut_through(ex, "L1", "slow", segment, 1, 0.0)
    ex.on_peer_event("L1", "slow", ev.DataReceived(1, segment, 0, bytes(1000)), 1.5)
    ex.apply([CancelTransfer(segment, "slow", "too_slow")], 2.0)
    assert len(ex.promises) == 0
    ex.forget_before(1e6, 60.0)
    assert ex.reputation.offences == {}
