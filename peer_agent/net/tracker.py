"""WebSocket client of the WebTorrent tracker protocol, as ``signaling/`` speaks it.

One :class:`TrackerClient` announces one ``peer_id`` in one swarm (``info_hash``) over one
WebSocket (``ws://H:P/announce``, with ``?token=`` when a join token is given). It:

- announces ``event: "started"`` on every (re)connection, then re-announces every ``interval``
  seconds the server gives (or earlier, on :meth:`announce_now`, at most once per
  ``min_announce_gap_s``, or after ``next_announce_s()`` seconds when that callable, asked
  after each announce, returns a number: the swarm's refill of free neighbour slots); each
  announce carries the full SDP offers ``make_offers()`` returns
  (at most 5, ``numwant`` = their number) and our extension fields (:class:`TrackerHints`:
  ``position_s``, ``region``, ``max_peers``, ``caps``, ``connected``);
- hands relayed offers (``{action, info_hash, peer_id: <offerer>, offer_id, offer}``, with
  ``drop`` when the server splits one of our links, docs/signaling.md "Making room") to
  ``on_offer``, which returns an answer SDP (or None to refuse), and sends the answer
  (``{action, info_hash, peer_id, to_peer_id, offer_id, answer}``);
- hands answers to our offers to ``on_answer``, and the ids of our offers the server relayed to
  nobody (its reply's ``unused_offers``) to ``on_unused_offers``;
- counts and logs ``failure reason`` replies without stopping;
- sends our cumulative byte counters in the server's ``stats`` message;
- with ``fetcher_assignment`` (default), announces the cap ``fetchers`` (and ``uplink:N``) and
  holds the server's fetcher assignment (``{"action": "fetchers"}``, docs/signaling.md) while
  the socket is open, for the scheduler (:meth:`TrackerClient.fetcher_assignment`);
- with ``request_ice_servers``, asks the server for its ICE servers (``{"action":
  "ice_servers"}``: STUN, and TURN with short-lived TURN REST credentials) before its first
  offers and again when less than ``ice_refresh_fraction`` of their lifetime is
  left; :attr:`TrackerClient.ice` holds the latest grant (credentials never logged or shown in
  ``repr``). A server that does not answer within ``ice_timeout_s`` or refuses is counted
  (``ice_failures``) and logged as a warning, and offers go out with the configured servers only;
- with a ``token_provider`` (an async callable returning a fresh join token), sends
  ``{"action": "token", "token": ...}`` on the open socket when less than
  ``token_refresh_fraction`` of the current token's lifetime (its ``exp``) is left, so the
  server never closes it with 4002; a refused refresh is retried; if the socket is closed with
  4002 anyway, it reconnects with a token from the provider instead of giving up;
- reconnects after the socket drops (server restart, network) with exponential backoff and
  jitter from an injectable ``random.Random``; the first failure is logged as a warning with
  its reason, and errors that retrying cannot fix (no such host, not a WebSocket URL, HTTP
  401/403/404, the join token refused or the Origin not allowed: close 4001/4002/4003) end the
  client at once
  (``stats.gave_up``, ``stats.last_error``);
- announces ``event: "stopped"`` when stopped.

Time comes from the event loop (``loop.time()``); nothing here sleeps to synchronise: waits are on
``asyncio.Event``s with timeouts. SDP bodies and the token are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import inspect
import json
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus, InvalidURI

from peer_agent.net.fetchers import (
    FETCHERS_CAP,
    BadFetchersMessage,
    FetcherAssignment,
    parse_fetchers,
)
from peer_agent.net.peer_key import derive_peer_id, is_keyed, key_for

logger = logging.getLogger(__name__)

_Counters = tuple[int, int, int, tuple[int, int] | None]


class _NoFrameDumps(logging.Filter):
    """websockets logs frames (SDP) and the request line (``?token=``) at DEBUG: never emit
    those, whatever level the application configures."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.INFO


# The logger handed to websockets for our tracker sockets.
ws_logger = logging.getLogger(__name__ + ".websocket")
ws_logger.addFilter(_NoFrameDumps())

ID_CHARS = 20
MAX_OFFERS_PER_ANNOUNCE = 5
AnnounceEvent = Literal["started", "stopped", "completed", "update", "paused"]


