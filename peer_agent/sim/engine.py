"""The swarm simulator: virtual clock, links, a CDN, players, a tracker, joins and leaves.

Time advances in fixed ticks. In each tick every flow moves bytes at its share of the sender's
uplink and the receiver's downlink (and the CDN's egress, when capped), never past what the
sender holds itself (cut-through relay); then every viewer that has something new to consider
calls the core scheduler (:func:`peer_agent.core.scheduler.decide`) and carries out its actions.
Players are the core's :class:`PlaybackModel`. Announcements (HAVE, FETCHING) reach neighbours
after half a round trip. Every fetch is announced as FETCHING and relayed cut-through, with the
last frame withheld until the relay's copy is verified. Bytes move within a tick as on a clock:
a transfer that completes part-way through a tick releases the frame its relays withheld half a
round trip later, and they move it in the time the tick has left (and may complete and release
the next hop in turn), so a release goes down a chain at a real relay's pace (half a round trip
plus the frame at the link's rate per hop), not one hop per tick. Completions are recorded, and
decisions taken, at the tick's end.

Built to reach 100,000 viewers (docs/simulator.md, "How it reaches 100,000 viewers"):

- decisions are event-driven: a viewer decides when its own state changes (a transfer ends, a
  peer answers BUSY, neighbours come or go), when an announcement it can act on becomes visible
  to it (a neighbour has or fetches a segment it still wants and is not already fetching), when
  its playlist refresh reveals a new segment, or at the time the scheduler asked to be woken
  (``Decision.wake_at``). The scheduler's own idle recheck is a safety net here, set by
  ``Scenario.idle_recheck_s``; nothing else in the core is changed or copied;
- neighbour views are cached: what a viewer has announced, as visible after the one-way delay,
  is one set per delay class shared by all its neighbours, updated by events rather than
  rebuilt per decision; segment and peer views are rebuilt only when they change;
- pairing samples: like the signaling server, the tracker ranks a uniform sample of at most
  ``Scenario.pairing_sample`` viewers (region, then playback distance), not the whole swarm;
- timed work sits in per-tick buckets and a heap, so a tick costs what happens in it.

The simulator reads no clock and draws every random number from one seeded ``random.Random``:
the same scenario and seed give the same result.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import gc
import heapq
import itertools
import math
import operator
import random
from array import array
from collections.abc import Callable, Sequence
from typing import TypeVar

from ..core.capacity import upload_slots
from ..core.cdn_phase import JOIN_RAMP, CdnFetchCounts
from ..core.config import PlaybackConfig, SchedulerConfig
from ..core.election import election_key
from ..core.exchange_actions import RELAY_HOLDBACK_BYTES  # what a relay withholds until verified
from ..core.ids import SegmentId
from ..core.playback import PlaybackModel
from ..core.scheduler import (
    CancelTransfer,
    FetchFromCdn,
    FetchFromPeer,
    PeerView,
    SchedulerView,
    SegmentView,
    StallCheck,
    TransferView,
    Wait,
    decide,
)
from ..core.throughput import ThroughputEstimator
from .results import SimResult, build_result
from .scenario import Scenario
from .server_fetchers import ServerFetchers

__all__ = ["RELAY_HOLDBACK_BYTES", "SimResult", "Simulation", "simulate"]

RENDITION = 0
_INF = math.inf
_EMPTY: frozenset[str] = frozenset()
# Kinds of visibility event: a FETCHING or a HAVE announcement reaches the neighbours.
_FETCHING, _HAVE = 0, 1
_JOIN_ORDER = operator.attrgetter("index")  # viewers decide in join order within a tick

_T = TypeVar("_T")


def _sample(rng: random.Random, population: Sequence[_T], k: int) -> list[_T]:
    """``rng.sample(population, k)``, draw for draw, at about half the cost: CPython 3.11's
    algorithm (a partial shuffle of a copy when the population is small against ``k``, else
    ``k`` distinct positions, each drawn as ``getrandbits`` with rejection) with the draws
    inline instead of two Python calls per draw. Pairing draws 256 of the swarm per newcomer
    and 8 of a full neighbour's links per split: 10 million draws while 33,000 of 100,000
    viewers join. tests/sim/test_simulator.py holds it to ``rng.sample``."""
    n = len(population)
    if not 0 <= k <= n:
        raise ValueError(f"sample of {k} from {n}")
    getrandbits = rng.getrandbits
    setsize = 21
    if k > 5:
        setsize += 4 ** math.ceil(math.log(k * 3, 4))
    result: list[_T] = []
    if n <= setsize:
        pool = list(population)
        for i in range(k):
            m = n - i
            bits = m.bit_length()
            j = getrandbits(bits)
            while j >= m:
                j = getrandbits(bits)
            result.append(pool[j])
            pool[j] = pool[m - 1]
        return result
    bits = n.bit_length()
    selected: set[int] = set()
    for _ in range(k):
        j = getrandbits(bits)
        while j >= n or j in selected:  # out of range, or taken: draw again
            j = getrandbits(bits)
        selected.add(j)
        result.append(population[j])
    return result


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
        "frame_from",
        "held_from",
        "live",
        "attached",
        "rate",
        "full",
        "feed",
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
        # A relay's last frame flows from here on: its sender's own copy verified, plus half a
        # round trip (set when the sender completes; -inf: nothing withheld from it).
        self.frame_from = -_INF
        # When in the last tick it moved its bytes it stopped, held back by its sender (a cut-
        # through relay's step that moved less than its rate allowed).
        self.held_from = -_INF
        self.live = False  # its first byte could have arrived: it shares the links
        self.attached = True
        # Kept by events, read by the byte mover each tick (Simulation._move_bytes):
        self.rate = 0.0  # bytes/s while live: its share of both links (and the CDN's egress)
        # Where its bytes come from: ``full`` when the sender holds the whole segment (or is the
        # CDN); else ``feed`` is the sender's own transfer of the segment, relayed cut-through
        # (None: the sender has no transfer of it, nothing to pass on).
        self.full = src is None or segment in src.have
        self.feed: _Flow | None = None if self.full or src is None else src.transfers.get(segment)

    @property
    def reached(self) -> float:
        return self.offset + self.received


class _Neighbour:
    __slots__ = ("viewer", "delay_class", "estimator", "choked_until", "view", "draining")

    def __init__(self, viewer: _Viewer, delay_class: int) -> None:
        self.viewer = viewer
        self.delay_class = delay_class
        self.estimator: ThroughputEstimator | None = None  # created at the first sample
        self.choked_until = 0.0
        self.view: PeerView | None = None  # cached; None: rebuild
        self.draining = False  # split: out of the views, closed once its transfers end


class _Viewer:
    """One simulated viewer. Slotted: a 100,000-viewer run holds 100,000 of these."""

    __slots__ = (
        "index",
        "peer_id",
        "joined_at",
        "uploads_allowed",
        "upload_slots",
        "uplink_bytes_per_s",
        "region",
        "player",
        "refresh_phase_s",
        "seen",
        "listing_at",
        "have",
        "fetching",
        "visible",
        "neighbours",
        "listeners",
        "peer_views",
        "transfers",
        "uploads",
        "partial",
        "avoid",
        "known",
        "wants",
        "segment_views",
        "cdn",
        "left_at",
        "connecting_until",
        "dirty",
        "wake_tick",
        "stall_checks",
        "wake_flowing",
        "electing",
        "slot",
        "downs",
        "ups",
        "bytes_cdn",
        "bytes_p2p",
        "bytes_up",
        "cdn_fetches",
        "cdn_fetch_counts",
        "segments_played",
        "latency_samples",
    )

    def __init__(
        self,
        index: int,
        peer_id: str,
        joined_at: float,
        uploads_allowed: bool,
        upload_slots: int,
        uplink_bytes_per_s: float,
        region: int,
        player: PlaybackModel,
        refresh_phase_s: float,
        delay_classes: int,
    ) -> None:
        self.index = index  # join order: viewers decide in this order within a tick
        self.peer_id = peer_id
        self.joined_at = joined_at
        self.uploads_allowed = uploads_allowed
        self.upload_slots = upload_slots  # uploads served at once (core.capacity)
        self.uplink_bytes_per_s = uplink_bytes_per_s
        self.region = region
        self.player = player
        self.refresh_phase_s = refresh_phase_s
        self.seen = -1  # highest sequence its playlist has listed
        self.listing_at = -_INF  # live: when its playlist next lists a new segment
        self.have: dict[SegmentId, float] = {}  # segment -> completed at
        self.fetching: set[SegmentId] = set()  # announced FETCHING, not yet withdrawn
        # What neighbours see of its announcements, one (have, fetching) pair per delay class.
        self.visible: list[tuple[set[SegmentId], set[SegmentId]]] = [
            (set(), set()) for _ in range(delay_classes)
        ]
        self.neighbours: dict[str, _Neighbour] = {}
        # Its neighbours' viewers by delay class, in ``neighbours`` order: who sees its
        # announcements after each delay (None: build at the next announcement; kept in step
        # by links, splits and departures).
        self.listeners: list[list[_Viewer]] | None = None
        # Its neighbours' views keyed by peer id, in ``neighbours`` order, as the scheduler
        # takes them (None: rebuild); kept in step by links, splits, throughput and choke.
        self.peer_views: dict[str, PeerView] | None = None
        self.transfers: dict[SegmentId, _Flow] = {}
        self.uploads: dict[_Flow, None] = {}  # ordered: deterministic
        self.partial: dict[SegmentId, int] = {}
        self.avoid: dict[SegmentId, frozenset[str]] = {}
        self.known: dict[int, float] = {}  # sequence -> known since
        # Listed sequences it neither holds nor is fetching: what an announcement can make it act
        # on (kept with `known`, `have` and `transfers`).
        self.wants: set[int] = set()
        self.segment_views: dict[int, SegmentView] = {}
        self.cdn = ThroughputEstimator()
        self.left_at: float | None = None
        self.connecting_until = 0.0
        self.dirty = False
        self.wake_tick = -1
        # The last decision's stall checks (per flow) and its wake-up without them.
        self.stall_checks: list[tuple[_Flow, StallCheck]] = []
        self.wake_flowing = _INF
        # Sequences its last decision left waiting for their election turn (Wait not_elected).
        self.electing: set[int] = set()
        self.slot = -1  # position in the simulation's list of active viewers
        self.downs = 0  # live flows into it
        self.ups = 0  # live flows out of it
        self.bytes_cdn = 0.0
        self.bytes_p2p = 0.0
        self.bytes_up = 0.0
        self.cdn_fetches = 0
        self.cdn_fetch_counts = CdnFetchCounts()  # join ramp / steady (core.cdn_phase)
        self.segments_played = 0
        self.latency_samples = array("f")

    @property
    def active(self) -> bool:
        return self.left_at is None


class Simulation:
    def __init__(
        self,
        scenario: Scenario,
        scheduler_config: SchedulerConfig | None = None,
        playback_config: PlaybackConfig | None = None,
        *,
        per_peer: bool = True,
    ) -> None:
        self.sc = scenario
        base = scheduler_config or SchedulerConfig(cdn_latency_s=scenario.cdn_latency_s)
        # Every change reaches the viewers as an event, so the scheduler's idle recheck (the
        # agent's safety net) is the scenario's; the rules are the core's, unchanged.
        self.sched_cfg = dataclasses.replace(base, idle_recheck_s=scenario.idle_recheck_s)
        self.play_cfg = playback_config or PlaybackConfig()
        self.per_peer = per_peer
        self.rng = random.Random(scenario.seed)
        self.delays_s = [scenario.peer_rtt_s / 2]
        if scenario.regions > 1:
            self.delays_s.append(scenario.cross_region_rtt_s / 2)
        # Live: the clock starts once enough segments exist to start `latency_segments` back.
        self.t0 = (scenario.latency_segments + 2) * scenario.segment_s if scenario.live else 0.0
        self.now = self.t0
        self.tick = 0
        self.end = self.t0 + scenario.duration_s
        vod_len = scenario.vod_length_s or (scenario.duration_s + scenario.join_over_s)
        self.vod_segments = math.ceil(vod_len / scenario.segment_s)
        self._sizes: dict[int, int] = {}
        self._segment_ids: dict[int, SegmentId] = {}
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._ids = itertools.count()
        # Per tick: announcements becoming visible, and viewers asking to be woken.
        self._visibility: dict[int, list[tuple[int, _Viewer, SegmentId, int]]] = {}
        self._wakes: dict[int, list[_Viewer]] = {}
        self._dirty: list[_Viewer] = []
        self.viewers: dict[str, _Viewer] = {}
        self.active: list[_Viewer] = []  # the same viewers, by position, for sampling
        self.departed: list[_Viewer] = []
        self.flows: dict[_Flow, None] = {}  # insertion-ordered, so runs are deterministic
        self._pending_flows: list[_Flow] = []
        self._cdn_live = 0
        self._cdn_share = _INF  # each live CDN flow's share of a capped CDN's egress
        self.decisions = 0
        #: Tracker pairings done, and viewers they examined in total (a sample each).
        self.pairings = 0
        self.pairing_examined = 0
        #: Links the tracker split for newcomers (``pairing="split"``); of those, the ones that
        #: had a transfer in flight and drained, and the drains closed at the bound.
        self.splits = 0
        self.split_drains = 0
        self.split_drains_forced = 0
        #: Every peer transfer's cut-through depth as it starts (:meth:`_cut_through_depth`).
        self.cut_through_depths: collections.Counter[int | str] = collections.Counter()
        self.cdn_fetches: dict[int, int] = {}
        self.cdn_fetches_join_ramp: dict[int, int] = {}  # of cdn_fetches, the join-ramp ones
        self.plays: dict[int, int] = {}
        #: The signaling server's fetcher assignment (Scenario.server_fetchers; None: off).
        self.server_fetchers = (
            ServerFetchers(scenario.server_fetchers) if scenario.server_fetchers else None
        )

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

    def segment_id(self, sequence: int) -> SegmentId:
        """One shared ``SegmentId`` per sequence: every viewer's sets hold references to it."""
        sid = self._segment_ids.get(sequence)
        if sid is None:
            sid = self._segment_ids[sequence] = SegmentId(RENDITION, sequence)
        return sid

    def last_available(self, t: float) -> int:
        """Highest sequence the origin has published at time ``t`` (-1 if none)."""
        if not self.sc.live:
            return self.vod_segments - 1
        return int(t // self.sc.segment_s) - 1

    def live_edge_s(self, t: float) -> float:
        return (self.last_available(t) + 1) * self.sc.segment_s

    # -- clock -----------------------------------------------------------------------------

    def at(self, t: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._events, (t, next(self._seq), fn))

    def _tick_of(self, t: float) -> int:
        """The first tick whose time is at or after ``t`` (and after the current tick)."""
        tick_s = self.sc.tick_s
        k = math.ceil((t - self.t0) / tick_s)
        if self.t0 + (k - 1) * tick_s >= t:
            k -= 1
        elif self.t0 + k * tick_s < t:
            k += 1
        return max(k, self.tick + 1)

    def _mark(self, viewer: _Viewer) -> None:
        if not viewer.dirty:
            viewer.dirty = True
            self._dirty.append(viewer)

    def _wake(self, viewer: _Viewer, t: float) -> None:
        if t == _INF:
            viewer.wake_tick = -1
            return
        k = self._tick_of(t)
        if viewer.wake_tick != k:
            viewer.wake_tick = k
            self._wakes.setdefault(k, []).append(viewer)

    def run(
        self, progress: Callable[[Simulation], None] | None = None, progress_every_s: float = 10.0
    ) -> SimResult:
        """Run the scenario; ``progress`` (if given) is called every ``progress_every_s`` of
        simulated time.

        Python's cyclic garbage collector is off for the run (and back on after): the
        simulator leaves almost no cycles (about 400 objects in a 1,000-viewer run), while each
        collection walks the whole swarm's objects, millions at 100,000 viewers."""
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._run(progress, progress_every_s)
        finally:
            if collecting:
                gc.enable()

    def _run(
        self, progress: Callable[[Simulation], None] | None, progress_every_s: float
    ) -> SimResult:
        sc = self.sc
        progress_every = max(1, int(round(progress_every_s / sc.tick_s)))
        for i in range(sc.peers):
            offset = sc.join_over_s * i / sc.peers if sc.peers > 1 else 0.0
            self.at(self.t0 + offset, self.join)
        ticks = int(round(sc.duration_s / sc.tick_s))
        sample_every = max(1, int(round(1.0 / sc.tick_s)))
        for k in range(1, ticks + 1):
            now = self.t0 + k * sc.tick_s
            while self._events and self._events[0][0] <= now:
                t, _, fn = heapq.heappop(self._events)
                self.now = t
                fn()
            self.now = now
            self.tick = k
            self._show_announcements(k)
            self._move_bytes(sc.tick_s)
            self._decide_due(k)
            if k % sample_every == 0:
                self._sample_latency()
            if progress is not None and k % progress_every == 0:
                progress(self)
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
        uploads = self.rng.random() >= sc.leech_fraction
        uplink = sc.uplink_bytes_per_s
        if sc.low_uplink_fraction > 0 and self.rng.random() < sc.low_uplink_fraction:
            uplink = sc.low_uplink_bytes_per_s
        # Upload fan-out bounded by the uplink (docs/scheduling.md, "Upload fan-out"): a viewer
        # that cannot feed one neighbour at the bitrate serves none and runs leech-only.
        slots = upload_slots(uplink, sc.bitrate_bits_per_s, sc.max_uploads)
        uploads = uploads and slots > 0
        region = self.rng.randrange(sc.regions) if sc.regions > 1 else 0
        viewer = _Viewer(
            index=n,
            peer_id=peer_id,
            joined_at=self.now,
            uploads_allowed=uploads,
            upload_slots=slots,
            uplink_bytes_per_s=uplink,
            region=region,
            player=PlaybackModel(self.play_cfg, start, self.now, end_s=end),
            refresh_phase_s=self.rng.uniform(0, sc.playlist_refresh_s),
            delay_classes=len(self.delays_s),
        )
        viewer.cdn_fetch_counts.start(int(start // sc.segment_s + 0.5))
        self.viewers[peer_id] = viewer
        viewer.slot = len(self.active)
        self.active.append(viewer)
        self._refresh_playlist(viewer, force=True)
        self._mark(viewer)
        if sc.p2p:
            if len(self.viewers) > 1:  # the tracker has peers to offer
                viewer.connecting_until = self.now + sc.connect_s + sc.peer_rtt_s
            self.at(self.now + sc.connect_s, functools.partial(self._connect, viewer))
        if sc.churn_per_min > 0:
            stay_s = self.rng.expovariate(sc.churn_per_min / 60.0)
            self.at(self.now + stay_s, functools.partial(self._churn_leave, viewer))

    def _connect(self, viewer: _Viewer) -> None:
        """The tracker pairs ``viewer``: a uniform sample of the swarm (all of it when small),
        same region first, then closest in playback (ties broken at random), as our signaling
        server does with region and position hints. ``pairing="free"`` skips full viewers;
        ``"split"`` (docs/signaling.md, "Making room") takes a full one too when two slots are
        wanted, splitting its link to a random neighbour that is not linked to ``viewer``."""
        if not viewer.active:
            return
        sc = self.sc
        want = sc.max_peers - len(viewer.neighbours)
        if want <= 0:
            return
        split = sc.pairing == "split"
        pool = self.active
        if sc.pairing_sample and len(pool) > sc.pairing_sample:
            sample = _sample(self.rng, pool, sc.pairing_sample)
        else:
            sample = pool
        linked = viewer.neighbours
        if split and not linked:
            # A newcomer's first pairing: nobody to skip but itself (and no peer id to read:
            # at 100,000 viewers each is a cache miss).
            others = [v for v in sample if v is not viewer]
        else:
            others = [
                v
                for v in sample
                if v is not viewer
                and v.peer_id not in linked
                and (split or len(v.neighbours) < sc.max_peers)
            ]
        if sample is pool:
            self.rng.shuffle(others)
        self.pairings += 1
        self.pairing_examined += len(sample)
        pos = viewer.player.playhead_s
        seg = sc.segment_s
        region = viewer.region
        # Same region first, then closest in playback, stable: the keys are computed in one
        # pass and the sample sorted by them (no key function called per viewer); with one
        # region every viewer is in it, and the order is by playback distance alone.
        if sc.regions > 1:
            region_keys = [
                (v.region != region, abs(v.player.playhead_s - pos) // seg) for v in others
            ]
            order = sorted(range(len(others)), key=region_keys.__getitem__)
        else:
            keys = [abs(v.player.playhead_s - pos) // seg for v in others]
            order = sorted(range(len(others)), key=keys.__getitem__)
        others = [others[i] for i in order]
        for other in others:
            if want <= 0:
                break
            if other.peer_id in viewer.neighbours:
                continue  # became a neighbour through an earlier split
            if len(other.neighbours) < sc.max_peers:
                self._link(viewer, other)
                want -= 1
                continue
            if want < 2:
                continue
            partner = self._split_partner(viewer, other)
            if partner is None:
                continue
            self._split(other, partner)
            self._link(viewer, other)
            self._link(viewer, partner)
            self.splits += 1
            want -= 2
        self._mark(viewer)

    def _split_partner(self, viewer: _Viewer, full: _Viewer) -> _Viewer | None:
        """A random neighbour of ``full`` not linked to ``viewer`` (at most 8 tried)."""
        ids = list(full.neighbours)
        for pid in _sample(self.rng, ids, min(8, len(ids))):
            if pid not in viewer.neighbours and not full.neighbours[pid].draining:
                return full.neighbours[pid].viewer
        return None

    def _link(self, a: _Viewer, b: _Viewer) -> None:
        """Link newcomer ``a`` to ``b``."""
        delay_class = 0 if a.region == b.region else 1
        alone = not b.neighbours
        nb_a = a.neighbours[b.peer_id] = _Neighbour(b, delay_class)
        nb_b = b.neighbours[a.peer_id] = _Neighbour(a, delay_class)
        if a.listeners is not None:
            a.listeners[delay_class].append(b)
        if b.listeners is not None:
            b.listeners[delay_class].append(a)
        if a.peer_views is not None:
            a.peer_views[b.peer_id] = self._peer_view(nb_a)
        if b.peer_views is not None:
            b.peer_views[a.peer_id] = self._peer_view(nb_b)
        # A new neighbour can only make ``b`` act if it was waiting for its first one or the
        # newcomer has (or fetches) a segment ``b`` wants and is not fetching. Otherwise the
        # decision would act on nothing: the newcomer can only raise ``b``'s election rank,
        # so its pending wake-up is still early enough.
        if alone or not self.sc.live or self._offers(a, b, delay_class):
            self._mark(b)

    def _split(self, a: _Viewer, b: _Viewer) -> None:
        """The tracker splits the link ``a``-``b`` for a newcomer. Both ends drain it, as our
        clients do (docs/signaling.md, "Making room"): it leaves their views at once (nothing
        new is asked over it, and it counts in no election), the transfers over it go on, and
        it closes once none is left, or after ``split_drain_s`` at the latest. Closing at once
        (``split_drain_s`` 0) cut whole cut-through subtrees off their source while viewers
        joined (docs/simulator.md, "Splits cut transfers")."""
        if self.sc.split_drain_s <= 0 or not self._flows_between(a, b):
            self._unlink(a, b)
            return
        for x, y in ((a, b), (b, a)):
            nb = x.neighbours[y.peer_id]
            nb.draining = True
            nb.view = None
            if x.peer_views is not None:
                x.peer_views.pop(y.peer_id, None)
            self._mark(x)
        self.split_drains += 1
        bound = functools.partial(self._drained, a, b, True)
        self.at(self.now + self.sc.split_drain_s, bound)

    @staticmethod
    def _flows_between(a: _Viewer, b: _Viewer) -> bool:
        return any(f.dst is b for f in a.uploads) or any(f.dst is a for f in b.uploads)

    def _drained(self, a: _Viewer, b: _Viewer, bound: bool = False) -> None:
        """Close the draining link ``a``-``b`` if nothing flows over it any more, or at the
        bound whatever flows (counted)."""
        nb = a.neighbours.get(b.peer_id)
        if nb is None or not nb.draining:
            return
        if bound or not self._flows_between(a, b):
            self.split_drains_forced += bound
            self._unlink(a, b)

    def _unlink(self, a: _Viewer, b: _Viewer) -> None:
        """Close the link between ``a`` and ``b`` (split for a newcomer): transfers over it
        break and resume elsewhere, as when a neighbour leaves."""
        for flow in list(a.uploads):
            if flow.dst is b:
                self._fail_flow(flow)
        for flow in list(b.uploads):
            if flow.dst is a:
                self._fail_flow(flow)
        for x, y in ((a, b), (b, a)):
            nb = x.neighbours.pop(y.peer_id, None)
            if nb is not None and x.listeners is not None:
                x.listeners[nb.delay_class].remove(y)
            if x.peer_views is not None:
                x.peer_views.pop(y.peer_id, None)
            if nb is None or self._loss_matters(x, nb):
                self._mark(x)

    def _loss_matters(self, viewer: _Viewer, nb: _Neighbour) -> bool:
        """Whether losing neighbour ``nb`` can change what ``viewer`` would decide (its
        transfers over the link are dropped already, and a dropped transfer marks ``viewer``
        itself). Live only (as in :meth:`_link`). A neighbour that never uploads is neither a
        source nor counted in an election. An uploading one matters when ``viewer`` is left
        alone (it waits for neighbours still connecting), when a transfer from a peer has had no
        byte for ``peer_stall_timeout_s`` (a decision now may cancel it and re-plan its segment
        among the neighbours left), or for a segment ``viewer`` wants
        (listed, neither held nor fetched): when, as ``viewer`` sees it, the lost neighbour was
        the only one uploading that has or fetches it and is not avoided for it (a wait for a
        neighbour turns into an election), or it watches close by (has or fetches one of the
        ``election_lookback_segments`` before it) with an election key below ``viewer``'s
        (``viewer``'s election rank drops: its turn may come sooner). Otherwise every decision
        it makes now plans with the same sources, ranks and load as its last, and the wake-up
        that decision left stands."""
        if not self.sc.live or not viewer.neighbours:
            return True
        # A transfer silent for the flat stall timeout could be cancelled by a decision now and
        # its segment re-planned among the neighbours (the lost one no longer among them).
        if self._silent_transfer(viewer):
            return True
        lost = nb.viewer
        if not lost.uploads_allowed:
            return False
        have, fetching = lost.visible[nb.delay_class]
        if not have and not fetching:
            return False
        segment_id = self.segment_id
        lookback = self.sched_cfg.election_lookback_segments
        for seq in viewer.wants:
            sid = segment_id(seq)
            if sid in have or sid in fetching:
                if not self._other_source(viewer, sid):
                    return True
                continue
            for k in range(1, min(lookback, seq) + 1):
                earlier = segment_id(seq - k)
                if earlier in have or earlier in fetching:
                    if election_key(lost.peer_id, sid) < election_key(viewer.peer_id, sid):
                        return True
                    break
        return False

    @staticmethod
    def _other_source(viewer: _Viewer, sid: SegmentId) -> bool:
        """Whether a neighbour of ``viewer`` that uploads and is not avoided for ``sid`` has or
        fetches it, as ``viewer`` sees it."""
        avoid = viewer.avoid.get(sid, _EMPTY)
        for pid, nb in viewer.neighbours.items():
            src = nb.viewer
            if not src.uploads_allowed or pid in avoid or nb.draining:
                continue
            have, fetching = src.visible[nb.delay_class]
            if sid in have or sid in fetching:
                return True
        return False

    def overlay_stats(self, sources: int = 32) -> dict[str, float | int | None]:
        """The overlay now: median join-order distance of linked viewers, mean neighbours,
        and the graph's diameter estimated as the largest eccentricity (BFS hops) over
        ``sources`` random viewers (exact when ``sources`` >= viewers), plus the share of
        viewers those BFS could not reach (the graph is split)."""
        active = self.active
        if not active:
            return {"neighbour_join_distance_median": None, "diameter_hops": None}
        dist = sorted(
            abs(v.index - nb.viewer.index) for v in active for nb in v.neighbours.values()
        )
        median = float(dist[len(dist) // 2]) if dist else None
        rng = random.Random(self.sc.seed)
        starts = active if len(active) <= sources else rng.sample(active, sources)
        diameter = 0
        unreached = 0
        for start in starts:
            seen = {start.peer_id: 0}
            frontier = [start]
            hops = 0
            while frontier:
                hops += 1
                nxt = []
                for v in frontier:
                    for pid, nb in v.neighbours.items():
                        if pid not in seen:
                            seen[pid] = hops
                            nxt.append(nb.viewer)
                frontier = nxt
            diameter = max(diameter, max(seen.values()))
            unreached = max(unreached, len(active) - len(seen))
        degrees = [len(v.neighbours) for v in active]
        return {
            "neighbour_join_distance_median": median,
            "neighbours_mean": round(sum(degrees) / len(degrees), 2),
            "diameter_hops": diameter,
            "unreachable_max": unreached,
            "splits": self.splits,
            "split_drains": self.split_drains,
            "split_drains_forced": self.split_drains_forced,
        }

    def _offers(self, src: _Viewer, dst: _Viewer, delay_class: int) -> bool:
        """Whether ``src`` has or fetches, as ``dst`` sees it, a segment ``dst`` has listed and
        neither holds nor is fetching."""
        have, fetching = src.visible[delay_class]
        if not have and not fetching:
            return False
        segment_id = self.segment_id
        for seq in dst.wants:
            sid = segment_id(seq)
            if sid in have or sid in fetching:
                return True
        return False

    def _completion_matters(self, viewer: _Viewer, flow: _Flow, playing: bool) -> bool:
        """Whether ``viewer``, having just completed ``flow``, could act on a decision now.

        Live, with every listed segment held or in flight, a decision could only re-check the
        transfers in flight: that waits for its next wake-up (the checks of transfers it saw
        are among them); its listing grows at a playlist refresh, which wakes it. Nor can it
        act when the transfer came from a peer, its player played through (the deadlines its
        last decision planned with stand), every segment it wants was waiting for its election
        turn at its last decision (a completion moves neither the rank nor the turn: no
        neighbour's announcements, no CDN estimate, no CDN load change), no other transfer
        comes from that peer (whose measured rate just changed) and none has been silent for
        the flat stall timeout."""
        if not self.sc.live:
            return True
        wants = viewer.wants
        if not wants:
            return False
        if flow.src is None or not playing or not wants <= viewer.electing:
            return True
        src = flow.src
        for other in viewer.transfers.values():
            if other.src is src:
                return True
        return self._silent_transfer(viewer)

    def _silent_transfer(self, viewer: _Viewer) -> bool:
        """Whether a transfer from a peer into ``viewer`` has had no byte for
        ``peer_stall_timeout_s``: a decision now may cancel it (the stall rule's flat part)."""
        silent_since = self.now - self.sched_cfg.peer_stall_timeout_s
        for flow in viewer.transfers.values():
            if flow.src is not None:
                last = flow.last_data_at if flow.last_data_at is not None else flow.requested_at
                if last <= silent_since:
                    return True
        return False

    def _churn_leave(self, viewer: _Viewer) -> None:
        if viewer.active:
            self.leave(viewer)
            self.join()

    def leave(self, viewer: _Viewer) -> None:
        """An abrupt close: transfers through it break, neighbours look for others."""
        viewer.left_at = self.now
        del self.viewers[viewer.peer_id]
        last = self.active.pop()
        if last is not viewer:
            last.slot = viewer.slot
            self.active[viewer.slot] = last
        self.departed.append(viewer)
        for flow in list(viewer.transfers.values()):
            self._drop_flow(flow)
        for flow in list(viewer.uploads):
            self._fail_flow(flow)
        for nb in viewer.neighbours.values():
            other = nb.viewer
            mine = other.neighbours.pop(viewer.peer_id, None)
            if mine is not None and other.listeners is not None:
                other.listeners[mine.delay_class].remove(viewer)
            if other.peer_views is not None:
                other.peer_views.pop(viewer.peer_id, None)
            self._mark(other)
            if other.active:
                self.at(self.now + self.sc.connect_s, functools.partial(self._connect, other))
        viewer.neighbours.clear()
        viewer.listeners = None
        viewer.peer_views = None
        viewer.segment_views.clear()

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
        known = viewer.known
        for seq in range(lowest, seen + 1):
            if seq not in known:
                known[seq] = self.now
                sid = self.segment_id(seq)
                if sid not in viewer.have and sid not in viewer.transfers:
                    viewer.wants.add(seq)
        viewer.seen = max(viewer.seen, seen)
        viewer.listing_at = self._next_listing_at(viewer)

    def _next_listing_at(self, viewer: _Viewer) -> float:
        """Live: the playlist refresh at which ``viewer`` first sees its next segment."""
        sc = self.sc
        if not sc.live:
            return _INF
        published_at = (viewer.seen + 2) * sc.segment_s
        period = sc.playlist_refresh_s
        m = math.ceil((published_at - viewer.refresh_phase_s) / period)
        return m * period + viewer.refresh_phase_s

    def _decide_due(self, k: int) -> None:
        due = self._dirty
        self._dirty = []
        now = self.now
        for viewer in self._wakes.pop(k, ()):
            if viewer.wake_tick == k and not viewer.dirty:
                if viewer.stall_checks:
                    # A stall check whose transfer received bytes since would decide nothing
                    # new: wait for the moved check or the decision's other wake-up instead.
                    due_at = self._due_at(viewer)
                    if due_at > now:
                        self._wake(viewer, due_at)
                        continue
                due.append(viewer)
                viewer.dirty = True
        if len(due) > 1:
            due.sort(key=_JOIN_ORDER)
        for viewer in due:
            if viewer.active:
                # Live: until the next refresh that lists a new segment, a refresh adds nothing.
                if not self.sc.live or self.now >= viewer.listing_at:
                    self._refresh_playlist(viewer)
                self._decide(viewer)
            else:
                viewer.dirty = False

    @staticmethod
    def _due_at(viewer: _Viewer) -> float:
        """When ``viewer``'s last decision asked to decide again, its stall checks moved to the
        last byte each transfer received (docs/scheduling.md, ``wake_at_flowing``)."""
        due_at = viewer.wake_flowing
        for flow, check in viewer.stall_checks:
            if flow.attached:
                last = flow.last_data_at if flow.last_data_at is not None else flow.requested_at
                due_at = min(due_at, check.due_at(last))
        return due_at

    def _segment_views(self, viewer: _Viewer, first: int) -> list[SegmentView]:
        sc = self.sc
        known = viewer.known
        stale = []
        for seq in known:  # ascending: listed in order, pruned from the front
            if seq >= first:
                break
            stale.append(seq)
        for seq in stale:
            del known[seq]
            viewer.wants.discard(seq)
            viewer.segment_views.pop(seq, None)
        out = []
        cache = viewer.segment_views
        have = viewer.have
        for seq, since in known.items():
            view = cache.get(seq)
            if view is None:
                sid = self.segment_id(seq)
                if sid in have:
                    continue
                view = cache[seq] = SegmentView(
                    segment=sid,
                    start_s=seq * sc.segment_s,
                    duration_s=sc.segment_s,
                    size_bytes=self.size_of(seq),
                    known_since=since,
                    partial_bytes=viewer.partial.get(sid, 0),
                    avoid=viewer.avoid.get(sid, _EMPTY),
                )
            elif view.segment in have:
                continue
            out.append(view)
        return out

    def _peer_views(self, viewer: _Viewer) -> dict[str, PeerView]:
        views = viewer.peer_views
        if views is None:
            views = viewer.peer_views = {
                pid: nb.view or self._peer_view(nb)
                for pid, nb in viewer.neighbours.items()
                if not nb.draining
            }
        return views

    @staticmethod
    def _peer_view(nb: _Neighbour) -> PeerView:
        src = nb.viewer
        have, fetching = src.visible[nb.delay_class]
        est = nb.estimator
        view = nb.view = PeerView(
            peer_id=src.peer_id,
            have=have,
            fetching=fetching,
            throughput_bytes_per_s=None if est is None else est.estimate_bytes_per_s,
            choked_until=nb.choked_until,
            uploads=src.uploads_allowed,
        )
        return view

    def _peer_changed(self, viewer: _Viewer, nb: _Neighbour) -> None:
        """``nb``'s throughput or choke changed: replace its view in ``viewer``'s map."""
        if nb.draining:
            return
        view = self._peer_view(nb)
        if viewer.peer_views is not None:
            viewer.peer_views[view.peer_id] = view

    def _decide(self, viewer: _Viewer) -> None:
        sc = self.sc
        now = self.now
        viewer.dirty = False
        view = self._view(viewer)
        if view is None:
            viewer.stall_checks = []
            viewer.electing = set()
            if sc.live:
                self._wake(viewer, viewer.listing_at)
            else:
                self._wake(viewer, now + self.sched_cfg.idle_recheck_s)
            return
        decision = decide(view, self.sched_cfg, self.rng)
        self.decisions += 1
        electing = viewer.electing = set()
        for action in decision.actions:
            if isinstance(action, Wait):
                if action.reason == "not_elected":
                    electing.add(action.segment.sequence)
            elif isinstance(action, CancelTransfer):
                flow = viewer.transfers.get(action.segment)
                if flow is not None:
                    # This decision has re-planned the segment already: no second one for it.
                    self._drop_flow(flow, mark=False)
                    if action.peer_id is not None:
                        self._set_avoid(viewer, action.segment, action.peer_id)
            elif isinstance(action, FetchFromCdn):
                self._start_cdn(viewer, action.segment, action.offset)
            elif isinstance(action, FetchFromPeer):
                self._start_peer(viewer, action.segment, action.peer_id, action.offset)
        listing_at = viewer.listing_at if self.sc.live else _INF
        if decision.stall_checks:
            flows = viewer.transfers
            viewer.stall_checks = [
                (flows[c.segment], c) for c in decision.stall_checks if c.segment in flows
            ]
            flowing = decision.wake_at_flowing
            viewer.wake_flowing = min(_INF if flowing is None else flowing, listing_at)
        elif viewer.stall_checks:
            viewer.stall_checks = []
        wake_at = decision.wake_at if decision.wake_at is not None else _INF
        self._wake(viewer, min(wake_at, listing_at))

    def _view(self, viewer: _Viewer) -> SchedulerView | None:
        """What ``viewer`` decides on now (its player advanced to now; segments behind it
        pruned), or ``None`` when it has no segment to plan."""
        sc = self.sc
        now = self.now
        viewer.player.advance(now)
        playhead = viewer.player.playhead_s
        first = int(playhead // sc.segment_s)
        segments = self._segment_views(viewer, first)
        if not segments:
            return None
        if viewer.uploads:
            # The neighbours it relays a segment to (not from a verified copy) are avoided for
            # it: pulling the segment from one of them would close a loop (docs/exchange.md §1).
            relayed: dict[SegmentId, frozenset[str]] = {}
            for g in viewer.uploads:
                if not g.full:
                    relayed[g.segment] = relayed.get(g.segment, _EMPTY) | {g.dst.peer_id}
            if relayed:
                segments = [
                    dataclasses.replace(v, avoid=v.avoid | relayed[v.segment])
                    if v.segment in relayed
                    else v
                    for v in segments
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
        # The server's fetcher list goes into the view as it is built (a replace() per
        # decision cost 5 % of a run); the list itself is re-picked at most every refresh_s.
        fetchers: tuple[str, ...] = ()
        fetchers_until = 0.0
        if self.server_fetchers is not None:
            fetchers = self.server_fetchers.lists(now, self.active).get(viewer.region, ())
            fetchers_until = _INF
        view = SchedulerView(
            now=now,
            self_id=viewer.peer_id,
            playhead_s=playhead,
            segments=segments,
            have=viewer.have.keys(),
            transfers=transfers,
            peers=self._peer_views(viewer),
            cdn_throughput_bytes_per_s=viewer.cdn.estimate_bytes_per_s,
            rate=1.0,
            connecting_until=viewer.connecting_until,
            swarm_size=len(self.viewers),
            fetchers=fetchers,
            fetchers_until=fetchers_until,
        )
        return view

    def _set_avoid(self, viewer: _Viewer, segment: SegmentId, peer_id: str) -> None:
        viewer.avoid[segment] = viewer.avoid.get(segment, _EMPTY) | {peer_id}
        viewer.segment_views.pop(segment.sequence, None)

    # -- announcements -----------------------------------------------------------------------

    def _announce(self, viewer: _Viewer, kind: int, segment: SegmentId) -> None:
        """HAVE or FETCHING leaves ``viewer`` now; each delay class sees it after its delay."""
        for delay_class, delay_s in enumerate(self.delays_s):
            item = (kind, viewer, segment, delay_class)
            if delay_s <= 0:
                self._show(item)
            else:
                self._visibility.setdefault(self._tick_of(self.now + delay_s), []).append(item)

    def _show_announcements(self, k: int) -> None:
        for item in self._visibility.pop(k, ()):
            self._show(item)

    def _show(self, item: tuple[int, _Viewer, SegmentId, int]) -> None:
        kind, src, segment, delay_class = item
        if not src.active:
            return
        have, fetching = src.visible[delay_class]
        if kind == _HAVE:
            have.add(segment)
            fetching.discard(segment)
        else:
            fetching.add(segment)
        # Wake the neighbours that can act on it: they want the segment and are not fetching it.
        seq = segment.sequence
        listeners = src.listeners
        if listeners is None:
            listeners = src.listeners = [[] for _ in self.delays_s]
            for nb in src.neighbours.values():
                listeners[nb.delay_class].append(nb.viewer)
        for other in listeners[delay_class]:
            if not other.dirty and seq in other.wants:
                other.dirty = True  # as _mark
                self._dirty.append(other)

    def _announce_fetching(self, viewer: _Viewer, segment: SegmentId) -> None:
        if segment not in viewer.fetching and segment not in viewer.have:
            viewer.fetching.add(segment)
            self._announce(viewer, _FETCHING, segment)

    # -- transfers ---------------------------------------------------------------------------

    def _start_cdn(self, viewer: _Viewer, segment: SegmentId, offset: int) -> None:
        if segment in viewer.transfers:
            return
        total = self.size_of(segment.sequence)
        flow = _Flow(segment, None, viewer, offset, total, self.now, self.sc.cdn_latency_s)
        viewer.transfers[segment] = flow
        viewer.wants.discard(segment.sequence)
        viewer.cdn_fetches += 1
        seq = segment.sequence
        self.cdn_fetches[seq] = self.cdn_fetches.get(seq, 0) + 1
        if viewer.cdn_fetch_counts.count(seq) == JOIN_RAMP:
            self.cdn_fetches_join_ramp[seq] = self.cdn_fetches_join_ramp.get(seq, 0) + 1
        self.flows[flow] = None
        self._pending_flows.append(flow)
        self._feed_relays(viewer, segment, flow)
        self._announce_fetching(viewer, segment)

    def _start_peer(self, viewer: _Viewer, segment: SegmentId, peer_id: str, offset: int) -> None:
        nb = viewer.neighbours.get(peer_id)
        if nb is None or segment in viewer.transfers:
            return
        src = nb.viewer
        holds = segment in src.have or segment in src.transfers or segment in src.partial
        if not src.uploads_allowed or len(src.uploads) >= src.upload_slots or not holds:
            # BUSY (or ABSENT): the requester backs off from this peer for a while.
            nb.choked_until = self.now + self.sc.peer_rtt_s + self.sc.busy_retry_s
            self._peer_changed(viewer, nb)
            self._mark(viewer)
            return
        total = self.size_of(segment.sequence)
        rtt = self.delays_s[nb.delay_class] * 2
        self.cut_through_depths[self._cut_through_depth(src, segment)] += 1
        flow = _Flow(segment, src, viewer, offset, total, self.now, rtt)
        viewer.transfers[segment] = flow
        viewer.wants.discard(segment.sequence)
        src.uploads[flow] = None
        self.flows[flow] = None
        self._pending_flows.append(flow)
        self._feed_relays(viewer, segment, flow)
        self._announce_fetching(viewer, segment)

    @staticmethod
    def _cut_through_depth(src: _Viewer, segment: SegmentId) -> int | str:
        """How many relays that have not verified ``segment`` stand between a new transfer of
        it from ``src`` and a verified copy or the CDN, as the transfers are now (0: ``src``
        holds it); ``"unanchored"`` when the chain ends at a viewer with no transfer of it,
        ``"loop"`` when it runs in a circle."""
        depth = 0
        v = src
        seen: set[int] = set()
        while True:
            if segment in v.have:
                return depth
            f = v.transfers.get(segment)
            if f is None:
                return "unanchored"
            depth += 1
            if f.src is None:
                return depth
            if v.index in seen:
                return "loop"
            seen.add(v.index)
            v = f.src

    @staticmethod
    def _feed_relays(viewer: _Viewer, segment: SegmentId, feed: _Flow | None) -> None:
        """``viewer``'s own transfer of ``segment`` is now ``feed`` (None: it has none): what
        its uploads of that segment relay cut-through."""
        for g in viewer.uploads:
            if not g.full and g.segment == segment:
                g.feed = feed

    def _rate(self, f: _Flow) -> float:
        """A live flow's rate: its share of the receiver's downlink and of the sender's uplink
        (or of the CDN's egress), the smaller."""
        rate = self.sc.downlink_bytes_per_s / f.dst.downs
        src = f.src
        if src is None:
            if self._cdn_share < rate:
                rate = self._cdn_share
        else:
            up = src.uplink_bytes_per_s / src.ups
            if up < rate:
                rate = up
        return rate

    def _rerate_in(self, viewer: _Viewer) -> None:
        """``viewer``'s count of live flows in changed: so did their shares of its downlink."""
        rate = self._rate
        for f in viewer.transfers.values():
            if f.live:
                f.rate = rate(f)

    def _rerate_out(self, viewer: _Viewer) -> None:
        """``viewer``'s count of live flows out changed: so did their shares of its uplink."""
        rate = self._rate
        for f in viewer.uploads:
            if f.live:
                f.rate = rate(f)

    def _move_bytes(self, dt: float) -> None:
        """Move one tick of bytes on every live flow, in the order the flows started.

        A flow's rate is kept by events (a flow going live or ending changes its endpoints'
        shares: ``_rerate_in``, ``_rerate_out``), and where its bytes come from too
        (``_Flow.full``, ``feed``), so a step here touches the flow and, for a relay, the
        transfer it relays; the bytes are added to the viewers' totals when the flow ends
        (``_account``)."""
        sc = self.sc
        now = self.now
        still: list[_Flow] = []
        for f in self._pending_flows:
            if not f.attached:
                continue
            if f.data_from <= now:
                f.live = True
                dst = f.dst
                dst.downs += 1
                src = f.src
                if src is None:
                    self._cdn_live += 1
                    if sc.cdn_bytes_per_s > 0:
                        self._cdn_share = sc.cdn_bytes_per_s / self._cdn_live
                else:
                    src.ups += 1
                    self._rerate_out(src)
                self._rerate_in(dst)
            else:
                still.append(f)
        self._pending_flows = still
        if sc.cdn_bytes_per_s > 0:
            # A capped CDN's egress is shared by all its live flows: every one's rate moves.
            self._cdn_share = sc.cdn_bytes_per_s / self._cdn_live if self._cdn_live else _INF
            for f in self.flows:
                if f.live and f.src is None:
                    f.rate = self._rate(f)
        holdback = RELAY_HOLDBACK_BYTES
        tick_start = now - dt
        completed: list[tuple[_Flow, float]] = []  # with when in the tick each completed
        for f in self.flows:
            if not f.live:
                continue
            total = f.total
            if f.full:
                if f.frame_from > tick_start:
                    # Its sender verified its copy lately: the withheld frame flows from
                    # ``frame_from`` on, not from the tick's start.
                    f_start = f.data_from if f.data_from > tick_start else tick_start
                    done = self._release(f, f_start, now)
                    if done is not None:
                        completed.append((f, done))
                    continue
                available: float = total
            else:
                # Cut-through: a relay passes bytes on as they arrive but withholds the last
                # frame until its own copy has matched its hash (docs/protocol.md,
                # "Relaying"), so nobody completes a segment its sender has not verified.
                upstream = f.feed
                if upstream is None:
                    continue  # nothing to pass on
                available = upstream.offset + upstream.received
                if total - holdback < available:
                    available = total - holdback
            # Data flows for the part of the tick after its first byte could arrive.
            if f.last_data_at is None:
                step_s = now - f.data_from
                if dt <= step_s:
                    step_s = dt
            else:
                step_s = dt
            received = f.received
            reached = f.offset + received
            step = f.rate * step_s
            room = available - reached
            if room < step:
                if room <= 0:
                    continue
                step = room
                f.held_from = now - step_s + room / f.rate
            elif step <= 0:
                continue
            f.received = received + step
            f.last_data_at = now
            if reached + step >= total - 1e-6:
                done = now - step_s + (total - reached) / f.rate
                completed.append((f, done if done < now else now))
        # A completion verifies the receiver's copy: each relay it feeds gets the withheld
        # frame half a round trip later and, if that is within this tick, moves it for the
        # time left (and may complete, releasing the next hop in turn). One tick per hop
        # would be slower than a real relay (one-way delay + the frame at the link's rate).
        i = 0
        while i < len(completed):
            f, done = completed[i]
            i += 1
            self._complete(f, done)
            segment = f.segment
            for g in f.dst.uploads:
                if g.segment == segment and g.live and g.frame_from < now:
                    if g.last_data_at != now:  # it waited all tick
                        g_start = g.data_from if g.data_from > tick_start else tick_start
                    elif g.held_from > tick_start:  # it moved until its sender held it back
                        g_start = g.held_from
                    else:
                        continue  # it moved all tick: on from the next
                    # Nor before its sender passed where it is (at its rate, ending at `done`).
                    passed = done - (f.total - g.offset - g.received) / f.rate
                    if g_start < passed:
                        g_start = passed
                    g_done = self._release(g, g_start, now)
                    if g_done is not None:
                        completed.append((g, g_done))

    @staticmethod
    def _release(f: _Flow, start: float, now: float) -> float | None:
        """Move full flow ``f`` from ``start`` to ``now`` at its rate, its last frame not
        before ``f.frame_from``; returns when it completed (None: not by ``now``)."""
        rate = f.rate
        if rate <= 0:
            return None
        total = f.total
        offset = f.offset
        reached = pos = offset + f.received
        body_end = total - RELAY_HOLDBACK_BYTES
        t = start
        if pos < body_end:
            t = start + (body_end - pos) / rate
            if t >= now:
                pos += (now - start) * rate
                t = now
            else:
                pos = body_end
        if t < f.frame_from:
            t = f.frame_from
        done = t + (total - pos) / rate
        if t < now:
            pos = total if done <= now else pos + (now - t) * rate
        if pos > reached:
            f.received = pos - offset
            f.last_data_at = now
        return done if done <= now else None

    def _complete(self, flow: _Flow, done_at: float) -> None:
        """``flow`` received its last byte at ``done_at`` (within this tick): the receiver's
        copy verifies (the simulator takes no time to hash) and is recorded as of the tick."""
        viewer = flow.dst
        self._detach(flow)
        segment = flow.segment
        duration = self.now - flow.requested_at
        if flow.src is None:
            viewer.cdn.add_sample(int(flow.received), duration)
        else:
            nb = viewer.neighbours.get(flow.src.peer_id)
            if nb is not None:
                if nb.estimator is None:
                    nb.estimator = ThroughputEstimator()
                nb.estimator.add_sample(int(flow.received), duration)
                self._peer_changed(viewer, nb)
        viewer.partial.pop(segment, None)
        viewer.avoid.pop(segment, None)
        viewer.have[segment] = self.now
        viewer.wants.discard(segment.sequence)
        viewer.fetching.discard(segment)
        viewer.segment_views.pop(segment.sequence, None)
        frame_from = done_at + self.delays_s[0]
        for g in viewer.uploads:
            if g.segment == segment:
                g.full = True
                g.feed = None
                g.frame_from = (
                    frame_from if g.dst.region == viewer.region else done_at + self.delays_s[1]
                )
        self._announce(viewer, _HAVE, segment)
        seq = segment.sequence
        player = viewer.player
        # Playing through now: its playhead has moved with the clock since its last decision.
        playing = player.playing and player.playhead_at(self.now) < player.buffered_until_s
        player.add_media(seq * self.sc.segment_s, self.sc.segment_s, self.now)
        viewer.segments_played += 1
        self.plays[seq] = self.plays.get(seq, 0) + 1
        if not viewer.dirty and self._completion_matters(viewer, flow, playing and player.playing):
            self._mark(viewer)

    def _detach(self, flow: _Flow) -> None:
        if not flow.attached:
            return
        flow.attached = False
        self.flows.pop(flow, None)
        self._account(flow)
        dst = flow.dst
        src = flow.src
        segment = flow.segment
        if dst.transfers.get(segment) is flow:
            del dst.transfers[segment]
            if segment.sequence in dst.known and segment not in dst.have:
                dst.wants.add(segment.sequence)
            self._feed_relays(dst, segment, None)
        if src is not None:
            src.uploads.pop(flow, None)
            nb = dst.neighbours.get(src.peer_id)
            if nb is not None and nb.draining:
                self.at(self.now, functools.partial(self._drained, src, dst))
        if flow.live:
            dst.downs -= 1
            self._rerate_in(dst)
            if src is None:
                self._cdn_live -= 1
            else:
                src.ups -= 1
                self._rerate_out(src)

    @staticmethod
    def _account(flow: _Flow) -> None:
        """Add what ``flow`` moved to its viewers' byte totals (once: when it ends, or at the
        end of the run)."""
        moved = flow.received
        if flow.src is None:
            flow.dst.bytes_cdn += moved
        else:
            flow.dst.bytes_p2p += moved
            flow.src.bytes_up += moved

    def _drop_flow(self, flow: _Flow, *, mark: bool = True) -> None:
        """The receiver cancels: it keeps the bytes it has (a later fetch resumes there)."""
        self._detach(flow)
        reached = int(flow.reached)
        dst = flow.dst
        if reached > 0:
            dst.partial[flow.segment] = max(dst.partial.get(flow.segment, 0), reached)
            dst.segment_views.pop(flow.segment.sequence, None)
        if mark:
            self._mark(dst)

    def _fail_flow(self, flow: _Flow) -> None:
        """The sender went away mid-transfer."""
        self._drop_flow(flow)
        if flow.src is not None:
            self._set_avoid(flow.dst, flow.segment, flow.src.peer_id)

    # -- results -----------------------------------------------------------------------------

    def _sample_latency(self) -> None:
        if not self.sc.live:
            return
        now = self.now
        edge = self.live_edge_s(now)
        for viewer in self.active:
            player = viewer.player
            if player.started_at is not None:
                viewer.latency_samples.append(edge - player.playhead_at(now))

    def _result(self) -> SimResult:
        for viewer in self.active:
            viewer.player.advance(self.now)
        for flow in self.flows:
            self._account(flow)
        self.flows.clear()
        overlay = None
        if self.sc.p2p:
            overlay = self.overlay_stats(
                sources=min(32, max(4, 200_000 // len(self.viewers or [0])))
            )
        result = build_result(
            self.sc,
            list(self.viewers.values()) + self.departed,
            now=self.now,
            t0=self.t0,
            plays=self.plays,
            cdn_fetches=self.cdn_fetches,
            cdn_fetches_join_ramp=self.cdn_fetches_join_ramp,
            decisions=self.decisions,
            per_peer=self.per_peer,
            cut_through_depths=self.cut_through_depths,
        )
        return dataclasses.replace(result, overlay=overlay)


def simulate(
    scenario: Scenario,
    scheduler_config: SchedulerConfig | None = None,
    *,
    per_peer: bool = True,
    progress: Callable[[Simulation], None] | None = None,
) -> SimResult:
    return Simulation(scenario, scheduler_config, per_peer=per_peer).run(progress)
