"""The scheduler: where each wanted segment comes from, decided as a pure function.

``decide(view, config, rng)`` looks at one moment (``view.now``): the playhead, the segments
ahead, what is held and in flight, and what every neighbour has, is fetching and has delivered
at what rate. It returns actions (fetch from the CDN, fetch from a peer, cancel a transfer) and
deliberate waits, most urgent segment first, plus when to decide again. It keeps no state: the
simulator and the agent feed it the same kind of view, so they behave alike. The rules are in
docs/scheduling.md; docs/vectors/scheduler/ holds cases both implementations pass.

Per segment, in playback order within the prefetch window:

1. held: nothing to do; being fetched from the CDN: nothing, unless the segment is urgent and
   the fetch has been silent for ``cdn_stall_timeout_s`` or, at its own rate, would finish past
   the deadline and take longer than planned (then it is fetched again, if a new request can
   still make the deadline);
2. being fetched from a peer: cancel if no byte came for ``peer_stall_timeout_s`` plus
   ``stall_timeout_rtts`` round trips (only the flat part once the CDN must start to make the
   deadline, or while another neighbour that has the segment is usable for the rest), or if it
   is projected to finish too late (or has shown no byte at all) once the CDN must start to
   make the deadline; the cancelled segment is then planned again from the byte it reached (a
   Range resume);
3. urgent (the deadline is closer than a CDN fetch of the rest plus the margin; a CDN fetch is
   planned at the mean CDN rate plus its latency, and plus whatever of the tail of recent
   fetches' excess over that the margin does not cover): CDN;
4. a usable neighbour has it: fetch from a neighbour picked at random weighted by its measured
   throughput (untried peers count at ``untried_peer_bytes_per_s``, but no faster than the
   measured CDN rate), if it is projected to finish in time;
5. a usable neighbour is fetching it: fetch from it (cut-through relay) on the same terms;
6. a neighbour has or fetches it but none is usable now (busy, slots full, too slow for now):
   wait for it until the segment turns urgent;
7. nobody near has it: the election (after waiting for neighbours still connecting, if it
   has none yet). Rank 0 fetches from the CDN now; rank k once the segment
   has been wanted for ``k * backup_delay_s``; until then, wait. While the signaling server's
   fetcher assignment is in force, only the viewers it lists take part (in the same order and
   turns); the others wait for a neighbour's copy until the segment turns urgent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from functools import lru_cache
from operator import attrgetter
from typing import NamedTuple, Protocol

from .config import SchedulerConfig
from .election import election_key, rank_candidates
from .ids import SegmentId


class RandomSource(Protocol):
    def random(self) -> float: ...


# -- inputs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentView:
    """A segment of the playlist that playback will need."""

    segment: SegmentId
    start_s: float
    duration_s: float
    #: Exact size when known (byte range, peer announcement), else an estimate.
    size_bytes: int
    #: When this peer learned the segment exists (playlist refresh or announcement).
    known_since: float
    #: Bytes already held from an earlier, interrupted transfer: fetches resume there.
    partial_bytes: int = 0
    #: Peers not to ask for this segment (they failed it recently).
    avoid: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class TransferView:
    """A download in flight. ``peer_id`` is ``None`` for the CDN."""

    segment: SegmentId
    peer_id: str | None
    started_at: float
    offset: int = 0
    received_bytes: int = 0
    total_bytes: int | None = None
    last_data_at: float | None = None


@dataclass(frozen=True, slots=True)
class PeerView:
    peer_id: str
    have: Set[SegmentId] = frozenset()
    fetching: Set[SegmentId] = frozenset()
    #: Measured download rate from this peer in bytes/s; ``None`` when untried.
    throughput_bytes_per_s: float | None = None
    #: The peer answered BUSY: do not ask it again before this time.
    choked_until: float = 0.0
    #: ``False`` for a leech-only peer, which never uploads.
    uploads: bool = True
    #: Measured round trip to this peer (REQUEST -> RESPONSE); ``None`` when unknown.
    rtt_s: float | None = None


@dataclass(frozen=True, slots=True)
class SchedulerView:
    now: float
    self_id: str
    #: Media time of the playhead; segments wholly behind it are ignored.
    playhead_s: float
    segments: Sequence[SegmentView]
    have: Set[SegmentId] = frozenset()
    transfers: Sequence[TransferView] = ()
    #: The neighbours, or the same views keyed by ``peer_id`` (a dict a caller keeps across
    #: decisions, so none rebuilds it: the simulator's). The order never matters.
    peers: Sequence[PeerView] | Mapping[str, PeerView] = ()
    #: Measured CDN throughput in bytes/s (``None``: use ``assumed_cdn_bytes_per_s``).
    cdn_throughput_bytes_per_s: float | None = None
    #: How much longer than its bytes at the mean CDN rate a CDN fetch may take on this path:
    #: the tail of this viewer's own recent CDN fetches' excess (``FetchTimeEstimator``);
    #: ``None``: not measured. What of it ``deadline_margin_s`` does not cover lengthens a
    #: planned CDN fetch; rule 1's too-slow test compares with it.
    cdn_tail_s: float | None = None
    #: Playback rate; deadlines are media distance divided by it.
    rate: float = 1.0
    #: Neighbours offered by the tracker are still connecting until this time: the election
    #: waits for them rather than electing a viewer that merely has not met its peers yet.
    connecting_until: float = 0.0
    #: Viewers in the whole swarm as the tracker reports it (0: unknown).
    swarm_size: int = 0
    #: The signaling server's fetcher assignment (docs/signaling.md, "Fetcher assignment"):
    #: the peer_ids it chose to fetch new segments from the CDN, in any order; the order per
    #: segment is the election's. Empty: no assignment (the local election decides).
    fetchers: Sequence[str] = ()
    #: The assignment holds until this time (stale after it: the local election decides).
    fetchers_until: float = 0.0


# -- outputs ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchFromCdn:
    segment: SegmentId
    offset: int
    reason: str  # urgent | elected | assigned | backup


@dataclass(frozen=True, slots=True)
class FetchFromPeer:
    segment: SegmentId
    peer_id: str
    offset: int
    reason: str  # have | cut_through


@dataclass(frozen=True, slots=True)
class CancelTransfer:
    segment: SegmentId
    peer_id: str | None
    reason: str  # stalled | too_slow


@dataclass(frozen=True, slots=True)
class Wait:
    segment: SegmentId
    reason: str  # awaiting_peer | connecting | not_elected | not_assigned | cdn_busy
    until: float


Action = FetchFromCdn | FetchFromPeer | CancelTransfer | Wait


@dataclass(frozen=True, slots=True)
class StallCheck:
    """A peer transfer this decision keeps: it counts as stalled once no byte has come for
    ``timeout_s`` (rule 2's stall timeout for its peer), or for ``late_timeout_s`` (the flat
    ``peer_stall_timeout_s``) from ``late_from`` on (the last moment the CDN can still make the
    deadline, as of this decision: later bytes only move it later)."""

    segment: SegmentId
    timeout_s: float
    late_timeout_s: float
    late_from: float

    def due_at(self, last_byte_at: float) -> float:
        """When the transfer counts as stalled if no byte comes after ``last_byte_at``."""
        return min(
            last_byte_at + self.timeout_s, max(self.late_from, last_byte_at + self.late_timeout_s)
        )


@dataclass(frozen=True, slots=True)
class Decision:
    actions: tuple[Action, ...] = field(default=())
    #: When to call ``decide`` again if nothing else happens first.
    wake_at: float | None = None
    #: The peer transfers kept, in playback order, each with its stall timeouts. ``wake_at``
    #: includes each one's stall check (``StallCheck.due_at`` of its last byte, as seen now).
    stall_checks: tuple[StallCheck, ...] = ()
    #: When to decide again if every checked transfer keeps receiving bytes: ``wake_at``
    #: without the stall checks and rule 1's CDN silence checks (never sooner than
    #: ``min_recheck_s``). A caller that knows when each transfer last received a byte may
    #: wake at the earlier of this and each check's ``due_at(last byte)`` instead of
    #: ``wake_at``: a transfer that keeps delivering then wakes nobody.
    wake_at_flowing: float | None = None


# -- the rules ----------------------------------------------------------------------------


def cdn_time_s(num_bytes: int, view: SchedulerView, config: SchedulerConfig) -> float:
    """Time the CDN needs to deliver ``num_bytes`` before the deadline margin: its latency and
    the bytes at its mean rate, plus whatever of the tail of this viewer's recent CDN fetches'
    excess over their bytes at the mean rate (``cdn_tail_s``, when measured) the margin
    (``deadline_margin_s``) does not cover already."""
    bps = view.cdn_throughput_bytes_per_s or config.assumed_cdn_bytes_per_s
    tail_s = view.cdn_tail_s
    beyond_s = 0.0 if tail_s is None else max(0.0, tail_s - config.deadline_margin_s)
    return config.cdn_latency_s + beyond_s + num_bytes / bps


def cdn_planned_s(num_bytes: int, view: SchedulerView, config: SchedulerConfig) -> float:
    """How long a CDN fetch of ``num_bytes`` usually takes on this path: the bytes at the mean
    rate plus the latency or, when larger, the tail of the excess (rule 1's too-slow test)."""
    bps = view.cdn_throughput_bytes_per_s or config.assumed_cdn_bytes_per_s
    tail_s = view.cdn_tail_s
    extra_s = config.cdn_latency_s if tail_s is None or tail_s < config.cdn_latency_s else tail_s
    return extra_s + num_bytes / bps


def urgent_window_s(num_bytes: int, view: SchedulerView, config: SchedulerConfig) -> float:
    return max(
        config.min_urgent_window_s, cdn_time_s(num_bytes, view, config) + config.deadline_margin_s
    )


def _peer_rate(peer: PeerView, untried_bytes_per_s: float) -> float:
    return peer.throughput_bytes_per_s if peer.throughput_bytes_per_s else untried_bytes_per_s


def _rtt_s(peer: PeerView | None, fallback_s: float) -> float:
    """The measured round trip to ``peer``, else ``fallback_s`` (the largest measured to any
    neighbour: a new peer's path is assumed no shorter than the known ones)."""
    if peer is not None and peer.rtt_s is not None:
        return peer.rtt_s
    return fallback_s


_peer_id = attrgetter("peer_id")


def _weighted_pick(
    peers: list[PeerView], untried_bytes_per_s: float, rng: RandomSource
) -> PeerView:
    """Pick one of ``peers`` with probability proportional to its rate.

    Peers are ordered by id and one uniform draw ``u`` in [0, 1) picks the first peer whose
    cumulative rate exceeds ``u * total``: the same draw picks the same peer in every
    implementation.
    """
    ordered = sorted(peers, key=_peer_id)
    if len(ordered) == 1:
        return ordered[0]
    weights = [_peer_rate(p, untried_bytes_per_s) for p in ordered]
    target = rng.random() * sum(weights)
    cumulative = 0.0
    for peer, weight in zip(ordered, weights, strict=True):
        cumulative += weight
        if target < cumulative:
            return peer
    return ordered[-1]


def _usable(
    candidates: list[PeerView],
    now: float,
    remaining_bytes: int,
    latest_finish: float,
    peer_load: dict[str, int],
    config: SchedulerConfig,
    rtt_fallback_s: float,
    untried: float,
    first_byte_by: float,
) -> list[PeerView]:
    """Those of ``candidates`` (uploading, not avoided) that may be asked now and are projected
    to deliver by ``latest_finish`` (one round trip for the request, then the bytes at its
    rate), their first byte by ``first_byte_by`` (the last moment the CDN can still make the
    deadline: a transfer without a byte then is given up, so a request that cannot get one
    by then is not made); an untried peer counts at ``untried`` bytes/s."""
    max_per_peer = config.max_downloads_per_peer
    out = []
    for p in candidates:
        if p.choked_until > now or peer_load.get(p.peer_id, 0) >= max_per_peer:
            continue
        first_byte_at = now + (p.rtt_s if p.rtt_s is not None else rtt_fallback_s)
        if first_byte_at > first_byte_by:
            continue
        if first_byte_at + remaining_bytes / (p.throughput_bytes_per_s or untried) <= latest_finish:
            out.append(p)
    return out


@lru_cache(maxsize=1024)
def _earlier_ids(segment: SegmentId, lookback: int) -> tuple[SegmentId, ...]:
    """The ``lookback`` segments before ``segment`` in its rendition (fewer near sequence 0);
    cached: every decision about a segment asks for the same few."""
    rendition, sequence = segment
    return tuple(SegmentId(rendition, sequence - k) for k in range(1, min(lookback, sequence) + 1))


class _Load:
    """Downloads in flight during one ``decide`` call, updated as actions are planned."""

    __slots__ = ("per_peer", "from_peers", "from_cdn", "rtt_fallback_s", "untried_bytes_per_s")

    def __init__(
        self,
        transfers: Sequence[TransferView],
        peers: Iterable[PeerView],
        config: SchedulerConfig,
        cdn_bytes_per_s: float | None,
    ) -> None:
        #: Downloads in flight per peer id (absent: none).
        per_peer: dict[str, int] = {}
        from_cdn = 0
        for t in transfers:
            peer_id = t.peer_id
            if peer_id is None:
                from_cdn += 1
            else:
                per_peer[peer_id] = per_peer.get(peer_id, 0) + 1
        self.per_peer = per_peer
        self.from_peers = len(transfers) - from_cdn
        self.from_cdn = from_cdn
        #: The largest measured round trip to any neighbour (0 when none is measured).
        rtts = [p.rtt_s for p in peers if p.rtt_s is not None]
        self.rtt_fallback_s = max(rtts) if rtts else 0.0
        #: The rate of an untried neighbour: ``untried_peer_bytes_per_s``, but no more than
        #: the measured CDN rate (the CDN's path crosses the same access link, and a peer's
        #: uplink is no wider than a CDN's: on a path that has shown a slower rate, the
        #: constant is no evidence).
        untried = config.untried_peer_bytes_per_s
        cdn_bps = cdn_bytes_per_s
        self.untried_bytes_per_s = cdn_bps if cdn_bps and cdn_bps < untried else untried


class _Slot(NamedTuple):
    """One segment being planned: its deadline, where a fetch starts and whom to avoid."""

    seg: SegmentView
    ahead_s: float
    deadline: float
    offset: int
    avoid: frozenset[str]


def _other_holder_usable(
    slot: _Slot,
    transfer: TransferView,
    remaining_bytes: int,
    view: SchedulerView,
    peers: Mapping[str, PeerView],
    load: _Load,
    config: SchedulerConfig,
) -> bool:
    """Whether a neighbour other than the transfer's peer, not avoided for the segment, has it
    and is usable for the rest (rule 4's test): then the round-trip stretch of the stall timeout
    does not apply (a cancel is no offence, and that neighbour can deliver in time)."""
    sid = slot.seg.segment
    others = [
        p
        for p in peers.values()
        if p.uploads
        and p.peer_id != transfer.peer_id
        and p.peer_id not in slot.avoid
        and sid in p.have
    ]
    if not others:
        return False
    latest_finish = slot.deadline - config.deadline_margin_s
    first_byte_by = latest_finish - cdn_time_s(remaining_bytes, view, config)
    terms = (view.now, remaining_bytes, latest_finish, load.per_peer, config, load.rtt_fallback_s)
    return bool(_usable(others, *terms, load.untried_bytes_per_s, first_byte_by))


def _check_transfer(
    slot: _Slot,
    transfer: TransferView,
    view: SchedulerView,
    peers: Mapping[str, PeerView],
    load: _Load,
    config: SchedulerConfig,
    actions: list[Action],
    wakes: list[float],
    stall_checks: list[tuple[float, StallCheck]],
) -> _Slot | None:
    """Phase 1, a peer transfer in flight: keep it (``None``; its stall check, with the time it
    fires unless a byte comes, goes to ``stall_checks``) or cancel it and return the slot to
    plan again from the byte it reached, without that peer."""
    now = view.now
    total = transfer.total_bytes or slot.seg.size_bytes
    reached = transfer.offset + transfer.received_bytes
    remaining = max(0, total - reached)
    last_data = transfer.last_data_at or transfer.started_at
    elapsed = now - transfer.started_at
    peer = peers.get(transfer.peer_id) if transfer.peer_id is not None else None
    if transfer.received_bytes > 0 and elapsed > 0:
        rate_bytes_per_s = transfer.received_bytes / elapsed
    elif peer is not None:
        rate_bytes_per_s = _peer_rate(peer, load.untried_bytes_per_s)
    else:
        rate_bytes_per_s = load.untried_bytes_per_s
    projected = now + remaining / rate_bytes_per_s
    last_cdn_start = slot.deadline - cdn_time_s(remaining, view, config)
    last_cdn_start -= config.deadline_margin_s
    base_s = config.peer_stall_timeout_s
    stretch_s = config.stall_timeout_rtts * _rtt_s(peer, load.rtt_fallback_s)
    if stretch_s > 0 and _other_holder_usable(slot, transfer, remaining, view, peers, load, config):
        stretch_s = 0.0  # another neighbour holds it and can deliver in time: no waiting longer
    stall_timeout_s = base_s + stretch_s
    quiet_s = now - last_data
    # The round-trip stretch never runs past the last moment the CDN can still make the
    # deadline: from then on, silence for the flat timeout is a stall.
    stalled = quiet_s >= stall_timeout_s or (quiet_s >= base_s and now >= last_cdn_start)
    # At the last moment the CDN can still make the deadline, a transfer that has not shown a
    # single byte has nothing to project from (an untried peer's assumed rate is no evidence):
    # it is too slow, like one whose own rate misses the deadline.
    late = projected > slot.deadline - config.deadline_margin_s or transfer.received_bytes == 0
    too_slow = late and now >= last_cdn_start
    if not (stalled or too_slow):
        check = StallCheck(slot.seg.segment, stall_timeout_s, base_s, last_cdn_start)
        stall_checks.append((check.due_at(last_data), check))
        wakes.append(last_cdn_start)
        return None
    assert transfer.peer_id is not None
    sid = slot.seg.segment
    actions.append(CancelTransfer(sid, transfer.peer_id, "stalled" if stalled else "too_slow"))
    load.per_peer[transfer.peer_id] -= 1  # counted in _Load: present
    load.from_peers -= 1
    return _Slot(slot.seg, slot.ahead_s, slot.deadline, reached, slot.avoid | {transfer.peer_id})


def _check_cdn_transfer(
    slot: _Slot,
    transfer: TransferView,
    view: SchedulerView,
    load: _Load,
    config: SchedulerConfig,
    actions: list[Action],
    cdn_checks: list[float],
) -> _Slot | None:
    """Phase 1, a CDN fetch in flight: keep it (``None``), or, once its segment is urgent and
    no byte has come for ``cdn_stall_timeout_s`` (plus ``cdn_latency_s`` before the first),
    or it is too slow (below), cancel it (``stalled``, ``too_slow``) and return the slot to
    fetch the rest from the CDN again at once (a new request from the byte it reached: on a
    lossy path a TCP connection that lost its SYN or a tail packet stays silent for a
    retransmission timeout, 1 s and more), provided a new fetch of the rest (``cdn_time_s``)
    can still make the deadline; past that the fetch in flight is kept (on a starved machine
    every response is late, and restarts only add requests)."""
    timeout_s = config.cdn_stall_timeout_s
    total = transfer.total_bytes or slot.seg.size_bytes
    reached = transfer.offset + transfer.received_bytes
    remaining = total - reached
    if timeout_s <= 0 or remaining <= 0:
        return None  # off, or every byte is in (being verified)
    if transfer.last_data_at is None:  # the first byte takes the CDN's latency too
        quiet_from = transfer.started_at + config.cdn_latency_s
    else:
        quiet_from = transfer.last_data_at
    now = view.now
    urgent_at = slot.deadline - urgent_window_s(remaining, view, config)
    due = max(urgent_at, quiet_from + timeout_s)
    too_slow = False
    if view.cdn_tail_s is not None:
        # Too slow: still delivering, but at its own rate so far it would finish past the
        # deadline and take longer than a fetch of its bytes usually does (``cdn_planned_s``,
        # tail included: TCP recovering losses one retransmission timeout after another, never
        # silent for the timeout); judged once it has run for the timeout (a new connection's
        # slow start is no evidence).
        judged_at = max(urgent_at, transfer.started_at + timeout_s)
        elapsed = now - transfer.started_at
        if now < judged_at:
            cdn_checks.append(judged_at)
        elif transfer.received_bytes > 0:
            projected = now + remaining * elapsed / transfer.received_bytes
            planned_s = cdn_planned_s(total - transfer.offset, view, config)
            too_slow = projected > slot.deadline and projected - transfer.started_at > planned_s
    if now < due and not too_slow:
        cdn_checks.append(due)  # in wake_at only: bytes that keep coming move it later
        return None
    if slot.deadline - now < cdn_time_s(remaining, view, config):
        if now < due:
            cdn_checks.append(due)
        return None  # a new request could not make the deadline either: no restart storms
    actions.append(CancelTransfer(slot.seg.segment, None, "stalled" if now >= due else "too_slow"))
    load.from_cdn -= 1
    return _Slot(slot.seg, slot.ahead_s, slot.deadline, reached, slot.avoid)


def _from_urgency_or_peers(
    slot: _Slot,
    view: SchedulerView,
    uploaders: list[PeerView],
    load: _Load,
    config: SchedulerConfig,
    rng: RandomSource,
    actions: list[Action],
    wakes: list[float],
) -> float | None:
    """Phase 2: an urgent segment goes to the CDN; otherwise a usable neighbour that has it
    (or is fetching it) serves it, or we wait for one. Returns ``None`` when an action was
    planned, else the time the segment turns urgent (the election decides). ``uploaders``: the
    neighbours that upload."""
    now = view.now
    sid = slot.seg.segment
    remaining = max(0, slot.seg.size_bytes - slot.offset)
    window = urgent_window_s(remaining, view, config)
    if slot.deadline - now <= window:
        actions.append(FetchFromCdn(sid, slot.offset, "urgent"))
        load.from_cdn += 1
        return None
    urgent_at = slot.deadline - window
    wakes.append(urgent_at)

    latest_finish = slot.deadline - config.deadline_margin_s
    avoid = slot.avoid
    # The sources: uploading, not avoided.
    sources = [p for p in uploaders if p.peer_id not in avoid] if avoid else uploaders
    holders = [p for p in sources if sid in p.have]
    fetchers = [p for p in sources if sid in p.fetching]
    if load.from_peers < config.max_downloads_from_peers:
        reason = "have"
        first_byte_by = latest_finish - cdn_time_s(remaining, view, config)
        untried = load.untried_bytes_per_s
        terms = (now, remaining, latest_finish, load.per_peer, config, load.rtt_fallback_s)
        candidates = _usable(holders, *terms, untried, first_byte_by)
        if not candidates and config.cut_through:
            candidates = _usable(fetchers, *terms, untried, first_byte_by)
            reason = "cut_through"
        if candidates:
            chosen = _weighted_pick(candidates, untried, rng)
            actions.append(FetchFromPeer(sid, chosen.peer_id, slot.offset, reason))
            load.per_peer[chosen.peer_id] = load.per_peer.get(chosen.peer_id, 0) + 1
            load.from_peers += 1
            return None
    if holders or fetchers:
        retry = [p.choked_until for p in holders + fetchers if p.choked_until > now]
        until = min([urgent_at, *retry])
        actions.append(Wait(sid, "awaiting_peer", until))
        wakes.append(until)
        return None
    return urgent_at


def _local_rank(
    sid: SegmentId, view: SchedulerView, peers: Mapping[str, PeerView], config: SchedulerConfig
) -> int:
    """Our rank in the local election (:func:`election.election_rank`) among ourselves and the
    uploading neighbours watching close by: those that have or fetch one of the
    ``election_lookback_segments`` segments before ``sid``."""
    earlier = _earlier_ids(sid, config.election_lookback_segments)
    # election_rank(self_id, [self_id, *watching], sid), counted in one pass: ``peers`` is
    # keyed by distinct peer ids without our own, and the cheap test comes first.
    own = election_key(view.self_id, sid)
    rank = 0
    for p in peers.values():
        if (
            p.uploads
            and not (p.have.isdisjoint(earlier) and p.fetching.isdisjoint(earlier))
            and election_key(p.peer_id, sid) < own
        ):
            rank += 1
    return rank


def _elect(
    slot: _Slot,
    urgent_at: float,
    view: SchedulerView,
    peers: Mapping[str, PeerView],
    load: _Load,
    config: SchedulerConfig,
    actions: list[Action],
    wakes: list[float],
) -> None:
    """Phase 3, nobody near has it or is fetching it: elect one CDN fetcher among those
    watching close by; rank k backs up after ``k * backup_delay_s``.

    Under an assignment from the signaling server in force, the listed fetchers, ordered per
    segment by the election key, take turns ``backup_delay_s`` apart (a silent fetcher is
    covered by the next); a viewer not listed holds the local election one ``backup_delay_s``
    later, so a copy relayed from the fetcher has that long to reach its neighbourhood first."""
    now = view.now
    sid = slot.seg.segment
    delay_s = config.backup_delay_s
    rate = view.rate if view.rate > 0 else 1.0
    entered_window_at = now - (config.prefetch_window_s - slot.ahead_s) / rate
    wanted_since = max(slot.seg.known_since, entered_window_at)
    order = (
        rank_candidates(view.fetchers, sid) if view.fetchers and now < view.fetchers_until else None
    )
    listed = order is not None and view.self_id in order
    if order is not None and listed:
        rank = order.index(view.self_id)
        fire_at = wanted_since + rank * delay_s
        waiting, fetching = "not_elected", "assigned" if rank == 0 else "backup"
    elif order is not None:
        fire_at = wanted_since + (1 + _local_rank(sid, view, peers, config)) * delay_s
        waiting, fetching = "not_assigned", "backup"
    else:
        rank = _local_rank(sid, view, peers, config)
        fire_at = wanted_since + rank * delay_s
        if rank == 0 and view.swarm_size > 0 and config.seed_fetchers > 0:
            share = config.seed_fetchers / view.swarm_size
            if share < 1.0 and election_key(view.self_id, sid)[0] >= share * 2**32:
                fire_at += delay_s
        waiting, fetching = "not_elected", "elected" if rank == 0 else "backup"
    if not listed and now < view.connecting_until and not peers:
        until = min(view.connecting_until, urgent_at)
        actions.append(Wait(sid, "connecting", until))
        wakes.append(until)
    elif now < fire_at:
        until = min(fire_at, urgent_at)
        actions.append(Wait(sid, waiting, until))
        wakes.append(until)
    elif load.from_cdn < config.max_cdn_downloads:
        actions.append(FetchFromCdn(sid, slot.offset, fetching))
        load.from_cdn += 1
    else:
        actions.append(Wait(sid, "cdn_busy", urgent_at))


_start_s = attrgetter("start_s")


def decide(view: SchedulerView, config: SchedulerConfig, rng: RandomSource) -> Decision:
    """Plan every segment in the prefetch window, in playback order, through three phases:
    the transfer in flight (:func:`_check_transfer`), urgency and neighbours
    (:func:`_from_urgency_or_peers`), and the election (:func:`_elect`)."""
    now = view.now
    rate = view.rate if view.rate > 0 else 1.0
    in_flight = {t.segment: t for t in view.transfers}
    self_id = view.self_id
    given = view.peers
    peers: Mapping[str, PeerView]
    if isinstance(given, dict) and self_id not in given:
        peers = given  # keyed by peer id already (read only here)
    elif isinstance(given, Mapping):
        peers = {pid: p for pid, p in given.items() if pid != self_id}
    else:
        peers = {p.peer_id: p for p in given if p.peer_id != self_id}
    load = _Load(view.transfers, peers.values(), config, view.cdn_throughput_bytes_per_s)
    uploaders = [p for p in peers.values() if p.uploads]
    have = view.have
    playhead_s = view.playhead_s
    actions: list[Action] = []
    wakes: list[float] = [now + config.idle_recheck_s]
    stall_checks: list[tuple[float, StallCheck]] = []
    #: when each CDN fetch kept turns silent-and-urgent if no byte comes (rule 1)
    cdn_checks: list[float] = []

    for seg in sorted(view.segments, key=_start_s):
        sid = seg.segment
        if sid in have or seg.start_s + seg.duration_s <= playhead_s:
            continue
        ahead_s = seg.start_s - playhead_s
        if ahead_s > config.prefetch_window_s:
            wakes.append(now + (ahead_s - config.prefetch_window_s) / rate)
            break
        deadline = now + max(0.0, ahead_s) / rate
        slot = _Slot(seg, ahead_s, deadline, seg.partial_bytes, seg.avoid)
        transfer = in_flight.get(sid)
        if transfer is not None:
            if transfer.peer_id is None:
                replanned = _check_cdn_transfer(
                    slot, transfer, view, load, config, actions, cdn_checks
                )
                if replanned is None:
                    continue  # the CDN is on it: nothing can do better
                slot = replanned
                actions.append(FetchFromCdn(sid, slot.offset, "urgent"))
                load.from_cdn += 1
                continue
            replanned = _check_transfer(
                slot, transfer, view, peers, load, config, actions, wakes, stall_checks
            )
            if replanned is None:
                continue
            slot = replanned
        urgent_at = _from_urgency_or_peers(slot, view, uploaders, load, config, rng, actions, wakes)
        if urgent_at is not None:
            _elect(slot, urgent_at, view, peers, load, config, actions, wakes)

    soonest = now + config.min_recheck_s
    flowing = max(min(wakes), soonest)
    if not stall_checks and not cdn_checks:
        return Decision(tuple(actions), flowing, (), flowing)
    checks_at = [t for t, _ in stall_checks]
    wake_at = max(min(flowing, *checks_at, *cdn_checks), soonest)
    return Decision(tuple(actions), wake_at, tuple(c for _, c in stall_checks), flowing)
