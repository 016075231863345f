"""The segment exchange: the policy above the peer sessions, sans-I/O.

:class:`SegmentExchange` decides what to do with bytes, requests and verdicts: downloads in
flight (from the CDN or a peer), the bytes held of each segment, avoid lists and sizes,
verification outcomes (penalties, bans, refetches), the store and what is announced, and the
peers' requests (:mod:`.exchange_serve`). It is driven by method calls with an explicit ``now``
(peer session events per link, CDN progress, verdicts, the timeline, the scheduler's decisions)
and the caller pulls :mod:`.exchange_actions` with :meth:`next_action`, re-arms one timer from
:meth:`get_timer`, and builds the scheduler's input with :meth:`scheduler_view`. It never does
I/O, reads a clock or draws randomness. The rules are docs/exchange.md; the vectors in
docs/vectors/exchange/ are their contract.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence

from . import events as ev
from .errors import CloseCode
from .exchange_actions import (
    Action,
    AnnounceFetching,
    AnnounceHave,
    AnnounceLost,
    CancelCdn,
    CancelRequest,
    CloseLink,
    Deliver,
    ExchangeConfig,
    FetchCdn,
    GiveUp,
    RequestPeer,
    SegmentEntry,
    Verify,
)
from .exchange_promises import PromiseBook
from .exchange_reputation import (
    CLOSE_OFFENCES,
    Offence,
    Outcome,
    Reputation,
    peer_subject,
    reputation_rules,
)
from .exchange_serve import UploadServer
from .exchange_stalls import StallWatch
from .exchange_state import Held, IntegrityConfig, Neighbour, Penalties, Transfer, Verdict
from .exchange_view import MAX_EXPECTED_BYTES, build_view, hello_state, size_estimate
from .ids import SegmentId
from .scheduler import (
    Action as SchedulerAction,
)
from .scheduler import CancelTransfer, FetchFromCdn, FetchFromPeer, SchedulerView
from .store import SegmentStore
from .throughput import FetchTimeEstimator, RttEstimator, ThroughputEstimator
from .wire import FetchingEntry

#: Peers whose identity keys are remembered at most (oldest HELLO first out).
MAX_PEER_KEYS = 1024
#: Offences kept in :attr:`SegmentExchange.offence_log` (newest last), and bans with their
#: reason in :attr:`SegmentExchange.ban_reasons` (first ban of a peer id kept).
MAX_OFFENCE_LOG = 256
MAX_BAN_REASONS = 1024


def proven_bad(bad: bytes, spans: Sequence[tuple[int, str | None]], good: bytes) -> list[str]:
    """The peers (sorted) whose runs of a failed copy ``bad`` (``spans``: ``(first byte,
    source)`` of each run, ``None`` the CDN) differ from the verified copy ``good``; a copy
    shorter than ``good`` whose runs all match was cut short by its last run's source."""
    guilty: set[str] = set()
    for i, (start, source) in enumerate(spans):
        end = spans[i + 1][0] if i + 1 < len(spans) else len(bad)
        if source is not None and bad[start:end] != good[start:end]:
            guilty.add(source)
    if not guilty and len(bad) < len(good) and spans and spans[-1][1] is not None:
        guilty.add(spans[-1][1])
    return sorted(guilty)