@dataclass(frozen=True)
class TrackerConfig:
    """Options of a :class:`TrackerClient` (every default here, in one place)."""

    # Reconnect delay: reconnect_initial_s * 2**(failures - 1), capped at reconnect_max_s, then
    # multiplied by a uniform factor in [1 - reconnect_jitter, 1 + reconnect_jitter].
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    reconnect_jitter: float = 0.5
    # Re-announce period until the server sends its `interval`, and the floor applied to it.
    default_interval_s: float = 120.0
    min_interval_s: float = 5.0
    # Early announces (announce_now) are spaced by at least this.
    min_announce_gap_s: float = 2.0
    # WebSocket: opening handshake timeout, closing handshake timeout, largest frame accepted.
    open_timeout_s: float = 10.0
    close_timeout_s: float = 2.0
    max_message_bytes: int = 1 << 20
    # Honour HTTP(S)_PROXY / ALL_PROXY from the environment (websockets' default).
    use_env_proxy: bool = True
    # Ask the server for ICE servers (action ice_servers) before offering; wait this long for
    # the reply; ask again when less than this fraction of the credentials' lifetime is left.
    request_ice_servers: bool = False
    ice_timeout_s: float = 10.0
    ice_refresh_fraction: float = 0.25
    # With a token_provider: send a new join token on the open socket (action token) when less
    # than this fraction of the current token's lifetime is left; retry a refused one after
    # token_retry_s (or sooner, at half the time left).
    token_refresh_fraction: float = 0.25
    token_retry_s: float = 30.0
    # Ask the server for its fetcher assignment (announce cap "fetchers"; docs/signaling.md,
    # "Fetcher assignment"), with our uplink claim in bytes/s (cap "uplink:N") when known.
    fetcher_assignment: bool = True
    uplink_bytes_per_s: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.reconnect_initial_s <= self.reconnect_max_s:
            raise ValueError("need 0 < reconnect_initial_s <= reconnect_max_s")
        if not 0 <= self.reconnect_jitter < 1:
            raise ValueError("reconnect_jitter must be in [0, 1)")
        if self.min_interval_s <= 0 or self.default_interval_s < self.min_interval_s:
            raise ValueError("need 0 < min_interval_s <= default_interval_s")
        if self.min_announce_gap_s < 0:
            raise ValueError("min_announce_gap_s must be >= 0")
        if self.ice_timeout_s <= 0 or not 0 < self.ice_refresh_fraction < 1:
            raise ValueError("need ice_timeout_s > 0 and 0 < ice_refresh_fraction < 1")
        if not 0 < self.token_refresh_fraction < 1 or self.token_retry_s <= 0:
            raise ValueError("need 0 < token_refresh_fraction < 1 and token_retry_s > 0")
        if self.uplink_bytes_per_s is not None and not 0 <= self.uplink_bytes_per_s < 10**12:
            raise ValueError("uplink_bytes_per_s must be in 0..10**12 - 1")


MAX_TOKEN_CHARS = 4096


def token_expiry_unix_s(token: str) -> int | None:
    """The ``exp`` of a join token (docs/signaling.md, "Join tokens"), read without the
    secret: when to refresh it. None when it is not a v1 token with an integer ``exp``."""
    parts = token.split(".")
    if len(token) > MAX_TOKEN_CHARS or len(parts) != 3 or parts[0] != "v1":
        return None
    try:
        body = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    exp = body.get("exp") if isinstance(body, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int):
        return None
    return exp


MAX_ICE_SERVERS = 8
MAX_ICE_URL_CHARS = 256
MAX_ICE_SECRET_CHARS = 512
ICE_SCHEMES = ("stun:", "turn:", "turns:")


@dataclass(frozen=True)
class IceServer:
    """One ``RTCIceServer``; the credentials stay out of ``repr`` (and so out of logs)."""

    urls: tuple[str, ...]
    username: str | None = field(default=None, repr=False)
    credential: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class IceGrant:
    """ICE servers handed out by the tracker, valid until ``expires_unix_s``."""

    servers: tuple[IceServer, ...]
    expires_unix_s: float


