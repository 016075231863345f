"""The bookkeeping of :class:`~peer_agent.core.exchange.SegmentExchange`: segments being
assembled, transfers in flight, neighbours, and peer penalties for integrity failures.

Pure data with small methods; time is an argument (docs/exchange.md).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from .ids import SegmentId


class Verdict(enum.Enum):
    """What the caller found when it checked a whole segment (docs/exchange.md, "Verification")."""

    OK = "ok"
    MISMATCH = "mismatch"
    #: The manifest has no entry for this segment (or, size-only, no size is known).
    UNKNOWN = "unknown"


@dataclass
class Held:
    """Bytes ``[0, len(buf))`` of a segment being assembled (possibly from several sources)."""

    buf: bytearray = field(default_factory=bytearray)
    total: int | None = None
    #: Peer ids that supplied bytes (``None``: the CDN).
    contributors: set[str | None] = field(default_factory=set)
    #: ``(first byte, source)`` of each run of bytes from one source, in order.
    spans: list[tuple[int, str | None]] = field(default_factory=list)
    #: Peers that vouched for their bytes: they had announced the segment HAVE (a verified
    #: copy) before the bytes came, or they completed the copy (an honest relay never hands over
    #: the last frame of a copy it has not verified). docs/exchange.md 6.
    vouched: set[str] = field(default_factory=set)

    def append(self, data: bytes, source: str | None) -> None:
        """Bytes from ``source`` (a peer id, ``None``: the CDN) at the end of ``buf``."""
        if not data:
            return
        if not self.spans or self.spans[-1][1] != source:
            self.spans.append((len(self.buf), source))
        self.buf += data
        self.contributors.add(source)

    def truncate(self, length: int) -> None:
        """Keep bytes ``[0, length)`` only; sources of nothing kept are no contributors."""
        if length >= len(self.buf):
            return
        del self.buf[length:]
        self.spans = [span for span in self.spans if span[0] < length]
        self.contributors = {source for _, source in self.spans}


@dataclass(eq=False)
class Transfer:
    """A download in flight: from the CDN (``peer_id`` None, ``fetch_id`` set) or a peer."""

    segment: SegmentId
    peer_id: str | None
    started_at: float
    offset: int
    link: str | None = None
    request_id: int | None = None
    fetch_id: int | None = None
    last_data_at: float | None = None
    received: int = 0
    #: The bytes are complete and being checked: the scheduler sees it as a CDN fetch.
    verifying: bool = False
    #: The peer answered the request (RESPONSE).
    responded: bool = False
    #: The peer had announced the segment HAVE when we asked: it owes us the bytes. A
    #: cut-through relay passes on what its source sends (docs/exchange.md 8b).
    announced: bool = False
    #: Since its last byte, another frame of the peer arrived on its link while the peer had
    #: announced the segment HAVE: nothing it sent of it is in flight (docs/exchange.md 8b).
    overtaken: bool = False


@dataclass
class Neighbour:
    peer_id: str
    have: set[SegmentId] = field(default_factory=set)
    fetching: set[SegmentId] = field(default_factory=set)
    uploads: bool = True
    choked_until: float = 0.0
    open: bool = False
    #: The caller's names of this peer's open links, oldest first; requests use the newest.
    links: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class IntegrityConfig:
    #: Hash failures a peer may contribute to before it is banned (its session closed with
    #: BANNED and new sessions from it refused).
    ban_after_failures: int = 2
    #: A peer that contributed to a bad segment is not asked for anything for this long.
    penalty_s: float = 10.0
    #: A bad segment whose peer bytes all came from one peer bans it at once (docs/exchange.md
    #: 6; the exchange's ``ban_sole_contributor``).
    ban_sole_contributor: bool = True

    def __post_init__(self) -> None:
        if self.ban_after_failures < 1:
            raise ValueError("ban_after_failures must be >= 1")
        if self.penalty_s < 0:
            raise ValueError("penalty_s must be >= 0")


@dataclass
class Penalties:
    """Per-peer hash-failure counts, bans and penalty windows."""

    config: IntegrityConfig = field(default_factory=IntegrityConfig)
    failures: dict[str, int] = field(default_factory=dict)
    banned: set[str] = field(default_factory=set)
    penalised_until: dict[str, float] = field(default_factory=dict)

    def record(self, peer_id: str, now: float) -> bool:
        """``peer_id`` contributed to a segment that failed its hash; True: ban it now."""
        count = self.failures.get(peer_id, 0) + 1
        self.failures[peer_id] = count
        self.penalised_until[peer_id] = now + self.config.penalty_s
        if count >= self.config.ban_after_failures and peer_id not in self.banned:
            self.banned.add(peer_id)
            return True
        return False

    def is_banned(self, peer_id: str) -> bool:
        return peer_id in self.banned

    def blocked_until(self, peer_id: str) -> float:
        if peer_id in self.banned:
            return float("inf")
        return self.penalised_until.get(peer_id, 0.0)

    def snapshot(self) -> Mapping[str, int]:
        return dict(self.failures)
