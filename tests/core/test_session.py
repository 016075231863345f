"""Two PeerSessions wired by hand: every byte moved explicitly, time jumped with timers."""

from __future__ import annotations

import hashlib
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peer_agent.core import wire
from peer_agent.core.errors import CloseCode, UsageError
from peer_agent.core.events import (
    DataReceived,
    Event,
    HelloReceived,
    PeerFetching,
    PeerHave,
    PeerLost,
    RequestCancelled,
    RequestCompleted,
    RequestFailed,
    ResponseStarted,
    SegmentRequested,
    SessionClosed,
)
from peer_agent.core.ids import SegmentId
from peer_agent.core.session import PeerSession, SessionConfig, SessionState

SWARM = hashlib.sha1(b"swarm").digest()
PEER_A = b"A" * 20
PEER_B = b"B" * 20
SEG = SegmentId(1, 100)
MIB = 1024 * 1024

E = TypeVar("E")


def segment_bytes(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(seed.to_bytes(4, "big")).digest()
    return (block * (size // len(block) + 1))[:size]


def transfer(sender: PeerSession, receiver: PeerSession, now: float) -> int:
    """Move everything ``sender`` has to send into ``receiver``; return the message count."""
    messages = sender.data_to_send()
    for message in messages:
        receiver.receive_data(message, now)
    return len(messages)


def roundtrip(a: PeerSession, b: PeerSession, now: float) -> None:
    """Move messages both ways until neither side has anything to send."""
    while transfer(a, b, now) + transfer(b, a, now):
        pass


def drain(session: PeerSession) -> list[Event]:
    events = []
    while (event := session.next_event()) is not None:
        events.append(event)
    return events


def only(events: list[Event], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


def make_pair(
    config_a: SessionConfig | None = None,
    config_b: SessionConfig | None = None,
    now: float = 0.0,
    swarm_b: bytes = SWARM,
) -> tuple[PeerSession, PeerSession]:
    a = PeerSession(config_a or SessionConfig(), SWARM, PEER_A, now)
    b = PeerSession(config_b or SessionConfig(), swarm_b, PEER_B, now)
    a.start(now=now)
    b.start(now=now)
    return a, b


def open_pair(
    config_a: SessionConfig | None = None, config_b: SessionConfig | None = None, now: float = 0.0
) -> tuple[PeerSession, PeerSession]:
    a, b = make_pair(config_a, config_b, now)
    roundtrip(a, b, now)
    drain(a)
    drain(b)
    return a, b


def serve(b: PeerSession, data: bytes) -> SegmentRequested:
    """Let ``b`` answer the one pending request with the whole ``data`` from its offset."""
    (req,) = only(drain(b), SegmentRequested)
    assert b.respond(req.request_id, len(data))
    assert b.send_data(req.request_id, req.offset, data[req.offset :])
    return req


# --- hello -----------------------------------------------------------------------------------


def test_hello_exchange_opens_both_sides() -> None:
    a = PeerSession(SessionConfig(), SWARM, PEER_A, 0.0)
    b = PeerSession(SessionConfig(leech_only=True), SWARM, PEER_B, 0.0)
    have = [SegmentId(0, 1), SegmentId(0, 2), SegmentId(0, 3), SegmentId(2, 9)]
    a.start(now=0.0, have=have, fetching=[wire.FetchingEntry(SegmentId(0, 4), 5000)])
    b.start(now=0.0)
    assert a.state is SessionState.AWAIT_HELLO
    roundtrip(a, b, 0.1)
    assert a.state is b.state is SessionState.OPEN
    (hello_at_b,) = drain(b)
    assert isinstance(hello_at_b, HelloReceived)
    assert hello_at_b.peer_id == PEER_A and not hello_at_b.leech_only
    assert hello_at_b.have == tuple(have)
    assert hello_at_b.have_ranges == (wire.SegmentRange(0, 1, 3), wire.SegmentRange(2, 9, 1))
    assert hello_at_b.fetching == (wire.FetchingEntry(SegmentId(0, 4), 5000),)
    (hello_at_a,) = drain(a)
    assert isinstance(hello_at_a, HelloReceived)
    assert hello_at_a.peer_id == PEER_B and hello_at_a.leech_only and a.remote_leech_only
    assert a.remote_peer_id == PEER_B
    assert a.get_timer() is None and b.get_timer() is None


def test_announcements_become_events_and_split_at_1024() -> None:
    a, b = open_pair()
    many = [SegmentId(0, i) for i in range(1500)]
    a.announce_have(many)
    a.announce_fetching([(SegmentId(0, 2000), 0)])  # type: ignore[list-item]
    a.announce_lost([SegmentId(0, 1)])
    a.announce_have([])  # nothing to say: no message
    assert transfer(a, b, 1.0) == 4
    events = drain(b)
    assert [type(e) for e in events] == [PeerHave, PeerHave, PeerFetching, PeerLost]
    assert only(events, PeerHave)[0].segments + only(events, PeerHave)[1].segments == tuple(many)
    assert only(events, PeerFetching)[0].entries == (wire.FetchingEntry(SegmentId(0, 2000), 0),)
    assert only(events, PeerLost)[0].segments == (SegmentId(0, 1),)


def test_hello_timeout_closes_with_timeout() -> None:
    a, b = make_pair(now=5.0)
    transfer(a, b, 5.0)  # b got a's HELLO, a never gets b's
    assert a.get_timer() == 15.0
    a.handle_timer(14.9)
    assert a.state is SessionState.AWAIT_HELLO
    a.handle_timer(a.get_timer())  # type: ignore[arg-type]
    assert drain(a) == [SessionClosed(CloseCode.TIMEOUT, "no HELLO within 10 s", False)]
    assert a.get_timer() is None
    transfer(a, b, 15.0)
    closed = only(drain(b), SessionClosed)
    assert closed == [SessionClosed(CloseCode.TIMEOUT, "no HELLO within 10 s", True)]


def test_version_mismatch_closes() -> None:
    a, _ = make_pair()
    hello_v2 = wire.encode(wire.Hello(SWARM, PEER_B, version=2))
    a.receive_data(hello_v2, 0.0)
    (closed,) = drain(a)
    assert isinstance(closed, SessionClosed) and closed.code == CloseCode.VERSION_MISMATCH
    sent = [wire.decode(m) for m in a.data_to_send()]
    assert isinstance(sent[-1], wire.Close) and sent[-1].code == CloseCode.VERSION_MISMATCH


def test_future_hello_layout_is_version_mismatch_not_protocol_error() -> None:
    a, _ = make_pair()
    a.receive_data(b"\x01\x02 a layout v1 cannot parse", 0.0)
    assert drain(a)[-1] == SessionClosed(CloseCode.VERSION_MISMATCH, "version 2, expected 1", False)


def test_swarm_mismatch_closes_both() -> None:
    a, b = make_pair(swarm_b=b"X" * 20)
    roundtrip(a, b, 0.0)
    for session in (a, b):
        (closed,) = drain(session)
        assert isinstance(closed, SessionClosed)
        assert closed.code == CloseCode.SWARM_MISMATCH and not closed.by_remote
        assert session.is_closed


def test_hello_from_another_peer_than_signaling_paired_closes_identity_mismatch() -> None:
    config = SessionConfig()
    a = PeerSession(config, SWARM, PEER_A, 0.0, expected_peer_id=b"C" * 20)
    b = PeerSession(config, SWARM, PEER_B, 0.0)
    a.start(now=0.0)
    b.start(now=0.0)
    roundtrip(a, b, 0.0)
    (closed,) = drain(a)
    assert closed == SessionClosed(
        CloseCode.IDENTITY_MISMATCH, "HELLO peer_id is not the one signaling paired", False
    )
    assert a.stats.errors_by_code.get("IDENTITY_MISMATCH") == 1  # counted
    transfer(a, b, 0.0)
    assert drain(b)[-1] == SessionClosed(
        CloseCode.IDENTITY_MISMATCH, "HELLO peer_id is not the one signaling paired", True
    )


def test_hello_from_the_expected_peer_opens() -> None:
    a = PeerSession(SessionConfig(), SWARM, PEER_A, 0.0, expected_peer_id=PEER_B)
    b = PeerSession(SessionConfig(), SWARM, PEER_B, 0.0)
    a.start(now=0.0)
    b.start(now=0.0)
    roundtrip(a, b, 0.0)
    assert isinstance(drain(a)[0], HelloReceived) and a.state is SessionState.OPEN
    with pytest.raises(UsageError):
        PeerSession(SessionConfig(), SWARM, PEER_A, 0.0, expected_peer_id=b"short")


# --- transfers -------------------------------------------------------------------------------


@pytest.mark.parametrize("frame_bytes", [16 * 1024, 64 * 1024])
def test_two_mib_segment_arrives_identical(frame_bytes: int) -> None:
    config = SessionConfig(data_frame_bytes=frame_bytes)
    a, b = open_pair(config, config)
    data = segment_bytes(2 * MIB)
    request_id = a.request(SEG, 0, 1.0)
    transfer(a, b, 1.0)
    req = serve(b, data)
    assert req == SegmentRequested(request_id, SEG, 0)
    frames = b.data_to_send()
    assert frames[0] == wire.encode(wire.Response(request_id, 2 * MIB))
    assert all(len(f) <= frame_bytes for f in frames)
    payload = frame_bytes - wire.DATA_HEADER_BYTES
    assert len(frames) == 1 + -(-len(data) // payload)
    for frame in frames:
        a.receive_data(frame, 1.1)
    events = drain(a)
    assert events[0] == ResponseStarted(request_id, SEG, 2 * MIB, 0)
    chunks = only(events, DataReceived)
    assert b"".join(c.data for c in chunks) == data
    (done,) = only(events, RequestCompleted)
    assert done == RequestCompleted(request_id, SEG, 0, 2 * MIB, data)
    assert a.outbound_requests == 0 and b.inbound_requests == 0
    assert a.get_timer() is None
    assert b.stats.payload_bytes_sent == a.stats.payload_bytes_received == len(data)
    assert a.stats.messages_received == b.stats.messages_sent


def test_resume_from_offset() -> None:
    a, b = open_pair()
    data = segment_bytes(100_000, seed=1)
    request_id = a.request(SEG, 60_000, 0.0)
    transfer(a, b, 0.0)
    req = serve(b, data)
    assert req.offset == 60_000
    transfer(b, a, 0.0)
    events = drain(a)
    assert events[0] == ResponseStarted(request_id, SEG, 100_000, 60_000)
    (done,) = only(events, RequestCompleted)
    assert done.offset == 60_000 and done.data == data[60_000:]


def test_cut_through_data_flows_before_the_segment_is_complete() -> None:
    a, b = open_pair()
    data = segment_bytes(300_000, seed=2)
    request_id = a.request(SEG, 0, 0.0)
    transfer(a, b, 0.0)
    (req,) = only(drain(b), SegmentRequested)
    b.respond(req.request_id, len(data))  # size known from the CDN's Content-Length
    received = 0
    for i, start in enumerate(range(0, len(data), 7_000)):  # bytes "arriving" from the CDN
        b.send_data(req.request_id, start, data[start : start + 7_000])
        transfer(b, a, 0.01 * i)
        chunks = only(drain(a), DataReceived)
        received += sum(len(c.data) for c in chunks)
        assert received == min(start + 7_000, len(data))
    assert a.outbound_requests == 0  # completed
    assert received == len(data) and request_id not in (None,)


def test_cut_through_relay_across_two_hops() -> None:
    """C requests from B while B is still receiving the segment from A."""
    a, b = open_pair()
    c = PeerSession(SessionConfig(), SWARM, b"C" * 20, 0.0)
    b2 = PeerSession(SessionConfig(), SWARM, PEER_B, 0.0)  # B's session with C
    c.start(now=0.0)
    b2.start(now=0.0)
    roundtrip(c, b2, 0.0)
    drain(c), drain(b2)
    data = segment_bytes(500_000, seed=3)
    upstream = b.request(SEG, 0, 0.0)
    transfer(b, a, 0.0)
    (req_at_a,) = only(drain(a), SegmentRequested)
    a.respond(req_at_a.request_id, len(data))
    downstream = c.request(SEG, 0, 0.0)
    transfer(c, b2, 0.0)
    (req_at_b,) = only(drain(b2), SegmentRequested)
    relayed = bytearray()
    for start in range(0, len(data), 50_000):
        a.send_data(req_at_a.request_id, start, data[start : start + 50_000])
        transfer(a, b, 0.0)
        for event in drain(b):
            if isinstance(event, ResponseStarted):
                b2.respond(req_at_b.request_id, event.total_bytes)
            elif isinstance(event, DataReceived):
                assert event.request_id == upstream
                b2.send_data(req_at_b.request_id, event.offset, event.data)
        transfer(b2, c, 0.0)
        for event in drain(c):
            if isinstance(event, DataReceived):
                relayed += event.data
        assert len(relayed) == start + 50_000 or len(relayed) == len(data)
    assert bytes(relayed) == data
    assert c.outbound_requests == 0 and downstream == 1


def test_cancel_mid_transfer_drops_late_frames_silently() -> None:
    config = SessionConfig(data_frame_bytes=16 * 1024)
    a, b = open_pair(config, config)
    data = segment_bytes(1 * MIB)
    request_id = a.request(SEG, 0, 0.0)
    transfer(a, b, 0.0)
    serve(b, data)
    in_flight = b.data_to_send(max_bytes=200_000)  # already on the wire
    for frame in in_flight[:4]:
        a.receive_data(frame, 0.1)
    assert a.cancel(request_id, 0.1)
    assert not a.cancel(request_id, 0.1)  # no longer in flight
    for frame in in_flight[4:]:  # these crossed the CANCEL: dropped, no error
        a.receive_data(frame, 0.2)
    events = drain(a)
    assert not only(events, SessionClosed) and not only(events, RequestFailed)
    assert a.stats.late_frames_dropped == len(in_flight) - 4
    transfer(a, b, 0.2)
    assert drain(b) == [RequestCancelled(request_id)]
    assert b.inbound_requests == 0 and b.data_to_send() == []  # unsent frames dropped
    assert a.state is b.state is SessionState.OPEN
    assert not b.send_data(request_id, 0, b"x")  # the app learns the upload is gone


def test_absent() -> None:
    a, b = open_pair()
    request_id = a.request(SEG, 0, 0.0)
    transfer(a, b, 0.0)
    (req,) = only(drain(b), SegmentRequested)
    assert b.reject_absent(req.request_id)
    transfer(b, a, 0.0)
    assert drain(a) == [RequestFailed(request_id, SEG, "absent")]
    assert a.get_timer() is None


def test_busy_explicit_carries_retry_hint() -> None:
    a, b = open_pair()
    request_id = a.request(SEG, 0, 0.0)
    transfer(a, b, 0.0)
    (req,) = only(drain(b), SegmentRequested)
    b.reject_busy(req.request_id, retry_after_ms=1500)
    transfer(b, a, 0.0)
    assert drain(a) == [RequestFailed(request_id, SEG, "busy", 1.5)]


def test_busy_automatic_over_max_inbound_requests() -> None:
    a, b = open_pair(config_b=SessionConfig(max_inbound_requests=2, busy_retry_after_ms=250))
    ids = [a.request(SegmentId(0, i), 0, 0.0) for i in range(3)]
    transfer(a, b, 0.0)
    assert [e.request_id for e in only(drain(b), SegmentRequested)] == ids[:2]
    assert b.stats.busy_sent == 1
    transfer(b, a, 0.0)
    assert drain(a) == [RequestFailed(ids[2], SegmentId(0, 2), "busy", 0.25)]
    assert a.state is SessionState.OPEN


def test_leech_only_answers_every_request_busy() -> None:
    a, b = open_pair(config_b=SessionConfig(leech_only=True))
    request_id = a.request(SEG, 0, 0.0)
    roundtrip(a, b, 0.0)
    assert drain(b) == []
    assert drain(a) == [RequestFailed(request_id, SEG, "busy", 65.535)]


def test_abort_mid_transfer() -> None:
    a, b = open_pair()
    request_id = a.request(SEG, 0, 0.0)
    transfer(a, b, 0.0)
    (req,) = only(drain(b), SegmentRequested)
    b.respond(req.request_id, 1000)
    b.send_data(req.request_id, 0, b"x" * 400)
    transfer(b, a, 0.0)
    assert b.abort(req.request_id, wire.AbortReason.UPSTREAM_FAILED)
    transfer(b, a, 0.1)
    events = drain(a)
    assert events[-1] == RequestFailed(request_id, SEG, "aborted")
    assert sum(len(e.data) for e in only(events, DataReceived)) == 400
    assert a.state is SessionState.OPEN and b.inbound_requests == 0


# --- timers ----------------------------------------------------------------------------------


def test_request_timeout_without_response() -> None:
    a, b = open_pair(now=10.0)
    request_id = a.request(SEG, 0, 10.0)
    transfer(a, b, 10.0)
    drain(b)
    assert a.get_timer() == 14.0  # request_timeout_s: 4 s
    a.handle_timer(a.get_timer())  # type: ignore[arg-type]
    assert drain(a) == [RequestFailed(request_id, SEG, "timeout")]
    assert [wire.decode(m) for m in a.data_to_send()] == [wire.Cancel(request_id)]
    a.receive_data(wire.encode(wire.Response(request_id, 10)), 14.5)  # crossed the CANCEL
    assert drain(a) == [] and a.state is SessionState.OPEN


def test_idle_data_timeout_after_response() -> None:
    a, b = open_pair()
    request_id = a.request(SEG, 0, 0.0)
    transfer(a, b, 0.0)
    (req,) = only(drain(b), SegmentRequested)
    b.respond(req.request_id, 10_000)
    transfer(b, a, 1.0)
    assert a.get_timer() == 5.0  # idle timer (idle_data_timeout_s: 4 s) armed by RESPONSE
    b.send_data(req.request_id, 0, b"y" * 100)
    transfer(b, a, 2.5)
    assert a.get_timer() == 6.5  # re-armed by DATA
    a.handle_timer(6.0)
    assert only(drain(a), RequestFailed) == []
    a.handle_timer(a.get_timer())  # type: ignore[arg-type]
    assert drain(a) == [RequestFailed(request_id, SEG, "timeout")]
    transfer(a, b, 6.5)
    assert drain(b) == [RequestCancelled(req.request_id)]


def test_hello_timer_is_disarmed_by_hello() -> None:
    a, b = make_pair()
    roundtrip(a, b, 9.0)
    a.handle_timer(100.0)
    assert a.state is SessionState.OPEN


# --- misbehaving peers -----------------------------------------------------------------------


def _with_requests_in_flight() -> tuple[PeerSession, PeerSession, int, int]:
    """a has two requests at b: the first one answered (RESPONSE + 100 bytes), one waiting."""
    a, b = open_pair()
    first = a.request(SegmentId(0, 1), 0, 0.0)
    second = a.request(SegmentId(0, 2), 0, 0.0)
    transfer(a, b, 0.0)
    reqs = only(drain(b), SegmentRequested)
    b.respond(reqs[0].request_id, 1000)
    b.send_data(reqs[0].request_id, 0, b"z" * 100)
    transfer(b, a, 0.0)
    drain(a)
    return a, b, first, second


BAD_INPUTS = {
    "garbage": (lambda first: b"\xfe\x00garbage", CloseCode.PROTOCOL_ERROR),
    "truncated_request": (lambda first: b"\x10\x00", CloseCode.PROTOCOL_ERROR),
    "oversize": (lambda first: b"\x12" + b"\x00" * 65536, CloseCode.LIMIT_EXCEEDED),
    "second_hello": (
        lambda first: wire.encode(wire.Hello(SWARM, PEER_B)),
        CloseCode.STATE_VIOLATION,
    ),
    "data_unknown_id": (
        lambda first: wire.encode(wire.Data(999, 0, b"x")),
        CloseCode.STATE_VIOLATION,
    ),
    "data_not_contiguous": (
        lambda first: wire.encode(wire.Data(first, 200, b"x")),
        CloseCode.STATE_VIOLATION,
    ),
    "data_overlap": (
        lambda first: wire.encode(wire.Data(first, 50, b"x")),
        CloseCode.STATE_VIOLATION,
    ),
    "data_past_total": (
        lambda first: wire.encode(wire.Data(first, 100, b"x" * 901)),
        CloseCode.STATE_VIOLATION,
    ),
    "response_twice": (
        lambda first: wire.encode(wire.Response(first, 1000)),
        CloseCode.STATE_VIOLATION,
    ),
    "absent_after_response": (
        lambda first: wire.encode(wire.Absent(first)),
        CloseCode.STATE_VIOLATION,
    ),
    "busy_unknown_id": (
        lambda first: wire.encode(wire.Busy(12345, 0)),
        CloseCode.STATE_VIOLATION,
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_misbehaving_peer_closes_session_and_fails_requests(name: str) -> None:
    make_bytes, code = BAD_INPUTS[name]
    a, b, first, second = _with_requests_in_flight()
    a.receive_data(make_bytes(first), 1.0)  # must not raise
    events = drain(a)
    assert events[:2] == [
        RequestFailed(first, SegmentId(0, 1), "closed"),
        RequestFailed(second, SegmentId(0, 2), "closed"),
    ]
    assert isinstance(events[2], SessionClosed) and len(events) == 3
    assert events[2].code == code and not events[2].by_remote
    sent = a.data_to_send()
    last = wire.decode(sent[-1])
    assert isinstance(last, wire.Close) and last.code == code
    assert a.is_closed and a.get_timer() is None
    a.receive_data(b"\xff more garbage after close is ignored", 2.0)
    assert drain(a) == []
    for message in sent:
        b.receive_data(message, 1.0)
    (closed,) = only(drain(b), SessionClosed)
    assert closed.code == code and closed.by_remote
    assert sum(a.stats.errors_by_code.values()) == 1


def test_text_message_is_a_protocol_error() -> None:
    a, _ = open_pair()
    a.receive_data("hello", 0.0)  # type: ignore[arg-type]
    assert drain(a) == [SessionClosed(CloseCode.PROTOCOL_ERROR, "text message", False)]


def test_request_before_hello_is_a_state_violation() -> None:
    a, _ = make_pair()
    a.receive_data(wire.encode(wire.Request(1, SEG)), 0.0)
    (closed,) = drain(a)
    assert closed == SessionClosed(CloseCode.STATE_VIOLATION, "REQUEST before HELLO", False)


def test_data_before_hello_is_a_state_violation() -> None:
    a, _ = make_pair()
    a.receive_data(wire.encode(wire.Data(1, 0, b"x")), 0.0)
    (closed,) = drain(a)
    assert isinstance(closed, SessionClosed) and closed.code == CloseCode.STATE_VIOLATION


def test_duplicate_request_id_in_flight_is_a_state_violation() -> None:
    a, b = open_pair()
    b.receive_data(wire.encode(wire.Request(7, SEG)), 0.0)
    b.receive_data(wire.encode(wire.Request(7, SegmentId(0, 0))), 0.0)
    events = drain(b)
    assert events[0] == SegmentRequested(7, SEG, 0)
    assert isinstance(events[-1], SessionClosed)
    assert events[-1].code == CloseCode.STATE_VIOLATION


def test_response_not_past_offset_is_a_state_violation() -> None:
    a, b = open_pair()
    request_id = a.request(SEG, 500, 0.0)
    a.receive_data(wire.encode(wire.Response(request_id, 500)), 0.0)
    assert drain(a)[-1] == SessionClosed(
        CloseCode.STATE_VIOLATION, "total_bytes=500 not past offset 500", False
    )


def test_cancel_for_unknown_id_is_ignored() -> None:
    a, b = open_pair()
    b.receive_data(wire.encode(wire.Cancel(42)), 0.0)
    assert drain(b) == [] and b.state is SessionState.OPEN


def test_remote_close_fails_requests_and_reports_by_remote() -> None:
    a, b = open_pair()
    request_id = a.request(SEG, 0, 0.0)
    b.close(CloseCode.GOING_AWAY, "bye")
    assert drain(b) == [SessionClosed(CloseCode.GOING_AWAY, "bye", False)]
    transfer(b, a, 0.0)
    assert drain(a) == [
        RequestFailed(request_id, SEG, "closed"),
        SessionClosed(CloseCode.GOING_AWAY, "bye", True),
    ]
    assert a.data_to_send() == [wire.encode(wire.Request(request_id, SEG))]  # no CLOSE back
    b.close()  # idempotent
    assert drain(b) == []


def test_lost_transport_is_reported_as_remote_going_away_and_sends_nothing() -> None:
    a, _ = open_pair()
    request_id = a.request(SEG, 0, 0.0)
    a.data_to_send()
    a.transport_closed("data channel closed")
    assert drain(a) == [
        RequestFailed(request_id, SEG, "closed"),
        SessionClosed(CloseCode.GOING_AWAY, "data channel closed", True),
    ]
    assert a.data_to_send() == []  # no CLOSE queued for a channel that is gone
    a.transport_closed()  # idempotent
    a.close()
    assert drain(a) == [] and a.data_to_send() == []


def test_close_reason_is_truncated_to_123_bytes_at_a_character_boundary() -> None:
    a, _ = open_pair()
    a.close(CloseCode.BANNED, "é" * 100)
    (message,) = a.data_to_send()
    close = wire.decode(message)
    assert isinstance(close, wire.Close) and close.reason == "é" * 61


def test_remote_unassigned_close_code_is_reported_as_a_number() -> None:
    a, _ = open_pair()
    a.receive_data(wire.encode(wire.Close(4000, "custom")), 0.0)
    assert drain(a) == [SessionClosed(4000, "custom", True)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=8))
def test_random_messages_never_raise(messages: list[bytes]) -> None:
    a, b, _, _ = _with_requests_in_flight()
    for message in messages:
        a.receive_data(message, 1.0)
    a.handle_timer(100.0)
    a.data_to_send()
    drain(a)


# --- flow control ----------------------------------------------------------------------------


def test_data_to_send_respects_budget_and_sends_control_first() -> None:
    config = SessionConfig(data_frame_bytes=16 * 1024)
    a, b = open_pair(config, config)
    r1 = a.request(SegmentId(0, 1), 0, 0.0)
    r2 = a.request(SegmentId(0, 2), 0, 0.0)
    transfer(a, b, 0.0)
    reqs = only(drain(b), SegmentRequested)
    for req in reqs:
        b.respond(req.request_id, 100_000)
        b.send_data(req.request_id, 0, segment_bytes(100_000, seed=req.request_id))
    b.announce_have([SegmentId(0, 9)])
    batch = b.data_to_send(max_bytes=40_000)
    decoded = [wire.decode(m) for m in batch]
    assert [type(m) for m in decoded[:3]] == [wire.Response, wire.Response, wire.Have]
    assert sum(len(m) for m in batch) <= 40_000
    data_ids = [m.request_id for m in decoded if isinstance(m, wire.Data)]
    assert data_ids == [r1, r2, r1]  # round-robin; the third frame is shortened to fit
    assert sum(len(m) for m in batch) == 40_000
    assert b.data_to_send(max_bytes=9) == []  # no room for even one payload byte
    # a CANCEL queued now goes before the remaining data frames
    b.receive_data(wire.encode(wire.Cancel(r2)), 0.0)
    b.announce_lost([SegmentId(0, 9)])
    rest_raw = b.data_to_send(max_bytes=20_000)
    rest = [wire.decode(m) for m in rest_raw]
    assert isinstance(rest[0], wire.Lost)
    assert {m.request_id for m in rest if isinstance(m, wire.Data)} == {r1}
    for message in batch + rest_raw:
        a.receive_data(message, 0.0)
    while more := b.data_to_send(max_bytes=30_000):
        for message in more:
            a.receive_data(message, 0.0)
    done = only(drain(a), RequestCompleted)
    assert [d.request_id for d in done] == [r1]
    assert done[0].data == segment_bytes(100_000, seed=reqs[0].request_id)


def test_data_frames_merge_small_cut_through_pieces() -> None:
    a, b = open_pair()
    request_id = a.request(SEG, 0, 0.0)
    transfer(a, b, 0.0)
    (req,) = only(drain(b), SegmentRequested)
    b.respond(req.request_id, 5000)
    for start in range(0, 5000, 500):
        b.send_data(req.request_id, start, bytes([start // 500]) * 500)
    frames = b.data_to_send()
    assert len(frames) == 2  # RESPONSE + one DATA carrying all ten pieces
    for frame in frames:
        a.receive_data(frame, 0.0)
    (done,) = only(drain(a), RequestCompleted)
    assert done.request_id == request_id and len(done.data) == 5000


# --- our own misuse --------------------------------------------------------------------------


def test_usage_errors() -> None:
    a, b = make_pair()
    with pytest.raises(UsageError):
        a.request(SEG, 0, 0.0)  # before the peer's HELLO
    with pytest.raises(UsageError):
        a.start(now=0.0)
    fresh = PeerSession(SessionConfig(), SWARM, PEER_A, 0.0)
    with pytest.raises(UsageError):
        fresh.receive_data(b"\x01", 0.0)
    with pytest.raises(UsageError):
        fresh.announce_have([SEG])
    with pytest.raises(UsageError):
        PeerSession(SessionConfig(), b"short", PEER_A, 0.0)
    roundtrip(a, b, 0.0)
    with pytest.raises(UsageError):
        a.request(SegmentId(0, -1), 0, 0.0)
    with pytest.raises(UsageError):
        a.request(SEG, wire.MAX_SEGMENT_BYTES, 0.0)
    for i in range(8):
        a.request(SegmentId(0, i), 0, 0.0)
    assert not a.can_request
    with pytest.raises(UsageError):
        a.request(SEG, 0, 0.0)
    transfer(a, b, 0.0)
    req = only(drain(b), SegmentRequested)[0]
    with pytest.raises(UsageError):
        b.send_data(req.request_id, 0, b"x")  # before respond
    with pytest.raises(UsageError):
        b.respond(req.request_id, 0)
    b.respond(req.request_id, 10)
    with pytest.raises(UsageError):
        b.respond(req.request_id, 10)
    with pytest.raises(UsageError):
        b.reject_absent(req.request_id)  # answered: abort() instead
    with pytest.raises(UsageError):
        b.send_data(req.request_id, 5, b"x")  # not contiguous
    with pytest.raises(UsageError):
        b.send_data(req.request_id, 0, b"x" * 11)  # past total
    assert not b.respond(424242, 10)  # unknown id: not active
    b.close()
    with pytest.raises(UsageError):
        b.send_data(req.request_id, 0, b"x")
    with pytest.raises(UsageError):
        b.announce_have([SEG])
    assert not b.cancel(1, 0.0)
    b.receive_data(b"ignored", 0.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hello_timeout_s": 0},
        {"max_message_bytes": 70_000},
        {"data_frame_bytes": 9},
        {"data_frame_bytes": 65_536, "max_message_bytes": 16_384},
        {"max_inbound_requests": 0},
        {"busy_retry_after_ms": 70_000},
    ],
)
def test_invalid_config(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        SessionConfig(**kwargs)  # type: ignore[arg-type]


def test_recently_cancelled_memory_is_bounded() -> None:
    a, b = open_pair(SessionConfig(recently_cancelled_keep=2))
    ids = []
    for i in range(3):
        request_id = a.request(SegmentId(0, i), 0, 0.0)
        a.cancel(request_id, 0.0)
        ids.append(request_id)
    a.receive_data(wire.encode(wire.Absent(ids[2])), 0.0)
    assert a.state is SessionState.OPEN  # still remembered
    a.receive_data(wire.encode(wire.Absent(ids[0])), 0.0)  # forgotten: unknown id
    assert drain(a)[-1].code == CloseCode.STATE_VIOLATION  # type: ignore[union-attr]


_ids = st.integers(0, 4)
_segs = st.builds(SegmentId, st.integers(0, 2), st.integers(0, 5))
_valid_messages = st.one_of(
    st.builds(wire.Have, st.lists(_segs, min_size=1, max_size=3).map(tuple)),
    st.builds(wire.Lost, st.lists(_segs, min_size=1, max_size=3).map(tuple)),
    st.builds(
        wire.Fetching,
        st.lists(st.builds(wire.FetchingEntry, _segs, st.integers(0, 500)), min_size=1).map(tuple),
    ),
    st.builds(wire.Request, _ids, _segs, st.integers(0, 300)),
    st.builds(wire.Response, _ids, st.integers(1, 1200)),
    st.builds(wire.Data, _ids, st.integers(0, 1200), st.binary(min_size=1, max_size=120)),
    st.builds(wire.Cancel, _ids),
    st.builds(wire.Absent, _ids),
    st.builds(wire.Busy, _ids, st.integers(0, 3000)),
    st.builds(wire.Abort, _ids, st.sampled_from(sorted(wire.AbortReason))),
    st.builds(wire.Close, st.integers(0, 12), st.text(max_size=5)),
    st.just(wire.Hello(SWARM, PEER_B)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_valid_messages, st.floats(0, 3)), max_size=12))
def test_any_sequence_of_valid_messages_keeps_the_state_machine_consistent(
    script: list[tuple[wire.Message, float]],
) -> None:
    a, _, first, second = _with_requests_in_flight()
    now = 0.0
    events: list[Event] = []
    for message, step_s in script:
        now += step_s
        a.receive_data(wire.encode(message), now)
        if (timer := a.get_timer()) is not None and timer <= now:
            a.handle_timer(now)
        events += drain(a)
        a.data_to_send(max_bytes=1000)
    closed = only(events, SessionClosed)
    assert len(closed) == (1 if a.is_closed else 0)
    if closed:
        assert events[-1] is closed[0] and a.outbound_requests == 0
    ended = [e.request_id for e in events if isinstance(e, RequestFailed | RequestCompleted)]
    assert len(ended) == len(set(ended)) and set(ended) <= {first, second}
