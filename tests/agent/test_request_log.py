"""The agent's per-request timelines (peer_agent/agent/requests.py): pure bookkeeping."""

from __future__ import annotations

from peer_agent.agent.requests import MAX_RECORDS, RequestLog, outcome_kind
from peer_agent.core.ids import SegmentId

S1, S2 = SegmentId(0, 1), SegmentId(0, 2)


def test_a_request_is_timed_from_sent_to_its_end() -> None:
    log = RequestLog(started_at=100.0)
    log.sent(S1, "alice", "have", 0, ahead_s=4.0, now=101.0)
    log.data(S1, "bob", 500, now=101.1)  # another peer's bytes do not count
    log.data(S1, "alice", 1000, now=101.3)
    log.data(S1, "alice", 1000, now=101.8)
    log.ended(S1, "alice", "completed", now=101.9)
    log.sent(S2, "bob", "cut_through", 0, ahead_s=3.0, now=102.0)
    log.ended(S2, "bob", "cancel:stalled", now=103.6)
    [done, cancelled] = log.records()
    assert done["first_byte_s"] == 1.3 and done["last_byte_s"] == 1.8 and done["bytes"] == 2000
    assert done["outcome"] == "completed" and done["end_s"] == 1.9
    assert cancelled["outcome"] == "cancel:stalled" and cancelled["quiet_s"] == 1.6
    summary = log.summary()
    assert summary["outcomes"] == {"cancel:stalled": 1, "completed": 1}
    assert summary["first_byte_s_p50"] == 0.3 and summary["completed_s_p50"] == 0.9
    assert summary["outcomes_by_reason"] == {
        "cut_through cancel:stalled no_byte": 1,
        "have completed": 1,
    }


def test_outcome_kinds_tell_silent_requests() -> None:
    assert outcome_kind("have", "completed", 0) == "have completed"
    assert outcome_kind("cut_through", "cancel:too_slow", 10) == "cut_through cancel:too_slow"
    assert outcome_kind("have", "failed:busy", 0) == "have failed:busy no_byte"


def test_a_closed_peer_ends_its_requests_and_records_are_bounded() -> None:
    log = RequestLog(started_at=0.0)
    log.sent(S1, "alice", "have", 0, ahead_s=4.0, now=1.0)
    log.sent(S2, "bob", "have", 0, ahead_s=4.0, now=1.0)
    log.peer_closed("alice", now=2.0)
    assert log.summary()["outcomes"] == {"closed": 1}
    assert [r["outcome"] for r in log.records()] == ["closed", "open"]
    for n in range(MAX_RECORDS + 10):
        log.sent(SegmentId(1, n), "carol", "have", 0, ahead_s=1.0, now=3.0)
        log.ended(SegmentId(1, n), "carol", "completed", now=3.5)
    assert len(log.records()) == MAX_RECORDS


def test_cdn_and_delivery_events_are_timed_and_bounded() -> None:
    log = RequestLog(started_at=100.0)
    log.note("cdn", S1, 101.25, reason="urgent", offset=0)
    log.note("delivered", S1, 101.75)
    assert log.events() == [
        {"event": "cdn", "segment": [0, 1], "t": 1.25, "reason": "urgent", "offset": 0},
        {"event": "delivered", "segment": [0, 1], "t": 1.75},
    ]
    for i in range(MAX_RECORDS + 5):
        log.note("cdn_first_byte", S2, 102.0 + i)
    events = log.events()
    assert len(events) == MAX_RECORDS and events[0]["t"] == 7.0  # the oldest went first
