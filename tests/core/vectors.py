"""Loading the shared JSON vectors in docs/vectors/ (read by pytest and by node --test)."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from peer_agent.core.config import SchedulerConfig
from peer_agent.core.ids import SegmentId
from peer_agent.core.scheduler import (
    Action,
    CancelTransfer,
    FetchFromCdn,
    FetchFromPeer,
    PeerView,
    SchedulerView,
    SegmentView,
    TransferView,
    Wait,
)

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "vectors"


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


class ScriptedRandom:
    """Hands out the draws a vector lists, and fails the test if the scheduler wants more."""

    def __init__(self, draws: list[float]) -> None:
        self.draws = list(draws)

    def random(self) -> float:
        if not self.draws:
            raise AssertionError("the scheduler drew more random numbers than the vector lists")
        return self.draws.pop(0)


def sid(pair: list[int]) -> SegmentId:
    return SegmentId(pair[0], pair[1])


def scheduler_config(overrides: dict[str, Any]) -> SchedulerConfig:
    known = {f.name for f in fields(SchedulerConfig)}
    assert set(overrides) <= known, f"unknown config keys {set(overrides) - known}"
    return SchedulerConfig(**overrides)


def scheduler_view(d: dict[str, Any]) -> SchedulerView:
    return SchedulerView(
        now=d["now"],
        self_id=d["self_id"],
        playhead_s=d["playhead_s"],
        segments=[
            SegmentView(
                segment=sid(s["segment"]),
                start_s=s["start_s"],
                duration_s=s["duration_s"],
                size_bytes=s["size_bytes"],
                known_since=s["known_since"],
                partial_bytes=s.get("partial_bytes", 0),
                avoid=frozenset(s.get("avoid", ())),
            )
            for s in d["segments"]
        ],
        have=frozenset(sid(s) for s in d["have"]),
        transfers=[
            TransferView(
                segment=sid(t["segment"]),
                peer_id=t["peer_id"],
                started_at=t["started_at"],
                offset=t["offset"],
                received_bytes=t["received_bytes"],
                total_bytes=t["total_bytes"],
                last_data_at=t["last_data_at"],
            )
            for t in d["transfers"]
        ],
        peers=[
            PeerView(
                peer_id=p["peer_id"],
                have=frozenset(sid(s) for s in p["have"]),
                fetching=frozenset(sid(s) for s in p["fetching"]),
                throughput_bytes_per_s=p["throughput_bytes_per_s"],
                choked_until=p["choked_until"],
                uploads=p["uploads"],
                rtt_s=p.get("rtt_s"),
            )
            for p in d["peers"]
        ],
        cdn_throughput_bytes_per_s=d["cdn_throughput_bytes_per_s"],
        cdn_tail_s=d.get("cdn_tail_s"),
        rate=d["rate"],
        connecting_until=d["connecting_until"],
        swarm_size=d["swarm_size"],
        fetchers=tuple(d.get("fetchers", ())),
        fetchers_until=d.get("fetchers_until", 0.0),
    )


def action_json(action: Action) -> dict[str, Any]:
    segment = [action.segment.rendition, action.segment.sequence]
    if isinstance(action, FetchFromCdn):
        return {
            "action": "fetch_cdn",
            "segment": segment,
            "offset": action.offset,
            "reason": action.reason,
        }
    if isinstance(action, FetchFromPeer):
        return {
            "action": "fetch_peer",
            "segment": segment,
            "peer_id": action.peer_id,
            "offset": action.offset,
            "reason": action.reason,
        }
    if isinstance(action, CancelTransfer):
        return {
            "action": "cancel",
            "segment": segment,
            "peer_id": action.peer_id,
            "reason": action.reason,
        }
    assert isinstance(action, Wait)
    return {
        "action": "wait",
        "segment": segment,
        "reason": action.reason,
        "until": round(action.until, 6),
    }
