"""The virtual player: startup, stalls, resume, end of a finite stream, all at explicit times."""

from __future__ import annotations

import pytest

from peer_agent.core.config import PlaybackConfig
from peer_agent.core.playback import PlaybackModel

CFG = PlaybackConfig(startup_buffer_s=0.5, rebuffer_s=1.0)


def test_starts_when_first_segment_arrives_and_plays_in_real_time() -> None:
    p = PlaybackModel(CFG, start_position_s=100.0, now=10.0)
    p.advance(10.4)
    assert not p.playing and p.startup_s is None
    p.add_media(100.0, 4.0, now=10.75)
    assert p.playing and p.startup_s == pytest.approx(0.75)
    p.advance(12.75)
    assert p.playhead_s == pytest.approx(102.0)
    assert p.buffer_s == pytest.approx(2.0)
    assert p.next_event_at() == pytest.approx(14.75)


def test_stall_is_timed_from_when_the_buffer_ran_out() -> None:
    p = PlaybackModel(CFG, 0.0, now=0.0)
    p.add_media(0.0, 4.0, now=0.0)
    p.advance(5.0)  # ran dry at t=4
    assert p.stall_count == 1 and not p.playing
    assert p.stall_s(5.0) == pytest.approx(1.0)
    assert p.stalls[0].started_at == pytest.approx(4.0)
    p.add_media(4.0, 4.0, now=6.5)
    assert p.playing
    assert p.stall_s(100.0) == pytest.approx(2.5)
    p.advance(8.5)
    assert p.playhead_s == pytest.approx(6.0)


def test_resume_needs_rebuffer_seconds() -> None:
    cfg = PlaybackConfig(startup_buffer_s=0.5, rebuffer_s=6.0)
    p = PlaybackModel(cfg, 0.0, now=0.0)
    p.add_media(0.0, 4.0, now=0.0)
    p.advance(4.5)
    p.add_media(4.0, 4.0, now=5.0)  # 4 s buffered, 6 needed
    assert not p.playing
    p.add_media(8.0, 4.0, now=6.0)
    assert p.playing and p.stall_s(6.0) == pytest.approx(2.0)


def test_gap_in_buffer_stops_at_the_gap() -> None:
    p = PlaybackModel(CFG, 0.0, now=0.0)
    p.add_media(8.0, 4.0, now=0.0)  # not contiguous with the playhead
    assert not p.playing
    p.add_media(0.0, 4.0, now=1.0)
    assert p.buffered_until_s == pytest.approx(4.0)
    p.add_media(4.0, 4.0, now=2.0)
    assert p.buffered_until_s == pytest.approx(12.0)


def test_finite_stream_ends_without_a_stall() -> None:
    p = PlaybackModel(CFG, 0.0, now=0.0, end_s=8.0)
    p.add_media(0.0, 4.0, now=0.0)
    p.add_media(4.0, 4.0, now=1.0)
    p.advance(20.0)
    assert p.ended and p.stall_count == 0
    assert p.playhead_s == pytest.approx(8.0)


def test_short_tail_of_a_finite_stream_resumes_playback() -> None:
    p = PlaybackModel(PlaybackConfig(startup_buffer_s=2.0), 0.0, now=0.0, end_s=1.0)
    p.add_media(0.0, 1.0, now=0.5)  # less than startup_buffer_s, but the whole stream
    assert p.playing


def test_time_going_backwards_is_our_bug() -> None:
    p = PlaybackModel(CFG, 0.0, now=5.0)
    with pytest.raises(ValueError):
        p.advance(4.0)
