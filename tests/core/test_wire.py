"""Codec behaviour beyond the shared vectors: encoder checks, helpers, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peer_agent.core import wire
from peer_agent.core.errors import CloseCode, UsageError, WireError, WireErrorCode
from peer_agent.core.ids import SegmentId

SWARM = b"s" * 20
PEER = b"p" * 20


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_ever_raise_wire_error(data: bytes) -> None:
    try:
        message = wire.decode(data)
    except WireError as exc:
        assert isinstance(exc.code, WireErrorCode)
    else:
        assert wire.encode(message) == data


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(sorted(wire.MessageType)),
    st.binary(max_size=120),
)
def test_random_bodies_after_a_known_type_only_raise_wire_error(
    type_byte: int, body: bytes
) -> None:
    data = bytes((type_byte,)) + body
    try:
        message = wire.decode(data)
    except WireError:
        return
    assert wire.encode(message) == data


segments = st.builds(SegmentId, st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF))
entries = st.builds(wire.FetchingEntry, segments, st.integers(0, wire.MAX_SEGMENT_BYTES))
request_ids = st.integers(0, 0xFFFFFFFF)
messages = st.one_of(
    st.builds(wire.Have, st.lists(segments, min_size=1, max_size=20).map(tuple)),
    st.builds(wire.Lost, st.lists(segments, min_size=1, max_size=20).map(tuple)),
    st.builds(wire.Fetching, st.lists(entries, min_size=1, max_size=20).map(tuple)),
    st.builds(wire.Request, request_ids, segments, st.integers(0, wire.MAX_SEGMENT_BYTES - 1)),
    st.builds(wire.Response, request_ids, st.integers(1, wire.MAX_SEGMENT_BYTES)),
    st.builds(wire.Data, request_ids, st.integers(0, 1 << 20), st.binary(min_size=1)),
    st.builds(wire.Busy, request_ids, st.integers(0, 0xFFFF)),
    st.builds(wire.Abort, request_ids, st.sampled_from(sorted(wire.AbortReason))),
    st.builds(wire.Close, st.integers(0, 0xFFFF), st.text(max_size=30)),
    st.builds(
        wire.Hello,
        st.just(SWARM),
        st.just(PEER),
        st.sampled_from([0, 1]),
        st.lists(segments, max_size=30).map(wire.ranges_from_segments),
        st.lists(entries, max_size=5).map(tuple),
    ),
)


@settings(max_examples=500, deadline=None)
@given(messages)
def test_round_trip(message: wire.Message) -> None:
    assert wire.decode(wire.encode(message)) == message


@pytest.mark.parametrize(
    "message",
    [
        wire.Have(()),
        wire.Have((SegmentId(0x10000, 0),)),
        wire.Lost((SegmentId(0, -1),)),
        wire.Have(tuple(SegmentId(0, i) for i in range(1025))),
        wire.Fetching(()),
        wire.Fetching((wire.FetchingEntry(SegmentId(0, 0), wire.MAX_SEGMENT_BYTES + 1),)),
        wire.Request(-1, SegmentId(0, 0)),
        wire.Request(1, SegmentId(0, 0), wire.MAX_SEGMENT_BYTES),
        wire.Response(1, 0),
        wire.Response(1, wire.MAX_SEGMENT_BYTES + 1),
        wire.Data(1, 0, b""),
        wire.Data(1, 0, b"x" * (wire.MAX_DATA_PAYLOAD_BYTES + 1)),
        wire.Data(1 << 32, 0, b"x"),
        wire.Data(1, wire.MAX_SEGMENT_BYTES, b"x"),
        wire.Busy(1, 0x10000),
        wire.Abort(1, 0),
        wire.Abort(1, 5),
        wire.Close(0x10000),
        wire.Close(0, "é" * 62),
        wire.Hello(b"short", PEER),
        wire.Hello(SWARM, PEER * 2),
        wire.Hello(SWARM, PEER, flags=2),
        wire.Hello(SWARM, PEER, version=0),
        wire.Hello(SWARM, PEER, have=(wire.SegmentRange(0, 0, 0),)),
        wire.Hello(SWARM, PEER, have=(wire.SegmentRange(0, 0xFFFFFFFF, 2),)),
        wire.Hello(SWARM, PEER, have=(wire.SegmentRange(0, 0, 16384), wire.SegmentRange(1, 0, 1))),
        wire.Hello(SWARM, PEER, have=tuple(wire.SegmentRange(0, i * 2, 1) for i in range(1025))),
        wire.Hello(
            SWARM,
            PEER,
            fetching=tuple(wire.FetchingEntry(SegmentId(0, i), 0) for i in range(257)),
        ),
    ],
)
def test_encode_rejects_invalid_messages(message: wire.Message) -> None:
    with pytest.raises(UsageError):
        wire.encode(message)


def test_encode_rejects_non_messages() -> None:
    with pytest.raises(UsageError):
        wire.encode("hello")  # type: ignore[arg-type]


def test_usage_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        wire.encode(wire.Response(1, 0))


def test_encode_data_accepts_memoryview_slices() -> None:
    buf = memoryview(b"0123456789")
    assert wire.encode_data(1, 2, buf[2:5]) == wire.encode(wire.Data(1, 2, b"234"))


def test_max_payload_fills_a_max_message() -> None:
    raw = wire.encode(wire.Data(1, 0, b"x" * wire.MAX_DATA_PAYLOAD_BYTES))
    assert len(raw) == wire.MAX_MESSAGE_BYTES


def test_ranges_from_segments_merges_and_sorts() -> None:
    ids = [SegmentId(1, 5), SegmentId(0, 3), SegmentId(0, 1), SegmentId(0, 2), SegmentId(1, 5)]
    assert wire.ranges_from_segments(ids) == (
        wire.SegmentRange(0, 1, 3),
        wire.SegmentRange(1, 5, 1),
    )
    assert wire.ranges_from_segments([]) == ()


def test_ranges_from_segments_splits_at_u16_count() -> None:
    ids = [SegmentId(0, i) for i in range(0x10001)]
    ranges = wire.ranges_from_segments(ids)
    assert ranges == (wire.SegmentRange(0, 0, 0xFFFF), wire.SegmentRange(0, 0xFFFF, 2))


def test_segment_range_contains_and_expands() -> None:
    r = wire.SegmentRange(2, 10, 3)
    assert SegmentId(2, 10) in r and SegmentId(2, 12) in r
    assert SegmentId(2, 13) not in r and SegmentId(1, 10) not in r
    assert r.segments() == (SegmentId(2, 10), SegmentId(2, 11), SegmentId(2, 12))
    assert r.last_sequence == 12


def test_hello_leech_only_flag() -> None:
    assert wire.Hello(SWARM, PEER, flags=wire.FLAG_LEECH_ONLY).leech_only
    assert not wire.Hello(SWARM, PEER).leech_only


def test_wire_error_close_codes() -> None:
    assert WireError(WireErrorCode.OVERSIZE, "x").close_code is CloseCode.LIMIT_EXCEEDED
    assert WireError(WireErrorCode.TRUNCATED, "x").close_code is CloseCode.PROTOCOL_ERROR


def test_decoded_data_payload_is_bytes_even_from_memoryview() -> None:
    raw = wire.encode(wire.Data(3, 4, b"abc"))
    message = wire.decode(memoryview(raw))
    assert isinstance(message, wire.Data) and type(message.payload) is bytes
