"""Two real PeerLinks (aiortc over loopback, SDP exchanged by hand) driving PeerSessions."""

from __future__ import annotations

import hashlib
import os

import pytest

from peer_agent.core.errors import CloseCode
from peer_agent.core.events import (
    Event,
    HelloReceived,
    PeerHave,
    RequestCompleted,
    SegmentRequested,
    SessionClosed,
)
from peer_agent.core.ids import SegmentId
from peer_agent.core.wire import FetchingEntry
from peer_agent.net.rtc import LinkConfig, PeerLink
from tests.net.conftest import Recorder, connect_pair, ident, link_config

SEGMENT = SegmentId(0, 7)


def serve_from(store: dict[SegmentId, bytes]):
    def hook(link: PeerLink, event: Event) -> None:
        if isinstance(event, SegmentRequested):
            data = store.get(event.segment)
            if data is None:
                link.reject_absent(event.request_id)
                return
            link.respond(event.request_id, len(data))
            link.send_data(event.request_id, event.offset, data[event.offset :])

    return hook


async def test_hello_transfer_flow_control_and_close() -> None:
    payload = os.urandom(1024 * 1024)
    a_ev, b_ev = Recorder(), Recorder()
    b_ev.hook = serve_from({SEGMENT: payload})
    config = link_config()
    a, b = await connect_pair(
        a_ev,
        b_ev,
        config=config,
        hello_b=lambda: ([SEGMENT, SegmentId(0, 8)], [FetchingEntry(SegmentId(0, 9), 1000)]),
    )
    try:
        hello = a_ev.of(HelloReceived, a)[0]
        assert hello.peer_id == ident("peer-b").encode()
        assert set(hello.have) == {SEGMENT, SegmentId(0, 8)}
        assert hello.fetching == (FetchingEntry(SegmentId(0, 9), 1000),)
        assert b_ev.of(HelloReceived, b)[0].have == ()

        a.request(SEGMENT)
        done = await a_ev.wait_for(lambda: a_ev.of(RequestCompleted, a))
        assert hashlib.sha256(done[0].data).digest() == hashlib.sha256(payload).digest()
        assert b.session.stats.payload_bytes_sent == len(payload)
        # flow control: DATA is pulled only under the high-water mark (control may exceed it)
        assert 0 < b.max_buffered_bytes <= config.high_water_bytes + 4096

        b.announce_have([SegmentId(0, 10)])
        await a_ev.wait_for(lambda: a_ev.of(PeerHave, a))
        assert a_ev.of(PeerHave, a)[0].segments == (SegmentId(0, 10),)
    finally:
        await a.close(CloseCode.GOING_AWAY, "test over")
    closed = await b_ev.wait_for(lambda: b_ev.of(SessionClosed, b))
    assert closed == [SessionClosed(int(CloseCode.GOING_AWAY), "test over", True)]
    assert a_ev.of(SessionClosed, a) == [
        SessionClosed(int(CloseCode.GOING_AWAY), "test over", False)
    ]
    await b.closed.wait()
    await a.closed.wait()
    assert a.is_closed and b.is_closed


async def test_absent_and_remote_transport_loss() -> None:
    a_ev, b_ev = Recorder(), Recorder()
    b_ev.hook = serve_from({})
    a, b = await connect_pair(a_ev, b_ev)
    from peer_agent.core.events import RequestFailed

    a.request(SEGMENT)
    failed = await a_ev.wait_for(lambda: a_ev.of(RequestFailed, a))
    assert failed[0].reason == "absent"
    # the remote vanishes without a CLOSE message: the connection ends, the session closes
    await b.pc.close()
    closed = await a_ev.wait_for(lambda: a_ev.of(SessionClosed, a))
    assert len(closed) == 1 and closed[0].code == CloseCode.GOING_AWAY
    await a.closed.wait()
    assert len(b_ev.of(SessionClosed, b)) == 1