def parse_ice_reply(msg: dict[str, Any], now_unix_s: float) -> IceGrant:
    """Validate an ``ice_servers`` reply (ValueError with the reason when it is malformed)."""
    raw = msg.get("ice_servers")
    expires = msg.get("expires")
    if not isinstance(raw, list) or len(raw) > MAX_ICE_SERVERS:
        raise ValueError(f"ice_servers must be a list of at most {MAX_ICE_SERVERS}")
    if isinstance(expires, bool) or not isinstance(expires, int | float):
        raise ValueError("expires must be a number")
    if expires <= now_unix_s:
        raise ValueError("the ICE credentials have already expired (clock skew?)")
    servers = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise ValueError("each ice server must be an object")
        urls = entry.get("urls")
        url_list = [urls] if isinstance(urls, str) else urls
        if not isinstance(url_list, list) or not 0 < len(url_list) <= MAX_ICE_SERVERS:
            raise ValueError("urls must be a string or a non-empty list")
        for url in url_list:
            if not isinstance(url, str) or not url.startswith(ICE_SCHEMES):
                raise ValueError("each url must be a stun:/turn:/turns: string")
            if len(url) > MAX_ICE_URL_CHARS or "@" in url:
                raise ValueError("url too long or with credentials in it")
        creds = []
        for name in ("username", "credential"):
            value = entry.get(name)
            if value is not None and (
                not isinstance(value, str) or len(value) > MAX_ICE_SECRET_CHARS
            ):
                raise ValueError(f"{name} must be a string of at most {MAX_ICE_SECRET_CHARS}")
            creds.append(value)
        servers.append(IceServer(tuple(url_list), creds[0], creds[1]))
    return IceGrant(tuple(servers), float(expires))


@dataclass
class TrackerHints:
    """Our optional announce fields (signaling/messages.py); None / empty fields are omitted."""

    position_s: float | None = None  # playback position, for pairing close viewers
    region: str | None = None  # 1..32 of [A-Za-z0-9._-]
    max_peers: int | None = None  # our link limit (the server skips full peers)
    caps: tuple[str, ...] = ()
    connected: tuple[str, ...] = ()  # peer_ids we are linked to (never paired again)

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.position_s is not None:
            out["position_s"] = max(0.0, float(self.position_s))
        if self.region is not None:
            out["region"] = self.region
        if self.max_peers is not None:
            out["max_peers"] = self.max_peers
        if self.caps:
            out["caps"] = list(self.caps)
        if self.connected:
            out["connected"] = list(self.connected[:256])
        return out


@dataclass(frozen=True)
class RelayedOffer:
    """An offer the server relayed to us from ``peer_id``."""

    peer_id: str
    offer_id: str
    sdp: str
    #: The tracker is splitting our link to this peer: if full, answer by dropping it.
    drop: str | None = None


@dataclass(frozen=True)
class RelayedAnswer:
    """An answer from ``peer_id`` to our offer ``offer_id``."""

    peer_id: str
    offer_id: str
    sdp: str


@dataclass(frozen=True)
class AnnounceReply:
    interval_s: float
    complete: int
    incomplete: int


@dataclass
class TrackerStats:
    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    announces_sent: int = 0
    announce_replies: int = 0
    offers_sent: int = 0
    offers_received: int = 0
    answers_sent: int = 0
    answers_received: int = 0
    offers_refused: int = 0
    stats_sent: int = 0
    failures: int = 0
    failure_reasons: dict[str, int] = field(default_factory=dict)
    ignored_messages: int = 0
    #: Why the last connection attempt failed or the server closed us (no token in it).
    last_error: str | None = None
    #: True once an error that retrying cannot fix stopped the client.
    gave_up: bool = False
    ice_requests: int = 0
    ice_replies: int = 0
    ice_failures: int = 0
    token_refreshes: int = 0
    token_refresh_failures: int = 0
    fetchers_received: int = 0
    #: fetchers messages that broke the spec (ignored; the earlier assignment stays).
    fetchers_refused: int = 0


# Close codes of docs/signaling.md that retrying with the same URL cannot fix.
_PERMANENT_CLOSES = {
    4001: "the join token was refused",
    4002: "the join token has expired",
    4003: "this Origin is not allowed",
}
_PERMANENT_STATUSES = {
    401: "HTTP 401: the tracker wants a join token",
    403: "HTTP 403: the tracker refused us (Origin or token)",
    404: "HTTP 404: no WebSocket at this path (the tracker listens at /announce)",
}


