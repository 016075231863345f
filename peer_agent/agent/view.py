"""The scheduler's view of the agent, built the way the simulator builds it.

Segments: every one the timeline lists that is not held (verified), not given up and not wholly
behind the playhead, with its exact size when known (else an estimate), when it became known,
the bytes already held from an interrupted transfer and the peers to avoid for it. Peers: every
open neighbour with what it announced, its measured throughput, and BUSY/penalty back-offs.
Transfers: every download in flight (one whose bytes are being verified counts as a CDN fetch:
nothing is to be done about it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.scheduler import PeerView, SchedulerView, SegmentView, TransferView

if TYPE_CHECKING:
    from .agent import Agent


def build_view(agent: Agent, now: float) -> SchedulerView:
    """The scheduler's view, built the way the simulator builds it."""
    assert agent.player is not None and agent.timeline is not None
    playhead = agent.player.playhead_s
    segments = []
    for info in agent.timeline.ordered():
        sid = info.segment_id
        if info.end_s <= playhead or sid in agent.verified or sid in agent.given_up:
            continue
        held = agent.held.get(sid)
        segments.append(
            SegmentView(
                segment=sid,
                start_s=info.start_s,
                duration_s=info.duration_s,
                size_bytes=agent.size_estimate(sid),
                known_since=agent.timeline.known_since.get(sid.sequence, now),
                partial_bytes=len(held.buf) if held is not None else 0,
                avoid=agent.avoid.get(sid, frozenset()),
            )
        )
    peers = []
    for pid, nb in agent.neighbours.items():
        if not nb.open:
            continue
        rate = agent.peer_rates.get(pid)
        peers.append(
            PeerView(
                peer_id=pid,
                have=nb.have,
                fetching=nb.fetching,
                throughput_bytes_per_s=rate.estimate_bytes_per_s if rate else None,
                choked_until=max(nb.choked_until, agent.penalties.blocked_until(pid)),
                uploads=nb.uploads and not agent.penalties.is_banned(pid),
            )
        )
    transfers = []
    for t in agent.transfers.values():
        held = agent.held.get(t.segment)
        total = held.total if held is not None else None
        transfers.append(
            TransferView(
                segment=t.segment,
                peer_id=None if t.verifying else t.peer_id,
                started_at=t.started_at,
                offset=t.offset,
                received_bytes=t.received,
                total_bytes=total,
                last_data_at=t.last_data_at,
            )
        )
    return SchedulerView(
        now=now,
        self_id=agent.peer_id,
        playhead_s=playhead,
        segments=segments,
        have=agent.verified,
        transfers=transfers,
        peers=peers,
        cdn_throughput_bytes_per_s=agent.cdn_rate.estimate_bytes_per_s,
        rate=1.0,
        connecting_until=agent.connecting_until,
    )
