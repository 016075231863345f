"""The swarm simulator: virtual clock, links, a CDN, players, joins and leaves.

Time advances in fixed ticks. In each tick every flow moves bytes at its share of the sender's
uplink and the receiver's downlink (and the CDN's egress, when capped), never past what the
sender holds itself (cut-through relay), and every viewer whose situation changed, or whose
scheduler asked to be woken, calls the core scheduler (:func:`peer_agent.core.scheduler.decide`)
and carries out its actions. Players are the core's :class:`PlaybackModel`. Announcements
(HAVE, FETCHING) reach neighbours after half a round trip. Every fetch is announced as FETCHING
and relayed cut-through, with the last frame withheld until the relay's copy is verified.

The simulator reads no clock and draws every random number from one seeded ``random.Random``:
the same scenario and seed give the same result.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
import random
import statistics
from collections.abc import Callable, Iterator, Set
from dataclasses import dataclass, field

from ..core.config import PlaybackConfig, SchedulerConfig
from ..core.ids import SegmentId
from ..core.playback import PlaybackModel
from ..core.scheduler import (
    CancelTransfer,
    FetchFromCdn,
    FetchFromPeer,
    PeerView,
    SchedulerView,
    SegmentView,
    TransferView,
    decide,
)
from ..core.throughput import ThroughputEstimator
from .scenario import Scenario

RENDITION = 0
#: What a relay withholds until its copy is verified: one DATA frame.
RELAY_HOLDBACK_BYTES = 65_527
_INF = math.inf


class _Visible(Set[SegmentId]):
    """The part of a viewer's announcements that a neighbour has received by ``now``.

    ``entries`` maps a segment to (announced_at, withdrawn_at); an entry is visible from
    ``announced_at + delay`` until ``withdrawn_at + delay``.
    """

    __slots__ = ("_entries", "_now", "_delay")

    def __init__(self, entries: dict[SegmentId, list[float]], now: float, delay: float) -> None:
        self._entries = entries
        self._now = now
        self._delay = delay

    def __contains__(self, item: object) -> bool:
        span = self._entries.get(item)  # type: ignore[call-overload]
        if span is None:
            return False
        return span[0] + self._delay <= self._now < span[1] + self._delay

    def __iter__(self) -> Iterator[SegmentId]:
        return (s for s in self._entries if s in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _Flow:
    __slots__ = (
        "segment",
        "src",
        "dst",
        "offset",
        "total",
        "received",
        "requested_at",
        "data_from",
        "last_data_at",
    )

    def __init__(
        self,
        segment: SegmentId,
        src: _Viewer | None,
        dst: _Viewer,
        offset: int,
        total: int,
        now: float,
        latency_s: float,
    ) -> None:
        self.segment = segment
        self.src = src  # None: the CDN
        self.dst = dst
        self.offset = offset
        self.total = total
        self.received = 0.0
        self.requested_at = now
        self.data_from = now + latency_s
        self.last_data_at: float | None = None

    @property
    def reached(self) -> float:
        return self.offset + self.received


@dataclass
class _Neighbour:
    viewer: _Viewer
    estimator: ThroughputEstimator
    choked_until: float = 0.0


@dataclass(eq=False)
class _Viewer:
    peer_id: str
    joined_at: float
    uploads_allowed: bool
    player: PlaybackModel
    refresh_phase_s: float
    have: dict[SegmentId, list[float]] = field(default_factory=dict)
    fetching: dict[SegmentId, list[float]] = field(default_factory=dict)
    neighbours: dict[str, _Neighbour] = field(default_factory=dict)
    transfers: dict[SegmentId, _Flow] = field(default_factory=dict)
    uploads: dict[_Flow, None] = field(default_factory=dict)  # ordered: deterministic
    partial: dict[SegmentId, int] = field(default_factory=dict)
    avoid: dict[SegmentId, frozenset[str]] = field(default_factory=dict)
    known: dict[int, float] = field(default_factory=dict)  # sequence -> known since
    cdn: ThroughputEstimator = field(default_factory=ThroughputEstimator)
    left_at: float | None = None
    connecting_until: float = 0.0
    dirty: bool = True
    next_decide_at: float = 0.0
    bytes_cdn: float = 0.0
    bytes_p2p: float = 0.0
    bytes_up: float = 0.0
    cdn_fetches: int = 0
    segments_played: int = 0
    latency_samples: list[float] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.left_at is None


@dataclass(frozen=True)
class SimResult:
    scenario: Scenario
    #: Viewers that took part (more than ``scenario.peers`` when churn replaced some).
    viewers_total: int
    offload_ratio: float
    cdn_fetches_per_segment: float
    cdn_fetches_per_segment_all: float
    cdn_fetches: int
    bytes_cdn: int
    bytes_p2p: int
    stall_count: int
    stall_s: float
    startup_s_median: float | None
    latency_s_median: float | None
    segments_played: int
    decisions: int
    by_peer: list[dict[str, float | int | str | None]]

    def summary(self) -> dict[str, object]:
        return {
            "peers": self.scenario.peers,
            "viewers_total": self.viewers_total,
            "live": self.scenario.live,
            "p2p": self.scenario.p2p,
            "offload_ratio": round(self.offload_ratio, 4),
            "cdn_fetches_per_segment": round(self.cdn_fetches_per_segment, 3),
            "cdn_fetches_per_segment_all": round(self.cdn_fetches_per_segment_all, 3),
            "cdn_fetches": self.cdn_fetches,
            "bytes_cdn": self.bytes_cdn,
            "bytes_p2p": self.bytes_p2p,
            "stall_count": self.stall_count,
            "stall_s": round(self.stall_s, 3),
            "startup_s_median": _round(self.startup_s_median),
            "latency_s_median": _round(self.latency_s_median),
            "segments_played": self.segments_played,
            "decisions": self.decisions,
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


class Simulation:
    def __init__(
        self,
        scenario: Scenario,
        scheduler_config: SchedulerConfig | None = None,
        playback_config: PlaybackConfig | None = None,
    ) -> None:
        self.sc = scenario
        self.sched_cfg = scheduler_config or SchedulerConfig(cdn_latency_s=scenario.cdn_latency_s)
        self.play_cfg = playback_config or PlaybackConfig()
        self.rng = random.Random(scenario.seed)
        self.one_way_s = scenario.peer_rtt_s / 2
        # Live: the clock starts once enough segments exist to start `latency_segments` back.
        self.t0 = (scenario.latency_segments + 2) * scenario.segment_s if scenario.live else 0.0
        self.now = self.t0
        self.end = self.t0 + scenario.duration_s
        vod_len = scenario.vod_length_s or (scenario.duration_s + scenario.join_over_s)
        self.vod_segments = math.ceil(vod_len / scenario.segment_s)
        self._sizes: dict[int, int] = {}
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._ids = itertools.count()
        self.viewers: dict[str, _Viewer] = {}
        self.departed: list[_Viewer] = []
        self.flows: dict[_Flow, None] = {}  # insertion-ordered, so runs are deterministic
        self.decisions = 0
        self.cdn_fetches: dict[int, int] = {}
        self.plays: dict[int, int] = {}

    # -- stream --------------------------------------------------------------------------

    def size_of(self, sequence: int) -> int:
        size = self._sizes.get(sequence)
        if size is None:
            base = self.sc.bitrate_bits_per_s * self.sc.segment_s / 8
            size = max(
                1, int(base * random.Random(self.sc.seed * 1_000_003 + sequence).uniform(0.9, 1.1))
            )
            self._sizes[sequence] = size
        return size

    def last_available(self, t: float) -> int:
        """Highest sequence the origin has published at time ``t`` (-1 if none)."""
        if not self.sc.live:
            return self.vod_segments - 1
        return int(t // self.sc.segment_s) - 1

    def live_edge_s(self, t: float) -> float:
        return (self.last_available(t) + 1) * self.sc.segment_s

    # -- events ----------------------------------------------------------------------------

    def at(self, t: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._events, (t, next(self._seq), fn))

    def run(self) -> SimResult:
        sc = self.sc
        for i in range(sc.peers):
            offset = sc.join_over_s * i / sc.peers if sc.peers > 1 else 0.0
            self.at(self.t0 + offset, self.join)
        ticks = int(round(sc.duration_s / sc.tick_s))
        for k in range(1, ticks + 1):
            now = self.t0 + k * sc.tick_s
            while self._events and self._events[0][0] <= now:
                t, _, fn = heapq.heappop(self._events)
                self.now = t
                fn()
            self.now = now
            self._move_bytes(sc.tick_s)
            if sc.churn_per_min > 0:
                self._churn(sc.tick_s)
            for viewer in list(self.viewers.values()):
                if viewer.active and (viewer.dirty or now >= viewer.next_decide_at):
                    self._refresh_playlist(viewer)
                    self._decide(viewer)
            if k % max(1, int(round(1.0 / sc.tick_s))) == 0:
                self._sample_latency()
        return self._result()

    # -- membership ------------------------------------------------------------------------

    def join(self) -> None:
        sc = self.sc
        n = next(self._ids)
        peer_id = f"sim-{n:016d}"
        if sc.live:
            first = self.last_available(self.now) - sc.latency_segments + 1
            start = max(0, first) * sc.segment_s
            end = None
        else:
            start, end = 0.0, self.vod_segments * sc.segment_s
        viewer = _Viewer(
            peer_id=peer_id,
            joined_at=self.now,
            uploads_allowed=self.rng.random() >= sc.leech_fraction,
            player=PlaybackModel(self.play_cfg, start, self.now, end_s=end),
            refresh_phase_s=self.rng.uniform(0, sc.playlist_refresh_s),
        )
        self.viewers[peer_id] = viewer
        self._refresh_playlist(viewer, force=True)
        if sc.p2p:
            if len(self.viewers) > 1:  # the tracker has peers to offer
                viewer.connecting_until = self.now + sc.connect_s + sc.peer_rtt_s
            self.at(self.now + sc.connect_s, functools.partial(self._connect, viewer))

    def _connect(self, viewer: _Viewer) -> None:
        """The tracker pairs ``viewer`` with others that have room, closest in playback first
        (ties broken at random): what our signaling server does with position hints."""
        if not viewer.active:
            return
        sc = self.sc
        want = sc.max_peers - len(viewer.neighbours)
        if want <= 0:
            return
        others = [
            v
            for v in self.viewers.values()
            if v is not viewer
            and v.active
            and v.peer_id not in viewer.neighbours
            and len(v.neighbours) < sc.max_peers
        ]
        pos = viewer.player.playhead_s
        self.rng.shuffle(others)
        others.sort(key=lambda v: abs(v.player.playhead_s - pos) // sc.segment_s)
        for other in others[:want]:
            viewer.neighbours[other.peer_id] = _Neighbour(other, ThroughputEstimator())
            other.neighbours[viewer.peer_id] = _Neighbour(viewer, ThroughputEstimator())
            other.dirty = True
        viewer.dirty = True

    def leave(self, viewer: _Viewer) -> None:
        """An abrupt close: transfers through it break, neighbours look for others."""
        viewer.left_at = self.now
        del self.viewers[viewer.peer_id]
        self.departed.append(viewer)
        for flow in list(viewer.transfers.values()):
            self._drop_flow(flow)
        for flow in list(viewer.uploads):
            self._fail_flow(flow)
        for nb in viewer.neighbours.values():
            other = nb.viewer
            other.neighbours.pop(viewer.peer_id, None)
            other.dirty = True
            if other.active:
                self.at(self.now + self.sc.connect_s, functools.partial(self._connect, other))
        viewer.neighbours.clear()

    def _churn(self, dt: float) -> None:
        p = self.sc.churn_per_min * dt / 60.0
        for viewer in list(self.viewers.values()):
            if self.rng.random() < p:
                self.leave(viewer)
                self.join()

    # -- playlists and decisions -------------------------------------------------------------

    def _refresh_playlist(self, viewer: _Viewer, force: bool = False) -> None:
        sc = self.sc
        if sc.live:
            period = sc.playlist_refresh_s
            last_refresh = (
                math.floor((self.now - viewer.refresh_phase_s) / period) * period
                + viewer.refresh_phase_s
            )
            seen = self.last_available(self.now if force else last_refresh)
            first = int(viewer.player.playhead_s // sc.segment_s)
            lowest = max(first, seen - 10)
        else:
            # A VOD playlist lists everything; only what the prefetch window can reach matters.
            lowest = int(viewer.player.playhead_s // sc.segment_s)
            reach = int(self.sched_cfg.prefetch_window_s // sc.segment_s) + 2
            seen = min(self.vod_segments - 1, lowest + reach)
        for seq in range(lowest, seen + 1):
            viewer.known.setdefault(seq, self.now)

    def _decide(self, viewer: _Viewer) -> None:
        sc = self.sc
        now = self.now
        viewer.player.advance(now)
        viewer.dirty = False
        playhead = viewer.player.playhead_s
        first = int(playhead // sc.segment_s)
        rid = RENDITION
        segments = [
            SegmentView(
                segment=SegmentId(rid, seq),
                start_s=seq * sc.segment_s,
                duration_s=sc.segment_s,
                size_bytes=self.size_of(seq),
                known_since=since,
                partial_bytes=viewer.partial.get(SegmentId(rid, seq), 0),
                avoid=viewer.avoid.get(SegmentId(rid, seq), frozenset()),
            )
            for seq, since in viewer.known.items()
            if seq >= first and SegmentId(rid, seq) not in viewer.have
        ]
        if not segments:
            viewer.next_decide_at = now + self.sched_cfg.idle_recheck_s
            return
        delay = self.one_way_s
        peers = [
            PeerView(
                peer_id=pid,
                have=_Visible(nb.viewer.have, now, delay),
                fetching=_Visible(nb.viewer.fetching, now, delay),
                throughput_bytes_per_s=nb.estimator.estimate_bytes_per_s,
                choked_until=nb.choked_until,
                uploads=nb.viewer.uploads_allowed,
            )
            for pid, nb in viewer.neighbours.items()
        ]
        transfers = [
            TransferView(
                segment=f.segment,
                peer_id=None if f.src is None else f.src.peer_id,
                started_at=f.requested_at,
                offset=f.offset,
                received_bytes=int(f.received),
                total_bytes=f.total,
                last_data_at=f.last_data_at,
            )
            for f in viewer.transfers.values()
        ]
        view = SchedulerView(
            now=now,
            self_id=viewer.peer_id,
            playhead_s=playhead,
            segments=segments,
            have=viewer.have.keys(),
            transfers=transfers,
            peers=peers,
            cdn_throughput_bytes_per_s=viewer.cdn.estimate_bytes_per_s,
            rate=1.0,
            connecting_until=viewer.connecting_until,
            swarm_size=len(self.viewers),
        )
        decision = decide(view, self.sched_cfg, self.rng)
        self.decisions += 1
        for action in decision.actions:
            if isinstance(action, CancelTransfer):
                flow = viewer.transfers.get(action.segment)
                if flow is not None:
                    self._drop_flow(flow)
                    if action.peer_id is not None:
                        viewer.avoid[action.segment] = viewer.avoid.get(
                            action.segment, frozenset()
                        ) | {action.peer_id}
            elif isinstance(action, FetchFromCdn):
                self._start_cdn(viewer, action.segment, action.offset)
            elif isinstance(action, FetchFromPeer):
                self._start_peer(viewer, action.segment, action.peer_id, action.offset)
        viewer.next_decide_at = decision.wake_at if decision.wake_at is not None else _INF

    # -- transfers ---------------------------------------------------------------------------

    def _announce_fetching(self, viewer: _Viewer, segment: SegmentId) -> None:
        span = viewer.fetching.get(segment)
        if span is None or span[1] != _INF:
            viewer.fetching[segment] = [self.now, _INF]
            self._touch_neighbours(viewer)

    def _touch_neighbours(self, viewer: _Viewer) -> None:
        for nb in viewer.neighbours.values():
            nb.viewer.dirty = True

    def _start_cdn(self, viewer: _Viewer, segment: SegmentId, offset: int) -> None:
        if segment in viewer.transfers:
            return
        total = self.size_of(segment.sequence)
        flow = _Flow(segment, None, viewer, offset, total, self.now, self.sc.cdn_latency_s)
        viewer.transfers[segment] = flow
        viewer.cdn_fetches += 1
        self.cdn_fetches[segment.sequence] = self.cdn_fetches.get(segment.sequence, 0) + 1
        self.flows[flow] = None
        self._announce_fetching(viewer, segment)

    def _start_peer(self, viewer: _Viewer, segment: SegmentId, peer_id: str, offset: int) -> None:
        nb = viewer.neighbours.get(peer_id)
        if nb is None or segment in viewer.transfers:
            return
        src = nb.viewer
        holds = segment in src.have or segment in src.transfers or segment in src.partial
        if not src.uploads_allowed or len(src.uploads) >= self.sc.max_uploads or not holds:
            # BUSY (or ABSENT): the requester backs off from this peer for a while.
            nb.choked_until = self.now + self.sc.peer_rtt_s + self.sc.busy_retry_s
            viewer.dirty = True
            return
        total = self.size_of(segment.sequence)
        flow = _Flow(segment, src, viewer, offset, total, self.now, self.sc.peer_rtt_s)
        viewer.transfers[segment] = flow
        src.uploads[flow] = None
        self.flows[flow] = None
        self._announce_fetching(viewer, segment)

    def _available_at_source(self, flow: _Flow) -> float:
        src = flow.src
        if src is None or flow.segment in src.have:
            return flow.total
        # Cut-through: a relay passes bytes on as they arrive but withholds the last frame
        # until its own copy has matched its hash (docs/protocol.md, "Relaying"), so nobody
        # completes a segment its sender has not verified.
        upstream = src.transfers.get(flow.segment)
        if upstream is not None:
            return min(upstream.reached, flow.total - RELAY_HOLDBACK_BYTES)
        return 0.0

    def _move_bytes(self, dt: float) -> None:
        sc = self.sc
        now = self.now
        ups: dict[int, int] = {}
        downs: dict[int, int] = {}
        cdn_flows = 0
        live = [f for f in self.flows if f.data_from <= now]
        for f in live:
            downs[id(f.dst)] = downs.get(id(f.dst), 0) + 1
            if f.src is None:
                cdn_flows += 1
            else:
                ups[id(f.src)] = ups.get(id(f.src), 0) + 1
        cdn_share = sc.cdn_bytes_per_s / cdn_flows if sc.cdn_bytes_per_s > 0 and cdn_flows else _INF
        completed: list[_Flow] = []
        for f in live:
            rate = sc.downlink_bytes_per_s / downs[id(f.dst)]
            if f.src is None:
                rate = min(rate, cdn_share)
            else:
                rate = min(rate, sc.uplink_bytes_per_s / ups[id(f.src)])
            # Data flows for the part of the tick after its first byte could arrive.
            step_s = min(dt, now - f.data_from) if f.last_data_at is None else dt
            room = min(self._available_at_source(f), f.total) - f.reached
            step = min(rate * step_s, room)
            if step <= 0:
                continue
            f.received += step
            f.last_data_at = now
            if f.src is None:
                f.dst.bytes_cdn += step
            else:
                f.dst.bytes_p2p += step
                f.src.bytes_up += step
            if f.reached >= f.total - 1e-6:
                completed.append(f)
        for f in completed:
            self._complete(f)

    def _complete(self, flow: _Flow) -> None:
        viewer = flow.dst
        self._detach(flow)
        segment = flow.segment
        duration = self.now - flow.requested_at
        if flow.src is None:
            viewer.cdn.add_sample(int(flow.received), duration)
        else:
            nb = viewer.neighbours.get(flow.src.peer_id)
            if nb is not None:
                nb.estimator.add_sample(int(flow.received), duration)
        viewer.partial.pop(segment, None)
        viewer.avoid.pop(segment, None)
        viewer.have[segment] = [self.now, _INF]
        span = viewer.fetching.get(segment)
        if span is not None:
            span[1] = self.now
        seq = segment.sequence
        viewer.player.add_media(seq * self.sc.segment_s, self.sc.segment_s, self.now)
        viewer.segments_played += 1
        self.plays[seq] = self.plays.get(seq, 0) + 1
        viewer.dirty = True
        self._touch_neighbours(viewer)

    def _detach(self, flow: _Flow) -> None:
        self.flows.pop(flow, None)
        if flow.dst.transfers.get(flow.segment) is flow:
            del flow.dst.transfers[flow.segment]
        if flow.src is not None:
            flow.src.uploads.pop(flow, None)

    def _drop_flow(self, flow: _Flow) -> None:
        """The receiver cancels: it keeps the bytes it has (a later fetch resumes there)."""
        self._detach(flow)
        reached = int(flow.reached)
        if reached > 0:
            flow.dst.partial[flow.segment] = max(flow.dst.partial.get(flow.segment, 0), reached)
        flow.dst.dirty = True

    def _fail_flow(self, flow: _Flow) -> None:
        """The sender went away mid-transfer."""
        self._drop_flow(flow)
        if flow.src is not None:
            flow.dst.avoid[flow.segment] = flow.dst.avoid.get(flow.segment, frozenset()) | {
                flow.src.peer_id
            }

    # -- results -----------------------------------------------------------------------------

    def _sample_latency(self) -> None:
        if not self.sc.live:
            return
        edge = self.live_edge_s(self.now)
        for viewer in self.viewers.values():
            if viewer.player.started_at is not None:
                viewer.latency_samples.append(edge - viewer.player.playhead_at(self.now))

    def _result(self) -> SimResult:
        everyone = list(self.viewers.values()) + self.departed
        for viewer in self.viewers.values():
            viewer.player.advance(self.now)
        bytes_cdn = sum(v.bytes_cdn for v in everyone)
        bytes_p2p = sum(v.bytes_p2p for v in everyone)
        total = bytes_cdn + bytes_p2p
        played = [seq for seq, n in self.plays.items() if n > 0]
        # Segments the whole swarm played (past the join ramp): the steady-state cost.
        full_swarm = [seq for seq in played if self.plays[seq] >= self.sc.peers]
        fetches = sum(self.cdn_fetches.values())
        startups = [v.player.startup_s for v in everyone if v.player.startup_s is not None]
        latencies = [statistics.median(v.latency_samples) for v in everyone if v.latency_samples]
        by_peer = [
            {
                "peer_id": v.peer_id,
                "joined_at": round(v.joined_at - self.t0, 3),
                "left_at": None if v.left_at is None else round(v.left_at - self.t0, 3),
                "bytes_cdn": int(v.bytes_cdn),
                "bytes_p2p": int(v.bytes_p2p),
                "bytes_up": int(v.bytes_up),
                "cdn_fetches": v.cdn_fetches,
                "stall_count": v.player.stall_count,
                "stall_s": round(v.player.stall_s(self.now), 3),
                "startup_s": _round(v.player.startup_s),
                "segments_played": v.segments_played,
            }
            for v in everyone
        ]
        return SimResult(
            scenario=self.sc,
            viewers_total=len(everyone),
            offload_ratio=bytes_p2p / total if total else 0.0,
            cdn_fetches_per_segment=(
                statistics.mean(self.cdn_fetches.get(s, 0) for s in full_swarm)
                if full_swarm
                else 0.0
            ),
            cdn_fetches_per_segment_all=fetches / len(played) if played else 0.0,
            cdn_fetches=fetches,
            bytes_cdn=int(bytes_cdn),
            bytes_p2p=int(bytes_p2p),
            stall_count=sum(v.player.stall_count for v in everyone),
            stall_s=sum(v.player.stall_s(self.now) for v in everyone),
            startup_s_median=statistics.median(startups) if startups else None,
            latency_s_median=statistics.median(latencies) if latencies else None,
            segments_played=sum(v.segments_played for v in everyone),
            decisions=self.decisions,
            by_peer=by_peer,
        )


def simulate(scenario: Scenario, scheduler_config: SchedulerConfig | None = None) -> SimResult:
    return Simulation(scenario, scheduler_config).run()
