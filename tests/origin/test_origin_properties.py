"""Property tests of the pure parts: Range parsing and the live timeline."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from peer_agent.origin.errors import BadRange
from peer_agent.origin.live import LiveTimeline
from peer_agent.origin.ranges import parse_range


@given(size=st.integers(0, 10_000), a=st.integers(0, 20_000), b=st.integers(0, 20_000))
def test_parse_range_stays_inside_the_body(size: int, a: int, b: int) -> None:
    for header in (f"bytes={a}-{b}", f"bytes={a}-", f"bytes=-{b}"):
        try:
            first, last = parse_range(header, size)
        except BadRange as exc:
            assert exc.size == size
            continue
        assert 0 <= first <= last < size


@given(st.text(max_size=40))
def test_parse_range_never_crashes(header: str) -> None:
    try:
        first, last = parse_range(header, 1000)
    except BadRange:
        return
    assert 0 <= first <= last < 1000


@given(
    segment_s=st.sampled_from([0.5, 1.0, 2.0, 4.0]),
    window=st.integers(1, 8),
    content=st.integers(1, 10),
    history=st.integers(0, 5),
    times=st.lists(st.floats(0, 10_000, allow_nan=False), min_size=1, max_size=20),
)
def test_live_window_invariants(
    segment_s: float, window: int, content: int, history: int, times: list[float]
) -> None:
    tl = LiveTimeline(
        start_s=1000.0,
        segment_s=segment_s,
        window=window,
        content_segments=content,
        history=history,
    )
    previous_first = -1
    for t in sorted(times):
        w = tl.window_at(1000.0 + t)
        assert len(w.msns) == window
        assert w.first_msn >= previous_first >= -1
        previous_first = w.first_msn
        # the discontinuity sequence counts loop starts at or before the first segment
        assert w.discontinuity_sequence == sum(tl.starts_loop(k) for k in range(w.first_msn + 1))
        # every published segment has ended by now
        assert tl.program_date_time_s(w.last_msn) + segment_s <= 1000.0 + t + 1e-6
        served = tl.served_range(1000.0 + t)
        assert served.stop == w.last_msn + 1
        assert served.start == max(0, w.first_msn - history)
