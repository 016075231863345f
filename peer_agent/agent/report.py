"""What the agent reports: the live status line's numbers and the final summary.

Read through :class:`Reported` (what :class:`~peer_agent.agent.agent.Agent` offers publicly), so
this module imports nothing of the agent's.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any, Protocol

from ..core.cdn_phase import CdnFetchCounts
from ..core.exchange import SegmentExchange
from ..core.playback import PlaybackModel
from .cdn import CdnFetcher
from .config import AgentConfig
from .integrity import Manifest
from .playlist import Rendition, Timeline
from .requests import RequestLog


class Reported(Protocol):
    peer_id: str
    info_hash: str
    exchange: SegmentExchange
    cdn: CdnFetcher
    manifest: Manifest
    player: PlaybackModel | None
    timeline: Timeline | None
    rendition: Rendition | None
    swarm: Any
    started_at: float
    final_now: float | None
    latency_samples: list[float]
    inits_verified: int
    decisions: int
    cdn_fetch_reasons: Counter[str]
    cdn_stall_cancels: int
    lags: list[dict[str, float]]
    link_paths: list[dict[str, Any]]
    requests: RequestLog
    config: AgentConfig
    last_sequence_delivered: int

    @property
    def cdn_fetch_counts(self) -> CdnFetchCounts: ...

    @property
    def running(self) -> bool: ...
    @property
    def bytes_cdn(self) -> int: ...
    @property
    def bytes_p2p(self) -> int: ...
    @property
    def bytes_uploaded(self) -> int: ...
    @property
    def hash_failures(self) -> int: ...
    def now(self) -> float: ...


def status(agent: Reported) -> dict[str, Any]:
    player = agent.player
    now = agent.now() if agent.running else 0.0
    return {
        "t_s": round(now - agent.started_at, 1),
        "playhead_s": round(player.playhead_s, 2) if player else None,
        "buffer_s": round(player.buffer_s, 2) if player else 0.0,
        "peers": sum(1 for nb in agent.exchange.neighbours.values() if nb.open),
        "bytes_cdn": agent.bytes_cdn,
        "bytes_p2p": agent.bytes_p2p,
        "bytes_uploaded": agent.bytes_uploaded,
        "stalls": player.stall_count if player else 0,
        "hash_failures": agent.hash_failures,
    }


def summary(agent: Reported) -> dict[str, Any]:
    player = agent.player
    ex = agent.exchange
    counts = agent.cdn_fetch_counts
    now = agent.final_now if agent.final_now is not None else agent.now()
    played = 0
    if player is not None and agent.timeline is not None:
        head = player.playhead_s
        timeline = agent.timeline
        # Verified records the exchange forgot were long behind the playhead.
        played = ex.verified_forgotten + sum(
            1
            for s in ex.verified
            if (i := timeline.get(s.sequence)) is not None and i.start_s < head - 1e-6
        )
        # Verified segments dropped from the timeline were long behind the playhead.
        played += sum(1 for s in ex.verified if timeline.get(s.sequence) is None)
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
        "bytes_uploaded": agent.bytes_uploaded,
        "offload_ratio": round(agent.bytes_p2p / total, 4) if total else 0.0,
        "segments_played": played,
        "segments_verified": ex.verified_count,
        "init_sections_verified": agent.inits_verified,
        "hash_failures": agent.hash_failures,
        # Per remote address (the identity key addr:<IP>, docs/exchange.md 8b): the hash
        # failures its peer ids contributed to, counted once per failed segment.
        "hash_failures_by_address": {
            key.removeprefix("addr:"): n
            for key, n in sorted(ex.reputation.failures_by_subject("addr:").items())
        },
        "segments_given_up": ex.given_up_count,
        "unverifiable": ex.unverifiable,
        # Relays ended with ABORT(UPSTREAM_FAILED): our copy failed or was given up.
        "relays_aborted": ex.server.relays_aborted,
        "integrity": agent.manifest.mode,
        # Manifest requests (the first whole, then from a segment's MSN on), their body bytes,
        # and answers refused by reason (manifest_too_large, manifest_invalid).
        "manifest_fetches": agent.manifest.fetches,
        "manifest_bytes": agent.manifest.bytes_fetched,
        "manifest_rejected": dict(agent.manifest.rejected),
        "peers_banned": sorted(ex.penalties.banned),
        # Why each was banned (the rule, and the subject whose points or failures tipped it:
        # id:<peer>, addr:<IP>, cert:...), refusals decided, and offences recorded by kind.
        "ban_reasons": dict(sorted(ex.ban_reasons.items())),
        "refusals": ex.reputation.refusals,
        "offences": {o.value: n for o, n in sorted(ex.reputation.offences.items(), key=str)},
        "peers_seen": len(ex.peers_seen),
        # Each link when it opened (at most 256): ICE candidate types of the nominated pair
        # (host/srflx/prflx/relay) and seconds from its creation to the peer's HELLO.
        "link_paths": list(agent.link_paths),
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
        # Segment fetches from the CDN (resumes included) by phase: the start segment and the
        # 3 after it are the join ramp (core.cdn_phase, docs/simulator.md).
        "cdn_fetches_join_ramp": counts.join_ramp,
        "cdn_fetches_steady": counts.steady,
        # ... and by the scheduler's reason (urgent, elected, assigned, backup; _resume: a Range
        # request for the rest of a segment a peer transfer left partly held).
        "cdn_fetches_by_reason": dict(sorted(agent.cdn_fetch_reasons.items())),
        # ... of which started again after a silent CDN fetch was cancelled (rule 1).
        "cdn_stall_cancels": agent.cdn_stall_cancels,
        "start_sequence": counts.start_sequence,
        "last_sequence_played": agent.last_sequence_delivered
        if agent.last_sequence_delivered >= 0
        else None,
        "cdn_retries": agent.cdn.retries,
        "cdn_failures": ex.cdn_failures,
        "cdn_resumes": ex.cdn_resumes,
        "tracker_connects": _tracker_stat(agent, "connects"),
        "tracker_announce_replies": _tracker_stat(agent, "announce_replies"),
        # Connection churn: offers we made (each a new peer connection), offers we answered,
        # and links we closed to make room for a newcomer (docs/signaling.md, "Making room"),
        # of which those closed at split_drain_s with a transfer still in flight.
        "tracker_offers_sent": _tracker_stat(agent, "offers_sent"),
        "tracker_answers_sent": _tracker_stat(agent, "answers_sent"),
        "links_split": getattr(agent.swarm, "links_split", None),
        "links_drain_forced": getattr(agent.swarm, "links_drain_forced", None),
        "tracker_error": _tracker_error(agent),
        "decisions": agent.decisions,
        # Downloads from peers: outcomes, first byte and completion times (docs/netbed.md).
        "peer_requests": agent.requests.summary(),
        **(
            {
                "request_timeline": agent.requests.records(),
                # CDN fetches started and segments delivered, and the player's stalls (seconds
                # since the agent started; position_s: the playhead's media time).
                "event_timeline": agent.requests.events(),
                "lag_timeline": list(agent.lags),
                # The newest offences (seconds since the agent started): peer, offence, outcome
                # (none / refuse / ban), and the subject with the most points then.
                "offence_timeline": [
                    {
                        "t_s": round(at - agent.started_at, 3),
                        "peer": peer,
                        "offence": offence,
                        "outcome": outcome,
                        "subject": subject,
                        "points": round(points, 2) if points != float("inf") else None,
                    }
                    for at, peer, offence, outcome, subject, points in ex.offence_log
                ],
                "stall_timeline": [
                    {
                        "started_s": round(s.started_at - agent.started_at, 3),
                        "ended_s": None
                        if s.ended_at is None
                        else round(s.ended_at - agent.started_at, 3),
                        "position_s": round(s.position_s, 3),
                    }
                    for s in (player.stalls if player else [])
                ],
            }
            if agent.config.request_timeline
            else {}
        ),
    }


def _tracker_stat(agent: Reported, name: str) -> int | None:
    tracker = getattr(agent.swarm, "tracker", None)
    stats = getattr(tracker, "stats", None)
    return None if stats is None else int(getattr(stats, name, 0))


def _tracker_error(agent: Reported) -> str | None:
    """Why the tracker was last unreachable or closed us (``None``: no tracker, no error)."""
    stats = getattr(getattr(agent.swarm, "tracker", None), "stats", None)
    error = getattr(stats, "last_error", None)
    return None if error is None else str(error)
