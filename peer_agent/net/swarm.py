"""One swarm: a tracker client and up to ``max_peers`` PeerLinks, with no playback policy.

Swarm identity. Every viewer of one HLS stream must compute the same 20-character ``info_hash``
(the tracker's swarm key, also the ``swarm_id`` of the wire HELLO, as its 20 ASCII bytes):

    swarm_id_for(url) = sha1(b"p2p-hls/1 " + url.encode("utf-8")).hexdigest()[:20]

where ``url`` is the master (or media) playlist URL exactly as the player loads it. The browser
loader does the same (``crypto.subtle.digest("SHA-1", ...)``, the first 20 lowercase hex digits).

What the swarm does:

- announces with up to ``offers_per_announce`` fresh full-SDP offers, as many as free slots allow
  (``max_peers`` minus links minus offers still waiting); an unanswered offer closes after
  ``offer_ttl_s``;
- answers relayed offers unless full or already linked to that peer; when full, answers an
  offer the tracker relayed with ``drop`` naming one of our links by draining that link (the
  tracker splits a link to make room for a newcomer: :func:`peer_agent.core.overlay.
  admit_offer`), and announces the ``split`` capability so the tracker may do so. A drained
  link leaves :attr:`Swarm.links` at once (no new request goes on it), its transfers in flight
  go on, and it is closed ("making room") once idle with an empty send buffer, or after
  ``split_drain_s`` at the latest (:func:`peer_agent.core.overlay.drain_due`);
- while neighbour slots are free, announces again with fresh offers after a backoff
  (:class:`peer_agent.core.overlay.Refill`: 2 s doubling to 30 s while no link is added), not
  only every ``interval``; announces (without offers) soon after its set of links changed, so
  the tracker's ``connected`` view of us stays current; closes at once the offers the tracker
  reports it relayed to nobody (``unused_offers``), and with refill, before each announce, those
  unanswered for ``offer_reserve_s`` (a full member refuses silently), so their slots get fresh
  offers;
- when offers cross (both peers linked twice), keeps the link offered by the smaller peer_id, so
  both sides keep the same one;
- drops links whose session closed (the app gets their ``SessionClosed`` first) and asks the
  tracker for an early re-announce to replace them (with refill, only links that had opened:
  one that never did waits for the refill backoff);
- after a link closed BANNED (either side refused or banned the other), neither answers that
  peer's offers nor opens a link from its answer for a back-off that doubles per such close
  (:class:`peer_agent.core.overlay.Refusals`: 30 s up to 1 h), and does not re-announce at once
  for it;
- sends the tracker our extension fields: ``max_peers``, ``connected`` and ``position_s``
  (:meth:`Swarm.set_position`).

Every event of an exposed link goes to ``on_event(link, event)``. A link is exposed from the
moment its SDP exchange completes (it is then in :attr:`Swarm.links`) until its SessionClosed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import random
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiortc import RTCIceServer

from peer_agent.core import wire
from peer_agent.core.errors import CloseCode
from peer_agent.core.events import Event, HelloReceived, SessionClosed
from peer_agent.core.ids import SegmentId
from peer_agent.core.overlay import (
    SPLIT_CAP,
    Refill,
    RefillConfig,
    RefusalConfig,
    Refusals,
    admit_offer,
    drain_due,
)
from peer_agent.core.session import SessionConfig
from peer_agent.net.rtc import MIB, HelloContent, LinkConfig, PeerLink
from peer_agent.net.tracker import (
    MAX_OFFERS_PER_ANNOUNCE,
    RelayedAnswer,
    RelayedOffer,
    TrackerClient,
    TrackerConfig,
)

logger = logging.getLogger(__name__)

# A drained link is checked on each of its events and at least this often: its peer's requests
# end when the app sends their last bytes and its send buffer empties, neither of which is an
# event of the link.
_DRAIN_CHECK_S = 0.1

SWARM_ID_PREFIX = b"p2p-hls/1 "
PEER_ID_PREFIX = "-PH0001-"
_PEER_ID_ALPHABET = string.digits + string.ascii_letters


def swarm_id_for(url: str) -> str:
    """The swarm's 20-character id: first 20 hex digits of sha1(b"p2p-hls/1 " + url)."""
    return hashlib.sha1(SWARM_ID_PREFIX + url.encode("utf-8")).hexdigest()[:20]


def make_peer_id(rng: random.Random) -> str:
    """A fresh 20-character ASCII peer_id: ``-PH0001-`` + 12 random [0-9A-Za-z]."""
    tail = "".join(rng.choice(_PEER_ID_ALPHABET) for _ in range(20 - len(PEER_ID_PREFIX)))
    return PEER_ID_PREFIX + tail