class SegmentExchange:
    def __init__(self, config: ExchangeConfig | None = None) -> None:
        self.config = cfg = config or ExchangeConfig()
        self.store = SegmentStore(cfg.store_max_bytes)
        self.penalties = Penalties(IntegrityConfig(cfg.ban_after_failures, cfg.penalty_s))
        self._actions: deque[Action] = deque()
        self.server = UploadServer(cfg, self.store, self, self._actions.append)
        self.reputation = Reputation(reputation_rules(cfg))
        #: Identity keys the caller gave for each link (``set_link_keys``) and, once a HELLO
        #: named the peer, for each peer id (the newest link's; at most MAX_PEER_KEYS peers).
        self.link_keys: dict[str, tuple[str, ...]] = {}
        self.peer_keys: dict[str, tuple[str, ...]] = {}
        self._timeline: dict[SegmentId, SegmentEntry] = {}
        self._bandwidth_bits_per_s: float | None = None
        #: A manifest is in use: peer bytes with no listed hash are refetched, not trusted.
        self.sha256 = False
        self.transfers: dict[SegmentId, Transfer] = {}
        self.held: dict[SegmentId, Held] = {}
        self.avoid: dict[SegmentId, frozenset[str]] = {}
        self.sizes: dict[SegmentId, int] = {}
        self.verified: set[SegmentId] = set()
        #: Segments that failed their hash more than ``max_hash_retries`` times.
        self.given_up: set[SegmentId] = set()
        self.hash_retries: dict[SegmentId, int] = {}
        #: Copies that failed their hash with several peer contributors, per segment, with
        #: their runs: once a copy verifies, only the contributors whose bytes differ from it
        #: are charged (docs/exchange.md 6). At most ``max_hash_retries + 1`` per segment.
        self.blame_pending: dict[SegmentId, list[tuple[bytes, list[tuple[int, str | None]]]]] = {}
        self.neighbours: dict[str, Neighbour] = {}
        self.peer_rates: dict[str, ThroughputEstimator] = {}
        #: Round trip to each peer, from REQUEST -> RESPONSE delays (docs/scheduling.md).
        self.peer_rtts: dict[str, RttEstimator] = {}
        #: Peers suspected of stalling, judged once their links stay dead (exchange_stalls).
        self.stalls = StallWatch()
        #: Cut-through downloads we gave up, until the peer announces the segment HAVE or the
        #: segment leaves what we retain (a broken promise: docs/exchange.md 8b).
        self.promises = PromiseBook(cfg.max_promises_per_peer, MAX_PEER_KEYS)
        #: Why each banned peer id was banned (``"penalty points: stall (addr:10.0.0.1 6.0)"``,
        #: ``"integrity failure"``, ...) and the newest offences with their outcome: what a
        #: load test reports, never decided on.
        self.ban_reasons: dict[str, str] = {}
        self.offence_log: deque[tuple[float, str, str, str, str, float]] = deque(
            maxlen=MAX_OFFENCE_LOG
        )
        self.cdn_rate = ThroughputEstimator()
        #: How much longer than its bytes at the mean rate a CDN fetch may take on this path
        #: (the scheduler's ``cdn_tail_s``).
        self.cdn_fetch_time = FetchTimeEstimator()
        self.peers_seen: set[str] = set()
        self._next_fetch_id = 1
        self.bytes_cdn = 0
        self.bytes_p2p = 0
        self.hash_failures = 0
        self.unverifiable = 0
        self.cdn_failures = 0
        self.cdn_resumes = 0
        #: Cumulative: segments verified / given up, and verified records dropped as no
        #: longer retained (the sets above only hold the retained ones).
        self.verified_count = 0
        self.given_up_count = 0
        self.verified_forgotten = 0

    # -- outputs ------------------------------------------------------------------------------

    def next_action(self) -> Action | None:
        return self._actions.popleft() if self._actions else None

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` is due (the upload cap's next refill, a stall suspicion
        to judge), if ever."""
        due = [t for t in (self.server.get_timer(), self.stalls.next_due()) if t is not None]
        return min(due) if due else None

    def handle_timer(self, now: float) -> None:
        self.server.handle_timer(now)
        self._judge_stalls(now)

    @property
    def bytes_uploaded(self) -> int:
        return self.server.bytes_uploaded

    def hello_state(self) -> tuple[list[SegmentId], list[FetchingEntry]]:
        """What a new session's HELLO announces (:func:`.exchange_view.hello_state`)."""
        return hello_state(self)

    def in_progress(self, segment: SegmentId) -> tuple[bytearray, int | None] | None:
        """Bytes held of a download in progress and its size once known (for relays)."""
        held = self.held.get(segment)
        if held is None or segment not in self.transfers:
            return None
        return held.buf, held.total

    def stream_bitrate_bits_per_s(self) -> float | None:
        return self._bandwidth_bits_per_s

    def neighbour_count(self) -> int:
        return sum(1 for nb in self.neighbours.values() if nb.open)

    # -- reputation ---------------------------------------------------------------------------

    def set_link_keys(self, link: str, keys: Sequence[str]) -> None:
        """What identifies the remote of ``link`` beyond its peer id (the caller's strings, e.g.
        its transport address and certificate fingerprint): offences count on them too, and
        a ban or refusal of one refuses every peer id that comes with it."""
        self.link_keys[link] = tuple(keys)

    def subjects(self, peer_id: str, link: str | None = None) -> tuple[str, ...]:
        keys = self.link_keys.get(link, ()) if link is not None else ()
        return (peer_subject(peer_id), *keys, *self.peer_keys.get(peer_id, ()))

    def refused(self, peer_id: str, link: str | None, now: float) -> bool:
        """Banned (hash failures or points), or refused for now (points)."""
        if self.penalties.is_banned(peer_id):
            return True
        return self.reputation.refused_until(self.subjects(peer_id, link)) > now

    def offence(
        self,
        peer_id: str,
        link: str | None,
        offence: Offence,
        now: float,
        *,
        keys: Sequence[str] = (),
    ) -> None:
        """``peer_id`` (on open ``link``, if known; ``keys``: a closed link's identity keys)
        misbehaved: points, and a refusal or ban."""
        subjects = (*self.subjects(peer_id, link), *keys)
        outcome = self._record(peer_id, subjects, offence, now)
        if outcome is Outcome.BAN:
            self._ban(peer_id, self._points_reason(offence), keys)
        elif outcome is Outcome.REFUSE:
            self._disconnect(peer_id, link, "refused for misbehaviour")

    def _record(
        self, peer_id: str, subjects: Sequence[str], offence: Offence, now: float
    ) -> Outcome:
        outcome = self.reputation.record(subjects, offence, now)
        worst, points = self.reputation.last_worst
        self.offence_log.append((now, peer_id, offence.value, outcome.value, worst, points))
        return outcome

    def _points_reason(self, offence: Offence) -> str:
        worst, points = self.reputation.last_worst
        return f"penalty points: {offence.value} ({worst} {points:.1f})"

    # -- the timeline -------------------------------------------------------------------------

    def timeline(self) -> list[SegmentEntry]:
        return list(self._timeline.values())

    def set_timeline(
        self, entries: Iterable[SegmentEntry], *, bandwidth_bits_per_s: float | None = None
    ) -> None:
        """The segments the playlist lists now, in order (replaces the previous list)."""
        self._timeline = {e.segment: e for e in entries}
        if bandwidth_bits_per_s is not None:
            self._bandwidth_bits_per_s = bandwidth_bits_per_s

    def set_sha256(self, enabled: bool) -> None:
        """Whether a manifest is in use (else only sizes are checked: docs/exchange.md)."""
        self.sha256 = enabled

    def forget_before(self, playhead_s: float, now: float) -> None:
        """Drop partial segments (and their avoid lists) wholly behind the playhead or gone
        from the timeline and not being downloaded; relays of them are aborted. Then every
        record of a segment no longer retained (docs/exchange.md, "Bounds") goes, and the
        cut-through promises of those segments still open are broken (an offence at ``now``)."""
        for segment in list(self.held):
            entry = self._timeline.get(segment)
            gone = entry is None or entry.start_s + entry.duration_s < playhead_s
            if segment not in self.transfers and gone:
                self._drop_held(segment)
                self.avoid.pop(segment, None)
        self.server.forget_segments(lambda s: s in self._timeline)
        retained = self._prune(playhead_s)
        if retained is not None:
            self._judge_promises(retained, now)

    def _retained(self, playhead_s: float) -> Callable[[SegmentId], bool] | None:
        """docs/exchange.md, "Bounds": whether a segment's records are kept at ``playhead_s``
        (``None``: no timeline yet, everything is)."""
        if not self._timeline:
            return None
        floor_s = playhead_s - self.config.retain_behind_s
        listed = {s for s, e in self._timeline.items() if e.start_s + e.duration_s >= floor_s}
        lowest = min(
            (s.sequence for s in listed),
            default=max(s.sequence for s in self._timeline) + 1,
        )

        def retained(segment: SegmentId) -> bool:
            if segment in self.transfers:
                return True
            if segment in self._timeline:
                return segment in listed
            return segment.sequence >= lowest

        return retained

    def _prune(self, playhead_s: float) -> Callable[[SegmentId], bool] | None:
        """Drop every record of the segments no longer retained (the store's unpinned copies
        announced LOST); the retention rule (None: no timeline, nothing pruned)."""
        retained = self._retained(playhead_s)
        if retained is None:
            return None
        lost = []
        for segment in list(self.store):
            if not retained(segment) and not self.store.is_pinned(segment):
                self.store.discard(segment)
                lost.append(segment)
        if lost and not self.config.leech_only:
            self._actions.append(AnnounceLost(tuple(lost)))
        for table in (self.sizes, self.hash_retries, self.avoid):
            for segment in [s for s in table if not retained(s)]:
                del table[segment]
        for segment in [s for s in self.blame_pending if not retained(s)]:
            del self.blame_pending[segment]
        gone = [s for s in self.verified if not retained(s)]
        self.verified_forgotten += len(gone)
        self.verified.difference_update(gone)
        self.given_up.difference_update([s for s in self.given_up if not retained(s)])
        for nb in self.neighbours.values():
            nb.have.difference_update([s for s in nb.have if not retained(s)])
            nb.fetching.difference_update([s for s in nb.fetching if not retained(s)])
        return retained

    def size_estimate(self, segment: SegmentId) -> int:
        """The scheduler's size guess (:func:`.exchange_view.size_estimate`)."""
        return size_estimate(self, segment, self._timeline.get(segment), self._bandwidth_bits_per_s)

    # -- the scheduler ------------------------------------------------------------------------

    def scheduler_view(
        self,
        now: float,
        playhead_s: float,
        *,
        connecting_until: float = 0.0,
        swarm_size: int = 0,
        fetchers: tuple[str, ...] = (),
        fetchers_until: float = 0.0,
    ) -> SchedulerView:
        """The scheduler's input, built the way the simulator builds it (:mod:`.exchange_view`);
        ``fetchers`` holding until ``fetchers_until``: the signaling server's assignment."""
        return build_view(
            self,
            now,
            playhead_s,
            connecting_until=connecting_until,
            swarm_size=swarm_size,
            fetchers=fetchers,
            fetchers_until=fetchers_until,
        )

    def apply(self, actions: Sequence[SchedulerAction], now: float) -> None:
        """Carry out the scheduler's decision (waits need nothing)."""
        for action in actions:
            if isinstance(action, CancelTransfer):
                self.cancel_transfer(action.segment, now)
            elif isinstance(action, FetchFromCdn):
                self.start_cdn(action.segment, action.offset, now)
            elif isinstance(action, FetchFromPeer):
                self.start_peer(action.segment, action.peer_id, action.offset, now)

    # -- starting and cancelling downloads ----------------------------------------------------

    def start_cdn(self, segment: SegmentId, offset: int, now: float) -> None:
        if segment in self.transfers or segment not in self._timeline:
            return
        held = self._held_for(segment, offset)
        offset = len(held.buf)
        self.cdn_resumes += offset > 0
        fetch_id = self._next_fetch_id
        self._next_fetch_id += 1
        self.transfers[segment] = Transfer(segment, None, now, offset, fetch_id=fetch_id)
        self._actions.append(FetchCdn(fetch_id, segment, offset))
        self._announce_fetching(segment)

    def start_peer(self, segment: SegmentId, peer_id: str, offset: int, now: float) -> None:
        if segment in self.transfers:
            return
        nb = self.neighbours.get(peer_id)
        if nb is None or not nb.open or not nb.links:
            if nb is not None:
                nb.choked_until = now + self.config.busy_backoff_s
            return
        link = nb.links[-1]
        held = self._held_for(segment, offset)
        offset = len(held.buf)
        announced = segment in nb.have
        self.transfers[segment] = Transfer(
            segment, peer_id, now, offset, link=link, announced=announced
        )
        self._actions.append(RequestPeer(link, peer_id, segment, offset))

    def request_sent(self, link: str, segment: SegmentId, request_id: int) -> None:
        """The session took our REQUEST under ``request_id``: it is announced (we relay it
        cut-through, the last frame once verified)."""
        transfer = self.transfers.get(segment)
        if transfer is None or transfer.link != link or transfer.request_id is not None:
            return
        transfer.request_id = request_id
        self._announce_fetching(segment)

    def request_not_sent(self, link: str, segment: SegmentId, now: float) -> None:
        """The session could not take the REQUEST (closed, or too many in flight): the peer
        is backed off like after a BUSY without a hint."""
        transfer = self.transfers.get(segment)
        if transfer is None or transfer.link != link or transfer.request_id is not None:
            return
        del self.transfers[segment]
        assert transfer.peer_id is not None
        nb = self.neighbours.get(transfer.peer_id)
        if nb is not None:
            nb.choked_until = now + self.config.busy_backoff_s

    def cancel_transfer(self, segment: SegmentId, now: float) -> None:
        transfer = self.transfers.get(segment)
        if transfer is None or transfer.verifying:
            return
        del self.transfers[segment]
        if transfer.peer_id is None:
            assert transfer.fetch_id is not None
            self._actions.append(CancelCdn(transfer.fetch_id, segment))
            return
        self._add_avoid(segment, transfer.peer_id)
        if transfer.link is not None and transfer.request_id is not None:
            self._actions.append(CancelRequest(transfer.link, transfer.request_id))
            self._rate_sample(transfer, now)
            quiet_since = transfer.last_data_at or transfer.started_at
            if now - quiet_since >= self._stall_s(transfer.peer_id):
                self._promise(transfer)
                if self._owed(transfer):
                    self._suspect_stall(transfer, quiet_since, now)
                if transfer.responded or self._owed(transfer):
                    # Our relays of it starve too: ABORT them (UPSTREAM_FAILED, no offence)
                    # rather than leave their downstream waiting on our upstream's silence.
                    self.server.abort_relays(segment)

    def _promise(self, transfer: Transfer) -> None:
        """A download we gave up silent (cancelled after ``stall_s`` and its round trips
        without a byte, or timed out): if it was cut-through (the peer had not announced the
        segment HAVE when we asked) and the peer has not announced it HAVE since, the peer
        owes that HAVE before the segment leaves what we retain (docs/exchange.md 8b, "Broken
        promises")."""
        peer_id, link = transfer.peer_id, transfer.link
        if transfer.announced or peer_id is None or link is None:
            return
        nb = self.neighbours.get(peer_id)
        if nb is not None and transfer.segment in nb.have:
            return
        self.promises.promised(peer_id, transfer.segment, self.link_keys.get(link, ()))

    def _judge_promises(self, retained: Callable[[SegmentId], bool], now: float) -> None:
        for peer_id, _segment, keys in self.promises.broken(retained):
            if not self.penalties.is_banned(peer_id):
                self.offence(peer_id, None, Offence.BROKEN_PROMISE, now, keys=keys)

    def _stall_s(self, peer_id: str) -> float:
        """Silence after which a cancelled download counts as a stall: ``stall_s`` plus
        ``stall_rtts`` measured round trips (SCTP needs at least 1 s and a trip to recover one
        lost packet; a long path is not a stalling peer)."""
        rtt = self.peer_rtts.get(peer_id)
        rtt_s = rtt.rtt_s if rtt is not None else None
        return self.config.stall_s + self.config.stall_rtts * (rtt_s or 0.0)

    def _suspect_stall(self, transfer: Transfer, quiet_since: float, now: float) -> None:
        """A silent download from its peer: a stall offence only if the peer shows no progress
        for ``stall_offence_s`` plus ``stall_rtts`` round trips from ``quiet_since``
        (:mod:`.exchange_stalls`); an abandoned one if its link was seen alive meanwhile."""
        peer_id, link = transfer.peer_id, transfer.link
        assert peer_id is not None and link is not None
        rtt = self.peer_rtts.get(peer_id)
        rtt_s = (rtt.rtt_s if rtt is not None else None) or 0.0
        allowance_s = self.config.stall_offence_s + self.config.stall_rtts * rtt_s
        self.stalls.suspect(peer_id, link, quiet_since, allowance_s, transfer.overtaken)
        self._judge_stalls(now)

    def _judge_stalls(self, now: float) -> None:
        for peer_id, link, abandoned in self.stalls.due(now):
            self.offence(peer_id, link, Offence.ABANDONED if abandoned else Offence.STALL, now)

    def _overtake(self, link: str, peer_id: str, request_id: int) -> None:
        """A DATA frame of ``peer_id`` for our request ``request_id`` arrived on ``link``. The
        channel is ordered and the peer's session sends the DATA of its uploads round-robin:
        every other download on that link the peer answered, of a segment it had announced HAVE
        before this frame, has received everything the peer had queued of it, so a silence from
        now on is the peer's choice (docs/exchange.md 8b). Only DATA: control messages (HAVE,
        FETCHING, REQUEST, ...) go out ahead of queued DATA, so they prove nothing."""
        nb = self.neighbours.get(peer_id)
        if nb is None or not nb.have:
            return
        for transfer in self.transfers.values():
            if (
                transfer.link == link
                and transfer.responded
                and transfer.request_id != request_id
                and transfer.segment in nb.have
            ):
                transfer.overtaken = True

    def _rate_sample(self, transfer: Transfer, now: float) -> None:
        """A download from a peer given up (cancelled, timed out) teaches its rate too, so
        peers whose links deliver are preferred: once a peer has a measured rate, what the
        failed download achieved (its bytes over its time) is one more sample, if any byte
        came (a request that never got one says more about a relay's source, or the moment,
        than about the link; and a rate that only falls would shut the peer out for good)."""
        rate = self.peer_rates.get(transfer.peer_id) if transfer.peer_id is not None else None
        if rate is not None and transfer.received > 0:
            rate.add_sample(transfer.received, max(1e-6, now - transfer.started_at))

    def _owed(self, transfer: Transfer) -> bool:
        """Whether the peer owed us bytes it held: it had announced the segment HAVE (a
        verified copy) when we asked, or the download was overtaken (a DATA frame of another
        of our requests came after its last byte while the segment was in the peer's have
        set: nothing it queued of it is in flight, and a verified copy waits on no source).
        A cut-through relay (the segment only FETCHING when we asked) is otherwise not
        stalling, even once it answered or announced HAVE since (a control message goes out
        ahead of the DATA it queued): it passes on what its own source sends, and that source
        may be waiting out a lost packet (docs/exchange.md 8b)."""
        return transfer.announced or transfer.overtaken

    # -- the CDN ------------------------------------------------------------------------------

    def _cdn_transfer(self, fetch_id: int) -> Transfer | None:
        for transfer in self.transfers.values():
            if transfer.fetch_id == fetch_id:
                return transfer
        return None

    def cdn_total(self, fetch_id: int, total_bytes: int, now: float) -> None:
        """The CDN told the segment's whole size."""
        transfer = self._cdn_transfer(fetch_id)
        held = self.held.get(transfer.segment) if transfer is not None else None
        if transfer is None or held is None or transfer.verifying:
            return
        held.total = total_bytes
        self.sizes[transfer.segment] = total_bytes
        self.server.pump_segment(transfer.segment, now)

    def cdn_data(self, fetch_id: int, offset: int, data: bytes, now: float) -> None:
        """Bytes ``[offset, offset + len(data))`` of the segment arrived from the CDN."""
        transfer = self._cdn_transfer(fetch_id)
        held = self.held.get(transfer.segment) if transfer is not None else None
        if transfer is None or held is None or transfer.verifying or offset != len(held.buf):
            return
        held.append(data, None)
        transfer.received += len(data)
        transfer.last_data_at = now
        self.bytes_cdn += len(data)
        self.server.pump_segment(transfer.segment, now)

    def cdn_done(self, fetch_id: int, total_bytes: int, elapsed_s: float, now: float) -> None:
        """The CDN fetch finished: every byte is held; the segment goes to verification."""
        transfer = self._cdn_transfer(fetch_id)
        held = self.held.get(transfer.segment) if transfer is not None else None
        if transfer is None or held is None or transfer.verifying:
            return
        self.cdn_rate.add_sample(transfer.received, max(1e-6, elapsed_s))
        rate = self.cdn_rate.estimate_bytes_per_s
        if rate:  # the fetch's excess over its bytes at the mean rate (this fetch included)
            self.cdn_fetch_time.add_sample(max(0.0, elapsed_s - transfer.received / rate))
        held.total = total_bytes
        self.sizes[transfer.segment] = total_bytes
        self._complete(transfer, held)

    def cdn_failed(self, fetch_id: int, now: float) -> None:
        """The CDN fetch gave up (after its own retries): the bytes held are kept, and the
        scheduler decides again."""
        transfer = self._cdn_transfer(fetch_id)
        if transfer is None or transfer.verifying:
            return
        self.cdn_failures += 1
        del self.transfers[transfer.segment]

    # -- verification -------------------------------------------------------------------------

    def _complete(self, transfer: Transfer, held: Held) -> None:
        segment = transfer.segment
        if segment not in self._timeline:  # fell out of the timeline meanwhile
            del self.transfers[segment]
            self._drop_held(segment)
            return
        transfer.verifying = True
        total = held.total if held.total is not None else len(held.buf)
        self._actions.append(Verify(segment, bytes(held.buf), total))

    def verdict(self, segment: SegmentId, verdict: Verdict, now: float) -> None:
        """The caller checked the bytes of a :class:`Verify`."""
        transfer = self.transfers.get(segment)
        held = self.held.get(segment)
        if transfer is None or not transfer.verifying or held is None:
            return
        del self.transfers[segment]
        peers = sorted(p for p in held.contributors if p is not None)
        if verdict is Verdict.UNKNOWN:
            if not self.sha256 or not peers:
                verdict = Verdict.OK  # size-only mode, or CDN bytes: trusted as they are
            else:
                self.unverifiable += 1
                self._discard_and_refetch(segment, now)
                return
        if verdict is Verdict.MISMATCH:
            self.hash_failures += 1
            if len(peers) > 1:
                # Which of them sent the bad bytes is known once a copy verifies: until then
                # nobody is charged (an honest peer may have completed what a corrupter began).
                copies = self.blame_pending.setdefault(segment, [])
                copies.append((bytes(held.buf), list(held.spans)))
                for pid in peers:
                    self._add_avoid(segment, pid)
            else:
                # One peer supplied every peer byte: the failure is its own if it vouched for
                # them (it announced the segment HAVE first, or completed the copy: an honest
                # relay never hands over the last frame of a copy it has not verified), banned
                # at once. Bytes it relayed unverified and left us to complete are not proof.
                sole = self.config.ban_sole_contributor and set(peers) <= held.vouched
                self._charge_failure(segment, peers, sole, now)
            self._discard_and_refetch(segment, now)
            return
        self._accept(segment, bytes(held.buf), now)

    def _charge_failure(self, segment: SegmentId, peers: list[str], sole: bool, now: float) -> None:
        """A hash failure of ``segment`` for each of ``peers`` (section 6); ``sole``: the one
        peer is banned at once."""
        counted: set[str] = set()  # a subject counts once per failed segment
        for pid in peers:
            banned = self.penalties.record(pid, now)
            subjects = [s for s in self.subjects(pid) if s not in counted]
            counted.update(subjects)
            ban_after = self.config.ban_after_failures
            hit = self.reputation.record_failure(subjects, ban_after, now)
            if sole and not (hit or banned):
                self._ban(pid, "integrity failure")
            elif hit or banned or self.reputation.is_banned(self.subjects(pid)):
                worst = max(subjects, key=self.reputation.failures_of, default="")
                self._ban(pid, f"repeated integrity failures ({worst})")
            elif subjects:  # points too, on the subjects not counted yet
                outcome = self._record(pid, subjects, Offence.HASH_FAILURE, now)
                if outcome is Outcome.BAN:
                    self._ban(pid, self._points_reason(Offence.HASH_FAILURE))
                elif outcome is Outcome.REFUSE:
                    self._disconnect(pid, None, "refused for misbehaviour")
            self._add_avoid(segment, pid)

    def _resolve_blame(self, segment: SegmentId, good: bytes, now: float) -> None:
        """``segment`` verified as ``good``: each failed copy of it kept in ``blame_pending``
        charges the contributors whose runs differ from it (section 6), unless banned since
        (no further failure is paid for a banned peer's bytes)."""
        for bad, spans in self.blame_pending.pop(segment, ()):
            guilty = proven_bad(bad, spans, good)
            live = [p for p in guilty if not self.reputation.is_banned(self.subjects(p))]
            self._charge_failure(segment, live, False, now)

    def _discard_and_refetch(self, segment: SegmentId, now: float) -> None:
        self._drop_held(segment)
        count = self.hash_retries.get(segment, 0) + 1
        self.hash_retries[segment] = count
        if count <= self.config.max_hash_retries:
            self.start_cdn(segment, 0, now)
        else:  # even the CDN's bytes do not match: never play it
            self.blame_pending.pop(segment, None)  # nothing to compare with: nobody is charged
            self.given_up.add(segment)
            self.given_up_count += 1
            self._actions.append(GiveUp(segment))

    def _accept(self, segment: SegmentId, data: bytes, now: float) -> None:
        self.verified.add(segment)
        self.verified_count += 1
        self.avoid.pop(segment, None)
        self.sizes[segment] = len(data)
        self._actions.append(Deliver(segment, data))
        evicted = self.store.put(segment, data)
        self.server.segment_verified(segment, data)
        self.held.pop(segment, None)
        if not self.config.leech_only:
            if segment in self.store:
                self._actions.append(AnnounceHave((segment,)))
            lost = tuple(s for s in evicted if s != segment)
            if lost:
                self._actions.append(AnnounceLost(lost))
        self.server.pump_segment(segment, now)
        self._resolve_blame(segment, data, now)

    def _ban(self, peer_id: str, reason: str, keys: Sequence[str] = ()) -> None:
        if peer_id not in self.ban_reasons and len(self.ban_reasons) < MAX_BAN_REASONS:
            self.ban_reasons[peer_id] = reason
        self.penalties.banned.add(peer_id)
        self.promises.forget(peer_id)
        self.reputation.ban((*self.subjects(peer_id), *keys))
        self._disconnect(peer_id, None, reason)
        # Its bytes are never checked again: every segment a banned peer id or a peer id of a
        # banned address or certificate contributed to is dropped (a download of it ends; a
        # verdict still to come is ignored), so no further hash failure is paid for them.
        for segment, held in list(self.held.items()):
            if not any(
                c is not None and self.reputation.is_banned(self.subjects(c))
                for c in held.contributors
            ):
                continue
            transfer = self.transfers.pop(segment, None)
            if transfer is not None and not transfer.verifying:
                if transfer.fetch_id is not None:
                    self._actions.append(CancelCdn(transfer.fetch_id, segment))
                elif transfer.link is not None and transfer.request_id is not None:
                    self._actions.append(CancelRequest(transfer.link, transfer.request_id))
            self._drop_held(segment)

    def _disconnect(self, peer_id: str, link: str | None, reason: str) -> None:
        """Close every link of ``peer_id`` (and ``link``) with BANNED."""
        nb = self.neighbours.get(peer_id)
        links = list(nb.links) if nb is not None else []
        if nb is not None:
            nb.open = False
        if link is not None and link not in links:
            links.append(link)
        for name in links:
            self._actions.append(CloseLink(name, CloseCode.BANNED, reason))

    # -- peer session events ------------------------------------------------------------------

    def on_peer_event(self, link: str, peer_id: str, event: ev.Event, now: float) -> None:
        """An event of the session on ``link`` (the caller's name for it) with ``peer_id``."""
        if isinstance(event, ev.DataReceived):
            self._overtake(link, peer_id, event.request_id)
        if isinstance(event, ev.HelloReceived):
            self._on_hello(link, peer_id, event, now)
        elif isinstance(event, ev.PeerHave | ev.PeerLost | ev.PeerFetching):
            self._on_availability(peer_id, event)
        elif isinstance(event, ev.ResponseStarted):
            transfer = self._peer_transfer(link, event.request_id)
            held = self.held.get(event.segment)
            if transfer is not None and transfer.peer_id is not None:
                rtt = self.peer_rtts.setdefault(transfer.peer_id, RttEstimator())
                rtt.add_sample(now - transfer.started_at)
                transfer.responded = True
            if transfer is not None and held is not None:
                held.total = event.total_bytes
                self.sizes.setdefault(event.segment, event.total_bytes)
                self.server.pump_segment(event.segment, now)
        elif isinstance(event, ev.DataReceived):
            self._on_data(link, event, now)
        elif isinstance(event, ev.RequestCompleted):
            self._on_completed(link, event, now)
        elif isinstance(event, ev.RequestFailed):
            self._on_failed(link, event, now)
        elif isinstance(event, ev.SegmentRequested):
            nb = self.neighbours.get(peer_id)
            lie = self.server.on_request(
                link,
                peer_id,
                event.request_id,
                event.segment,
                event.offset,
                now,
                banned=self.refused(peer_id, link, now),
                announced=nb is not None and event.segment in nb.have,
            )
            if lie:  # it asks for a segment it announced: a flood's signature
                self.offence(peer_id, link, Offence.REQUEST_AFTER_HAVE, now)
        elif isinstance(event, ev.RequestCancelled):
            self.server.on_cancelled(link, event.request_id)
        elif isinstance(event, ev.LateFrames):
            self.stalls.progress(peer_id)
        elif isinstance(event, ev.SessionClosed):
            self._on_closed(link, peer_id, event, now)

    def _on_hello(self, link: str, peer_id: str, event: ev.HelloReceived, now: float) -> None:
        self.peers_seen.add(peer_id)
        if self.refused(peer_id, link, now):
            self._actions.append(CloseLink(link, CloseCode.BANNED, "banned"))
            return
        self.promises.kept(peer_id, event.have)
        keys = self.link_keys.get(link)
        if keys:
            self.peer_keys.pop(peer_id, None)
            self.peer_keys[peer_id] = keys
            while len(self.peer_keys) > MAX_PEER_KEYS:
                del self.peer_keys[next(iter(self.peer_keys))]
        nb = self.neighbours.setdefault(peer_id, Neighbour(peer_id))
        nb.open = True
        nb.have = set(event.have)
        nb.fetching = {e.segment for e in event.fetching}
        nb.uploads = not event.leech_only
        if link not in nb.links:
            nb.links.append(link)
        for entry in event.fetching:
            if entry.expected_bytes:
                self.sizes.setdefault(entry.segment, entry.expected_bytes)

    def _on_availability(
        self, peer_id: str, event: ev.PeerHave | ev.PeerLost | ev.PeerFetching
    ) -> None:
        if isinstance(event, ev.PeerHave):
            self.promises.kept(peer_id, event.segments)
        nb = self.neighbours.get(peer_id)
        if nb is None:
            return
        if isinstance(event, ev.PeerHave):
            nb.have.update(event.segments)
            nb.fetching.difference_update(event.segments)
        elif isinstance(event, ev.PeerLost):
            nb.have.difference_update(event.segments)
            nb.fetching.difference_update(event.segments)
        else:
            for entry in event.entries:
                nb.fetching.add(entry.segment)
                if entry.expected_bytes:
                    self.sizes.setdefault(entry.segment, entry.expected_bytes)

    def _peer_transfer(self, link: str, request_id: int) -> Transfer | None:
        for transfer in self.transfers.values():
            if transfer.link == link and transfer.request_id == request_id:
                return transfer
        return None

    def _on_data(self, link: str, event: ev.DataReceived, now: float) -> None:
        transfer = self._peer_transfer(link, event.request_id)
        held = self.held.get(event.segment)
        if transfer is None or held is None or event.offset != len(held.buf):
            return
        held.append(event.data, transfer.peer_id)
        nb = self.neighbours.get(transfer.peer_id) if transfer.peer_id is not None else None
        if nb is not None and event.segment in nb.have:  # from a copy it announced verified
            held.vouched.add(nb.peer_id)
        transfer.received += len(event.data)
        transfer.last_data_at = now
        transfer.overtaken = False
        self.bytes_p2p += len(event.data)
        self.server.pump_segment(event.segment, now)

    def _on_completed(self, link: str, event: ev.RequestCompleted, now: float) -> None:
        transfer = self._peer_transfer(link, event.request_id)
        held = self.held.get(event.segment)
        if transfer is None or held is None:
            return
        held.total = event.total_bytes
        if transfer.peer_id is not None:
            held.vouched.add(transfer.peer_id)  # it handed over the last frame
            rate = self.peer_rates.setdefault(transfer.peer_id, ThroughputEstimator())
            rate.add_sample(transfer.received, max(1e-6, now - transfer.started_at))
            self.stalls.progress(transfer.peer_id)
        self._complete(transfer, held)

    def _on_failed(self, link: str, event: ev.RequestFailed, now: float) -> None:
        transfer = self._peer_transfer(link, event.request_id)
        if transfer is None:
            return
        del self.transfers[transfer.segment]
        pid = transfer.peer_id
        assert pid is not None
        nb = self.neighbours.get(pid)
        if event.reason == "busy":
            if nb is not None:
                delay = event.retry_after_s or self.config.busy_backoff_s
                nb.choked_until = now + min(delay, self.config.max_busy_backoff_s)
        else:
            self._add_avoid(transfer.segment, pid)
            if event.reason == "absent" and nb is not None:
                announced = transfer.segment in nb.have
                fetching = transfer.segment in nb.fetching
                nb.have.discard(transfer.segment)
                nb.fetching.discard(transfer.segment)
                if announced:  # it said HAVE, then ABSENT: a lie (or a LOST it never sent)
                    self.offence(pid, link, Offence.ABSENT_AFTER_HAVE, now)
                elif fetching:  # it said FETCHING: a lie, or its download went away
                    self.offence(pid, link, Offence.ABSENT_AFTER_FETCHING, now)
            elif event.reason == "timeout":
                self._rate_sample(transfer, now)
                self._promise(transfer)
                if self._owed(transfer):
                    quiet_since = transfer.last_data_at or transfer.started_at
                    self._suspect_stall(transfer, quiet_since, now)
        if event.reason == "aborted":
            # The peer gave up our request. If it relayed cut-through and its copy failed
            # (UPSTREAM_FAILED), the bytes it passed on were never vouched for: they are
            # dropped, so an honest relay of a bad upstream is never blamed for them.
            self._truncate_held(transfer.segment, transfer.offset)

    def _on_closed(self, link: str, peer_id: str, event: ev.SessionClosed, now: float) -> None:
        self.server.on_link_closed(link)
        nb = self.neighbours.get(peer_id)
        if nb is not None:
            if link in nb.links:
                nb.links.remove(link)
            if not nb.links:
                del self.neighbours[peer_id]
                self.peer_rtts.pop(peer_id, None)  # a new link may take another path
                self.stalls.forget(peer_id)
        for transfer in list(self.transfers.values()):
            if transfer.link == link and not transfer.verifying:
                del self.transfers[transfer.segment]
                self._add_avoid(transfer.segment, peer_id)
        offence = None if event.by_remote else CLOSE_OFFENCES.get(event.code)
        if offence is not None:  # its other links (if any) close on a refusal
            self.offence(peer_id, None, offence, now, keys=self.link_keys.get(link, ()))
        self.link_keys.pop(link, None)

    # -- held bytes ---------------------------------------------------------------------------

    def _add_avoid(self, segment: SegmentId, peer_id: str) -> None:
        self.avoid[segment] = self.avoid.get(segment, frozenset()) | {peer_id}

    def _held_for(self, segment: SegmentId, offset: int) -> Held:
        held = self.held.setdefault(segment, Held())
        if len(held.buf) > offset:
            self._truncate_held(segment, offset)
        return held

    def _truncate_held(self, segment: SegmentId, length: int) -> None:
        """Keep only bytes ``[0, length)`` of a segment in progress. Whoever we relayed more
        to is aborted: the bytes that replace the rest may differ from what they got."""
        held = self.held.get(segment)
        if held is not None and len(held.buf) > length:
            held.truncate(length)
            self.server.abort_relays(segment, beyond=length)

    def _drop_held(self, segment: SegmentId) -> None:
        """Give up a segment in progress without verifying it: relays of it are aborted."""
        self.held.pop(segment, None)
        self.server.abort_relays(segment)

    def _announce_fetching(self, segment: SegmentId) -> None:
        if not self.config.leech_only:
            size = min(self.sizes.get(segment, 0), MAX_EXPECTED_BYTES)
            self._actions.append(AnnounceFetching((FetchingEntry(segment, size),)))
