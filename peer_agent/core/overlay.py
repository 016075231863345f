"""Overlay rules of a swarm member (docs/signaling.md, "Making room"; docs/scheduling.md,
"Filling neighbour slots"). Pure: links, limits and counts come in as arguments.

Rules shared with the browser (``web_demo/overlay.js``) through
``docs/vectors/signaling/overlay.json``:

- :func:`admit_offer`: whether to answer an offer the tracker relayed, and which link to drop
  for it. A member with a free slot answers. A full member answers only an offer that carries
  ``drop`` naming one of its current links (the tracker is splitting that link: both of its ends
  were asked to take the newcomer), and drains that link; otherwise it refuses.
- :func:`drain_due`: when to close a link drained that way: once no request is in flight on it
  in either direction and its send buffer is empty, or at ``max_s`` at the latest.
- :class:`Refill`: when to announce again while neighbour slots are free. After each announce
  the next one is due in ``base_s * 2**streak`` seconds (at most ``max_s``), where ``streak``
  counts announces in a row after which no link was added; a full member waits for the
  tracker's ``interval`` instead (None).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

#: The capability (announce ``caps``) of a member that accepts ``drop`` offers when full.
SPLIT_CAP = "split"


@dataclass(frozen=True, slots=True)
class Admission:
    """Answer the offer (``accept``), first closing the link to ``drop`` when set."""

    accept: bool
    drop: str | None = None
    reason: str = ""


def admit_offer(
    links: Collection[str], max_peers: int, from_peer: str, drop: str | None
) -> Admission:
    """Whether a member linked to ``links`` (at most ``max_peers``) answers an offer from
    ``from_peer`` that the tracker relayed with ``drop`` (None: no split). A second link to a
    peer already linked is the caller's business (the doubled-link rule)."""
    if from_peer in links:
        return Admission(False, reason="already_linked")
    if len(links) < max_peers:
        return Admission(True)
    if drop is not None and drop != from_peer and drop in links:
        return Admission(True, drop=drop)
    return Admission(False, reason="full")


def drain_due(
    outbound: int, inbound: int, buffered_bytes: int, elapsed_s: float, max_s: float
) -> bool:
    """Whether to close now a link drained to make room (docs/signaling.md, "Making room"):
    ``outbound`` of our requests and ``inbound`` of the peer's are in flight on it, its data
    channel holds ``buffered_bytes`` unsent, and it has drained for ``elapsed_s`` of at most
    ``max_s`` seconds (0: close at once). True: close it now."""
    if outbound < 0 or inbound < 0 or buffered_bytes < 0:
        raise ValueError("drain_due: request counts and buffered_bytes must be >= 0")
    if elapsed_s >= max_s:
        return True
    return outbound == 0 and inbound == 0 and buffered_bytes == 0


@dataclass(frozen=True)
class RefillConfig:
    """Announces while neighbour slots are free; every default is documented here."""

    base_s: float = 2.0  # first refill announce this long after an announce
    max_s: float = 30.0  # the backoff doubles per fruitless announce up to this

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.max_s:
            raise ValueError("need 0 < base_s <= max_s")


class Refill:
    """Backoff of the announces that fill free neighbour slots (one per swarm)."""

    __slots__ = ("config", "streak", "_links_before")

    def __init__(self, config: RefillConfig | None = None) -> None:
        self.config = config if config is not None else RefillConfig()
        self.streak = 0
        self._links_before: int | None = None

    def after_announce(self, links: int, max_peers: int) -> float | None:
        """Seconds until the next announce, given ``links`` held just after this one; None
        when no slot is free (the tracker's interval applies)."""
        before, self._links_before = self._links_before, links
        if links >= max_peers:
            self.streak = 0
            return None
        if before is None or links > before:
            self.streak = 0
        else:
            self.streak += 1
        cfg = self.config
        return min(cfg.max_s, cfg.base_s * 2.0 ** min(self.streak, 30))

    def reset(self) -> None:
        """A link was lost: start again from ``base_s``."""
        self.streak = 0
        self._links_before = None


@dataclass(frozen=True)
class RefusalConfig:
    """How long a member stops pairing with a peer after a link to it closed BANNED (either
    side refused or banned the other); every default is documented here."""

    base_s: float = 30.0  # the first back-off (the exchange's ``refuse_s``)
    max_s: float = 3600.0  # it doubles per further BANNED close, up to this (``max_refuse_s``)
    max_peer_ids: int = 256  # peer ids remembered at most; beyond, the oldest entry goes

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.max_s:
            raise ValueError("need 0 < base_s <= max_s")
        if self.max_peer_ids < 1:
            raise ValueError("need max_peer_ids >= 1")


class Refusals:
    """Peer ids a member does not pair with for now (docs/signaling.md, "Filling neighbour
    slots"): after a link closed with code BANNED, by either side, it neither answers that
    peer's relayed offers nor opens the link an answer from it would bring, for
    ``base_s * 2**(n-1)`` seconds (at most ``max_s``) after its n-th such close. The refusing
    side refuses at HELLO anyway; this spares both a handshake and a HELLO per announce.
    Pure: time comes in as ``now``."""

    __slots__ = ("config", "_entries")

    def __init__(self, config: RefusalConfig | None = None) -> None:
        self.config = config if config is not None else RefusalConfig()
        #: peer id -> (BANNED closes so far, blocked until)
        self._entries: dict[str, tuple[int, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def closed_banned(self, peer_id: str, now: float) -> float:
        """A link to ``peer_id`` closed BANNED at ``now``: until when it is blocked."""
        count, until = self._entries.pop(peer_id, (0, 0.0))
        if until > now:  # a close of a link opened before the block: same period
            self._entries[peer_id] = (count, until)
            return until
        count += 1
        cfg = self.config
        until = now + min(cfg.max_s, cfg.base_s * 2.0 ** min(count - 1, 30))
        self._entries[peer_id] = (count, until)
        while len(self._entries) > cfg.max_peer_ids:
            del self._entries[next(iter(self._entries))]
        return until

    def blocked(self, peer_id: str, now: float) -> bool:
        """Whether to leave ``peer_id`` alone at ``now`` (no answer, no link)."""
        entry = self._entries.get(peer_id)
        return entry is not None and entry[1] > now
