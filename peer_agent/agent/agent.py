"""The headless peer agent: playlists, CDN, swarm, integrity and a virtual player, composed.

One asyncio loop asks the core scheduler (:func:`peer_agent.core.scheduler.decide`) what to do,
from a :class:`SchedulerView` built exactly as the simulator builds it, and carries out its
actions: CDN fetches, peer requests, cancels. Every other input (playlist refreshes, peer
events, finished fetches) only updates state and wakes the loop. Bytes become a segment only
after their hash matches the manifest; only then are they played, stored, announced or
uploaded in full (a download in progress, from the CDN or a peer, is relayed cut-through but
its last frame only once our copy verified: docs/protocol.md, "Relaying before the segment is
complete").

The parts: :mod:`.view` builds the scheduler's view, :mod:`.intake` turns fetched bytes into
verified segments, :mod:`.exchange` handles peer sessions and uploads, :mod:`.report` the
status and summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import statistics
from typing import Any
from urllib.parse import urljoin

from ..core.ids import SegmentId
from ..core.playback import PlaybackModel
from ..core.scheduler import (
    CancelTransfer,
    FetchFromCdn,
    FetchFromPeer,
    decide,
)
from ..core.store import SegmentStore
from ..core.throughput import ThroughputEstimator
from ..core.wire import FetchingEntry
from . import report
from .cdn import CdnError, CdnFetcher
from .config import AgentConfig
from .exchange import Exchange
from .intake import Intake
from .integrity import Manifest, Penalties, hash_service_manifest_url
from .playlist import (
    Rendition,
    SegmentInfo,
    Timeline,
    choose_rendition,
    parse_master,
    parse_media,
)
from .state import Held, Neighbour, SwarmFactory, SwarmLike, Transfer
from .view import build_view

logger = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES = 500_000


def ice_servers_of(config: AgentConfig) -> tuple[Any, ...]:
    """``RTCIceServer``s of the agent's configured ICE URLs; ``turn:``/``turns:`` URLs carry
    ``ice_username``/``ice_credential``. ValueError for a URL that is not STUN/TURN or carries
    credentials itself, or credentials with no TURN URL to use them."""
    from aiortc import RTCIceServer

    servers = []
    has_turn = False
    for url in config.ice_servers:
        if not url.startswith(("stun:", "turn:", "turns:")):
            raise ValueError("an ICE server URL must start with stun:, turn: or turns:")
        if "@" in url:
            raise ValueError("put TURN credentials in --ice-username/--ice-credential, not the URL")
        if url.startswith("stun:"):
            servers.append(RTCIceServer(urls=url))
        else:
            has_turn = True
            servers.append(
                RTCIceServer(
                    urls=url, username=config.ice_username, credential=config.ice_credential
                )
            )
    has_creds = config.ice_username is not None or config.ice_credential is not None
    if has_creds and not has_turn:
        raise ValueError("ICE credentials given but no turn:/turns: URL to use them with")
    return tuple(servers)


def _default_swarm_factory(config: AgentConfig) -> SwarmFactory:
    def make(info_hash: str, peer_id: str, on_event: Any, hello: Any) -> SwarmLike:
        from ..net.swarm import Swarm, SwarmConfig

        assert config.tracker_url is not None
        base = config.swarm if config.swarm is not None else SwarmConfig()
        swarm_config = dataclasses.replace(
            base,
            max_peers=config.max_peers,
            ice_servers=ice_servers_of(config),
            host_addresses=config.host_addresses,
            session=dataclasses.replace(base.session, leech_only=config.leech_only),
            tracker=dataclasses.replace(base.tracker, request_ice_servers=config.ice_from_tracker),
        )
        swarm: SwarmLike = Swarm(
            config.tracker_url,
            info_hash,
            peer_id,
            on_event=on_event,
            hello=hello,
            config=swarm_config,
            token=config.tracker_token,
            rng=random.Random(config.seed),
        )
        return swarm

    return make


def make_ids(playlist_url: str, rng: random.Random) -> tuple[str, str]:
    """(info_hash, peer_id) as the network layer derives them."""
    from ..net.swarm import make_peer_id, swarm_id_for

    return swarm_id_for(playlist_url), make_peer_id(rng)


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        swarm_factory: SwarmFactory | None = None,
        peer_id: str | None = None,
        info_hash: str | None = None,
    ) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        if config.tracker_url is not None and (peer_id is None or info_hash is None):
            ih, pid = make_ids(config.playlist_url, self.rng)
            info_hash = info_hash or ih
            peer_id = peer_id or pid
        self.peer_id = peer_id or f"-PH0001-{self.rng.getrandbits(48):012x}"
        self.info_hash = info_hash or ""
        self._swarm_factory = swarm_factory or (
            _default_swarm_factory(config) if config.tracker_url else None
        )
        self.swarm: SwarmLike | None = None
        self.cdn = CdnFetcher(config.cdn, rng=random.Random(self.rng.random()))
        self.store = SegmentStore(config.store_max_bytes)
        self.penalties = Penalties(config.integrity)
        self.manifest = Manifest(config.manifest_url)
        self.timeline: Timeline | None = None
        self.rendition: Rendition | None = None
        self.player: PlaybackModel | None = None
        self.exchange = Exchange(self)
        self.intake = Intake(self)
        self.transfers: dict[SegmentId, Transfer] = {}
        self.held: dict[SegmentId, Held] = {}
        self.avoid: dict[SegmentId, frozenset[str]] = {}
        self.sizes: dict[SegmentId, int] = {}
        self.verified: set[SegmentId] = set()
        self.neighbours: dict[str, Neighbour] = {}
        self.peer_rates: dict[str, ThroughputEstimator] = {}
        self.cdn_rate = ThroughputEstimator()
        self.hash_retries: dict[SegmentId, int] = {}
        #: Segments that failed their hash more than ``max_hash_retries`` times.
        self.given_up: set[SegmentId] = set()
        self.connecting_until = 0.0
        self.bytes_cdn = 0
        self.bytes_p2p = 0
        self.bytes_init = 0
        self.inits_verified = 0
        self.hash_failures = 0
        self.unverifiable = 0
        self.cdn_failures = 0
        self.cdn_resumes = 0
        self.decisions = 0
        self.peers_seen: set[str] = set()
        self.latency_samples: list[float] = []
        self.started_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._inits: dict[str, bytes] = {}
        self._manifest_refresh: asyncio.Task[None] | None = None
        self._manifest_refreshed_at = -1e9
        self._final_now: float | None = None

    # -- clock and helpers -----------------------------------------------------------------

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def wake(self) -> None:
        self._wake.set()

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("agent task failed", exc_info=task.exception())

    def stop(self) -> None:
        """Ask :meth:`run` to finish (it returns the summary)."""
        self._stop.set()
        self._wake.set()

    def info(self, segment: SegmentId) -> SegmentInfo | None:
        return None if self.timeline is None else self.timeline.get(segment.sequence)

    def size_estimate(self, segment: SegmentId) -> int:
        known = self.sizes.get(segment)
        if known is not None:
            return known
        info = self.info(segment)
        if info is not None and info.byte_range is not None:
            return info.byte_range.length
        if self.sizes:
            return int(statistics.fmean(list(self.sizes.values())[-20:]))
        rendition = self.rendition
        if rendition is not None and rendition.bandwidth_bits_per_s and info is not None:
            return max(1, int(rendition.bandwidth_bits_per_s * info.duration_s / 8))
        return DEFAULT_SEGMENT_BYTES

    # -- start-up ----------------------------------------------------------------------------

    async def _load_playlists(self) -> None:
        url = self.config.playlist_url
        text = await self.cdn.get_text(url)
        renditions = parse_master(text, url)
        self.rendition = choose_rendition(renditions, self.config.rendition)
        if self.rendition.uri != url:
            text = await self.cdn.get_text(self.rendition.uri)
        media = parse_media(text, self.rendition.uri)
        self.timeline = Timeline(self.rendition.index)
        self.timeline.update(media, self.now())
        self._refresh_interval_s = media.refresh_interval_s

    async def _load_manifest(self) -> None:
        assert self.rendition is not None
        url = self.config.manifest_url
        if url is None and self.config.hash_service_url is not None:
            url = hash_service_manifest_url(self.config.hash_service_url, self.rendition.uri)
        if url is None and self.config.discover_manifest:
            candidate = urljoin(self.rendition.uri, "manifest.json")
            try:
                result = await self.cdn.fetch(candidate)
                self.manifest = Manifest(candidate)
                self.manifest.update(result.data.decode("utf-8"))
                logger.info("integrity manifest found at %s", candidate)
            except (CdnError, ValueError) as exc:
                logger.info("no integrity manifest (%s): size-only checks", exc)
            return
        if url is not None:
            self.manifest = Manifest(url)
            await self.refresh_manifest()

    async def refresh_manifest(self) -> None:
        if self.manifest.url is None:
            return
        try:
            result = await self.cdn.fetch(self.manifest.url)
            self.manifest.update(result.data.decode("utf-8"))
        except (CdnError, ValueError) as exc:
            logger.warning("manifest refresh failed: %s", exc)
        self._manifest_refreshed_at = self.now()

    def _hello(self) -> tuple[list[SegmentId], list[FetchingEntry]]:
        have = list(self.store)[-16384:]
        # Every download in progress is announced, from the CDN or a peer: both are relayed
        # cut-through, the last frame withheld until our copy verifies.
        busy = list(self.transfers)[-256:]
        fetching = [FetchingEntry(s, min(self.sizes.get(s, 0), 64 * 1024 * 1024)) for s in busy]
        return have, fetching

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        """Play until ``duration_s`` has passed, the stream ended, or :meth:`stop`."""
        self._loop = asyncio.get_running_loop()
        self.started_at = self.now()
        try:
            await self._load_playlists()
            await self._load_manifest()
            assert self.timeline is not None
            start = self.timeline.live_start_s(self.config.latency_segments)
            if self.timeline.ended:
                start = self.timeline.ordered()[0].start_s
            # Startup time counts from run(): playlist and manifest loads included.
            self.player = PlaybackModel(
                self.config.playback, start, self.started_at, end_s=self.timeline.end_s
            )
            for info in self.timeline.ordered():
                if info.init is not None:
                    self.spawn(self.intake.fetch_init(info.init))
                    break
            if self._swarm_factory is not None:
                self.swarm = self._swarm_factory(
                    self.info_hash, self.peer_id, self.exchange.on_event, self._hello
                )
                self.swarm.set_position(start)
                await self.swarm.start()
                self.connecting_until = self.now() + self.config.connect_grace_s
            if not self.timeline.ended:
                self.spawn(self._refresh_loop())
            self.spawn(self._sample_loop())
            if self.swarm is not None:
                self.spawn(self._stats_loop())
            await self._main_loop()
        finally:
            await self._shutdown()
        return self.summary()

    async def _main_loop(self) -> None:
        deadline = (
            self.started_at + self.config.duration_s if self.config.duration_s else float("inf")
        )
        assert self.player is not None
        while not self._stop.is_set():
            now = self.now()
            self.player.advance(now)
            if now >= deadline or self.player.ended:
                break
            self._wake.clear()
            wake_at = self.decide(now)
            for t in (self.player.next_event_at(), deadline):
                if t is not None:
                    wake_at = min(wake_at, t)
            timeout = max(0.0, wake_at - self.now())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        self._final_now = self.now()

    async def _shutdown(self) -> None:
        for transfer in list(self.transfers.values()):
            if transfer.task is not None:
                transfer.task.cancel()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.swarm is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):  # the final counters, if the tracker is there
                    await self.swarm.send_stats(
                        self.bytes_p2p, self.exchange.bytes_uploaded, self.bytes_cdn
                    )
            with contextlib.suppress(Exception):
                await self.swarm.stop()
        await self.cdn.aclose()

    async def _refresh_loop(self) -> None:
        assert self.timeline is not None and self.rendition is not None
        while not self.timeline.ended:
            await asyncio.sleep(self._refresh_interval_s)
            try:
                text = await self.cdn.get_text(self.rendition.uri)
                media = parse_media(text, self.rendition.uri)
            except (CdnError, ValueError) as exc:
                logger.warning("playlist refresh failed: %s", exc)
                continue
            self._refresh_interval_s = media.refresh_interval_s
            added = self.timeline.update(media, self.now())
            if self.timeline.ended and self.player is not None:
                self.player.end_s = self.timeline.end_s
            for info in added:
                if info.init is not None and info.init.uri not in self._inits:
                    self.spawn(self.intake.fetch_init(info.init))
            if self.player is not None:
                self._forget_played(self.player.playhead_s)
                if self.swarm is not None:
                    self.swarm.set_position(self.player.playhead_s)
            if added or self.timeline.ended:
                self.wake()

    def _forget_played(self, playhead_s: float) -> None:
        """Drop state about segments long behind the playhead (partials, avoid lists)."""
        assert self.timeline is not None
        self.timeline.forget_before(playhead_s - 60.0)
        for segment in list(self.held):
            info = self.info(segment)
            if segment not in self.transfers and (info is None or info.end_s < playhead_s):
                self.drop_held(segment)
                self.avoid.pop(segment, None)

    async def _sample_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            player, timeline = self.player, self.timeline
            if player is None or timeline is None or player.started_at is None:
                continue
            player.advance(self.now())
            if not timeline.ended:
                self.latency_samples.append(timeline.edge_s - player.playhead_s)

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.stats_interval_s)
            if self.swarm is not None:
                try:
                    await self.swarm.send_stats(
                        self.bytes_p2p, self.exchange.bytes_uploaded, self.bytes_cdn
                    )
                except Exception as exc:  # the tracker may be away: keep playing
                    logger.debug("stats not sent: %s", exc)

    # -- deciding ------------------------------------------------------------------------------

    def decide(self, now: float) -> float:
        """Ask the scheduler and carry out its actions; returns when to ask again."""
        view = build_view(self, now)
        decision = decide(view, self.config.scheduler, self.rng)
        self.decisions += 1
        for action in decision.actions:
            if isinstance(action, CancelTransfer):
                self.cancel_transfer(action.segment, now)
            elif isinstance(action, FetchFromCdn):
                self.intake.start_cdn(action.segment, action.offset, now)
            elif isinstance(action, FetchFromPeer):
                self.exchange.start_peer(action.segment, action.peer_id, action.offset, now)
        if decision.wake_at is None:
            return now + self.config.scheduler.idle_recheck_s
        return decision.wake_at

    def add_avoid(self, segment: SegmentId, peer_id: str) -> None:
        self.avoid[segment] = self.avoid.get(segment, frozenset()) | {peer_id}

    def cancel_transfer(self, segment: SegmentId, now: float) -> None:
        transfer = self.transfers.get(segment)
        if transfer is None or transfer.verifying:
            return
        if transfer.peer_id is None:
            if transfer.task is not None:
                transfer.task.cancel()
            del self.transfers[segment]
            return
        del self.transfers[segment]
        self.add_avoid(segment, transfer.peer_id)
        if transfer.link is not None and transfer.request_id is not None:
            transfer.link.cancel(transfer.request_id)

    def held_for(self, segment: SegmentId, offset: int) -> Held:
        held = self.held.setdefault(segment, Held())
        if len(held.buf) > offset:
            self.truncate_held(segment, offset)
        return held

    def truncate_held(self, segment: SegmentId, length: int) -> None:
        """Keep only bytes ``[0, length)`` of a segment in progress. Whoever we relayed more
        to is aborted: the bytes that replace the rest may differ from what they got."""
        held = self.held.get(segment)
        if held is not None and len(held.buf) > length:
            held.truncate(length)
            self.exchange.abort_relays(segment, beyond=length)

    def drop_held(self, segment: SegmentId) -> None:
        """Give up a segment in progress without verifying it: relays of it are aborted."""
        self.held.pop(segment, None)
        self.exchange.abort_segment(segment)

    def transfer_aborted(self, transfer: Transfer) -> None:
        """The peer gave up our request (ABORT). If it was relaying cut-through and its own
        copy failed (UPSTREAM_FAILED), the bytes it passed on were never vouched for: they are
        dropped, so an honest relay of a bad upstream is never blamed for them. The event does
        not carry the reason, so every ABORT is treated so (it is rare otherwise: eviction,
        shutdown)."""
        self.truncate_held(transfer.segment, transfer.offset)

    def announce_fetching(self, segment: SegmentId) -> None:
        if self.swarm is not None and not self.config.leech_only:
            size = self.sizes.get(segment, 0)
            self.swarm.broadcast_fetching([FetchingEntry(segment, size)])

    # -- results -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Numbers for a live status line."""
        return report.status(self)

    def summary(self) -> dict[str, Any]:
        """The final summary (what ``p2p-agent --json`` prints)."""
        return report.summary(self)
