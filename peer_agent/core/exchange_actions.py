"""Inputs and outputs of :class:`~peer_agent.core.exchange.SegmentExchange`: its config, the
timeline entries it is told about, and the actions the caller pulls (frozen dataclasses).

Every action names links by the caller's own string for a link (``link``) and segments by
:class:`SegmentId`. docs/exchange.md, "Actions", says what the caller does with each.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ids import SegmentId
from .wire import DATA_HEADER_BYTES, DEFAULT_DATA_FRAME_BYTES, FetchingEntry

#: The default hold-back of a relay (``ExchangeConfig.relay_holdback_bytes``): the payload of
#: one DATA frame of the default size (16375 bytes).
RELAY_HOLDBACK_BYTES = DEFAULT_DATA_FRAME_BYTES - DATA_HEADER_BYTES


@dataclass(frozen=True)
class ExchangeConfig:
    """Every option of the exchange; defaults as in docs/exchange.md, "Configuration"."""

    #: Our peer id (the scheduler's ``self_id``).
    self_id: str = ""
    #: Peer requests served at once at most; one more is answered BUSY.
    max_uploads: int = 4
    #: Upload cap in bytes/s over all uploads (``None``: none).
    upload_cap_bytes_per_s: float | None = None
    #: Bytes the cap lets through at once (``None``: a quarter second, at least 16 KiB).
    upload_burst_bytes: int | None = None
    #: Never upload: every request is answered BUSY(0xFFFF); nothing is announced.
    leech_only: bool = False
    #: The retry hint of the BUSY sent beyond ``max_uploads``.
    busy_retry_after_ms: int = 500
    #: A peer that answered BUSY without a hint, or could not take a request, is not asked
    #: again for this long; a hint is obeyed up to ``max_busy_backoff_s``.
    busy_backoff_s: float = 0.5
    max_busy_backoff_s: float = 30.0
    #: Refetches from the CDN of a segment that failed its hash before it is given up.
    max_hash_retries: int = 3
    #: What a relay withholds of a segment until its own copy is verified: its final DATA frame
    #: (docs/protocol.md), one frame of the default size. Small, because every hop waits for
    #: it: a 64 KiB frame was half of a 114 kB segment held per hop on the network bed
    #: (docs/exchange.md, "Hold-back").
    relay_holdback_bytes: int = RELAY_HOLDBACK_BYTES
    #: Verified segments kept for peers and the player (oldest evicted first).
    store_max_bytes: int = 256 * 1024 * 1024
    #: Hash failures before a ban, and the penalty window after each.
    ban_after_failures: int = 2
    penalty_s: float = 10.0
    #: A segment whose peer bytes all came from one peer (CDN bytes aside) and that fails its
    #: hash bans that peer at once: an honest relay never hands over the last frame of a copy
    #: it has not verified. Off: such a peer is banned at ``ban_after_failures`` like others
    #: (for swarms with peers that cannot verify, e.g. without a manifest).
    ban_sole_contributor: bool = True
    #: Size guess for a segment of which nothing is known.
    default_segment_bytes: int = 500_000
    # -- fairness (docs/exchange.md, "Fairness") --
    #: Requests of one neighbour served at once at most; one more is answered BUSY.
    max_uploads_per_peer: int = 2
    #: Uploads of one segment to one neighbour that ran to their last byte, at most; one more
    #: request: BUSY(0xFFFF) (a resume after a cancel is still served).
    max_serves_per_segment: int = 1
    #: Sliding window over which the bytes served to each neighbour are counted ...
    peer_window_s: float = 30.0
    #: ... and how many copies of the stream (bitrate x window) a neighbour may draw in it.
    peer_window_copies: float = 3.0
    #: The stream's bitrate assumed while the timeline gives none (bits/s).
    default_bitrate_bits_per_s: float = 5_000_000.0
    #: With no ``upload_cap_bytes_per_s``: the cap is this many copies of the stream per
    #: neighbour (bitrate / 8 x neighbours, at least one).
    upload_cap_copies: float = 1.5
    #: A request is answered BUSY while uploads in progress still owe more than this many
    #: seconds of the cap.
    cap_backlog_s: float = 2.0
    #: The margin behind the playhead kept for peers further back: ``forget_before`` drops
    #: every record (store, verified, sizes, hash retries, ...) of a segment ending earlier
    #: (docs/exchange.md, "Bounds").
    retain_behind_s: float = 30.0
    # -- reputation (docs/exchange.md, "Reputation") --
    #: Penalty points of each offence: an ABSENT for a segment the peer announced (HAVE), a
    #: request that timed out (a stalled transfer), a session we closed for a protocol error or
    #: a limit, one we closed for a state violation (data for an unknown request id, ...), and a
    #: hash failure the peer contributed to. One ABSENT after HAVE refuses (a peer announces
    #: LOST before it drops a segment; a liar's claims mislead the election while it stays).
    points_absent_after_have: float = 4.0
    #: ... of a request for a segment the peer announced (HAVE, not LOST since): it claims to
    #: hold what it asks for (a flood's signature); the request is refused BUSY(65535).
    points_request_after_have: float = 2.0
    #: ... of an ABSENT for a segment the peer announced FETCHING (not HAVE): a lie, or a
    #: download of its own that went away, so less than a lie for sure.
    points_absent_after_fetching: float = 1.0
    #: A peer download cancelled (or timed out) after this long without a byte (since the
    #: request or the last DATA), plus ``stall_rtts`` measured round trips to the peer, makes
    #: the peer a stall suspect, if it owed us bytes: it had announced the segment HAVE when we
    #: asked. A cut-through relay (FETCHING then), even one that answered, may be waiting for
    #: its own source: it is not suspected.
    stall_s: float = 1.0
    stall_rtts: float = 2.0
    #: A suspect's stall counts as an offence only if the peer then shows no progress (no
    #: download from it completes, no late frames of a request we gave up arrive) for this
    #: long plus ``stall_rtts`` round trips from its last byte: SCTP's retransmission timeout
    #: is at least 1 s and doubles when the retransmission is lost too (1 + 2 s), and an
    #: ordered channel delivers nothing meanwhile (head-of-line blocking). Loss is not a lie.
    stall_offence_s: float = 3.0
    points_stall: float = 2.0
    #: ... of a matured stall of a download *abandoned* while its link was alive: after its last
    #: byte, and before we gave it up, another frame of the peer arrived on that link while the
    #: peer had announced the segment HAVE. The channel is ordered, so nothing it had sent of
    #: the segment was still in flight (no loss explains the silence) and it held a verified
    #: copy (no slow upstream does): it chose to stop. Not one refusal alone (an honest peer's
    #: upload cap can hold one upload back behind others for seconds): two refuse.
    points_abandoned: float = 3.0
    points_protocol_error: float = 4.0
    points_unknown_request: float = 4.0
    points_hash_failure: float = 3.0
    #: ... of a broken promise: a cut-through download we gave up silent (section 8b) whose
    #: peer then never announced the segment HAVE before it left what we retain (section 3,
    #: "Bounds"). An honest relay's promise ends in HAVE, or in its ABORT (UPSTREAM_FAILED),
    #: which opens none: four within the decay refuse, six ban (docs/exchange.md 8b).
    points_broken_promise: float = 1.0
    #: Open promises kept per peer id (the oldest dropped uncharged beyond).
    max_promises_per_peer: int = 64
    #: Points fall by this much per second (never below 0).
    decay_points_per_s: float = 0.02
    #: At this many points the peer is disconnected and refused for ``refuse_s``, doubled at
    #: each further refusal, at most ``max_refuse_s``.
    refuse_points: float = 4.0
    refuse_s: float = 30.0
    max_refuse_s: float = 3600.0
    #: At this many points the peer id and every identity key of it are banned.
    ban_points: float = 6.0

    def __post_init__(self) -> None:
        if self.max_uploads < 0:
            raise ValueError("max_uploads must be >= 0")
        if self.upload_cap_bytes_per_s is not None and self.upload_cap_bytes_per_s <= 0:
            raise ValueError("upload_cap_bytes_per_s must be positive (None: no cap)")
        if not 0 <= self.busy_retry_after_ms <= 0xFFFF:
            raise ValueError("busy_retry_after_ms must be a u16")
        if not self.retain_behind_s >= 0:
            raise ValueError("retain_behind_s must be >= 0")
        if self.relay_holdback_bytes < 1:
            raise ValueError("relay_holdback_bytes must be >= 1")
        if self.max_hash_retries < 0:
            raise ValueError("max_hash_retries must be >= 0")
        if self.max_promises_per_peer < 1:
            raise ValueError("max_promises_per_peer must be >= 1")
        if self.max_uploads_per_peer < 1 or self.max_serves_per_segment < 1:
            raise ValueError("max_uploads_per_peer and max_serves_per_segment must be >= 1")
        if self.peer_window_s <= 0 or self.peer_window_copies <= 0:
            raise ValueError("peer_window_s and peer_window_copies must be positive")
        points = (
            self.points_absent_after_have,
            self.points_request_after_have,
            self.points_absent_after_fetching,
            self.points_stall,
            self.points_abandoned,
            self.points_protocol_error,
            self.points_unknown_request,
            self.points_hash_failure,
            self.points_broken_promise,
            self.decay_points_per_s,
        )
        if min(points) < 0:
            raise ValueError("penalty points and decay_points_per_s must be >= 0")
        if self.stall_s <= 0 or self.stall_offence_s <= 0:
            raise ValueError("stall_s and stall_offence_s must be positive")
        if not self.stall_rtts >= 0:
            raise ValueError("stall_rtts must be >= 0")
        if not 0 < self.refuse_points <= self.ban_points:
            raise ValueError("need 0 < refuse_points <= ban_points")
        if not 0 <= self.refuse_s <= self.max_refuse_s:
            raise ValueError("need 0 <= refuse_s <= max_refuse_s")
        if self.cap_backlog_s < 0:
            raise ValueError("cap_backlog_s must be >= 0")
        if self.default_bitrate_bits_per_s <= 0 or self.upload_cap_copies <= 0:
            raise ValueError("default_bitrate_bits_per_s and upload_cap_copies must be positive")


@dataclass(frozen=True)
class SegmentEntry:
    """A segment the media playlist lists (the caller's timeline, in order)."""

    segment: SegmentId
    start_s: float
    duration_s: float
    #: When the segment first appeared in a playlist (the caller's clock).
    known_since: float
    #: Its byte range's length, when the playlist gives one.
    range_bytes: int | None = None


# -- actions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchCdn:
    """GET the segment from the CDN from byte ``offset`` of it (a Range request when > 0, on
    top of the playlist's byte range); report with ``cdn_*(fetch_id, ...)``."""

    fetch_id: int
    segment: SegmentId
    offset: int


@dataclass(frozen=True)
class CancelCdn:
    fetch_id: int
    segment: SegmentId


@dataclass(frozen=True)
class RequestPeer:
    """``session.request(segment, offset)`` on ``link``; report the id with
    ``request_sent`` (or ``request_not_sent``)."""

    link: str
    peer_id: str
    segment: SegmentId
    offset: int


@dataclass(frozen=True)
class CancelRequest:
    link: str
    request_id: int


@dataclass(frozen=True)
class Respond:
    link: str
    request_id: int
    total_bytes: int


@dataclass(frozen=True)
class SendData:
    link: str
    request_id: int
    offset: int
    data: bytes


@dataclass(frozen=True)
class RejectAbsent:
    link: str
    request_id: int


@dataclass(frozen=True)
class RejectBusy:
    link: str
    request_id: int
    retry_after_ms: int


@dataclass(frozen=True)
class AbortUpload:
    link: str
    request_id: int
    reason: int  # an AbortReason value


@dataclass(frozen=True)
class CloseLink:
    link: str
    code: int  # a CloseCode value
    reason: str


@dataclass(frozen=True)
class AnnounceHave:
    segments: tuple[SegmentId, ...]


@dataclass(frozen=True)
class AnnounceFetching:
    entries: tuple[FetchingEntry, ...]


@dataclass(frozen=True)
class AnnounceLost:
    segments: tuple[SegmentId, ...]


@dataclass(frozen=True)
class Verify:
    """Check these bytes (the whole segment) and report with ``verdict(segment, ...)``."""

    segment: SegmentId
    data: bytes
    total_bytes: int


@dataclass(frozen=True)
class Deliver:
    """The segment verified: hand it to the player."""

    segment: SegmentId
    data: bytes


@dataclass(frozen=True)
class GiveUp:
    """The segment failed its hash more than ``max_hash_retries`` times: it is never played."""

    segment: SegmentId


Action = (
    FetchCdn
    | CancelCdn
    | RequestPeer
    | CancelRequest
    | Respond
    | SendData
    | RejectAbsent
    | RejectBusy
    | AbortUpload
    | CloseLink
    | AnnounceHave
    | AnnounceFetching
    | AnnounceLost
    | Verify
    | Deliver
    | GiveUp
)
