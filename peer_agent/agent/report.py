"""What the agent reports: the live status line's numbers and the final summary."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .agent import Agent


def status(agent: Agent) -> dict[str, Any]:
    player = agent.player
    now = agent.now() if agent._loop is not None else 0.0
    return {
        "t_s": round(now - agent.started_at, 1),
        "playhead_s": round(player.playhead_s, 2) if player else None,
        "buffer_s": round(player.buffer_s, 2) if player else 0.0,
        "peers": sum(1 for nb in agent.neighbours.values() if nb.open),
        "bytes_cdn": agent.bytes_cdn,
        "bytes_p2p": agent.bytes_p2p,
        "bytes_uploaded": agent.exchange.bytes_uploaded,
        "stalls": player.stall_count if player else 0,
        "hash_failures": agent.hash_failures,
    }


def summary(agent: Agent) -> dict[str, Any]:
    player = agent.player
    now = agent._final_now if agent._final_now is not None else agent.now()
    played = 0
    if player is not None and agent.timeline is not None:
        head = player.playhead_s
        played = sum(
            1
            for s in agent.verified
            if (i := agent.timeline.get(s.sequence)) is not None and i.start_s < head - 1e-6
        )
        played += _played_forgotten(agent, head)
    total = agent.bytes_cdn + agent.bytes_p2p
    return {
        "peer_id": agent.peer_id,
        # The 20-character swarm id (tracker info_hash) that `p2p-signaling mint-token
        # --info-hash` takes; None without a tracker.
        "swarm_id": agent.info_hash or None,
        "rendition": agent.rendition.index if agent.rendition else None,
        "duration_s": round(now - agent.started_at, 3),
        "bytes_cdn": agent.bytes_cdn,
        "bytes_p2p": agent.bytes_p2p,
        "bytes_uploaded": agent.exchange.bytes_uploaded,
        "offload_ratio": round(agent.bytes_p2p / total, 4) if total else 0.0,
        "segments_played": played,
        "segments_verified": len(agent.verified),
        "init_sections_verified": agent.inits_verified,
        "hash_failures": agent.hash_failures,
        "segments_given_up": len(agent.given_up),
        "unverifiable": agent.unverifiable,
        # Relays ended with ABORT(UPSTREAM_FAILED): our copy failed or was given up.
        "relays_aborted": agent.exchange.relays_aborted,
        "integrity": agent.manifest.mode,
        "peers_banned": sorted(agent.penalties.banned),
        "peers_seen": len(agent.peers_seen),
        "stall_count": player.stall_count if player else 0,
        "stall_s": round(player.stall_s(now), 3) if player else 0.0,
        "startup_s": None
        if player is None or player.startup_s is None
        else round(player.startup_s, 3),
        "latency_s_median": round(statistics.median(agent.latency_samples), 3)
        if agent.latency_samples
        else None,
        "ended": bool(player and player.ended),
        "cdn_requests": agent.cdn.requests,
        "cdn_retries": agent.cdn.retries,
        "cdn_failures": agent.cdn_failures,
        "cdn_resumes": agent.cdn_resumes,
        "tracker_connects": _tracker_stat(agent, "connects"),
        "tracker_announce_replies": _tracker_stat(agent, "announce_replies"),
        "tracker_error": _tracker_error(agent),
        "decisions": agent.decisions,
    }


def _tracker_stat(agent: Agent, name: str) -> int | None:
    tracker = getattr(agent.swarm, "tracker", None)
    stats = getattr(tracker, "stats", None)
    return None if stats is None else int(getattr(stats, name, 0))


def _tracker_error(agent: Agent) -> str | None:
    """Why the tracker was last unreachable or closed us (``None``: no tracker, no error)."""
    stats = getattr(getattr(agent.swarm, "tracker", None), "stats", None)
    error = getattr(stats, "last_error", None)
    return None if error is None else str(error)


def _played_forgotten(agent: Agent, head: float) -> int:
    """Verified segments dropped from the timeline (long behind the playhead)."""
    assert agent.timeline is not None
    return sum(1 for s in agent.verified if agent.timeline.get(s.sequence) is None)
