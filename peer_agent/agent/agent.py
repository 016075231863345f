"""The headless peer agent: playlists, CDN, swarm, integrity and a virtual player, composed.

The policy is the core's :class:`~peer_agent.core.exchange.SegmentExchange` (docs/exchange.md)
and scheduler (docs/scheduling.md); this is their asyncio glue, in the style of aioquic's: it
feeds the exchange every input with ``loop.time()`` (peer session events, CDN progress, hash
verdicts, the timeline), carries out the actions it pulls (CDN fetches, session calls,
announcements, hashing, handing segments to the player), and re-arms one timer from
``get_timer()``. One loop asks the scheduler what to do, from the exchange's view, and hands its
decision back to the exchange.

The other modules: :mod:`.glue` drives the exchange (inputs in, actions out, its timer),
:mod:`.links` names the peer links and carries out session actions, :mod:`.intake` hashes
segments and fetches init sections, :mod:`.report` the status and summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from typing import Any
from urllib.parse import urljoin

from ..core.cdn_phase import CdnFetchCounts
from ..core.events import (
    DataReceived,
    HelloReceived,
    RequestCompleted,
    RequestFailed,
    SessionClosed,
)
from ..core.exchange import SegmentExchange
from ..core.exchange_actions import (
    AnnounceFetching,
    AnnounceHave,
    AnnounceLost,
    ExchangeConfig,
    SegmentEntry,
)
from ..core.exchange_state import Penalties, Transfer, Verdict
from ..core.ids import SegmentId
from ..core.playback import PlaybackModel
from ..core.scheduler import CancelTransfer, FetchFromCdn, FetchFromPeer, decide
from ..core.store import SegmentStore
from ..core.wire import FetchingEntry
from . import intake, report
from .cdn import CdnError, CdnFetcher, CdnTooLarge
from .config import AgentConfig
from .glue import ExchangeGlue
from .integrity import Manifest, ManifestRejected, hash_service_manifest_url
from .links import peer_id_of
from .playlist import (
    InitMap,
    Rendition,
    SegmentInfo,
    Timeline,
    choose_rendition,
    parse_master,
    parse_media,
)
from .requests import RequestLog
from .state import SwarmFactory, SwarmLike
from .swarm_setup import default_swarm_factory, fan_out_config, ice_servers_of, make_ids

__all__ = ["Agent", "exchange_config", "ice_servers_of", "make_ids"]

logger = logging.getLogger(__name__)

_LAG_PROBE_S = 0.1
MAX_LAG_RECORDS = 4096


def _run_queue_wait_s() -> float:
    """Seconds this process's main thread spent runnable but waiting for a CPU (Linux; 0.0
    where ``/proc/self/schedstat`` is missing)."""
    try:
        with open("/proc/self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


MAX_LINK_PATHS = 256  # links whose path the summary lists


def exchange_config(config: AgentConfig, peer_id: str) -> ExchangeConfig:
    """The exchange's options, from the agent's."""
    return ExchangeConfig(
        self_id=peer_id,
        max_uploads=config.max_uploads,
        upload_cap_bytes_per_s=config.upload_cap_bytes_per_s,
        upload_burst_bytes=config.upload_burst_bytes,
        leech_only=config.leech_only,
        busy_backoff_s=config.busy_backoff_s,
        max_hash_retries=config.max_hash_retries,
        store_max_bytes=config.store_max_bytes,
        ban_after_failures=config.integrity.ban_after_failures,
        penalty_s=config.integrity.penalty_s,
        ban_sole_contributor=config.integrity.ban_sole_contributor,
    )


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
        #: The default factory is rebuilt once the bitrate is known (``fan_out_config``).
        self._default_swarm = swarm_factory is None and config.tracker_url is not None
        self._swarm_factory = swarm_factory or (
            default_swarm_factory(config) if config.tracker_url else None
        )
        self.swarm: SwarmLike | None = None
        self.cdn = CdnFetcher(config.cdn, rng=random.Random(self.rng.random()))
        self.exchange = SegmentExchange(exchange_config(config, self.peer_id))
        self.glue = ExchangeGlue(
            self.exchange,
            self.cdn,
            now=self.now,
            spawn=self.spawn,
            wake=self.wake,
            info=self.info,
            deliver=self._deliver,
            announce=self._announce,
            check=self._check,
            current_link=self._current_link,
            report=self._report_peer,
            cdn_progress=self._cdn_progress if config.request_timeline else None,
        )
        self.links = self.glue.links
        self.manifest = self._new_manifest(config.manifest_url)
        #: Highest sequence handed to the player (-1: none yet).
        self.last_sequence_delivered = -1
        self.timeline: Timeline | None = None
        self.rendition: Rendition | None = None
        self.player: PlaybackModel | None = None
        self.connecting_until = 0.0
        self.bytes_init = 0
        self.inits_verified = 0
        self.init_hash_failures = 0
        self.decisions = 0
        #: CDN fetches started, by the scheduler's reason (``urgent``, ``elected``, ``assigned``,
        #: ``backup``), with ``_resume`` when the fetch resumed held bytes (a Range request).
        self.cdn_fetch_reasons: Counter[str] = Counter()
        #: CDN fetches of urgent segments cancelled after a silence and started again
        #: (docs/scheduling.md rule 1).
        self.cdn_stall_cancels = 0
        #: with ``request_timeline``: moments the loop ran late or the process waited for a CPU
        self.lags: list[dict[str, float]] = []
        # Network path of each link when it opened: ICE candidate types and set-up time.
        self.link_paths: list[dict[str, Any]] = []
        self.latency_samples: list[float] = []
        self.started_at = 0.0
        self.requests = RequestLog(0.0)
        self.final_now: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._inits: dict[str, bytes] = {}
        self._manifest_refresh: asyncio.Task[None] | None = None
        self._manifest_refreshed_at = -1e9
        #: the MSN the refresh in flight asked from (None: the whole manifest)
        self._manifest_refresh_from: int | None = None
        #: refreshes sent so far
        self._manifest_requests = 0
        self._refresh_interval_s = 1.0

    # -- the exchange's state, read-only views ------------------------------------------------

    @property
    def store(self) -> SegmentStore:
        return self.exchange.store

    @property
    def verified(self) -> set[SegmentId]:
        return self.exchange.verified

    @property
    def sizes(self) -> dict[SegmentId, int]:
        return self.exchange.sizes

    @property
    def transfers(self) -> dict[SegmentId, Transfer]:
        return self.exchange.transfers

    @property
    def penalties(self) -> Penalties:
        return self.exchange.penalties

    @property
    def bytes_cdn(self) -> int:
        return self.exchange.bytes_cdn + self.bytes_init

    @property
    def bytes_p2p(self) -> int:
        return self.exchange.bytes_p2p

    @property
    def bytes_uploaded(self) -> int:
        return self.links.bytes_uploaded

    @property
    def hash_failures(self) -> int:
        return self.exchange.hash_failures + self.init_hash_failures

    # -- clock and helpers -----------------------------------------------------------------

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Use ``loop``'s clock without :meth:`run`: an agent driven by hand (tests)."""
        self._loop = loop

    @property
    def running(self) -> bool:
        return self._loop is not None

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
        self.push_timeline()

    async def _load_manifest(self) -> None:
        assert self.rendition is not None
        url = self.config.manifest_url
        if url is None and self.config.hash_service_url is not None:
            url = hash_service_manifest_url(self.config.hash_service_url, self.rendition.uri)
        if url is None and self.config.discover_manifest:
            candidate = urljoin(self.rendition.uri, "manifest.json")
            try:
                result = await self.cdn.fetch(candidate, max_bytes=self.config.max_manifest_bytes)
                self.manifest = self._new_manifest(candidate)
                self.manifest.fetches += 1
                self.manifest.bytes_fetched += len(result.data)
                self.manifest.update(result.data.decode("utf-8"))
                logger.info("integrity manifest found at %s", candidate)
            except (CdnTooLarge, ManifestRejected) as exc:
                # There is one, but it is refused: keep checking hashes (peer bytes are refetched
                # from the CDN until an answer is accepted), warn and count.
                self.manifest = self._new_manifest(candidate)
                reason = exc.reason if isinstance(exc, ManifestRejected) else "manifest_too_large"
                self.manifest.reject(reason)
                logger.warning("integrity manifest at %s refused (%s): %s", candidate, reason, exc)
            except (CdnError, ValueError) as exc:
                logger.info("no integrity manifest (%s): size-only checks", exc)
        elif url is not None:
            self.manifest = self._new_manifest(url)
            await self.refresh_manifest()
        self.exchange.set_sha256(self.manifest.url is not None)

    @property
    def cdn_fetch_counts(self) -> CdnFetchCounts:
        """CDN fetches by phase, join ramp or steady state (core.cdn_phase)."""
        return self.glue.cdn_fetch_counts

    async def _send_stats(self) -> None:
        assert self.swarm is not None
        counts = self.cdn_fetch_counts
        await self.swarm.send_stats(
            self.bytes_p2p, self.bytes_uploaded, self.bytes_cdn, (counts.join_ramp, counts.steady)
        )

    def _new_manifest(self, url: str | None) -> Manifest:
        cfg = self.config
        return Manifest(url, max_entries=cfg.max_manifest_entries, max_bytes=cfg.max_manifest_bytes)

    async def refresh_manifest(self, msn: int | None = None) -> None:
        """Fetch the manifest: whole the first time, then only the entries from MSN ``msn`` on
        (docs/exchange.md, section 12). A refused answer is a warning, counted, merged not."""
        manifest = self.manifest
        url = manifest.url_for(msn)
        if url is None:
            return
        try:
            result = await self.cdn.fetch(url, max_bytes=manifest.max_bytes)
            manifest.fetches += 1
            manifest.bytes_fetched += len(result.data)
            manifest.update(result.data.decode("utf-8"))
        except CdnTooLarge as exc:
            manifest.reject("manifest_too_large")
            logger.warning("manifest refused: %s", exc)
        except ManifestRejected as exc:
            manifest.reject(exc.reason)
            logger.warning("manifest refused (%s): %s", exc.reason, exc)
        except (CdnError, ValueError) as exc:
            logger.warning("manifest refresh failed: %s", exc)
        self._manifest_refreshed_at = self.now()

    async def _refresh_manifest_soon(self, msn: int | None = None, fresh: bool = False) -> bool:
        """One manifest refresh at a time, at most every quarter second for the MSNs it
        covers; waits for it and says whether this call sent it. A refresh in flight, or done
        less than 0.25 s ago, from a later MSN than ``msn`` does not list ``msn``: one from
        ``msn`` follows at once (an incremental answer holds only its MSN on; as
        web_demo/integrity.js does). Without that, a segment verified just after a later one
        found no entry, was taken as unverifiable and fetched again whole from the CDN: two
        player stalls on the bed at 200 ms / 3 % loss.

        ``fresh``: only the answer to a request sent after this call will do, sent no sooner
        than 0.25 s after the latest answer. A shared answer (in flight or just done when a
        segment was found unlisted) may have been asked for before the origin published that
        segment: a segment still unlisted after it is checked once more against a fresh one
        (docs/exchange.md, section 12)."""
        if fresh:
            return await self._fresh_manifest_refresh(msn)
        pending = self._manifest_refresh
        if pending is not None and not pending.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(pending)
            if self._manifest_covers(msn):
                return False
        elif self.now() - self._manifest_refreshed_at < 0.25 and self._manifest_covers(msn):
            return False
        own = self._manifest_refresh is None or self._manifest_refresh.done()
        task = self._send_manifest_refresh(msn) if own else self._manifest_refresh
        assert task is not None
        with contextlib.suppress(Exception):
            await asyncio.shield(task)
        return own

    async def _fresh_manifest_refresh(self, msn: int | None) -> bool:
        sent = self._manifest_requests
        while True:
            pending = self._manifest_refresh
            if pending is not None and not pending.done():
                with contextlib.suppress(Exception):
                    await asyncio.shield(pending)
                continue
            if self._manifest_requests > sent and self._manifest_covers(msn):
                return False  # another caller's request, sent after this call, answered it
            wait = self._manifest_refreshed_at + 0.25 - self.now()
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        with contextlib.suppress(Exception):
            await asyncio.shield(self._send_manifest_refresh(msn))
        return True

    def _send_manifest_refresh(self, msn: int | None) -> asyncio.Task[None]:
        self._manifest_refresh_from = msn if self.manifest.loaded else None
        self._manifest_requests += 1
        self._manifest_refresh = self.spawn(self.refresh_manifest(msn))
        return self._manifest_refresh

    def _manifest_covers(self, msn: int | None) -> bool:
        """Whether the latest manifest refresh asked for every entry from ``msn`` on."""
        started_from = self._manifest_refresh_from
        return started_from is None or msn is None or started_from <= msn

    def _hello(self) -> tuple[list[SegmentId], list[FetchingEntry]]:
        return self.exchange.hello_state()

    def push_timeline(self) -> None:
        """Tell the exchange the timeline's segments (after a load, a refresh or a forget)."""
        timeline, rendition = self.timeline, self.rendition
        assert timeline is not None
        now = self.now()
        entries = [
            SegmentEntry(
                info.segment_id,
                info.start_s,
                info.duration_s,
                timeline.known_since.get(info.segment_id.sequence, now),
                info.byte_range.length if info.byte_range is not None else None,
            )
            for info in timeline.ordered()
        ]
        bandwidth = rendition.bandwidth_bits_per_s if rendition is not None else None
        self.exchange.set_timeline(entries, bandwidth_bits_per_s=bandwidth or None)

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        """Play until ``duration_s`` has passed, the stream ended, or :meth:`stop`."""
        self._loop = asyncio.get_running_loop()
        self.started_at = self.now()
        self.requests.restart(self.started_at)
        try:
            await self._load_playlists()
            await self._load_manifest()
            assert self.timeline is not None
            start = self.timeline.live_start_s(self.config.latency_segments)
            if self.timeline.ended:
                start = self.timeline.ordered()[0].start_s
            for info in self.timeline.ordered():  # the start segment: its join ramp begins
                if info.end_s > start:
                    self.glue.cdn_fetch_counts.start(info.segment_id.sequence)
                    break
            # Startup time counts from run(): playlist and manifest loads included.
            self.player = PlaybackModel(
                self.config.playback, start, self.started_at, end_s=self.timeline.end_s
            )
            for info in self.timeline.ordered():
                if info.init is not None:
                    self.spawn(self._fetch_init(info.init))
                    break
            if self._default_swarm and self.rendition is not None:
                fan_out = fan_out_config(self.config, self.rendition.bandwidth_bits_per_s)
                if fan_out is not self.config:
                    logger.warning(
                        "upload cap %.0f B/s is below the stream's bitrate (%.0f B/s): "
                        "joining the swarm leech-only (docs/scheduling.md, 'Upload fan-out')",
                        self.config.upload_cap_bytes_per_s or 0.0,
                        (self.rendition.bandwidth_bits_per_s or 0) / 8,
                    )
                    self._swarm_factory = default_swarm_factory(fan_out)
            if self._swarm_factory is not None:
                self.swarm = self._swarm_factory(
                    self.info_hash, self.peer_id, self._on_swarm_event, self._hello
                )
                self.swarm.set_position(start)
                await self.swarm.start()
                self.connecting_until = self.now() + self.config.connect_grace_s
            if not self.timeline.ended:
                self.spawn(self._refresh_loop())
            self.spawn(self._sample_loop())
            if self.config.request_timeline:
                self.spawn(self._lag_loop())
            if self.swarm is not None:
                self.spawn(self._stats_loop())
            await self._main_loop()
        finally:
            await self._shutdown()
        return self.summary()

    async def _lag_loop(self) -> None:
        """For the timeline: each 0.1 s probe of the event loop that ran late, or during which
        the process waited for a CPU (``/proc/self/schedstat``), by 0.1 s or more: a stall
        after such a moment may be the machine's load rather than the scheduler's choice."""
        loop = asyncio.get_running_loop()
        waited = _run_queue_wait_s()
        while True:
            before = loop.time()
            await asyncio.sleep(_LAG_PROBE_S)
            lag_s = loop.time() - before - _LAG_PROBE_S
            now_waited = _run_queue_wait_s()
            cpu_wait_s, waited = now_waited - waited, now_waited
            if max(lag_s, cpu_wait_s) >= 0.1 and len(self.lags) < MAX_LAG_RECORDS:
                t = round(self.now() - self.started_at, 3)
                self.lags.append(
                    {"t": t, "lag_s": round(lag_s, 3), "cpu_wait_s": round(cpu_wait_s, 3)}
                )

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
        self.final_now = self.now()

    async def _shutdown(self) -> None:
        self.glue.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.swarm is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):  # the final counters, if the tracker is there
                    await self._send_stats()
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
                playhead_s = self.player.playhead_s
                self.timeline.forget_before(playhead_s - 60.0)
                self.push_timeline()
                self.exchange.forget_before(playhead_s, self.now())
                self.flush()
                if self.swarm is not None:
                    self.swarm.set_position(playhead_s)
            else:
                self.push_timeline()
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
                    await self._send_stats()
                except Exception as exc:  # the tracker may be away: keep playing
                    logger.debug("stats not sent: %s", exc)

    async def _fetch_init(self, init: InitMap) -> None:
        if init.uri in self._inits:
            return
        self._inits[init.uri] = b""
        result = await intake.fetch_init(self.cdn, self.manifest, init)
        self.bytes_init += result.fetched_bytes
        self.init_hash_failures += result.hash_failed
        self.inits_verified += result.verified
        if result.data is None:
            del self._inits[init.uri]  # fetched again with the next segment that needs it
        else:
            self._inits[init.uri] = result.data

    # -- deciding ------------------------------------------------------------------------------

    def swarm_size(self) -> int:
        """The swarm's size as the tracker last reported it (0: unknown, no swarm, or
        ``scheduler_swarm_size`` off), for the scheduler's seed rule (docs/scheduling.md)."""
        if not self.config.scheduler_swarm_size:
            return 0
        size = getattr(self.swarm, "swarm_size", 0)
        return size if isinstance(size, int) else 0

    def decide(self, now: float) -> float:
        """Ask the scheduler and hand its decision to the exchange; returns when to ask again."""
        assert self.player is not None
        fetchers, fetchers_until = (
            self.swarm.fetcher_assignment() if self.swarm is not None else ((), 0.0)
        )
        view = self.exchange.scheduler_view(
            now,
            self.player.playhead_s,
            connecting_until=self.connecting_until,
            fetchers=fetchers,
            fetchers_until=fetchers_until,
            swarm_size=self.swarm_size(),
        )
        decision = decide(view, self.config.scheduler, self.rng)
        self.decisions += 1
        for action in decision.actions:
            if isinstance(action, CancelTransfer):
                if action.peer_id is None:
                    self.cdn_stall_cancels += 1
                    if self.config.request_timeline:
                        self.requests.note("cdn_cancel", action.segment, now, reason=action.reason)
                else:
                    outcome = f"cancel:{action.reason}"
                    self.requests.ended(action.segment, action.peer_id, outcome, now)
        self.exchange.apply(decision.actions, now)
        started = []
        for action in decision.actions:
            if isinstance(action, FetchFromCdn):
                transfer = self.exchange.transfers.get(action.segment)
                if (
                    transfer is not None
                    and transfer.fetch_id is not None
                    and transfer.started_at == now
                ):
                    resumed = "_resume" if transfer.offset > 0 else ""
                    self.cdn_fetch_reasons[action.reason + resumed] += 1
                    if self.config.request_timeline:
                        info = self.info(action.segment)
                        ahead_s = 0.0 if info is None else info.start_s - view.playhead_s
                        rate = view.cdn_throughput_bytes_per_s
                        tail = view.cdn_tail_s
                        self.requests.note(
                            "cdn",
                            action.segment,
                            now,
                            reason=action.reason,
                            offset=transfer.offset,
                            ahead_s=round(ahead_s, 3),
                            start_s=None if info is None else round(info.start_s, 3),
                            cdn_rate=None if rate is None else round(rate),
                            cdn_tail_s=None if tail is None else round(tail, 3),
                        )
            elif isinstance(action, FetchFromPeer):
                transfer = self.exchange.transfers.get(action.segment)
                if (
                    transfer is not None
                    and transfer.peer_id == action.peer_id
                    and transfer.started_at == now
                ):
                    info = self.info(action.segment)
                    ahead_s = 0.0 if info is None else info.start_s - view.playhead_s
                    self.requests.sent(
                        action.segment, action.peer_id, action.reason, transfer.offset, ahead_s, now
                    )
                    started.append(action)
        self.flush()
        for action in started:
            transfer = self.exchange.transfers.get(action.segment)
            if transfer is None or transfer.peer_id != action.peer_id:
                self.requests.ended(action.segment, action.peer_id, "not_sent", now)
        if decision.wake_at is None:
            return now + self.config.scheduler.idle_recheck_s
        return decision.wake_at

    # -- the exchange's outputs for the agent's other parts --------------------------------

    def on_event(self, link: Any, event: Any) -> None:
        """The swarm's ``on_event(link, event)``: one peer session event."""
        if self._loop is not None:
            self._log_request_event(link, event)
            self.glue.on_event(link, event)

    def _log_request_event(self, link: Any, event: Any) -> None:
        if isinstance(event, DataReceived):
            self.requests.data(event.segment, peer_id_of(link), len(event.data), self.now())
        elif isinstance(event, RequestCompleted):
            self.requests.ended(event.segment, peer_id_of(link), "completed", self.now())
        elif isinstance(event, RequestFailed):
            outcome = f"failed:{event.reason}"
            self.requests.ended(event.segment, peer_id_of(link), outcome, self.now())
        elif isinstance(event, SessionClosed):
            self.requests.peer_closed(peer_id_of(link), self.now())

    def flush(self) -> None:
        """Carry out the exchange's actions (after an input given to it directly)."""
        self.glue.flush()

    def _current_link(self, peer_id: str) -> Any:
        return None if self.swarm is None else self.swarm.links.get(peer_id)

    def _cdn_progress(self, segment: SegmentId, event: str, now: float, **fields: Any) -> None:
        self.requests.note(f"cdn_{event}", segment, now, **fields)

    def _deliver(self, info: SegmentInfo) -> None:
        self.last_sequence_delivered = max(self.last_sequence_delivered, info.segment_id.sequence)
        if self.config.request_timeline:
            ahead_s = None if self.player is None else info.start_s - self.player.playhead_s
            self.requests.note(
                "delivered",
                info.segment_id,
                self.now(),
                ahead_s=None if ahead_s is None else round(ahead_s, 3),
                start_s=round(info.start_s, 3),
            )
        if self.player is not None:
            self.player.add_media(info.start_s, info.duration_s, self.now())

    def _announce(self, action: AnnounceHave | AnnounceFetching | AnnounceLost) -> None:
        if self.swarm is None:
            return
        if isinstance(action, AnnounceHave):
            self.swarm.broadcast_have(list(action.segments))
        elif isinstance(action, AnnounceLost):
            self.swarm.broadcast_lost(list(action.segments))
        else:
            self.swarm.broadcast_fetching(list(action.entries))

    async def _check(
        self, info: SegmentInfo, data: bytes, total_bytes: int, peer_bytes: bool = True
    ) -> Verdict:
        """The verdict on a whole segment; only one with a peer's bytes waits for a manifest
        refresh when the manifest does not list it (CDN bytes are trusted then; the refresh
        runs in the background for them: on the bed at
        200 ms / 3 % loss that refresh held 1 in 10 CDN-fetched segments 0.13-0.9 s after their
        last byte, one of them past its deadline)."""
        if peer_bytes:
            refresh = self._refresh_manifest_soon
            return await intake.check(self.manifest, info, data, total_bytes, refresh)
        verdict = await intake.check(self.manifest, info, data, total_bytes, None)
        if verdict is Verdict.UNKNOWN and self.manifest.url is not None:
            # The refresh still runs, without holding this segment: the next peer-assisted
            # one then finds its entry at once.
            self.spawn(self._refresh_manifest_soon(info.segment_id.sequence))
        return verdict

    # -- results -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Numbers for a live status line."""
        return report.status(self)

    def _report_peer(self, peer_id: str, reason: str) -> None:
        """Tell the tracker about a peer our exchange banned or refused (once per close)."""
        report = getattr(self.swarm, "report", None)
        if report is not None:
            self.spawn(report(peer_id, reason))

    def _on_swarm_event(self, link: Any, event: Any) -> None:
        """Record each link's network path when its session opens, then hand the event on."""
        if isinstance(event, HelloReceived) and len(self.link_paths) < MAX_LINK_PATHS:
            types = link.candidate_types() if hasattr(link, "candidate_types") else None
            created_s = getattr(link, "created_at_s", None)
            self.link_paths.append(
                {
                    "local": types[0] if types else None,
                    "remote": types[1] if types else None,
                    "setup_s": None if created_s is None else round(self.now() - created_s, 3),
                }
            )
        self.on_event(link, event)

    def summary(self) -> dict[str, Any]:
        """The final summary (what ``p2p-agent --json`` prints)."""
        return report.summary(self)