def connect_error(exc: BaseException) -> tuple[str, bool]:
    """``(reason, permanent)`` for a failed WebSocket connection attempt."""
    if isinstance(exc, InvalidURI):
        return "not a WebSocket URL (ws://HOST:PORT/announce)", True
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status in _PERMANENT_STATUSES:
            return _PERMANENT_STATUSES[status], True
        return f"HTTP {status} instead of a WebSocket", False
    if isinstance(exc, socket.gaierror):
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            return "unknown host (the name does not resolve)", True
        return f"name resolution failed ({exc.strerror})", False
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens at that address and port)", False
    if isinstance(exc, TimeoutError):
        return "no answer (timed out)", False
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror, False
    return type(exc).__name__, False


OfferCallback = Callable[[RelayedOffer], Awaitable[str | None]]
AnswerCallback = Callable[[RelayedAnswer], Awaitable[None] | None]
MakeOffers = Callable[[], Awaitable[Sequence[tuple[str, str]]]]
TokenProvider = Callable[[], Awaitable[str]]


def _count(value: Any) -> int:
    """A count from the server's reply; 0 when absent or not a non-negative integer."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53:
        return value
    return 0


def _check_id(name: str, value: str) -> None:
    if len(value) != ID_CHARS or any(ord(ch) > 0xFF for ch in value):
        raise ValueError(f"{name} must be {ID_CHARS} byte characters")


#: Report reasons the server accepts (docs/signaling.md, "Reports").
REPORT_REASONS = ("hash_failure", "protocol", "lies", "stall", "flood")


class TrackerClient:
    """Announce one peer in one swarm and relay its signalling (see the module docstring)."""

    def __init__(
        self,
        url: str,
        info_hash: str,
        peer_id: str,
        *,
        config: TrackerConfig | None = None,
        token: str | None = None,
        peer_key: str | None = None,
        rng: random.Random | None = None,
        on_offer: OfferCallback | None = None,
        on_answer: AnswerCallback | None = None,
        make_offers: MakeOffers | None = None,
        on_announce_reply: Callable[[AnnounceReply], None] | None = None,
        on_failure: Callable[[str, str], None] | None = None,
        token_provider: TokenProvider | None = None,
        next_announce_s: Callable[[], float | None] | None = None,
        on_unused_offers: Callable[[list[str]], None] | None = None,
    ) -> None:
        _check_id("info_hash", info_hash)
        _check_id("peer_id", peer_id)
        if peer_key is None and is_keyed(peer_id):
            peer_key = key_for(peer_id)
            if peer_key is None:
                raise ValueError("a keyed peer_id (-PH0002-) needs its peer_key")
        if peer_key is not None and derive_peer_id(peer_key) != peer_id:
            raise ValueError("peer_key does not derive this peer_id")
        self.url = url
        self.info_hash = info_hash
        self.peer_id = peer_id
        self.config = config if config is not None else TrackerConfig()
        self.hints = TrackerHints()
        self.stats = TrackerStats()
        self.interval_s = self.config.default_interval_s
        #: Members in the swarm (``complete + incomplete``) at the latest announce reply; 0 before.
        self.swarm_size = 0
        self.connected = asyncio.Event()  # set while a socket is open
        self._token = token
        self._token_provider = token_provider
        self._token_answered = asyncio.Event()
        self._token_stale = False  # closed with 4002: ask the provider before reconnecting
        self._last_token_ok = False
        self._peer_key = peer_key  # proves a keyed peer_id on every announce; never logged
        self._rng = rng if rng is not None else random.Random()
        self._on_offer = on_offer
        self._on_answer = on_answer
        self._make_offers = make_offers
        self._on_announce_reply = on_announce_reply
        self._on_failure = on_failure
        self._next_announce_s = next_announce_s
        self._on_unused_offers = on_unused_offers
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        #: (p2p_down, p2p_up, cdn bytes, CDN fetches (join ramp, steady) or None)
        self._counters: _Counters | None = None
        self._counters_sent: _Counters | None = None
        self._announced_on_socket = False
        self._failures_in_a_row = 0
        self.ice: IceGrant | None = None  # the latest ICE servers from the tracker
        self._ice_refresh_at_s = -1.0  # loop time after which we ask again
        self._ice_answered = asyncio.Event()
        #: The server's fetcher assignment and the loop time it holds until (None: none).
        self.assignment: FetcherAssignment | None = None
        self.assignment_until = 0.0

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start connecting and announcing in the background (returns at once)."""
        if self._task is not None:
            raise RuntimeError("start() called twice")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tracker")

    async def stop(self) -> None:
        """Announce ``stopped`` (if connected), close the socket, end the background task."""
        if self._task is None or self._stopping.is_set():
            return
        self._stopping.set()
        ws = self._ws
        if ws is not None and self._announced_on_socket:
            with contextlib.suppress(Exception):
                await self._send(ws, self._announce_body("stopped", []))
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        try:
            await asyncio.wait_for(self._task, self.config.close_timeout_s + 1.0)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def announce_now(self) -> None:
        """Re-announce soon (new offers), no earlier than ``min_announce_gap_s`` after the last."""
        self._wake.set()

    async def send_stats(
        self,
        bytes_p2p_down: int,
        bytes_p2p_up: int,
        bytes_cdn: int,
        cdn_fetches: tuple[int, int] | None = None,
    ) -> None:
        """Report cumulative byte counters, and optionally CDN fetches by phase (join ramp,
        steady: docs/simulator.md); sent now if announced, else after the next announce."""
        self._counters = (bytes_p2p_down, bytes_p2p_up, bytes_cdn, cdn_fetches)
        ws = self._ws
        if ws is not None and self._announced_on_socket:
            await self._flush_stats(ws)

    async def report(self, reported_peer_id: str, reason: str) -> bool:
        """Report a peer we banned or refused (docs/signaling.md, "Reports"); ``reason`` is one
        of ``hash_failure``, ``protocol``, ``lies``, ``stall``, ``flood``. False: not connected
        and announced (the report is dropped: a later ban reports again)."""
        if reason not in REPORT_REASONS:
            raise ValueError(f"reason must be one of {', '.join(REPORT_REASONS)}")
        ws = self._ws
        if ws is None or not self._announced_on_socket or reported_peer_id == self.peer_id:
            return False
        body = {
            "action": "report",
            "info_hash": self.info_hash,
            "peer_id": self.peer_id,
            "reported_peer_id": reported_peer_id,
            "reason": reason,
        }
        try:
            await self._send(ws, body)
        except websockets.ConnectionClosed:
            return False
        return True

    # --- connection loop --------------------------------------------------------------------

    def _connect_url(self) -> str:
        if not self._token:
            return self.url
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}token={quote(self._token, safe='')}"

    def _backoff_s(self) -> float:
        cfg = self.config
        n = max(1, self._failures_in_a_row)
        delay = min(cfg.reconnect_max_s, cfg.reconnect_initial_s * 2 ** min(n - 1, 30))
        jitter = cfg.reconnect_jitter
        return delay * self._rng.uniform(1 - jitter, 1 + jitter)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if self._token_stale and self._token_provider is not None:
                    self._token = await self._token_provider()
                    self._token_stale = False
                ws = await websockets.connect(
                    self._connect_url(),
                    open_timeout=self.config.open_timeout_s,
                    close_timeout=self.config.close_timeout_s,
                    max_size=self.config.max_message_bytes,
                    proxy=True if self.config.use_env_proxy else None,
                    logger=ws_logger,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.connect_failures += 1
                self._failures_in_a_row += 1
                reason, permanent = connect_error(exc)
                self._failed(f"cannot connect: {reason}", permanent)
            else:
                await self._serve(ws)
            if self._stopping.is_set() or self.stats.gave_up:
                break
            if self._failures_in_a_row == 0:  # the socket worked, then dropped
                self._failures_in_a_row = 1
            delay_s = self._backoff_s()
            logger.debug("tracker: reconnecting in %.2f s", delay_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay_s)

    def _failed(self, reason: str, permanent: bool) -> None:
        """Record why the tracker is not reachable; warn on the first failure and on one that
        ends the client, then only at INFO (the backoff keeps trying)."""
        first = self.stats.last_error is None
        self.stats.last_error = reason
        if permanent:
            self.stats.gave_up = True
            logger.error("tracker %s: %s; giving up (retrying cannot fix this)", self.url, reason)
        elif first:
            logger.warning("tracker %s: %s; retrying with backoff", self.url, reason)
        else:
            logger.info("tracker %s: %s", self.url, reason)

    async def _serve(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._announced_on_socket = False
        self._counters_sent = None
        self.stats.connects += 1
        self.connected.set()
        announcer = asyncio.get_running_loop().create_task(self._announce_loop(ws))
        refresher = asyncio.get_running_loop().create_task(self._token_loop(ws))
        try:
            async for raw in ws:
                try:
                    self._on_frame(ws, raw)
                except Exception:  # a frame we mishandle must not drop the connection
                    self.stats.ignored_messages += 1
                    logger.exception("tracker: handling a frame failed")
        except websockets.ConnectionClosed:
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("tracker: reading failed")
        finally:
            self._ws = None
            self.connected.clear()
            self.assignment = None  # the server's word holds only while we hear it
            self.stats.disconnects += 1
            announcer.cancel()
            refresher.cancel()
            for task in (announcer, refresher):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            code = ws.close_code
            if not self._stopping.is_set():
                if code == 4002 and self._token_provider is not None:
                    self._token_stale = True  # a fresh token at the reconnect loses nothing
                    logger.info("tracker: join token expired; reconnecting with a new one")
                elif code in _PERMANENT_CLOSES:
                    detail = (ws.close_reason or "")[:100]
                    reason = _PERMANENT_CLOSES[code] + (f" ({detail})" if detail else "")
                    self._failed(f"closed with {code}: {reason}", True)
                else:
                    logger.info("tracker: connection closed (code %s)", code)
            with contextlib.suppress(Exception):
                await ws.close()

    async def _announce_loop(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        event: AnnounceEvent | None = "started"
        last_s = -1e18
        while not self._stopping.is_set():
            gap_s = self.config.min_announce_gap_s - (loop.time() - last_s)
            if gap_s > 0 and event is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), gap_s)
                if self._stopping.is_set():
                    return
            self._wake.clear()
            if self.config.request_ice_servers and loop.time() >= self._ice_refresh_at_s:
                await self._request_ice(ws)
            offers: Sequence[tuple[str, str]] = ()
            if self._make_offers is not None:
                try:
                    offers = list(await self._make_offers())[:MAX_OFFERS_PER_ANNOUNCE]
                except Exception:
                    logger.exception("tracker: make_offers failed")
            if self._stopping.is_set():
                return
            await self._send(ws, self._announce_body(event, offers))
            self.stats.announces_sent += 1
            self.stats.offers_sent += len(offers)
            last_s = loop.time()
            event = None
            wait_s = self.interval_s
            if self._next_announce_s is not None:
                sooner_s = self._next_announce_s()
                if sooner_s is not None:
                    wait_s = min(wait_s, max(sooner_s, self.config.min_announce_gap_s))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait_s)

    async def _token_loop(self, ws: ClientConnection) -> None:
        """Send a new join token on this socket before the current one expires."""
        provider = self._token_provider
        if provider is None:
            return
        cfg = self.config
        while not self._stopping.is_set():
            exp = token_expiry_unix_s(self._token or "")
            if exp is None:
                return  # no token, or not one we can read: nothing to schedule
            left_s = exp - time.time()
            wait_s = max(0.0, left_s * (1 - cfg.token_refresh_fraction))
            if self.stats.token_refresh_failures and left_s > 0:
                wait_s = min(wait_s, cfg.token_retry_s, left_s / 2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), wait_s)
            if self._stopping.is_set():
                return
            try:
                token = await provider()
            except Exception as exc:
                self.stats.token_refresh_failures += 1
                logger.warning("tracker: the token provider failed (%s)", type(exc).__name__)
                await asyncio.sleep(min(cfg.token_retry_s, max(0.5, left_s / 2)))
                continue
            self._token_answered.clear()
            self._last_token_ok = False
            await self._send(ws, {"action": "token", "token": token})
            try:
                await asyncio.wait_for(self._token_answered.wait(), cfg.open_timeout_s)
            except TimeoutError:
                self.stats.token_refresh_failures += 1
                logger.warning("tracker: no reply to a token refresh")
                continue
            if self._last_token_ok:
                self._token = token  # also what a reconnect uses

    async def _request_ice(self, ws: ClientConnection) -> None:
        self._ice_answered.clear()
        self.stats.ice_requests += 1
        await self._send(ws, {"action": "ice_servers"})
        try:
            await asyncio.wait_for(self._ice_answered.wait(), self.config.ice_timeout_s)
        except TimeoutError:
            self._ice_failed(f"no ice_servers reply within {self.config.ice_timeout_s} s")

    def _ice_failed(self, why: str) -> None:
        self.stats.ice_failures += 1
        # retry at the next announce; offers meanwhile use the configured ICE servers only
        self._ice_refresh_at_s = -1.0
        logger.warning("tracker: no ICE servers from the tracker (%s)", why)

    def _on_ice_reply(self, msg: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        now_unix_s = time.time()
        try:
            grant = parse_ice_reply(msg, now_unix_s)
        except ValueError as exc:
            self.stats.ignored_messages += 1
            self._ice_failed(f"bad ice_servers reply: {exc}")
        else:
            self.ice = grant
            self.stats.ice_replies += 1
            life_s = grant.expires_unix_s - now_unix_s
            self._ice_refresh_at_s = loop.time() + life_s * (1 - self.config.ice_refresh_fraction)
            logger.debug("tracker: %d ICE servers, valid %.0f s", len(grant.servers), life_s)
        self._ice_answered.set()

    def _announce_body(
        self, event: AnnounceEvent | None, offers: Sequence[tuple[str, str]]
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "action": "announce",
            "info_hash": self.info_hash,
            "peer_id": self.peer_id,
            "numwant": len(offers),
        }
        if self._peer_key is not None:
            body["peer_key"] = self._peer_key
        if event is not None:
            body["event"] = event
        if event != "stopped":
            body["offers"] = [
                {"offer_id": offer_id, "offer": {"type": "offer", "sdp": sdp}}
                for offer_id, sdp in offers
            ]
            body.update(self.hints.fields())
            caps = self._fetcher_caps()
            if caps:
                body["caps"] = [*body.get("caps", ()), *caps][:16]
        return body

    def _fetcher_caps(self) -> list[str]:
        cfg = self.config
        if not cfg.fetcher_assignment or FETCHERS_CAP in self.hints.caps:
            return []
        caps = [FETCHERS_CAP]
        if cfg.uplink_bytes_per_s is not None:
            caps.append(f"uplink:{cfg.uplink_bytes_per_s}")
        return caps

    async def _send(self, ws: ClientConnection, body: dict[str, Any]) -> None:
        await ws.send(json.dumps(body, separators=(",", ":")))

    async def _flush_stats(self, ws: ClientConnection) -> None:
        counters = self._counters
        if counters is None or counters == self._counters_sent:
            return
        self._counters_sent = counters
        down, up, cdn, fetches = counters
        body: dict[str, Any] = {
            "action": "stats",
            "info_hash": self.info_hash,
            "peer_id": self.peer_id,
            "bytes_p2p_down": down,
            "bytes_p2p_up": up,
            "bytes_cdn": cdn,
        }
        if fetches is not None:
            body["cdn_fetches_join_ramp"], body["cdn_fetches_steady"] = fetches
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._send(ws, body)
            self.stats.stats_sent += 1

    # --- incoming ---------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_frame(self, ws: ClientConnection, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            self.stats.ignored_messages += 1
            logger.info("tracker: ignored a non-JSON frame")
            return
        if not isinstance(msg, dict):
            self.stats.ignored_messages += 1
            return
        if "failure reason" in msg:
            reason = str(msg.get("reason", "unknown"))
            self.stats.failures += 1
            self.stats.failure_reasons[reason] = self.stats.failure_reasons.get(reason, 0) + 1
            detail = str(msg["failure reason"])[:200]
            logger.warning("tracker: failure reason %r (%s)", detail, reason)
            if self._on_failure is not None:
                self._on_failure(reason, detail)
            if msg.get("action") == "ice_servers":
                self._ice_failed(f"refused: {reason}")
                self._ice_answered.set()
            if msg.get("action") == "token":
                self.stats.token_refresh_failures += 1
                self._last_token_ok = False
                self._token_answered.set()
            return
        if "warning message" in msg:
            logger.info("tracker: warning %r", str(msg["warning message"])[:200])
        action = msg.get("action")
        if action == "ice_servers" and "ice_servers" in msg:
            self._on_ice_reply(msg)
            return
        if action == "token" and "expires_at" in msg:
            self.stats.token_refreshes += 1
            self._last_token_ok = True
            self._token_answered.set()
            return
        if action == "fetchers":
            self._on_fetchers(msg)
            return
        if action != "announce" or msg.get("info_hash") != self.info_hash:
            self.stats.ignored_messages += 1
            return
        if "offer" in msg:
            self._on_relayed_offer(ws, msg)
        elif "answer" in msg:
            self._on_relayed_answer(msg)
        elif "interval" in msg:
            self._on_reply(ws, msg)
        else:
            self.stats.ignored_messages += 1

    def _on_fetchers(self, msg: dict[str, Any]) -> None:
        try:
            assignment = parse_fetchers(msg, self.info_hash)
        except BadFetchersMessage as exc:
            self.stats.fetchers_refused += 1
            logger.warning("tracker: ignored a malformed fetcher assignment: %s", exc)
            return
        self.stats.fetchers_received += 1
        self.assignment = assignment
        self.assignment_until = asyncio.get_running_loop().time() + assignment.valid_s

    def fetcher_assignment(self) -> tuple[tuple[str, ...], float]:
        """``(fetchers, until)`` for the scheduler's view (``((), 0.0)``: none)."""
        if self.assignment is None:
            return (), 0.0
        return self.assignment.fetchers, self.assignment_until

    def _on_reply(self, ws: ClientConnection, msg: dict[str, Any]) -> None:
        interval = msg.get("interval")
        if isinstance(interval, int | float) and not isinstance(interval, bool):
            self.interval_s = max(self.config.min_interval_s, float(interval))
        self.stats.announce_replies += 1
        self._announced_on_socket = True
        self._failures_in_a_row = 0
        if self._counters is not None and self._counters != self._counters_sent:
            self._spawn(self._flush_stats(ws))
        unused = msg.get("unused_offers")
        if self._on_unused_offers is not None and isinstance(unused, list):
            ids = [u for u in unused[:MAX_OFFERS_PER_ANNOUNCE] if isinstance(u, str)]
            if ids:
                self._on_unused_offers(ids)
        complete, incomplete = _count(msg.get("complete")), _count(msg.get("incomplete"))
        self.swarm_size = complete + incomplete
        if self._on_announce_reply is not None:
            self._on_announce_reply(AnnounceReply(self.interval_s, complete, incomplete))

    @staticmethod
    def _sdp_of(msg: dict[str, Any], key: str) -> tuple[str, str, str] | None:
        peer_id = msg.get("peer_id")
        offer_id = msg.get("offer_id")
        desc = msg.get(key)
        if not (isinstance(peer_id, str) and isinstance(offer_id, str) and isinstance(desc, dict)):
            return None
        sdp = desc.get("sdp")
        if desc.get("type") != key or not isinstance(sdp, str) or len(peer_id) != ID_CHARS:
            return None
        return peer_id, offer_id, sdp

    def _on_relayed_offer(self, ws: ClientConnection, msg: dict[str, Any]) -> None:
        parsed = self._sdp_of(msg, "offer")
        if parsed is None:
            self.stats.ignored_messages += 1
            return
        self.stats.offers_received += 1
        drop = msg.get("drop")
        if not (isinstance(drop, str) and len(drop) == ID_CHARS):
            drop = None
        offer = RelayedOffer(*parsed, drop=drop)
        if offer.peer_id == self.peer_id or self._on_offer is None:
            self.stats.offers_refused += 1
            return
        self._spawn(self._answer(ws, offer))

    async def _answer(self, ws: ClientConnection, offer: RelayedOffer) -> None:
        assert self._on_offer is not None
        try:
            sdp = await self._on_offer(offer)
        except Exception:
            logger.exception("tracker: on_offer failed")
            sdp = None
        if sdp is None:
            self.stats.offers_refused += 1
            return
        body = {
            "action": "announce",
            "info_hash": self.info_hash,
            "peer_id": self.peer_id,
            "to_peer_id": offer.peer_id,
            "offer_id": offer.offer_id,
            "answer": {"type": "answer", "sdp": sdp},
        }
        target = self._ws if self._ws is not None else ws
        try:
            await self._send(target, body)
            self.stats.answers_sent += 1
        except websockets.ConnectionClosed:
            logger.info("tracker: socket closed before our answer went out")

    def _on_relayed_answer(self, msg: dict[str, Any]) -> None:
        parsed = self._sdp_of(msg, "answer")
        if parsed is None:
            self.stats.ignored_messages += 1
            return
        self.stats.answers_received += 1
        if self._on_answer is None:
            return
        result = self._on_answer(RelayedAnswer(*parsed))
        if inspect.isawaitable(result):
            self._spawn(result)