@dataclass(frozen=True)
class SwarmConfig:
    """Options of a :class:`Swarm`; every default is documented here."""

    max_peers: int = 8  # links kept at once (answered offers count, pending offers reserve)
    offers_per_announce: int = 3  # fresh offers per announce (the tracker allows at most 5)
    offer_ttl_s: float = 30.0  # an offer with no answer after this is closed
    # ICE servers; empty = host candidates only. Give STUN/TURN servers for real networks.
    ice_servers: tuple[RTCIceServer, ...] = ()
    # Host addresses to gather on; None = aioice's default (no 127.0.0.1); tests: ("127.0.0.1",).
    host_addresses: tuple[str, ...] | None = None
    high_water_bytes: int = 1 * MIB  # DATA pulled from a session only under this bufferedAmount
    low_water_bytes: int = 256 * 1024  # bufferedAmountLowThreshold: flushing resumes here
    close_timeout_s: float = 2.0  # wait for the peer to read our CLOSE before tearing down
    udp_receive_buffer_bytes: int = 4 * MIB  # aioice UDP receive buffer (capped by rmem_max)
    # stop(): longest wait for links to close (one still gathering first waits for that to end:
    # LinkConfig.close_gather_wait_s)
    stop_timeout_s: float = 8.0
    session: SessionConfig = field(default_factory=SessionConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    # Announce while slots are free (RefillConfig(): 2 s doubling to 30 s); None: only every
    # interval. Load-test figures with and without: docs/signaling.md, "Filling neighbour slots".
    refill: RefillConfig | None = field(default_factory=RefillConfig)
    # Answer split offers when full (announce the "split" capability).
    make_room: bool = True
    # With refill: an offer unanswered this long is closed before the next announce, freeing
    # its slot (a member whose `connected` the tracker saw stale may have refused it).
    offer_reserve_s: float = 10.0
    # After a link closed BANNED: how long not to pair with that peer id (30 s doubling to 1 h).
    refusals: RefusalConfig = field(default_factory=RefusalConfig)
    # A link split to make room is drained: closed once no request is in flight on it and its
    # send buffer is empty, or after this at the latest (0: at once). docs/signaling.md.
    split_drain_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_peers < 1:
            raise ValueError("max_peers must be >= 1")
        if not 0 <= self.offers_per_announce <= MAX_OFFERS_PER_ANNOUNCE:
            raise ValueError(f"offers_per_announce must be in 0..{MAX_OFFERS_PER_ANNOUNCE}")
        if not self.split_drain_s >= 0:
            raise ValueError("split_drain_s must be >= 0")
        self.link_config()  # validates the link options

    def link_config(self) -> LinkConfig:
        return LinkConfig(
            ice_servers=self.ice_servers,
            host_addresses=self.host_addresses,
            high_water_bytes=self.high_water_bytes,
            low_water_bytes=self.low_water_bytes,
            offer_ttl_s=self.offer_ttl_s,
            close_timeout_s=self.close_timeout_s,
            udp_receive_buffer_bytes=self.udp_receive_buffer_bytes,
            session=self.session,
        )


class Swarm:
    """Links to the other members of one swarm, found through the tracker."""

    def __init__(
        self,
        tracker_url: str,
        info_hash: str,
        peer_id: str,
        *,
        on_event: Callable[[PeerLink, Event], None],
        hello: Callable[[], HelloContent] | None = None,
        config: SwarmConfig | None = None,
        token: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config if config is not None else SwarmConfig()
        self.info_hash = info_hash
        self.peer_id = peer_id
        self.links: dict[str, PeerLink] = {}
        self._swarm_id = info_hash.encode("latin-1")
        self._local_peer_id = peer_id.encode("latin-1")
        if len(self._swarm_id) != wire.SWARM_ID_BYTES or len(self._local_peer_id) != 20:
            raise ValueError("info_hash and peer_id must be 20 byte characters")
        self._on_event = on_event
        self._hello = hello
        self._rng = rng if rng is not None else random.Random()
        self._link_config = self.config.link_config()
        self._pending: dict[str, PeerLink] = {}  # offer_id -> link waiting for an answer
        self._pending_at: dict[str, float] = {}  # offer_id -> loop time it was made
        self._exposed: set[PeerLink] = set()
        self._all: set[PeerLink] = set()
        # every link not yet torn down, in _all or already closing (an unused offer, a
        # duplicate, a failed link): stop() waits for all of them, so a process that stops the
        # swarm and exits has closed every connection and deleted its TURN allocations
        self._unfinished: set[PeerLink] = set()
        self._closing: set[asyncio.Task[None]] = set()  # references to closes started here
        self._greeted: set[PeerLink] = set()  # links whose HELLO arrived (they opened)
        self._stopping = False
        self.tracker = TrackerClient(
            tracker_url,
            info_hash,
            peer_id,
            config=self.config.tracker,
            token=token,
            rng=self._rng,
            on_offer=self._on_offer,
            on_answer=self._on_answer,
            make_offers=self._make_offers,
            next_announce_s=self._next_announce_s,
            on_unused_offers=self._on_unused_offers,
        )
        self.tracker.hints.max_peers = self.config.max_peers
        if self.config.make_room:
            self.tracker.hints.caps = (*self.tracker.hints.caps, SPLIT_CAP)
        self._refill = Refill(self.config.refill) if self.config.refill is not None else None
        #: Links closed to make room for a newcomer (split offers answered).
        self.links_split = 0
        #: Of those, links closed at ``split_drain_s`` with a transfer still in flight.
        self.links_drain_forced = 0
        self._draining: dict[PeerLink, asyncio.Event] = {}  # drained link -> its wake-up
        self._drain_tasks: set[asyncio.Task[None]] = set()
        #: Peer ids not paired with for now: a link to them closed BANNED.
        self.refusals = Refusals(self.config.refusals)
        #: Offers and answers left alone because their peer id was blocked that way.
        self.pairings_refused = 0

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        await self.tracker.start()

    async def stop(self) -> None:
        """Announce ``stopped``, close every link (GOING_AWAY) and pending offer."""
        if self._stopping:
            return
        self._stopping = True
        await self.tracker.stop()
        drains = list(self._drain_tasks)
        for task in drains:  # their links are closed below with the others
            task.cancel()
        await asyncio.gather(*drains, return_exceptions=True)
        links = [link for link in self._unfinished if not link.closed.is_set()]
        if links:
            closing = [link.close(CloseCode.GOING_AWAY, "leaving the swarm") for link in links]
            try:
                async with asyncio.timeout(self.config.stop_timeout_s):
                    await asyncio.gather(*closing, return_exceptions=True)
            except TimeoutError:
                unfinished = sum(not link.closed.is_set() for link in links)
                logger.warning("swarm: %d links did not close in time", unfinished)

    # --- app inputs -------------------------------------------------------------------------

    def broadcast_have(self, segments: Iterable[SegmentId]) -> None:
        items = list(segments)
        for link in list(self.links.values()):
            link.announce_have(items)

    def broadcast_fetching(self, entries: Iterable[wire.FetchingEntry]) -> None:
        items = list(entries)
        for link in list(self.links.values()):
            link.announce_fetching(items)

    def broadcast_lost(self, segments: Iterable[SegmentId]) -> None:
        items = list(segments)
        for link in list(self.links.values()):
            link.announce_lost(items)

    def set_position(self, position_s: float | None) -> None:
        """Playback position sent to the tracker with the next announce (pairing hint)."""
        self.tracker.hints.position_s = position_s

    async def report(self, peer_id: str, reason: str) -> None:
        """Report a peer we banned or refused to the tracker (docs/signaling.md, "Reports")."""
        await self.tracker.report(peer_id, reason)

    async def send_stats(
        self,
        bytes_p2p_down: int,
        bytes_p2p_up: int,
        bytes_cdn: int,
        cdn_fetches: tuple[int, int] | None = None,
    ) -> None:
        await self.tracker.send_stats(bytes_p2p_down, bytes_p2p_up, bytes_cdn, cdn_fetches)

    def fetcher_assignment(self) -> tuple[tuple[str, ...], float]:
        """The signaling server's fetcher assignment and the loop time it holds until."""
        return self.tracker.fetcher_assignment()

    def announce_now(self) -> None:
        self.tracker.announce_now()

    @property
    def neighbours(self) -> int:
        """Links that opened (the peer's HELLO arrived) and are still up; :attr:`links` also
        holds links from their SDP exchange on, before they open or fail."""
        return sum(1 for link in self.links.values() if link in self._greeted)

    @property
    def swarm_size(self) -> int:
        """Members in the whole swarm as the tracker last reported them; 0 when unknown."""
        return self.tracker.swarm_size

    # --- links ------------------------------------------------------------------------------

    def _new_link(self, remote_peer_id: str | None = None) -> PeerLink:
        link = PeerLink(
            swarm_id=self._swarm_id,
            local_peer_id=self._local_peer_id,
            on_event=self._on_link_event,
            hello=self._hello,
            config=self._current_link_config(),
            remote_peer_id=remote_peer_id,
        )
        self._all.add(link)
        self._unfinished = {other for other in self._unfinished if not other.closed.is_set()}
        self._unfinished.add(link)
        return link

    def _current_link_config(self) -> LinkConfig:
        """The link options, with the tracker's ICE servers (if any) ahead of the configured
        ones (aiortc uses the first STUN and the first TURN server it is given)."""
        grant = self.tracker.ice
        if grant is None:
            return self._link_config
        granted = tuple(
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in grant.servers
        )
        return dataclasses.replace(
            self._link_config, ice_servers=granted + self._link_config.ice_servers
        )

    def _expose(self, peer_id: str, link: PeerLink) -> None:
        self.links[peer_id] = link
        self._exposed.add(link)

    def _on_link_event(self, link: PeerLink, event: Event) -> None:
        exposed = link in self._exposed
        if isinstance(event, HelloReceived):
            self._greeted.add(link)
        wake = self._draining.get(link)
        if wake is not None:
            wake.set()
        if isinstance(event, SessionClosed):
            opened = link in self._greeted
            self._greeted.discard(link)
            self._all.discard(link)
            self._exposed.discard(link)
            for offer_id, pending in list(self._pending.items()):
                if pending is link:
                    del self._pending[offer_id]
                    self._pending_at.pop(offer_id, None)
            peer_id = link.remote_peer_id
            banned = event.code == CloseCode.BANNED
            if peer_id is not None and banned:
                until = self.refusals.closed_banned(peer_id, self._now())
                logger.info(
                    "swarm: not pairing with %s for %.0f s (link closed: %s)",
                    peer_id,
                    until - self._now(),
                    "it refused us" if event.by_remote else "we refused it",
                )
            if peer_id is not None and self.links.get(peer_id) is link:
                del self.links[peer_id]
                # A refused link is no lost neighbour to replace at once: the tracker would
                # pair us with the same peer again (the refill backoff applies instead).
                if not self._stopping and not banned and (opened or self._refill is None):
                    # A link lost after it opened: replace it now. One that never opened
                    # (ICE or DTLS failed) waits for the refill backoff, so failing links
                    # (an overloaded machine, unreachable peers) do not make new offers at
                    # every failure.
                    if self._refill is not None:
                        self._refill.reset()
                    self.tracker.announce_now()
        if exposed:
            self._on_event(link, event)

    def _drain(self, link: PeerLink) -> None:
        """Close ``link`` (already out of :attr:`links`) once no request is in flight on it and
        its send buffer is empty, or after ``split_drain_s`` (docs/signaling.md, "Making
        room"): a cut transfer would orphan the cut-through subtree behind it."""
        self.links_split += 1
        wake = asyncio.Event()
        self._draining[link] = wake
        task = asyncio.get_running_loop().create_task(self._drain_link(link, wake))
        self._drain_tasks.add(task)
        task.add_done_callback(self._drain_tasks.discard)

    async def _drain_link(self, link: PeerLink, wake: asyncio.Event) -> None:
        max_s = self.config.split_drain_s
        started = self._now()
        try:
            while not link.is_closed:
                outbound, inbound, buffered = _link_load(link)
                elapsed = self._now() - started
                if drain_due(outbound, inbound, buffered, elapsed, max_s):
                    if outbound or inbound or buffered:
                        self.links_drain_forced += 1
                        logger.debug(
                            "swarm: closing split link %r at %.1f s: %d+%d requests, %d bytes",
                            link,
                            elapsed,
                            outbound,
                            inbound,
                            buffered,
                        )
                    self._draining.pop(link, None)
                    await link.close(CloseCode.NORMAL, "making room")
                    return
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(_DRAIN_CHECK_S, max_s - elapsed)):
                        await wake.wait()
        finally:
            self._draining.pop(link, None)

    def _close_later(
        self, link: PeerLink, code: CloseCode = CloseCode.NORMAL, reason: str = ""
    ) -> None:
        task = asyncio.ensure_future(link.close(code, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _drop_duplicate(self, link: PeerLink) -> None:
        # It stays exposed: the app, which may have seen its HELLO, gets its SessionClosed.
        self._close_later(link, CloseCode.NORMAL, "duplicate link")

    def _keep_new_link(self, new_offerer: str, old_offerer: str) -> bool:
        """Both sides of a doubled pair keep the link offered by the smaller peer_id."""
        return new_offerer < old_offerer

    def _next_announce_s(self) -> float | None:
        if self._refill is None or self._stopping:
            return None
        return self._refill.after_announce(len(self.links), self.config.max_peers)

    def _links_changed(self) -> None:
        """Tell the tracker our new ``connected`` soon (an announce, offers if slots free)."""
        if not self._stopping and self.config.make_room:
            self.tracker.announce_now()

    def _retire_stale_offers(self) -> None:
        """Close offers unanswered for ``offer_reserve_s``."""
        cutoff = asyncio.get_running_loop().time() - self.config.offer_reserve_s
        stale = [offer_id for offer_id, made_at in self._pending_at.items() if made_at <= cutoff]
        self._on_unused_offers(stale)

    def _on_unused_offers(self, offer_ids: list[str]) -> None:
        """The tracker relayed these offers to nobody: close them, freeing their slots."""
        for offer_id in offer_ids:
            self._pending_at.pop(offer_id, None)
            link = self._pending.pop(offer_id, None)
            if link is not None:
                self._all.discard(link)
                self._close_later(link)

    async def _make_offers(self) -> list[tuple[str, str]]:
        self.tracker.hints.connected = tuple(self.links)
        if self._stopping:
            return []
        if self._refill is not None:
            self._retire_stale_offers()
        free = self.config.max_peers - len(self.links) - len(self._pending)
        count = max(0, min(self.config.offers_per_announce, free))
        if count == 0:
            return []
        links = [self._new_link() for _ in range(count)]
        sdps = await asyncio.gather(
            *(link.create_offer() for link in links), return_exceptions=True
        )
        offers: list[tuple[str, str]] = []
        for link, sdp in zip(links, sdps, strict=True):
            if isinstance(sdp, BaseException) or link.is_closed:
                if isinstance(sdp, BaseException):
                    logger.warning("swarm: cannot create an offer: %s", type(sdp).__name__)
                self._all.discard(link)
                with contextlib.suppress(Exception):
                    await link.close()
                continue
            offer_id = f"{self._rng.getrandbits(80):020x}"
            self._pending[offer_id] = link
            self._pending_at[offer_id] = asyncio.get_running_loop().time()
            offers.append((offer_id, sdp))
        return offers

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def _on_offer(self, offer: RelayedOffer) -> str | None:
        peer_id = offer.peer_id
        if self._stopping:
            return None
        if self.refusals.blocked(peer_id, self._now()):
            self.pairings_refused += 1
            return None
        existing = self.links.get(peer_id)
        drop: PeerLink | None = None
        if existing is not None:
            # A second link to the same peer: keep one (the same one on both sides).
            if existing.role != "offerer" or not self._keep_new_link(peer_id, self.peer_id):
                return None
        else:
            drop_id = offer.drop if self.config.make_room else None
            admission = admit_offer(self.links, self.config.max_peers, peer_id, drop_id)
            if not admission.accept:
                return None
            if admission.drop is not None:
                drop = self.links.pop(admission.drop)
        link = self._new_link(peer_id)
        if existing is not None:
            self._drop_duplicate(existing)
        if drop is not None:
            # Out of links now (its slot is the newcomer's); the app still gets its close.
            self._drain(drop)
        self._expose(peer_id, link)
        self._links_changed()
        answer = await link.accept_offer(offer.sdp, peer_id)
        if answer is None or link.is_closed:
            return None
        return answer

    async def _on_answer(self, answer: RelayedAnswer) -> None:
        link = self._pending.pop(answer.offer_id, None)
        self._pending_at.pop(answer.offer_id, None)
        if link is None or link.is_closed:
            return  # expired, or already closed
        peer_id = answer.peer_id
        existing = self.links.get(peer_id)
        if self._stopping:
            await link.close(CloseCode.GOING_AWAY, "leaving the swarm")
            return
        if self.refusals.blocked(peer_id, self._now()):
            self.pairings_refused += 1
            await link.close(CloseCode.NORMAL, "refused pairing")
            return
        if existing is not None:
            if existing.role == "answerer" and self._keep_new_link(self.peer_id, peer_id):
                self._drop_duplicate(existing)
            else:
                await link.close(CloseCode.NORMAL, "duplicate link")
                return
        elif len(self.links) >= self.config.max_peers:
            await link.close(CloseCode.NORMAL, "no free slot")
            return
        self._expose(peer_id, link)
        self._links_changed()
        await link.accept_answer(answer.sdp, peer_id)


def _link_load(link: PeerLink) -> tuple[int, int, int]:
    """Requests in flight on ``link`` (ours, the peer's) and the bytes its channel holds."""
    if not link.has_session:
        return 0, 0, 0
    session = link.session
    channel = link.channel
    buffered = 0
    if channel is not None and channel.readyState == "open":
        buffered = channel.bufferedAmount
    return session.outbound_requests, session.inbound_requests, buffered
