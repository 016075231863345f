"""The scheduler passes every decision vector in docs/vectors/scheduler/ (the browser's too)."""

from __future__ import annotations

import dataclasses

import pytest

from peer_agent.core.election import election_key, fnv1a32, rank_candidates
from peer_agent.core.scheduler import decide
from tests.core.vectors import (
    ScriptedRandom,
    action_json,
    load,
    scheduler_config,
    scheduler_view,
    sid,
)

DECISIONS = load("scheduler/decisions.json")["cases"]
ELECTION = load("scheduler/election.json")


def _rounded(actions: list[dict]) -> list[dict]:
    return [{**a, "until": round(a["until"], 6)} if "until" in a else a for a in actions]


@pytest.mark.parametrize("case", DECISIONS, ids=[c["name"] for c in DECISIONS])
def test_decision_vector(case: dict) -> None:
    rng = ScriptedRandom(case["random"])
    decision = decide(scheduler_view(case["input"]), scheduler_config(case["config"]), rng)
    assert [action_json(a) for a in decision.actions] == _rounded(case["expect"]["actions"])
    assert rng.draws == [], "the vector lists draws the scheduler did not use"
    if "wake_at" in case["expect"]:
        assert decision.wake_at == pytest.approx(case["expect"]["wake_at"])
    checks = [
        {
            "segment": [c.segment.rendition, c.segment.sequence],
            "timeout_s": round(c.timeout_s, 6),
            "late_timeout_s": round(c.late_timeout_s, 6),
            "late_from": round(c.late_from, 6),
        }
        for c in decision.stall_checks
    ]
    assert checks == case["expect"].get("stall_checks", [])
    flowing = case["expect"].get("wake_at_flowing", decision.wake_at)
    assert decision.wake_at_flowing == pytest.approx(flowing)


@pytest.mark.parametrize("case", DECISIONS, ids=[c["name"] for c in DECISIONS])
def test_decision_vector_with_peers_keyed(case: dict) -> None:
    """The same vector with its neighbours keyed by peer id (as the simulator passes them),
    in reverse order: the same decision, draw for draw."""
    config = scheduler_config(case["config"])
    listed = scheduler_view(case["input"])
    expected = decide(listed, config, ScriptedRandom(case["random"]))
    keyed = {p.peer_id: p for p in reversed(listed.peers)}
    rng = ScriptedRandom(case["random"])
    assert decide(dataclasses.replace(listed, peers=keyed), config, rng) == expected
    assert rng.draws == []
    # A mapping that holds our own id too: that entry is ignored, as in a list.
    mine = dataclasses.replace(keyed[next(iter(keyed))], peer_id=listed.self_id) if keyed else None
    if mine is not None:
        with_self = {**keyed, listed.self_id: mine}
        rng = ScriptedRandom(case["random"])
        assert decide(dataclasses.replace(listed, peers=with_self), config, rng) == expected


def test_vector_names_are_unique() -> None:
    names = [c["name"] for c in DECISIONS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("ref", ELECTION["fnv1a32"], ids=lambda r: repr(r["input"]))
def test_fnv1a32_reference(ref: dict) -> None:
    assert fnv1a32(ref["input"].encode()) == int(ref["hash"], 16)


@pytest.mark.parametrize("case", ELECTION["elections"], ids=lambda c: str(c["segment"]))
def test_election_vector(case: dict) -> None:
    segment = sid(case["segment"])
    for peer_id, key in case["keys"].items():
        assert election_key(peer_id, segment)[0] == int(key, 16)
    assert rank_candidates(case["candidates"], segment) == case["order"]
    # Every candidate computes the same order whatever order it lists its neighbours in.
    assert rank_candidates(list(reversed(case["candidates"])), segment) == case["order"]
