"""The asyncio glue of the core's :class:`~peer_agent.core.exchange.SegmentExchange`, in the
style of aioquic's: every input goes in with the loop's time, every action the exchange has is
carried out at once (CDN fetches and hashing become tasks whose results go back in), and one
timer is re-armed from ``get_timer()``.

What the glue needs of the rest of the agent it is handed as callables (the player, the swarm's
announcements, the manifest check), so it reads no other module's state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ..core.cdn_phase import CdnFetchCounts
from ..core.events import (
    DataReceived,
    HelloReceived,
    LateFrames,
    ResponseStarted,
    SegmentRequested,
    SessionClosed,
)
from ..core.exchange import SegmentExchange
from ..core.exchange_actions import (
    Action,
    AnnounceFetching,
    AnnounceHave,
    AnnounceLost,
    CancelCdn,
    CloseLink,
    Deliver,
    FetchCdn,
    GiveUp,
    RequestPeer,
    Verify,
)
from ..core.exchange_state import Verdict
from ..core.ids import SegmentId
from .cdn import CdnError, CdnFetcher
from .links import LinkTable, peer_id_of
from .playlist import SegmentInfo

logger = logging.getLogger(__name__)

#: Peer events after which the scheduler has nothing new to decide.
_QUIET_EVENTS = (DataReceived, LateFrames, ResponseStarted, SegmentRequested)
#: The timer is never re-armed closer than this (the upload cap's refills).
_MIN_TIMER_S = 0.005

Announcement = AnnounceHave | AnnounceFetching | AnnounceLost

#: The exchange's own ban and refusal closes (not the refusal of a known peer at its HELLO),
#: with the reason the tracker is told.
_REPORTED_CLOSES = {
    "repeated integrity failures": "hash_failure",
    "integrity failure": "hash_failure",
    "penalty points": "protocol",
    "refused for misbehaviour": "protocol",
}


class ExchangeGlue:
    def __init__(
        self,
        exchange: SegmentExchange,
        cdn: CdnFetcher,
        *,
        now: Callable[[], float],
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
        wake: Callable[[], None],
        info: Callable[[SegmentId], SegmentInfo | None],
        deliver: Callable[[SegmentInfo], None],
        announce: Callable[[Announcement], None],
        check: Callable[[SegmentInfo, bytes, int, bool], Awaitable[Verdict]],
        current_link: Callable[[str], Any],
        report: Callable[[str, str], None] | None = None,
        cdn_progress: Callable[..., None] | None = None,
    ) -> None:
        self.exchange = exchange
        #: Called with (peer_id, reason) when the exchange bans or refuses a peer: the agent
        #: reports it to the tracker (docs/signaling.md, "Reports").
        self._report = report
        #: Called with (segment, "first_byte" | "done" | "failed", now) for the timeline ("done"
        #: adds ``bytes`` and ``max_gap_s``, the longest wait between two chunks).
        self._cdn_progress = cdn_progress
        self.cdn = cdn
        self.links = LinkTable(spawn)
        self._now = now
        self._spawn = spawn
        self._wake = wake
        self._info = info
        self._deliver = deliver
        self._announce = announce
        self._check = check
        self._current_link = current_link
        self._cdn_tasks: dict[int, asyncio.Task[Any]] = {}
        #: CDN fetches by phase (join ramp, steady state: core.cdn_phase); the agent sets the
        #: start segment.
        self.cdn_fetch_counts = CdnFetchCounts()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flushing = False

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None

    # -- inputs ------------------------------------------------------------------------------

    def on_event(self, link: Any, event: Any) -> None:
        """One peer session event (the swarm's ``on_event(link, event)``)."""
        try:
            name = self.links.name(link)
            if isinstance(event, HelloReceived):
                keys = getattr(link, "identity_keys", None)
                if keys is not None:  # address and certificate: bans outlive the peer id
                    self.exchange.set_link_keys(name, keys())
            self.exchange.on_peer_event(name, peer_id_of(link), event, self._now())
            if isinstance(event, SessionClosed):
                self.links.closed(link, event)
            self.flush()
        except Exception:  # one bad event must not take the agent down
            logger.exception("handling %s failed", type(event).__name__)
        if not isinstance(event, _QUIET_EVENTS):
            self._wake()

    async def _cdn_fetch(self, action: FetchCdn, info: SegmentInfo) -> None:
        fetch_id = action.fetch_id

        def on_total(total: int) -> None:
            self.exchange.cdn_total(fetch_id, total, self._now())
            self.flush()

        first = True
        last_chunk_at = 0.0
        max_gap_s = 0.0

        def on_chunk(pos: int, data: bytes) -> None:
            nonlocal first, last_chunk_at, max_gap_s
            now = self._now()
            if first and self._cdn_progress is not None:
                self._cdn_progress(action.segment, "first_byte", now)
            elif not first:
                max_gap_s = max(max_gap_s, now - last_chunk_at)
            first = False
            last_chunk_at = now
            self.exchange.cdn_data(fetch_id, pos, data, now)
            self.flush()

        try:
            result = await self.cdn.fetch(
                info.uri,
                byte_range=info.byte_range,
                offset=action.offset,
                on_chunk=on_chunk,
                on_total=on_total,
            )
        except CdnError as exc:
            logger.warning("CDN fetch of %s failed: %s", action.segment, exc)
            if self._cdn_progress is not None:
                self._cdn_progress(action.segment, "failed", self._now())
            self.exchange.cdn_failed(fetch_id, self._now())
        else:
            if self._cdn_progress is not None:
                gap = round(max_gap_s, 3)
                self._cdn_progress(
                    action.segment, "done", self._now(), bytes=len(result.data), max_gap_s=gap
                )
            self.exchange.cdn_done(fetch_id, result.total_bytes, result.elapsed_s, self._now())
        finally:
            self._cdn_tasks.pop(fetch_id, None)
        self.flush()
        self._wake()

    async def _verify(self, action: Verify, info: SegmentInfo, peer_bytes: bool) -> None:
        verdict = await self._check(info, action.data, action.total_bytes, peer_bytes)
        if verdict is Verdict.MISMATCH:
            logger.warning("%s failed its hash", action.segment)
        self.exchange.verdict(action.segment, verdict, self._now())
        self.flush()
        self._wake()

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self.exchange.handle_timer(self._now())
        self.flush()

    # -- outputs -----------------------------------------------------------------------------

    def flush(self) -> None:
        """Carry out every action the exchange has, then re-arm its timer. A link call may
        deliver an event at once (and so flush again): the outer call carries on in order."""
        if self._flushing:
            return
        self._flushing = True
        try:
            while (action := self.exchange.next_action()) is not None:
                self._perform(action)
        finally:
            self._flushing = False
        at = self.exchange.get_timer()
        if at != self._timer_at:
            self.close()
            if at is not None:
                loop = asyncio.get_running_loop()
                self._timer_at = at
                self._timer = loop.call_at(max(at, loop.time() + _MIN_TIMER_S), self._on_timer)

    def _perform(self, action: Action) -> None:
        if isinstance(action, FetchCdn | Verify):
            info = self._info(action.segment)
            if info is None:  # the exchange checked its timeline, which is the agent's
                raise AssertionError(f"{action.segment} is not in the timeline")
            if isinstance(action, FetchCdn):
                self.cdn_fetch_counts.count(action.segment.sequence)
                self._cdn_tasks[action.fetch_id] = self._spawn(self._cdn_fetch(action, info))
            else:
                # Only a peer's bytes need the manifest to list the segment: the CDN's are
                # trusted when it does not (docs/exchange.md 6), so they wait for no refresh.
                held = self.exchange.held.get(action.segment)
                peer_bytes = held is None or any(p is not None for p in held.contributors)
                self._spawn(self._verify(action, info, peer_bytes))
        elif isinstance(action, CancelCdn):
            task = self._cdn_tasks.pop(action.fetch_id, None)
            if task is not None:
                task.cancel()
        elif isinstance(action, RequestPeer):
            self._request(action)
        elif isinstance(action, Deliver):
            info = self._info(action.segment)
            if info is not None:
                self._deliver(info)
        elif isinstance(action, GiveUp):
            logger.error("%s failed its hash too often: giving up on it", action.segment)
        elif isinstance(action, AnnounceHave | AnnounceFetching | AnnounceLost):
            self._announce(action)
        else:
            if isinstance(action, CloseLink) and self._report is not None:
                reason = _REPORTED_CLOSES.get(action.reason)
                link = self.links.get(action.link)
                if reason is not None and link is not None:
                    self._report(peer_id_of(link), reason)
            self.links.perform(action)

    def _request(self, action: RequestPeer) -> None:
        """A request goes only on the link the swarm keeps for the peer: of two links to one
        peer the swarm is closing one, and a link drained to make room (docs/signaling.md)
        closes once its transfers end, so a request there would fail or hold the link open
        (and the peer be avoided for the segment). Otherwise it is not sent, as when the
        session cannot take it."""
        link = self.links.get(action.link)
        current = self._current_link(action.peer_id)
        if link is None or link is not current or not link.session.can_request:
            self.exchange.request_not_sent(action.link, action.segment, self._now())
            self._wake()
            return
        request_id = link.request(action.segment, action.offset)
        self.exchange.request_sent(action.link, action.segment, request_id)
