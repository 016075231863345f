"""Events a :class:`~peer_agent.core.session.PeerSession` reports (pulled with ``next_event()``).

All are frozen dataclasses. Request ids name *our* requests in ResponseStarted, DataReceived,
RequestCompleted and RequestFailed, and the *peer's* requests in SegmentRequested and
RequestCancelled (the two directions have separate id spaces, see docs/protocol.md §2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from peer_agent.core.ids import SegmentId
from peer_agent.core.wire import FLAG_LEECH_ONLY, FetchingEntry, SegmentRange

FailureReason = Literal["absent", "busy", "aborted", "timeout", "closed"]


@dataclass(frozen=True, slots=True)
class HelloReceived:
    """The peer's HELLO was accepted: the session is OPEN."""

    peer_id: bytes
    flags: int
    have: tuple[SegmentId, ...]  # the ranges expanded (at most 16384 ids)
    fetching: tuple[FetchingEntry, ...]
    have_ranges: tuple[SegmentRange, ...] = ()

    @property
    def leech_only(self) -> bool:
        return bool(self.flags & FLAG_LEECH_ONLY)


@dataclass(frozen=True, slots=True)
class PeerHave:
    """The peer completed (and verified) these segments."""

    segments: tuple[SegmentId, ...]


@dataclass(frozen=True, slots=True)
class PeerFetching:
    """The peer is downloading these segments now (they may be requested, cut-through)."""

    entries: tuple[FetchingEntry, ...]


@dataclass(frozen=True, slots=True)
class PeerLost:
    """The peer no longer has, or stopped fetching, these segments."""

    segments: tuple[SegmentId, ...]


@dataclass(frozen=True, slots=True)
class SegmentRequested:
    """The peer asks us for a segment from ``offset``. Answer with ``respond`` + ``send_data``,
    ``reject_absent``, ``reject_busy`` or ``abort``."""

    request_id: int
    segment: SegmentId
    offset: int


@dataclass(frozen=True, slots=True)
class RequestCancelled:
    """The peer cancelled one of its requests to us: stop feeding it."""

    request_id: int


@dataclass(frozen=True, slots=True)
class LateFrames:
    """Frames of requests we had already cancelled (or timed out) arrived on the link and were
    dropped (``SessionStats.late_frames_dropped`` grew by ``count``). The session never emits
    this: the adapter that feeds the session reports it to the exchange, for which it is a
    sign of a slow but live link (docs/exchange.md, "Reputation")."""

    count: int


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    """The peer accepted our request; data for ``[offset, total_bytes)`` follows."""

    request_id: int
    segment: SegmentId
    total_bytes: int
    offset: int = 0


@dataclass(frozen=True, slots=True)
class DataReceived:
    """One DATA frame of our request (for throughput and for cut-through relay)."""

    request_id: int
    segment: SegmentId
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class RequestCompleted:
    """Our request is complete: ``data`` is the segment from ``offset`` to ``total_bytes``.

    The bytes are untrusted until the application has checked the segment's hash."""

    request_id: int
    segment: SegmentId
    offset: int
    total_bytes: int
    data: bytes


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """Our request ended without the whole segment. ``retry_after_s`` is set for ``busy``
    when the peer gave a hint."""

    request_id: int
    segment: SegmentId
    reason: FailureReason
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """The session is CLOSED (reported exactly once). ``code`` is a CloseCode value, or any
    u16 a remote sent."""

    code: int
    reason: str
    by_remote: bool


Event = (
    HelloReceived
    | PeerHave
    | PeerFetching
    | PeerLost
    | SegmentRequested
    | RequestCancelled
    | LateFrames
    | ResponseStarted
    | DataReceived
    | RequestCompleted
    | RequestFailed
    | SessionClosed
)
