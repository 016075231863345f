"""The reputation object alone (docs/exchange.md 8b): refusals of one address grow, and a new
peer id from a refused address is refused too; and who is blamed for a failed copy once a copy
verified (section 6). Pure: time is an argument."""

from __future__ import annotations

from peer_agent.core.exchange import proven_bad
from peer_agent.core.exchange_actions import ExchangeConfig
from peer_agent.core.exchange_reputation import Offence, Outcome, Reputation, reputation_rules

ADDRESS = "addr:127.0.0.9"


def test_each_refusal_of_an_address_lasts_twice_as_long() -> None:
    cfg = ExchangeConfig()
    rep = Reputation(reputation_rules(cfg))
    lengths = []
    t = 0.0
    for round_ in range(3):
        subjects = [f"id:staller{round_}", ADDRESS]  # a new peer id each time, same address
        # Two abandoned downloads 10 s apart: 3 + (3 - 0.2) = 5.8 points, refused (not banned).
        assert rep.record(subjects, Offence.ABANDONED, t) is Outcome.NONE
        assert rep.record(subjects, Offence.ABANDONED, t + 10.0) is Outcome.REFUSE
        until = rep.refused_until([ADDRESS])
        lengths.append(until - (t + 10.0))
        # While refused, every peer id from the address is refused.
        assert rep.refused_until(["id:somebody-new", ADDRESS]) == until
        t = until + 1000.0  # long enough for the points to decay to 0
        assert rep.points_of(ADDRESS, t) == 0.0
    assert lengths == [cfg.refuse_s, 2 * cfg.refuse_s, 4 * cfg.refuse_s]
    assert rep.refusals == 3 and not rep.banned


def test_abandoned_costs_more_than_a_stall_but_one_refuses_nobody() -> None:
    cfg = ExchangeConfig()
    assert cfg.points_stall < cfg.points_abandoned < cfg.refuse_points
    assert 2 * cfg.points_abandoned >= cfg.refuse_points
    rep = Reputation(reputation_rules(cfg))
    assert rep.record(["id:x", ADDRESS], Offence.ABANDONED, 0.0) is Outcome.NONE
    assert rep.points_of(ADDRESS, 0.0) == cfg.points_abandoned
    assert rep.refused_until([ADDRESS]) == 0.0


def test_proven_bad_names_only_the_runs_that_differ() -> None:
    good = bytes(range(12))
    bad = b"\xff" + good[1:4] + good[4:8] + good[8:12]
    spans = [(0, "corrupter"), (4, "honest"), (8, None)]  # None: the CDN
    assert proven_bad(bad, spans, good) == ["corrupter"]
    cdn_bad = good[:8] + b"\x00" * 4
    assert proven_bad(cdn_bad, spans, good) == []  # the CDN's bytes are nobody's fault here
    # Past the verified copy's end: guilty; every run right but cut short: its last run's source.
    assert proven_bad(good + b"x", [(0, "a"), (10, "b")], good) == ["b"]
    assert proven_bad(good[:10], [(0, "a"), (6, "b")], good) == ["b"]
