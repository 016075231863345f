"""Per-request timelines of the agent's downloads from peers.

Each REQUEST the scheduler starts gets one record: when it was sent, how far its deadline was
(the segment's start ahead of the playhead), when its first and last bytes arrived, and how it
ended (``completed``, ``cancel:stalled``, ``cancel:too_slow``, ``failed:<reason>``,
``closed``, ``not_sent``; ``open`` when the agent stopped first). Times are seconds since the
agent started. The summary carries counts, the same counts split by the scheduler's reason for
the request (``have``: the peer held the segment; ``cut_through``: it was still fetching it) and
by whether any byte came (``outcomes_by_reason``, e.g. ``cut_through cancel:stalled no_byte``),
and first-byte / duration percentiles; the records themselves only with ``request_timeline``
(bounded to :data:`MAX_RECORDS`).

What this is for: telling on a real network (the bed, docs/netbed.md) whether a cancelled
transfer was slow, silent after a loss, or never started.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from ..core.ids import SegmentId

MAX_RECORDS = 4096  #: records kept (the oldest closed ones are dropped first)


@dataclass
class RequestRecord:
    segment: tuple[int, int]
    peer: str
    reason: str  #: the scheduler's: have | cut_through
    offset: int
    sent_s: float
    ahead_s: float  #: segment start minus playhead when sent
    first_byte_s: float | None = None
    last_byte_s: float | None = None
    bytes: int = 0
    end_s: float | None = None
    outcome: str = "open"
    #: for a cancel: seconds since the last byte (or since sent when none came)
    quiet_s: float | None = None


def outcome_kind(reason: str, outcome: str, num_bytes: int) -> str:
    """``"<reason> <outcome>"``, with ``" no_byte"`` for a request that ended other than
    completed without a single byte (``"cut_through cancel:stalled no_byte"``)."""
    kind = f"{reason} {outcome}"
    return kind if num_bytes or outcome == "completed" else f"{kind} no_byte"


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


class RequestLog:
    def __init__(self, started_at: float) -> None:
        self._t0 = started_at
        self._open: dict[SegmentId, RequestRecord] = {}
        self._closed: list[RequestRecord] = []
        self.outcomes: Counter[str] = Counter()
        #: ``"<reason> <outcome>"`` (+ ``" no_byte"`` when none came): :func:`outcome_kind`
        self.kinds: Counter[str] = Counter()
        self._first_byte_s: list[float] = []
        self._duration_s: list[float] = []
        #: CDN fetches started and segments handed to the player, in order (bounded):
        #: ``{"event": "cdn" | "delivered", "segment", "t", ...}``
        self._events: list[dict[str, Any]] = []

    def restart(self, started_at: float) -> None:
        self._t0 = started_at

    def sent(
        self, segment: SegmentId, peer: str, reason: str, offset: int, ahead_s: float, now: float
    ) -> None:
        old = self._open.pop(segment, None)
        if old is not None:
            self._close(old, "replaced", now)
        self._open[segment] = RequestRecord(
            (segment.rendition, segment.sequence),
            peer,
            reason,
            offset,
            round(now - self._t0, 3),
            round(ahead_s, 3),
        )

    def data(self, segment: SegmentId, peer: str, num_bytes: int, now: float) -> None:
        rec = self._open.get(segment)
        if rec is None or rec.peer != peer:
            return
        t = round(now - self._t0, 3)
        if rec.first_byte_s is None:
            rec.first_byte_s = t
            self._first_byte_s.append(t - rec.sent_s)
        rec.last_byte_s = t
        rec.bytes += num_bytes

    def ended(self, segment: SegmentId, peer: str | None, outcome: str, now: float) -> None:
        rec = self._open.get(segment)
        if rec is None or (peer is not None and rec.peer != peer):
            return
        del self._open[segment]
        if outcome.startswith("cancel:"):
            since = rec.last_byte_s if rec.last_byte_s is not None else rec.sent_s
            rec.quiet_s = round(now - self._t0 - since, 3)
        self._close(rec, outcome, now)

    def peer_closed(self, peer: str, now: float) -> None:
        for segment in [s for s, r in self._open.items() if r.peer == peer]:
            self.ended(segment, peer, "closed", now)

    def _close(self, rec: RequestRecord, outcome: str, now: float) -> None:
        rec.end_s = round(now - self._t0, 3)
        rec.outcome = outcome
        self.outcomes[outcome] += 1
        self.kinds[outcome_kind(rec.reason, outcome, rec.bytes)] += 1
        if outcome == "completed":
            self._duration_s.append(rec.end_s - rec.sent_s)
        self._closed.append(rec)
        if len(self._closed) > MAX_RECORDS:
            del self._closed[: len(self._closed) - MAX_RECORDS]

    def note(self, event: str, segment: SegmentId, now: float, **fields: Any) -> None:
        """One CDN fetch started (``cdn``) or segment handed to the player (``delivered``)."""
        self._events.append(
            {
                "event": event,
                "segment": [segment.rendition, segment.sequence],
                "t": round(now - self._t0, 3),
                **fields,
            }
        )
        if len(self._events) > MAX_RECORDS:
            del self._events[: len(self._events) - MAX_RECORDS]

    def events(self) -> list[dict[str, Any]]:
        return list(self._events)

    def summary(self) -> dict[str, Any]:
        return {
            "outcomes": dict(sorted(self.outcomes.items())),
            "outcomes_by_reason": dict(sorted(self.kinds.items())),
            "first_byte_s_p50": _pct(self._first_byte_s, 0.5),
            "first_byte_s_p90": _pct(self._first_byte_s, 0.9),
            "completed_s_p50": _pct(self._duration_s, 0.5),
            "completed_s_p90": _pct(self._duration_s, 0.9),
        }

    def records(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in [*self._closed, *self._open.values()]][-MAX_RECORDS:]
