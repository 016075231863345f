"""The headless peer agent: playlists, CDN, swarm, integrity and a virtual player, composed.

One asyncio loop asks the core scheduler (:func:`peer_agent.core.scheduler.decide`) what to do,
from a :class:`SchedulerView` built exactly as the simulator builds it, and carries out its
actions: CDN fetches, peer requests, cancels. Every other input (playlist refreshes, peer
events, finished fetches) only updates state and wakes the loop. Bytes become a segment only
after their hash matches the manifest; only then are they played, stored, announced or
uploaded in full (a fetch in progress is relayed cut-through, as the protocol allows).

Peer-side logic (session events, uploads) lives in :mod:`peer_agent.agent.exchange`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urljoin

from ..core.ids import SegmentId
from ..core.playback import PlaybackModel
from ..core.scheduler import (
    CancelTransfer,
    FetchFromCdn,
    FetchFromPeer,
    PeerView,
    SchedulerView,
    SegmentView,
    TransferView,
    decide,
)
from ..core.store import SegmentStore
from ..core.throughput import ThroughputEstimator
from ..core.wire import FetchingEntry
from .cdn import CdnError, CdnFetcher
from .config import AgentConfig
from .exchange import Exchange
from .integrity import Manifest, Penalties, Verdict, sha256_hex
from .playlist import (
    InitMap,
    Rendition,
    SegmentInfo,
    Timeline,
    choose_rendition,
    parse_master,
    parse_media,
)

logger = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES = 500_000


class SwarmLike(Protocol):
    """What the agent needs of :class:`peer_agent.net.Swarm`."""

    links: dict[str, Any]

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def broadcast_have(self, segments: Any) -> None: ...
    def broadcast_fetching(self, entries: Any) -> None: ...
    def broadcast_lost(self, segments: Any) -> None: ...
    def set_position(self, position_s: float | None) -> None: ...
    async def send_stats(self, bytes_p2p_down: int, bytes_p2p_up: int, bytes_cdn: int) -> None: ...


#: (info_hash, peer_id, on_event, hello) -> a swarm
SwarmFactory = Callable[[str, str, Callable[[Any, Any], None], Callable[[], Any]], SwarmLike]


@dataclass
class Held:
    """Bytes ``[0, len(buf))`` of a segment being assembled (possibly from several sources)."""

    buf: bytearray = field(default_factory=bytearray)
    total: int | None = None
    #: Peer ids that supplied bytes (``None``: the CDN).
    contributors: set[str | None] = field(default_factory=set)


@dataclass(eq=False)
class Transfer:
    segment: SegmentId
    peer_id: str | None  # None: the CDN
    started_at: float
    offset: int
    last_data_at: float | None = None
    received: int = 0
    task: asyncio.Task[None] | None = None
    link: Any = None
    request_id: int | None = None
    #: The bytes are complete and being checked: the scheduler sees it as a CDN fetch.
    verifying: bool = False


@dataclass
class Neighbour:
    peer_id: str
    have: set[SegmentId] = field(default_factory=set)
    fetching: set[SegmentId] = field(default_factory=set)
    uploads: bool = True
    choked_until: float = 0.0
    open: bool = False


def _default_swarm_factory(config: AgentConfig) -> SwarmFactory:
    def make(info_hash: str, peer_id: str, on_event: Any, hello: Any) -> SwarmLike:
        from aiortc import RTCIceServer

        from ..net.swarm import Swarm, SwarmConfig

        assert config.tracker_url is not None
        base = config.swarm if config.swarm is not None else SwarmConfig()
        swarm_config = dataclasses.replace(
            base,
            max_peers=config.max_peers,
            ice_servers=tuple(RTCIceServer(urls=url) for url in config.ice_servers),
            host_addresses=config.host_addresses,
            session=dataclasses.replace(base.session, leech_only=config.leech_only),
        )
        swarm: SwarmLike = Swarm(
            config.tracker_url,
            info_hash,
            peer_id,
            on_event=on_event,
            hello=hello,
            config=swarm_config,
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
        self.transfers: dict[SegmentId, Transfer] = {}
        self.held: dict[SegmentId, Held] = {}
        self.avoid: dict[SegmentId, frozenset[str]] = {}
        self.sizes: dict[SegmentId, int] = {}
        self.verified: set[SegmentId] = set()
        self.neighbours: dict[str, Neighbour] = {}
        self.peer_rates: dict[str, ThroughputEstimator] = {}
        self.cdn_rate = ThroughputEstimator()
        self.hash_retries: dict[SegmentId, int] = {}
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

    async def _fetch_init(self, init: InitMap) -> None:
        if init.uri in self._inits:
            return
        self._inits[init.uri] = b""
        try:
            result = await self.cdn.fetch(init.uri, byte_range=init.byte_range)
        except CdnError as exc:
            logger.warning("init section %s: %s", init.uri, exc)
            del self._inits[init.uri]
            return
        self.bytes_init += len(result.data)
        self.bytes_cdn += len(result.data)
        digest = self.manifest.expected_for(init.key, init.uri, init.byte_range)
        if digest is not None and sha256_hex(result.data) != digest:
            self.hash_failures += 1
            logger.warning("init section %s failed its hash", init.uri)
            del self._inits[init.uri]  # fetched again with the next segment that needs it
            return
        self._inits[init.uri] = result.data
        self.inits_verified += digest is not None

    def _hello(self) -> tuple[list[SegmentId], list[FetchingEntry]]:
        have = list(self.store)[-16384:]
        fetching = [
            FetchingEntry(s, min(self.sizes.get(s, 0), 64 * 1024 * 1024))
            for s in list(self.transfers)[-256:]
        ]
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
            self.player = PlaybackModel(
                self.config.playback, start, self.now(), end_s=self.timeline.end_s
            )
            for info in self.timeline.ordered():
                if info.init is not None:
                    self.spawn(self._fetch_init(info.init))
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
                    self.spawn(self._fetch_init(info.init))
            if self.player is not None:
                self.timeline.forget_before(self.player.playhead_s - 60.0)
                if self.swarm is not None:
                    self.swarm.set_position(self.player.playhead_s)
            if added or self.timeline.ended:
                self.wake()

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

    def view(self, now: float) -> SchedulerView:
        """The scheduler's view, built the way the simulator builds it."""
        assert self.player is not None and self.timeline is not None
        playhead = self.player.playhead_s
        segments = []
        for info in self.timeline.ordered():
            sid = info.segment_id
            if info.end_s <= playhead or sid in self.verified:
                continue
            held = self.held.get(sid)
            segments.append(
                SegmentView(
                    segment=sid,
                    start_s=info.start_s,
                    duration_s=info.duration_s,
                    size_bytes=self.size_estimate(sid),
                    known_since=self.timeline.known_since.get(sid.sequence, now),
                    partial_bytes=len(held.buf) if held is not None else 0,
                    avoid=self.avoid.get(sid, frozenset()),
                )
            )
        peers = []
        for pid, nb in self.neighbours.items():
            if not nb.open:
                continue
            rate = self.peer_rates.get(pid)
            peers.append(
                PeerView(
                    peer_id=pid,
                    have=nb.have,
                    fetching=nb.fetching,
                    throughput_bytes_per_s=rate.estimate_bytes_per_s if rate else None,
                    choked_until=max(nb.choked_until, self.penalties.blocked_until(pid)),
                    uploads=nb.uploads and not self.penalties.is_banned(pid),
                )
            )
        transfers = []
        for t in self.transfers.values():
            held = self.held.get(t.segment)
            total = held.total if held is not None else None
            transfers.append(
                TransferView(
                    segment=t.segment,
                    peer_id=None if t.verifying else t.peer_id,
                    started_at=t.started_at,
                    offset=t.offset,
                    received_bytes=t.received,
                    total_bytes=total,
                    last_data_at=t.last_data_at,
                )
            )
        return SchedulerView(
            now=now,
            self_id=self.peer_id,
            playhead_s=playhead,
            segments=segments,
            have=self.verified,
            transfers=transfers,
            peers=peers,
            cdn_throughput_bytes_per_s=self.cdn_rate.estimate_bytes_per_s,
            rate=1.0,
            connecting_until=self.connecting_until,
        )

    def decide(self, now: float) -> float:
        """Ask the scheduler and carry out its actions; returns when to ask again."""
        view = self.view(now)
        decision = decide(view, self.config.scheduler, self.rng)
        self.decisions += 1
        for action in decision.actions:
            if isinstance(action, CancelTransfer):
                self.cancel_transfer(action.segment, now)
            elif isinstance(action, FetchFromCdn):
                self.start_cdn(action.segment, action.offset, now)
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
            del held.buf[offset:]
        return held

    def announce_fetching(self, segment: SegmentId) -> None:
        if self.swarm is not None and not self.config.leech_only:
            size = self.sizes.get(segment, 0)
            self.swarm.broadcast_fetching([FetchingEntry(segment, size)])

    # -- CDN -----------------------------------------------------------------------------------

    def start_cdn(self, segment: SegmentId, offset: int, now: float) -> None:
        info = self.info(segment)
        if segment in self.transfers or info is None:
            return
        held = self.held_for(segment, offset)
        offset = len(held.buf)
        self.cdn_resumes += offset > 0
        transfer = Transfer(segment, None, now, offset)
        self.transfers[segment] = transfer
        transfer.task = self.spawn(self._cdn_fetch(transfer, info, held))
        self.announce_fetching(segment)

    async def _cdn_fetch(self, transfer: Transfer, info: SegmentInfo, held: Held) -> None:
        segment = transfer.segment

        def on_total(total: int) -> None:
            held.total = total
            self.sizes[segment] = total
            self.exchange.pump_segment(segment)

        def on_chunk(pos: int, data: bytes) -> None:
            if self.transfers.get(segment) is not transfer or pos != len(held.buf):
                return
            held.buf += data
            held.contributors.add(None)
            transfer.received += len(data)
            transfer.last_data_at = self.now()
            self.bytes_cdn += len(data)
            self.exchange.pump_segment(segment)

        try:
            result = await self.cdn.fetch(
                info.uri,
                byte_range=info.byte_range,
                offset=transfer.offset,
                on_chunk=on_chunk,
                on_total=on_total,
            )
        except CdnError as exc:
            logger.warning("CDN fetch of %s failed: %s", segment, exc)
            self.cdn_failures += 1
            if self.transfers.get(segment) is transfer:
                del self.transfers[segment]
            self.wake()
            return
        if self.transfers.get(segment) is not transfer:
            return
        self.cdn_rate.add_sample(transfer.received, max(1e-6, result.elapsed_s))
        held.total = result.total_bytes
        self.sizes[segment] = result.total_bytes
        await self.complete(transfer, held)

    # -- completing a segment ----------------------------------------------------------------

    async def complete(self, transfer: Transfer, held: Held) -> None:
        """All bytes of the segment are held: verify, then play, store, announce, serve."""
        segment = transfer.segment
        info = self.info(segment)
        data = bytes(held.buf)
        if info is None:  # fell out of the timeline meanwhile
            self.transfers.pop(segment, None)
            self.held.pop(segment, None)
            return
        transfer.verifying = True
        verdict = self.manifest.verify(info, data, held.total)
        if verdict is Verdict.UNKNOWN and self.manifest.url is not None:
            await self._refresh_manifest_soon()
            verdict = self.manifest.verify(info, data, held.total)
        if self.transfers.get(segment) is transfer:
            del self.transfers[segment]
        peers = {p for p in held.contributors if p is not None}
        if verdict is Verdict.UNKNOWN:
            if self.manifest.url is None or not peers:
                verdict = Verdict.OK  # size-only mode, or CDN bytes: trusted as they are
            else:
                self.unverifiable += 1
                logger.info("%s from peers has no hash in the manifest: refetching", segment)
                self._discard_and_refetch(segment)
                return
        if verdict is Verdict.MISMATCH:
            self.hash_failures += 1
            logger.warning("%s failed its hash (sources: %s)", segment, sorted(map(str, peers)))
            for pid in peers:
                if self.penalties.record(pid, self.now()):
                    self.exchange.ban(pid)
                self.add_avoid(segment, pid)
            self._discard_and_refetch(segment)
            return
        self._accept(info, data)

    async def _refresh_manifest_soon(self) -> None:
        if self._manifest_refresh is None or self._manifest_refresh.done():
            if self.now() - self._manifest_refreshed_at < 0.25:
                return
            self._manifest_refresh = self.spawn(self.refresh_manifest())
        with contextlib.suppress(Exception):
            await asyncio.shield(self._manifest_refresh)

    def _discard_and_refetch(self, segment: SegmentId) -> None:
        """Drop every byte of ``segment`` and fetch it again from the CDN."""
        self.held.pop(segment, None)
        self.exchange.abort_segment(segment)
        count = self.hash_retries.get(segment, 0) + 1
        self.hash_retries[segment] = count
        if count <= self.config.max_hash_retries:
            self.start_cdn(segment, 0, self.now())
        self.wake()

    def _accept(self, info: SegmentInfo, data: bytes) -> None:
        segment = info.segment_id
        now = self.now()
        self.verified.add(segment)
        self.avoid.pop(segment, None)
        self.sizes[segment] = len(data)
        assert self.player is not None
        self.player.add_media(info.start_s, info.duration_s, now)
        evicted = self.store.put(segment, data)
        self.held.pop(segment, None)
        if self.swarm is not None and not self.config.leech_only:
            if segment in self.store:
                self.swarm.broadcast_have([segment])
            lost = [s for s in evicted if s != segment]
            if lost:
                self.swarm.broadcast_lost(lost)
        self.exchange.pump_segment(segment)
        self.wake()

    # -- results ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        player = self.player
        now = self.now() if self._loop is not None else 0.0
        return {
            "t_s": round(now - self.started_at, 1),
            "playhead_s": round(player.playhead_s, 2) if player else None,
            "buffer_s": round(player.buffer_s, 2) if player else 0.0,
            "peers": sum(1 for nb in self.neighbours.values() if nb.open),
            "bytes_cdn": self.bytes_cdn,
            "bytes_p2p": self.bytes_p2p,
            "bytes_uploaded": self.exchange.bytes_uploaded,
            "stalls": player.stall_count if player else 0,
            "hash_failures": self.hash_failures,
        }

    def summary(self) -> dict[str, Any]:
        player = self.player
        now = self._final_now if self._final_now is not None else self.now()
        played = 0
        if player is not None and self.timeline is not None:
            head = player.playhead_s
            played = sum(
                1
                for s in self.verified
                if (i := self.timeline.get(s.sequence)) is not None and i.start_s < head - 1e-6
            )
            played += self._played_forgotten(head)
        total = self.bytes_cdn + self.bytes_p2p
        return {
            "peer_id": self.peer_id,
            "rendition": self.rendition.index if self.rendition else None,
            "duration_s": round(now - self.started_at, 3),
            "bytes_cdn": self.bytes_cdn,
            "bytes_p2p": self.bytes_p2p,
            "bytes_uploaded": self.exchange.bytes_uploaded,
            "offload_ratio": round(self.bytes_p2p / total, 4) if total else 0.0,
            "segments_played": played,
            "segments_verified": len(self.verified),
            "init_sections_verified": self.inits_verified,
            "hash_failures": self.hash_failures,
            "unverifiable": self.unverifiable,
            "integrity": self.manifest.mode,
            "peers_banned": sorted(self.penalties.banned),
            "peers_seen": len(self.peers_seen),
            "stall_count": player.stall_count if player else 0,
            "stall_s": round(player.stall_s(now), 3) if player else 0.0,
            "startup_s": None
            if player is None or player.startup_s is None
            else round(player.startup_s, 3),
            "latency_s_median": round(statistics.median(self.latency_samples), 3)
            if self.latency_samples
            else None,
            "ended": bool(player and player.ended),
            "cdn_requests": self.cdn.requests,
            "cdn_retries": self.cdn.retries,
            "cdn_failures": self.cdn_failures,
            "cdn_resumes": self.cdn_resumes,
            "tracker_connects": self._tracker_stat("connects"),
            "decisions": self.decisions,
        }

    def _tracker_stat(self, name: str) -> int | None:
        tracker = getattr(self.swarm, "tracker", None)
        stats = getattr(tracker, "stats", None)
        return None if stats is None else int(getattr(stats, name, 0))

    def _played_forgotten(self, head: float) -> int:
        """Verified segments dropped from the timeline (long behind the playhead)."""
        assert self.timeline is not None
        return sum(1 for s in self.verified if self.timeline.get(s.sequence) is None)