async def test_garbage_closes_with_protocol_error() -> None:
    a_ev, b_ev = Recorder(), Recorder()
    a, b = await connect_pair(a_ev, b_ev)
    assert b.channel is not None
    b.channel.send(b"\xee\x00garbage")
    closed = await a_ev.wait_for(lambda: a_ev.of(SessionClosed, a))
    assert closed[0].code == CloseCode.PROTOCOL_ERROR and not closed[0].by_remote
    # b's session reads a's CLOSE
    closed_b = await b_ev.wait_for(lambda: b_ev.of(SessionClosed, b))
    assert closed_b[0].code == CloseCode.PROTOCOL_ERROR and closed_b[0].by_remote
    await a.closed.wait()
    await b.closed.wait()


async def test_unanswered_offer_expires() -> None:
    ev = Recorder()
    link = PeerLink(
        swarm_id=b"swarm-for-link-tests",
        local_peer_id=ident("lonely").encode(),
        on_event=ev,
        config=link_config(offer_ttl_s=0.2),
    )
    sdp = await link.create_offer()
    assert "a=candidate:" in sdp and "127.0.0.1" in sdp
    closed = await ev.wait_for(lambda: ev.of(SessionClosed))
    assert closed[0].reason == "offer expired"
    await link.closed.wait()
    assert not link.has_session


def test_config_validation() -> None:
    import pytest

    with pytest.raises(ValueError):
        LinkConfig(high_water_bytes=300_000, low_water_bytes=256 * 1024)


async def test_a_failing_hello_provider_closes_only_that_link() -> None:
    def broken_hello() -> tuple[list[SegmentId], list[FetchingEntry]]:
        raise RuntimeError("store unavailable")

    a_ev, b_ev = Recorder(), Recorder()
    config = link_config(close_timeout_s=0.5)
    a = PeerLink(
        swarm_id=b"swarm-for-link-tests",
        local_peer_id=ident("peer-a").encode(),
        on_event=a_ev,
        hello=broken_hello,
        config=config,
    )
    b = PeerLink(
        swarm_id=b"swarm-for-link-tests",
        local_peer_id=ident("peer-b").encode(),
        on_event=b_ev,
        config=config,
    )
    answer = await b.accept_offer(await a.create_offer())
    assert answer is not None
    await a.accept_answer(answer)
    closed = await a_ev.wait_for(lambda: a_ev.of(SessionClosed, a))
    assert closed == [SessionClosed(int(CloseCode.GOING_AWAY), "internal error", False)]
    closed_b = await b_ev.wait_for(lambda: b_ev.of(SessionClosed, b))
    assert len(closed_b) == 1
    await a.closed.wait()
    await b.closed.wait()


async def test_garbage_sdp_closes_the_link_without_raising() -> None:
    ev = Recorder()
    offerer = PeerLink(
        swarm_id=b"swarm-for-link-tests",
        local_peer_id=ident("o").encode(),
        on_event=ev,
        config=link_config(),
    )
    await offerer.create_offer()
    await offerer.accept_answer("v=0 this is not an answer", ident("x"))
    await offerer.closed.wait()
    answerer = PeerLink(
        swarm_id=b"swarm-for-link-tests",
        local_peer_id=ident("a").encode(),
        on_event=ev,
        config=link_config(),
    )
    assert await answerer.accept_offer("garbage", ident("y")) is None
    await answerer.closed.wait()
    closed = ev.of(SessionClosed)
    assert [e.code for e in closed] == [CloseCode.PROTOCOL_ERROR, CloseCode.PROTOCOL_ERROR]


def test_link_config_refuses_negative_waits_and_a_zero_offer_ttl() -> None:
    for bad in ({"offer_ttl_s": 0}, {"close_timeout_s": -1}, {"close_gather_wait_s": -1}):
        with pytest.raises(ValueError, match="close_gather_wait_s >= 0"):
            LinkConfig(**bad)
    assert LinkConfig(close_timeout_s=0, close_gather_wait_s=0).close_gather_wait_s == 0
