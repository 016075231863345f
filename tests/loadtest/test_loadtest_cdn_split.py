"""The load test's join-ramp / steady-state split of the agents' CDN fetches (pure: rows in,
figures out; docs/loadtest.md, docs/simulator.md "Join ramp and steady state")."""

from __future__ import annotations

from peer_agent.loadtest import cli
from peer_agent.loadtest.results import cdn_fetch_split


def row(rendition: int, start: int | None, last: int | None, ramp: int, steady: int) -> dict:
    return {
        "rendition": rendition,
        "start_sequence": start,
        "last_sequence_played": last,
        "cdn_fetches_join_ramp": ramp,
        "cdn_fetches_steady": steady,
    }


def test_steady_fetches_per_segment_per_rendition() -> None:
    rows = [
        # rendition 0: spans 10+4 .. 30 and 12+4 .. 33 -> segments 14..33 = 20; 10 fetches
        row(0, 10, 30, 4, 6),
        row(0, 12, 33, 1, 4),
        # rendition 1: 20+4 .. 27 -> 4 segments; 2 fetches
        row(1, 20, 27, 4, 2),
        # no start yet (left early): its fetches count, its span does not
        row(1, None, None, 3, 0),
    ]
    split = cdn_fetch_split(rows)
    assert split["cdn_fetches_join_ramp"] == 12 and split["cdn_fetches_steady"] == 12
    assert split["cdn_fetches_join_ramp_per_agent"] == 3.0
    assert split["cdn_fetches_per_segment_steady_by_rendition"] == {"0": 0.5, "1": 0.5}
    assert split["cdn_fetches_per_segment_steady"] == round(12 / 24, 3)


def test_no_steady_span_is_none_not_zero() -> None:
    # An agent that never got past its ramp: no steady span, so no figure (not a fake 0).
    split = cdn_fetch_split([row(0, 10, 12, 3, 0)])
    assert split["cdn_fetches_per_segment_steady"] is None
    assert split["cdn_fetches_per_segment_steady_by_rendition"] == {"0": None}
    assert cdn_fetch_split([])["cdn_fetches_join_ramp_per_agent"] is None


def test_summary_table_shows_the_split() -> None:
    text = cli.format_summary(
        {"agents": 2, **cdn_fetch_split([row(0, 0, 9, 4, 3), row(0, 1, 9, 4, 0)])}
    )
    assert "cdn_fetches_per_segment_steady" in text
    assert "cdn_fetches_join_ramp_per_agent" in text
