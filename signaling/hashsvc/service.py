"""The hash service proper: tracks media playlists on demand, fetches and hashes each listed
segment (and init section) once, refreshes live playlists and forgets idle ones.

Adapter code (httpx, asyncio tasks); the URL and playlist rules are pure functions in
:mod:`signaling.hashsvc.playlist`. ``clock`` (monotonic seconds) is injectable and only drives
idle expiry; refresh waits use the event loop's timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from signaling.hashsvc.config import HashServiceConfig
from signaling.hashsvc.errors import (
    ClientBusy,
    ClientPlaylistLimit,
    HashServiceError,
    HashServiceUnavailable,
    NotAllowed,
    UpstreamError,
)
from signaling.hashsvc.playlist import (
    Entry,
    check_url,
    client_key,
    parse_media_playlist,
    playlist_identity,
    upstream_of,
)

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


class _FetchFailed(Exception):
    """One failed fetch attempt; ``kind`` is the counter label, ``retry`` whether to try again."""

    def __init__(self, kind: str, detail: str, *, retry: bool) -> None:
        super().__init__(detail)
        self.kind = kind
        self.retry = retry


@dataclass
class Counters:
    requests: int = 0
    playlists_started: int = 0
    playlists_expired: int = 0
    playlists_evicted: int = 0
    playlist_fetches: int = 0
    segments_hashed: int = 0
    bytes_fetched: int = 0
    retries: int = 0
    #: Failed fetch attempts by kind (``segment_status``, ``playlist_network``, ...).
    fetch_errors: dict[str, int] = field(default_factory=dict)
    #: Refused /manifest requests by reason (``client_busy``, ``unavailable``, ...).
    rejections: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.fetch_errors[kind] = self.fetch_errors.get(kind, 0) + 1

    def reject(self, reason: str) -> None:
        self.rejections[reason] = self.rejections.get(reason, 0) + 1


class _Tracked:
    """One tracked media playlist."""

    def __init__(self, key: str, url: str, owner: str, now_s: float) -> None:
        self.key = key  # playlist identity (playlist_identity)
        self.url = url  # what is fetched: the URL of the first request
        self.owner = owner  # client_key of the client that started tracking it
        self.evicted = False
        self.last_request_s = now_s
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None
        self.live = False
        self.refresh_s = 0.0
        #: Entries of the last fetched playlist, in order.
        self.entries: tuple[Entry, ...] = ()
        #: Keys that left the live window, oldest first (at most ``history_segments``).
        self.history: list[str] = []
        self.hashes: dict[str, str] = {}
        #: The entry of every key in ``hashes`` (its MSN and init section), for ``from_msn``.
        self.meta: dict[str, Entry] = {}
        self.refreshes = 0

    def since(self, from_msn: int) -> tuple[dict[str, str], bool]:
        """The hashes of segments from MSN ``from_msn`` on, with the init sections they use
        (docs/exchange.md, section 12), and whether segment ``from_msn`` itself is listed."""
        out: dict[str, str] = {}
        listed = False
        for key, digest in self.hashes.items():
            entry = self.meta.get(key)
            if entry is None or entry.msn is None or entry.msn < from_msn:
                continue
            init = entry.init_key
            if init is not None and init in self.hashes and init not in out:
                out[init] = self.hashes[init]
            out[key] = digest
            listed = listed or entry.msn == from_msn
        return out, listed

    @property
    def complete(self) -> bool:
        return all(e.key in self.hashes for e in self.entries)


class HashService:
    """``await service.manifest(url)`` → ``{uri: sha256}``; ``await service.close()`` at the end."""

    def __init__(
        self,
        config: HashServiceConfig,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self.counters = Counters()
        self._own_client = client is None
        # No redirects: a redirect could lead outside the allowed prefixes.
        self._client = client or httpx.AsyncClient(
            timeout=config.fetch_timeout_s, follow_redirects=False
        )
        self._fetch_slots = asyncio.Semaphore(config.max_concurrent_fetches)
        # one per upstream: bounded by the allow prefixes, which name the hosts
        self._upstream_slots: dict[str, asyncio.Semaphore] = {}
        self._in_flight: dict[str, int] = {}  # client_key -> /manifest requests in flight
        self._playlists: dict[str, _Tracked] = {}
        self._closing = False

    # -- public API ----------------------------------------------------------------------------

    async def manifest(self, url: str | None, client: str | None = None) -> dict[str, str]:
        """The manifest of the media playlist at ``url``; starts tracking it on first use.

        ``client`` is the requester's address (per-client limits). Raises BadPlaylistUrl,
        NotAllowed, NotMediaPlaylist, ClientBusy, ClientPlaylistLimit, HashServiceUnavailable
        or UpstreamError (each counted). Concurrent first requests share one fetch of everything.
        """
        self.counters.requests += 1
        try:
            return await self._manifest(url, client_key(client))
        except HashServiceError as exc:
            self.counters.reject(exc.reason)
            raise

    async def manifest_since(
        self, url: str | None, from_msn: int, client: str | None = None
    ) -> tuple[dict[str, str], bool]:
        """Like :meth:`manifest`, only the segments from MSN ``from_msn`` on (and their init
        sections), and whether segment ``from_msn`` is listed (docs/exchange.md, section 12)."""
        self.counters.requests += 1
        try:
            tracked = await self._tracked(url, client_key(client))
        except HashServiceError as exc:
            self.counters.reject(exc.reason)
            raise
        return tracked.since(from_msn)

    async def _manifest(self, url: str | None, who: str) -> dict[str, str]:
        return dict((await self._tracked(url, who)).hashes)

    async def _tracked(self, url: str | None, who: str) -> _Tracked:
        url = check_url(url, self.config.allow_prefixes)
        if self._closing:
            raise HashServiceUnavailable("shutting down")
        busy = self._in_flight.get(who, 0)
        if busy >= self.config.max_requests_per_client:
            raise ClientBusy(
                f"{self.config.max_requests_per_client} requests from your address in flight"
            )
        key = playlist_identity(url, self.config.identity_query_params)
        tracked = self._playlists.get(key)
        if tracked is None:
            tracked = self._start(key, url, who)
        tracked.last_request_s = self.clock()
        self._in_flight[who] = busy + 1
        try:
            await asyncio.shield(tracked.ready)
        finally:
            left = self._in_flight[who] - 1
            if left:
                self._in_flight[who] = left
            else:
                del self._in_flight[who]
        return tracked

    def _start(self, key: str, url: str, who: str) -> _Tracked:
        owned = sum(1 for t in self._playlists.values() if t.owner == who)
        if owned >= self.config.max_playlists_per_client:
            raise ClientPlaylistLimit(
                f"your address already has {owned} playlists tracked; ask for those"
            )
        if len(self._playlists) >= self.config.max_playlists:
            victim = self._eviction_victim()
            if victim is None:
                raise HashServiceUnavailable(
                    f"already tracking {self.config.max_playlists} playlists, all in use"
                )
            self._evict(victim)
        tracked = _Tracked(key, url, who, self.clock())
        self._playlists[key] = tracked
        self.counters.playlists_started += 1
        tracked.task = asyncio.get_running_loop().create_task(self._run(tracked))
        logger.info("tracking %s", url)
        return tracked

    def _eviction_victim(self) -> _Tracked | None:
        """A playlist nobody asked for in ``evict_idle_s``: of the client holding the most
        playlists, the least recently asked for."""
        now_s = self.clock()
        idle = [
            t
            for t in self._playlists.values()
            if now_s - t.last_request_s >= self.config.evict_idle_s
        ]
        if not idle:
            return None
        held: dict[str, int] = {}
        for t in self._playlists.values():
            held[t.owner] = held.get(t.owner, 0) + 1
        return min(idle, key=lambda t: (-held[t.owner], t.last_request_s))

    def _evict(self, tracked: _Tracked) -> None:
        self._playlists.pop(tracked.key, None)
        tracked.evicted = True
        if tracked.task is not None:
            tracked.task.cancel()
        self.counters.playlists_evicted += 1
        logger.info("evicted %s (idle, slots full)", tracked.url)

    def tracked(self) -> list[str]:
        """Identities of the tracked playlists (:func:`playlist_identity`)."""
        return list(self._playlists)

    def _forget(self, tracked: _Tracked) -> None:
        if self._playlists.get(tracked.key) is tracked:
            del self._playlists[tracked.key]

    def refreshes(self, url: str) -> int:
        """Completed refreshes of a tracked playlist (0 if untracked)."""
        tracked = self._playlists.get(playlist_identity(url, self.config.identity_query_params))
        return tracked.refreshes if tracked is not None else 0

    def stats(self) -> dict[str, Any]:
        c = self.counters
        return {
            "playlists_tracked": len(self._playlists),
            "playlists_started": c.playlists_started,
            "playlists_expired": c.playlists_expired,
            "playlists_evicted": c.playlists_evicted,
            "requests": c.requests,
            "playlist_fetches": c.playlist_fetches,
            "segments_hashed": c.segments_hashed,
            "bytes_fetched": c.bytes_fetched,
            "retries": c.retries,
            "fetch_errors": dict(sorted(c.fetch_errors.items())),
            "rejections": dict(sorted(c.rejections.items())),
        }

    async def close(self) -> None:
        """Stop every playlist task and close our HTTP client."""
        self._closing = True
        tasks = [t.task for t in self._playlists.values() if t.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._playlists.clear()
        if self._own_client:
            await self._client.aclose()

    # -- per-playlist task ---------------------------------------------------------------------

    async def _run(self, tracked: _Tracked) -> None:
        try:
            await self._update(tracked)
        except HashServiceError as exc:
            self._forget(tracked)
            tracked.ready.set_exception(exc)
            tracked.ready.exception()  # retrieved: waiters may all have gone
            logger.warning("cannot track %s: %s", tracked.url, exc.detail)
            return
        except BaseException as exc:
            self._forget(tracked)
            if not tracked.ready.done():
                why = "evicted (slots full)" if tracked.evicted else "shutting down"
                tracked.ready.set_exception(HashServiceUnavailable(why))
                tracked.ready.exception()
            if isinstance(exc, asyncio.CancelledError):
                raise
            logger.exception("tracking %s failed", tracked.url)
            return
        tracked.ready.set_result(None)
        while True:
            idle_left_s = self.config.idle_expiry_s - (self.clock() - tracked.last_request_s)
            if idle_left_s <= 0:
                self._forget(tracked)
                self.counters.playlists_expired += 1
                logger.info("idle, no longer tracking %s", tracked.url)
                return
            if tracked.live or not tracked.complete:
                await asyncio.sleep(min(tracked.refresh_s, idle_left_s))
            else:
                await asyncio.sleep(idle_left_s)
                continue
            if self.config.idle_expiry_s <= self.clock() - tracked.last_request_s:
                continue
            try:
                if tracked.live:
                    await self._update(tracked)
                else:
                    await self._hash_entries(tracked, tracked.entries)
            except HashServiceError as exc:
                logger.warning("refresh of %s failed: %s", tracked.url, exc.detail)
            except Exception:  # a bug must not leave a stale playlist tracked forever
                logger.exception("refresh of %s failed", tracked.url)
            tracked.refreshes += 1

    async def _update(self, tracked: _Tracked) -> None:
        """Fetch the playlist, hash what is new, keep ``history_segments`` behind the window."""
        text = await self._fetch_playlist(tracked.url)
        playlist = parse_media_playlist(text, tracked.url)
        tracked.live = playlist.live
        tracked.refresh_s = max(self.config.min_refresh_s, playlist.target_duration_s / 2)
        current = {e.key for e in playlist.entries}
        for entry in tracked.entries:
            if entry.key not in current and entry.key not in tracked.history:
                tracked.history.append(entry.key)
        tracked.history = [k for k in tracked.history if k not in current]
        excess = len(tracked.history) - self.config.history_segments
        if excess > 0:
            for key in tracked.history[:excess]:
                tracked.hashes.pop(key, None)
                tracked.meta.pop(key, None)
            del tracked.history[:excess]
        tracked.entries = playlist.entries
        for entry in playlist.entries:
            tracked.meta[entry.key] = entry
        await self._hash_entries(tracked, playlist.entries)

    async def _hash_entries(self, tracked: _Tracked, entries: tuple[Entry, ...]) -> None:
        todo = [e for e in entries if e.key not in tracked.hashes]
        if not todo:
            return
        results = await asyncio.gather(*(self._hash_entry(e) for e in todo))
        for entry, digest in zip(todo, results, strict=True):
            if digest is not None:
                tracked.hashes[entry.key] = digest

    # -- fetching ------------------------------------------------------------------------------

    async def _with_retries(self, what: str, attempt: Callable[[], Any]) -> Any:
        for n in range(self.config.retries + 1):
            if n:
                self.counters.retries += 1
                await asyncio.sleep(self.config.retry_backoff_s * 2 ** (n - 1))
            try:
                return await attempt()
            except _FetchFailed as exc:
                self.counters.error(exc.kind)
                logger.info("fetch of %s failed (%s): %s", what, exc.kind, exc)
                if not exc.retry or n == self.config.retries:
                    raise
        raise AssertionError("unreachable")

    async def _fetch_playlist(self, url: str) -> str:
        async def attempt() -> bytes:
            self.counters.playlist_fetches += 1
            return await self._get(url, None, "playlist", self.config.max_playlist_bytes, None)

        try:
            body: bytes = await self._with_retries(url, attempt)
        except _FetchFailed as exc:
            raise UpstreamError(f"cannot fetch the playlist: {exc}") from exc
        try:
            return body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            self.counters.error("playlist_parse")
            raise UpstreamError("the playlist is not UTF-8") from exc

    async def _hash_entry(self, entry: Entry) -> str | None:
        """SHA-256 of one segment or init section, or None after every attempt failed."""
        try:
            check_url(entry.url, self.config.allow_prefixes)
        except (NotAllowed, HashServiceError):
            self.counters.error("segment_not_allowed")
            logger.warning("not fetching %s: outside the allowed prefixes", entry.url)
            return None

        async def attempt() -> str:
            digest = hashlib.sha256()
            async with self._upstream_slot(entry.url), self._fetch_slots:
                await self._get(
                    entry.url, entry, "segment", self.config.max_segment_bytes, digest.update
                )
            return digest.hexdigest()

        try:
            result: str = await self._with_retries(entry.url, attempt)
        except _FetchFailed:
            return None
        self.counters.segments_hashed += 1
        return result

    def _upstream_slot(self, url: str) -> asyncio.Semaphore:
        upstream = upstream_of(url)
        slot = self._upstream_slots.get(upstream)
        if slot is None:
            slot = self._upstream_slots[upstream] = asyncio.Semaphore(
                self.config.max_fetches_per_upstream
            )
        return slot

    async def _get(
        self,
        url: str,
        entry: Entry | None,
        kind: str,
        max_bytes: int,
        sink: Callable[[bytes], object] | None,
    ) -> bytes:
        """:meth:`_get_body` within ``fetch_deadline_s`` and above ``min_rate_bps``."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        start_s = loop.time()
        deadline_s = start_s + cfg.fetch_deadline_s
        received = [0]

        def rate_floor_s() -> float:
            """When the average rate falls below ``min_rate_bps`` (bytes so far)."""
            if cfg.min_rate_bps <= 0:
                return deadline_s
            return start_s + max(cfg.min_rate_grace_s, received[0] / cfg.min_rate_bps)

        def on_bytes(n: int) -> None:
            received[0] += n
            timer.reschedule(min(deadline_s, rate_floor_s()))

        try:
            async with asyncio.timeout_at(min(deadline_s, rate_floor_s())) as timer:
                return await self._get_body(url, entry, kind, max_bytes, sink, on_bytes)
        except TimeoutError:
            if loop.time() >= deadline_s:
                raise _FetchFailed(
                    f"{kind}_deadline", f"not done in {cfg.fetch_deadline_s} s", retry=False
                ) from None
            raise _FetchFailed(
                f"{kind}_too_slow", f"slower than {cfg.min_rate_bps} bytes/s", retry=False
            ) from None

    async def _get_body(
        self,
        url: str,
        entry: Entry | None,
        kind: str,
        max_bytes: int,
        sink: Callable[[bytes], object] | None,
        on_bytes: Callable[[int], None],
    ) -> bytes:
        """One GET (a Range request for a byte range). Body bytes go to ``sink`` (segments) or
        are returned (playlists). Raises _FetchFailed."""
        headers = {}
        rng = entry.range_header if entry is not None else None
        if rng is not None:
            headers["Range"] = rng
        first = entry.first_byte if entry is not None else None
        last = entry.last_byte if entry is not None else None
        chunks: list[bytes] = []
        try:
            async with self._client.stream("GET", url, headers=headers) as resp:
                if resp.status_code >= 500:
                    raise _FetchFailed(f"{kind}_status", f"HTTP {resp.status_code}", retry=True)
                if resp.status_code not in (200, 206) or (resp.status_code == 206 and not rng):
                    raise _FetchFailed(f"{kind}_status", f"HTTP {resp.status_code}", retry=False)
                skip = 0
                want = max_bytes
                if rng is not None and first is not None and last is not None:
                    want = last - first + 1
                    if resp.status_code == 200:
                        # the server ignored Range: cut the range out ourselves, if near
                        if first > self.config.max_range_overread_bytes:
                            raise _FetchFailed(
                                f"{kind}_range_ignored",
                                f"the server ignored Range and the range starts at byte {first}",
                                retry=False,
                            )
                        skip = first
                    elif not resp.headers.get("content-range", "").startswith(
                        f"bytes {first}-{last}/"
                    ):
                        raise _FetchFailed(f"{kind}_range", "unexpected Content-Range", retry=True)
                if want > max_bytes:
                    raise _FetchFailed(f"{kind}_too_large", f"over {max_bytes} bytes", retry=False)
                got = 0
                async for chunk in resp.aiter_bytes():
                    self.counters.bytes_fetched += len(chunk)
                    on_bytes(len(chunk))
                    if skip:
                        cut = min(skip, len(chunk))
                        chunk, skip = chunk[cut:], skip - cut
                    chunk = chunk[: want - got] if rng is not None else chunk
                    got += len(chunk)
                    if got > max_bytes:
                        raise _FetchFailed(
                            f"{kind}_too_large", f"over {max_bytes} bytes", retry=False
                        )
                    if sink is not None:
                        sink(chunk)
                    else:
                        chunks.append(chunk)
                    if rng is not None and got >= want:
                        break
                if rng is not None and got != want:
                    raise _FetchFailed(f"{kind}_short", f"{got} of {want} bytes", retry=True)
        except httpx.HTTPError as exc:
            raise _FetchFailed(f"{kind}_network", type(exc).__name__, retry=True) from exc
        return b"".join(chunks)
