"""One neighbour: an aiortc peer connection, one data channel and the PeerSession it drives.

A :class:`PeerLink` is glue, no policy. It bridges:

- channel ``message`` -> ``session.receive_data(data, loop.time())``, then every pending event
  goes to ``on_event(link, event)``;
- after every input (a message, a timer, an app call through the wrappers, ``bufferedamountlow``)
  it flushes ``session.data_to_send(max_bytes)`` with a budget that keeps the channel's
  ``bufferedAmount`` under ``high_water_bytes`` (control messages always go out; DATA waits for
  ``bufferedamountlow``, fired when the buffer drains to ``low_water_bytes``);
- one ``asyncio.TimerHandle`` re-armed with ``loop.call_at(session.get_timer())``;
- the end of the transport (channel closed, connection ``failed``/``closed``) closes the session,
  and a closed session tears the transport down. ``SessionClosed`` reaches the app exactly once
  (a link that never got a session, e.g. an offer that expired, reports a synthetic one).

Signalling is full (non-trickle) SDP: aiortc's ``setLocalDescription`` waits for ICE gathering to
complete, so ``localDescription.sdp`` carries every candidate. The offerer creates the channel
(label ``p2p-hls/1``, ordered, reliable: in-band DCEP negotiation); the answerer takes it from the
``datachannel`` event, which aiortc fires with a channel that is already open.

The session is created when the SDP exchange completes (answer accepted, or offer answered), so
its HELLO timeout does not run while an offer waits for an answer; an offer left unanswered for
``offer_ttl_s`` closes the link.

Loopback. aioice leaves 127.0.0.1 out of the host addresses it gathers, so two agents on a box
with only ``lo`` find no candidate pair. ``LinkConfig.host_addresses`` restricts (or extends) the
addresses gathered for one link, e.g. ``("127.0.0.1",)`` in tests. It is implemented by wrapping
``aioice.ice.get_host_addresses`` once per process with a function that consults a
``ContextVar``; the variable is set only around this link's ``setLocalDescription`` (gathering runs
in that task and in tasks it spawns, which inherit the context), so other connections keep
aioice's default behaviour. This is less fragile than rewriting SDP (the sockets must really be
bound to the address advertised). :func:`ice_host_addresses` exposes the same switch for raw
``RTCPeerConnection``s (tests).

aioice's UDP receive buffer is raised to ``udp_receive_buffer_bytes`` (default 4 MiB) through
``aioice.turn.UDP_SOCKET_BUFFER_SIZE``: the sender otherwise overruns the receiver's socket and
SCTP stalls. The kernel caps it at ``net.core.rmem_max``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import aioice.ice
import aioice.turn
from aiortc import RTCConfiguration, RTCDataChannel, RTCIceServer, RTCPeerConnection
from aiortc import RTCSessionDescription as _SDP

from peer_agent.core import wire
from peer_agent.core.errors import CloseCode
from peer_agent.core.events import Event, LateFrames, SessionClosed
from peer_agent.core.ids import SegmentId
from peer_agent.core.session import PeerSession, SessionConfig

logger = logging.getLogger(__name__)

CHANNEL_LABEL = wire.CHANNEL_LABEL
MIB = 1024 * 1024

HelloContent = tuple[Iterable[SegmentId], Iterable[wire.FetchingEntry]]
EventCallback = Callable[["PeerLink", Event], None]

# --- aioice host addresses ------------------------------------------------------------------

_HOST_ADDRESSES: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "p2p_hls_ice_host_addresses", default=None
)
_hook_installed = False


def _install_host_address_hook() -> None:
    global _hook_installed
    if _hook_installed:
        return
    original = aioice.ice.get_host_addresses

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        override = _HOST_ADDRESSES.get()
        if override is None:
            return original(use_ipv4, use_ipv6)
        return list(override)

    aioice.ice.get_host_addresses = get_host_addresses
    _hook_installed = True


@contextlib.contextmanager
def ice_host_addresses(addresses: Iterable[str] | None) -> Iterator[None]:
    """Within this block (this task and tasks it starts), aioice gathers host candidates on
    exactly ``addresses`` (None: aioice's default, which omits 127.0.0.1)."""
    _install_host_address_hook()
    token = _HOST_ADDRESSES.set(None if addresses is None else tuple(addresses))
    try:
        yield
    finally:
        _HOST_ADDRESSES.reset(token)


# --- aioice: direct paths before the relay ----------------------------------------------------

_RELAY_CHECK_DELAY_S = 0.0
_relay_hook_installed = False


def _is_relay_pair(pair: Any) -> bool:
    return "relay" in (pair.local_candidate.type, pair.remote_candidate.type)


def set_relay_check_delay(delay_s: float) -> None:
    """Start connectivity checks of pairs that involve a TURN relay candidate ``delay_s`` late.

    aioice nominates aggressively: the controlling agent sends USE-CANDIDATE with every check
    and the first check to succeed becomes the connection's path, whatever its priority. With a
    TURN server configured, a relay pair often answers first and two peers that could talk
    directly end up paying for the relay (measured on the network bed, docs/netbed.md). Delaying
    the relay checks lets a direct pair win when one works; a pair that needs the relay connects
    ``delay_s`` later. Process-wide (aioice's ``Connection.check_start`` is wrapped once)."""
    global _RELAY_CHECK_DELAY_S, _relay_hook_installed
    _RELAY_CHECK_DELAY_S = max(0.0, delay_s)
    if _relay_hook_installed:
        return
    original = aioice.ice.Connection.check_start

    async def check_start(self: Any, pair: Any) -> None:
        if _RELAY_CHECK_DELAY_S > 0 and _is_relay_pair(pair):
            # In progress while it waits, so the pacing timer moves on to the other pairs.
            self.check_state(pair, aioice.ice.CandidatePair.State.IN_PROGRESS)
            await asyncio.sleep(_RELAY_CHECK_DELAY_S)
            if pair.component in self._nominated:  # a direct pair won meanwhile
                self.check_state(pair, aioice.ice.CandidatePair.State.FAILED)
                return
        await original(self, pair)

    aioice.ice.Connection.check_start = check_start  # type: ignore[method-assign]
    _relay_hook_installed = True


def raise_udp_receive_buffer(size_bytes: int) -> None:
    """Make aioice ask for at least ``size_bytes`` of UDP receive buffer on new sockets."""
    if size_bytes > aioice.turn.UDP_SOCKET_BUFFER_SIZE:
        aioice.turn.UDP_SOCKET_BUFFER_SIZE = size_bytes


def selected_candidate_types(pc: RTCPeerConnection) -> tuple[str, str] | None:
    """(local, remote) candidate types of the pair aioice nominated on ``pc``'s data transport.

    aiortc exposes no getStats() candidate pair for data channels; this reads aioice's
    nominated pair (``Connection._nominated``) through the SCTP -> DTLS -> ICE transports. aioice
    pairs only host and relay local candidates (a server-reflexive candidate's base is a host
    candidate), so a hole-punched path shows as local ``host`` with a remote ``srflx``/``prflx``.
    """
    sctp = pc.sctp
    if sctp is None:
        return None
    connection = getattr(sctp.transport.transport, "_connection", None)
    nominated = getattr(connection, "_nominated", None)
    if not nominated:
        return None
    pair = nominated.get(1) or next(iter(nominated.values()))
    return (str(pair.local_candidate.type), str(pair.remote_candidate.type))


def remote_identity_keys(pc: RTCPeerConnection) -> tuple[str, ...]:
    """What identifies the remote of ``pc`` beyond its peer id, for bans that stick
    (docs/exchange.md, "Reputation"): ``addr:<IP>`` of the remote candidate of the pair aioice
    nominated (no port: ports are free), and ``cert:<algorithm> <fingerprint>`` of each DTLS
    certificate fingerprint its description announced (aiortc's DTLS handshake fails unless the
    certificate matches them). No address for a remote ``relay`` candidate: that is the TURN
    server's, shared by every peer it relays. Empty before ICE nominated a pair / before a
    remote description.
    """
    keys: list[str] = []
    sctp = pc.sctp
    connection = getattr(sctp.transport.transport, "_connection", None) if sctp else None
    nominated = getattr(connection, "_nominated", None)
    if nominated:
        pair = nominated.get(1) or next(iter(nominated.values()))
        if pair.remote_candidate.type != "relay":
            keys.append(f"addr:{pair.remote_addr[0]}")
    remote = pc.remoteDescription
    if remote is not None:
        for line in remote.sdp.splitlines():
            if line.startswith("a=fingerprint:"):
                algorithm, _, value = line[len("a=fingerprint:") :].strip().partition(" ")
                keys.append(f"cert:{algorithm.lower()} {value.strip().upper()}")
    return tuple(dict.fromkeys(keys))


# --- configuration --------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkConfig:
    """Options of one :class:`PeerLink`."""

    # ICE servers of the RTCPeerConnection. Empty: host candidates only (tests, LANs). aiortc's
    # own default contacts a public STUN server; we never use it implicitly.
    ice_servers: tuple[RTCIceServer, ...] = ()
    # Host addresses to gather candidates on (None: aioice's choice, which omits 127.0.0.1).
    host_addresses: tuple[str, ...] | None = None
    # DATA is only pulled from the session while channel.bufferedAmount is under this.
    high_water_bytes: int = 1 * MIB
    # bufferedAmountLowThreshold: the flush resumes when the buffer drains to this.
    low_water_bytes: int = 256 * 1024
    # An offer with no answer after this long is closed.
    offer_ttl_s: float = 30.0
    # After we close a session, wait this long for the peer to close the channel (so our CLOSE
    # is delivered) before tearing the connection down.
    close_timeout_s: float = 2.0
    # A link closed while ICE gathers waits this long for gathering to end before closing the
    # connection: aioice registers a TURN allocation only when gathering ends, and
    # Connection.close() deletes only those it registered, so closing mid-gathering leaked the
    # allocation on the TURN server (refreshed while the process lives). aioice gives up
    # gathering after 5 s.
    close_gather_wait_s: float = 6.0
    # Requested UDP receive buffer of aioice sockets (capped by net.core.rmem_max).
    udp_receive_buffer_bytes: int = 4 * MIB
    # Connectivity checks of pairs with a TURN relay candidate start this late, so a direct
    # pair wins when one works (aioice nominates the first pair that answers; process-wide).
    relay_check_delay_s: float = 1.0
    session: SessionConfig = field(default_factory=SessionConfig)

    def __post_init__(self) -> None:
        if self.low_water_bytes < 0:
            raise ValueError("low_water_bytes must be >= 0")
        if self.high_water_bytes - self.low_water_bytes < wire.MAX_MESSAGE_BYTES:
            raise ValueError("high_water_bytes must exceed low_water_bytes by >= 64 KiB")
        if self.relay_check_delay_s < 0:
            raise ValueError("relay_check_delay_s must be >= 0")
        if self.offer_ttl_s <= 0 or self.close_timeout_s < 0 or self.close_gather_wait_s < 0:
            raise ValueError(
                "offer_ttl_s must be > 0, close_timeout_s and close_gather_wait_s >= 0"
            )


Role = Literal["offerer", "answerer"]


class PeerLink:
    """One neighbour: RTCPeerConnection + data channel ``p2p-hls/1`` + PeerSession.

    Offerer: ``sdp = await create_offer()``, then ``await accept_answer(answer_sdp)``.
    Answerer: ``answer_sdp = await accept_offer(offer_sdp)``.
    """

    def __init__(
        self,
        *,
        swarm_id: bytes,
        local_peer_id: bytes,
        on_event: EventCallback,
        hello: Callable[[], HelloContent] | None = None,
        config: LinkConfig | None = None,
        remote_peer_id: str | None = None,
    ) -> None:
        self.config = config if config is not None else LinkConfig()
        self.swarm_id = bytes(swarm_id)
        self.local_peer_id = bytes(local_peer_id)
        self.remote_peer_id = remote_peer_id
        self.role: Role | None = None
        self.opened = asyncio.Event()  # the channel is open and our HELLO is queued
        self.closed = asyncio.Event()  # the connection is torn down
        self.max_buffered_bytes = 0  # highest bufferedAmount seen after a flush
        self._loop = asyncio.get_running_loop()
        self.created_at_s = self._loop.time()  # for the set-up time (creation -> peer's HELLO)
        self._on_event = on_event
        self._hello = hello
        self._session: PeerSession | None = None
        self._started = False
        self._closed_reported = False
        self._pumping = False
        self._repump = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when: float | None = None
        self._ttl: asyncio.TimerHandle | None = None
        self._teardown_task: asyncio.Task[None] | None = None
        self._channel_closed = asyncio.Event()
        self._gathering = 0  # setLocalDescription calls in progress (ICE gathering)
        self._gathered = asyncio.Event()  # set whenever none is in progress
        self._gathered.set()
        self.channel: RTCDataChannel | None = None
        raise_udp_receive_buffer(self.config.udp_receive_buffer_bytes)
        set_relay_check_delay(self.config.relay_check_delay_s)
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=list(self.config.ice_servers)))
        self.pc.on("connectionstatechange", self._guard(self._on_connection_state))
        self.pc.on("datachannel", self._guard(self._on_datachannel))

    # --- state ------------------------------------------------------------------------------

    @property
    def session(self) -> PeerSession:
        """The session (exists once the SDP exchange is complete)."""
        if self._session is None:
            raise RuntimeError("the SDP exchange is not complete: no session yet")
        return self._session

    @property
    def has_session(self) -> bool:
        return self._session is not None

    @property
    def is_open(self) -> bool:
        """Our HELLO is queued and the session is not closed (announcements are accepted)."""
        return self._started and self._session is not None and not self._session.is_closed

    @property
    def is_closed(self) -> bool:
        return self._closed_reported

    def candidate_types(self) -> tuple[str, str] | None:
        """(local, remote) ICE candidate types of the selected pair (``host``, ``srflx``,
        ``prflx``, ``relay``), or None before ICE has nominated a pair."""
        return selected_candidate_types(self.pc)

    def identity_keys(self) -> tuple[str, ...]:
        """The remote's transport address and certificate fingerprints
        (:func:`remote_identity_keys`)."""
        return remote_identity_keys(self.pc)

    def __repr__(self) -> str:
        state = self._session.state.value if self._session is not None else "signalling"
        return f"<PeerLink {self.role} remote={self.remote_peer_id!r} {state}>"

    # --- signalling -------------------------------------------------------------------------

    async def _set_local(self, description: _SDP) -> str:
        self._gathering += 1
        self._gathered.clear()
        try:
            with ice_host_addresses(self.config.host_addresses):
                await self.pc.setLocalDescription(description)
        finally:
            self._gathering -= 1
            if self._gathering == 0:
                self._gathered.set()
        local = self.pc.localDescription
        assert local is not None
        return str(local.sdp)

    async def create_offer(self) -> str:
        """Create the channel and a full SDP offer (gathering complete). Starts the TTL."""
        if self.role is not None:
            raise RuntimeError("create_offer on a link already in use")
        self.role = "offerer"
        channel = self.pc.createDataChannel(CHANNEL_LABEL, ordered=True)
        self._wire_channel(channel)
        sdp = await self._set_local(await self.pc.createOffer())
        if not self._closed_reported:
            self._ttl = self._loop.call_later(self.config.offer_ttl_s, self._offer_expired)
        return sdp

    async def accept_answer(self, sdp: str, remote_peer_id: str | None = None) -> None:
        """Apply the remote answer to our offer; the session starts its HELLO timeout now."""
        if self.role != "offerer" or self._session is not None:
            raise RuntimeError("accept_answer needs a pending offer")
        if self._closed_reported:
            return
        self._cancel_ttl()
        if remote_peer_id is not None:
            self.remote_peer_id = remote_peer_id
        self._new_session()
        try:
            await self.pc.setRemoteDescription(_SDP(sdp=sdp, type="answer"))
        except Exception as exc:  # a broken SDP from a peer: drop this link only
            logger.info("link %r: bad answer SDP: %s", self, type(exc).__name__)
            await self.close(CloseCode.PROTOCOL_ERROR, "bad answer SDP")

    async def accept_offer(self, sdp: str, remote_peer_id: str | None = None) -> str | None:
        """Answer a remote offer; return the full answer SDP (None if the offer was unusable,
        in which case the link is closed)."""
        if self.role is not None:
            raise RuntimeError("accept_offer on a link already in use")
        self.role = "answerer"
        if remote_peer_id is not None:
            self.remote_peer_id = remote_peer_id
        self._new_session()
        try:
            await self.pc.setRemoteDescription(_SDP(sdp=sdp, type="offer"))
            if self.pc.sctp is None:
                raise ValueError("the offer has no data channel (m=application) section")
            return await self._set_local(await self.pc.createAnswer())
        except Exception as exc:
            logger.info("link %r: cannot answer the offer: %s", self, type(exc).__name__)
            await self.close(CloseCode.PROTOCOL_ERROR, "bad offer SDP")
            return None

    def _new_session(self) -> None:
        expected = None
        if self.remote_peer_id is not None and len(self.remote_peer_id) == 20:
            expected = self.remote_peer_id.encode("latin-1", errors="replace")
        self._session = PeerSession(
            self.config.session,
            self.swarm_id,
            self.local_peer_id,
            self._loop.time(),
            expected_peer_id=expected,
        )
        self._arm_timer()

    def _offer_expired(self) -> None:
        self._ttl = None
        if self._session is None and not self._closed_reported:
            logger.debug("link %r: offer expired", self)
            self._report_closed(SessionClosed(int(CloseCode.NORMAL), "offer expired", False))

    def _cancel_ttl(self) -> None:
        if self._ttl is not None:
            self._ttl.cancel()
            self._ttl = None

    # --- channel and connection events ------------------------------------------------------

    def _guard(self, handler: Callable[..., None]) -> Callable[..., None]:
        """Wrap an aiortc event handler: a bug of ours closes this link, never aiortc's loop."""

        def guarded(*args: Any) -> None:
            try:
                handler(*args)
            except Exception:
                logger.exception("link %r: %s failed", self, handler.__name__)
                self._internal_error()

        return guarded

    def _internal_error(self) -> None:
        session = self._session
        try:
            if session is not None and not session.is_closed:
                session.close(CloseCode.GOING_AWAY, "internal error")
                self._pump()
            elif not self._closed_reported:
                self._report_closed(
                    SessionClosed(int(CloseCode.GOING_AWAY), "internal error", False)
                )
        except Exception:
            logger.exception("link %r: closing after an internal error failed", self)

    def _wire_channel(self, channel: RTCDataChannel) -> None:
        self.channel = channel
        channel.bufferedAmountLowThreshold = self.config.low_water_bytes
        channel.on("open", self._guard(self._on_open))
        channel.on("message", self._guard(self._on_message))
        channel.on("bufferedamountlow", self._guard(self._pump))
        channel.on("close", self._guard(self._on_channel_close))

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if self.channel is not None or channel.label != CHANNEL_LABEL:
            logger.info("link %r: closing an unexpected data channel", self)
            channel.close()
            return
        self._wire_channel(channel)
        if channel.readyState == "open":  # aiortc hands the channel over already open
            self._on_open()

    def _on_open(self) -> None:
        session = self._session
        if self._started or session is None or session.is_closed:
            return
        have: Iterable[SegmentId] = ()
        fetching: Iterable[wire.FetchingEntry] = ()
        if self._hello is not None:
            have, fetching = self._hello()
        session.start(now=self._loop.time(), have=have, fetching=fetching)
        self._started = True
        self.opened.set()
        self._pump()

    def _on_message(self, data: bytes | str) -> None:
        session = self._session
        if session is None:
            return
        if not self._started:
            self._on_open()
        # A str (text message) is passed on: the session closes with PROTOCOL_ERROR.
        late = session.stats.late_frames_dropped
        session.receive_data(data, self._loop.time())  # type: ignore[arg-type]
        self._pump()
        late = session.stats.late_frames_dropped - late
        if late > 0:  # bytes stuck behind a loss arrived after we gave up: the link is alive
            self._deliver(LateFrames(late))

    def _on_channel_close(self) -> None:
        self._channel_closed.set()
        self._transport_lost("data channel closed")

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state in ("failed", "closed"):
            self._channel_closed.set()
            self._transport_lost(f"connection {state}")

    def _transport_lost(self, why: str) -> None:
        session = self._session
        if session is not None and not session.is_closed:
            session.transport_closed(why)
            self._pump()
        elif session is None and not self._closed_reported:
            self._report_closed(SessionClosed(int(CloseCode.GOING_AWAY), why, True))

    # --- the pump ---------------------------------------------------------------------------

    def _pump(self) -> None:
        """Flush output and deliver events until both are drained; re-arm the timer."""
        session = self._session
        if session is None:
            return
        if self._pumping:  # called from inside on_event: the outer loop goes round again
            self._repump = True
            return
        self._pumping = True
        try:
            while True:
                self._repump = False
                self._flush()
                while (event := session.next_event()) is not None:
                    if isinstance(event, SessionClosed):
                        self._report_closed(event)
                    else:
                        self._deliver(event)
                    self._flush()
                if not self._repump:
                    break
        finally:
            self._pumping = False
        self._arm_timer()

    def _deliver(self, event: Event) -> None:
        try:
            self._on_event(self, event)
        except Exception:
            logger.exception("link %r: on_event raised on %s", self, type(event).__name__)

    def _flush(self) -> None:
        session = self._session
        channel = self.channel
        if session is None or not self._started or channel is None:
            return
        if channel.readyState != "open":
            return
        budget = self.config.high_water_bytes - channel.bufferedAmount
        if budget < self.config.session.data_frame_bytes:
            budget = 0  # control messages only; DATA resumes on bufferedamountlow
        messages = session.data_to_send(budget)
        try:
            for message in messages:
                channel.send(message)
        except Exception as exc:  # the channel closed under us; its close event follows
            logger.debug("link %r: send failed: %s", self, type(exc).__name__)
            return
        if channel.bufferedAmount > self.max_buffered_bytes:
            self.max_buffered_bytes = channel.bufferedAmount

    def _arm_timer(self) -> None:
        session = self._session
        when = None if session is None or session.is_closed else session.get_timer()
        if when == self._timer_when:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_when = when
        if when is not None:
            self._timer = self._loop.call_at(when, self._guard(self._on_timer))

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_when = None
        session = self._session
        if session is not None:
            session.handle_timer(self._loop.time())
            self._pump()

    # --- closing ----------------------------------------------------------------------------

    def _report_closed(self, event: SessionClosed) -> None:
        if self._closed_reported:
            return
        self._closed_reported = True
        self._cancel_ttl()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deliver(event)
        self._teardown_task = self._loop.create_task(self._teardown(event))

    async def _teardown(self, event: SessionClosed) -> None:
        try:
            channel = self.channel
            if (
                not event.by_remote
                and self._started
                and channel is not None
                and channel.readyState == "open"
                and self.config.close_timeout_s > 0
            ):
                # Our CLOSE is queued: let the peer read it and close the channel itself.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.config.close_timeout_s):
                        await self._channel_closed.wait()
            if channel is not None and channel.readyState not in ("closing", "closed"):
                channel.close()
            if not self._gathered.is_set():
                # Let gathering end so that close() deletes its TURN allocation (LinkConfig).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.config.close_gather_wait_s):
                        await self._gathered.wait()
            await self.pc.close()
        except Exception:
            logger.exception("link %r: teardown failed", self)
        finally:
            self.closed.set()

    async def close(self, code: CloseCode = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the session (CLOSE with ``code``), then the channel and the connection."""
        session = self._session
        if session is not None and not session.is_closed:
            session.close(code, reason)
            self._pump()
        elif not self._closed_reported:
            self._report_closed(SessionClosed(int(code), reason or "closed", False))
        await self.closed.wait()

    # --- app inputs (each calls the session, then flushes) ------------------------------------

    def flush(self) -> None:
        """Flush output and deliver events after calling ``link.session`` methods directly."""
        self._pump()

    def _call(self, method: str, *args: Any) -> Any:
        result = getattr(self.session, method)(*args)
        self._pump()
        return result

    def request(self, segment: SegmentId, offset: int = 0) -> int:
        return int(self._call("request", segment, offset, self._loop.time()))

    def cancel(self, request_id: int) -> bool:
        return bool(self._call("cancel", request_id, self._loop.time()))

    def respond(self, request_id: int, total_bytes: int) -> bool:
        return bool(self._call("respond", request_id, total_bytes))

    def send_data(self, request_id: int, offset: int, data: bytes | bytearray | memoryview) -> bool:
        return bool(self._call("send_data", request_id, offset, data))

    def reject_absent(self, request_id: int) -> bool:
        return bool(self._call("reject_absent", request_id))

    def reject_busy(self, request_id: int, retry_after_ms: int = 0) -> bool:
        return bool(self._call("reject_busy", request_id, retry_after_ms))

    def abort(self, request_id: int, reason: wire.AbortReason = wire.AbortReason.INTERNAL) -> bool:
        return bool(self._call("abort", request_id, reason))

    def announce_have(self, segments: Iterable[SegmentId]) -> bool:
        """Queue HAVE; False (nothing sent) before our HELLO (which carries it) or after close."""
        if not self.is_open:
            return False
        self._call("announce_have", segments)
        return True

    def announce_fetching(self, entries: Iterable[wire.FetchingEntry]) -> bool:
        if not self.is_open:
            return False
        self._call("announce_fetching", entries)
        return True

    def announce_lost(self, segments: Iterable[SegmentId]) -> bool:
        if not self.is_open:
            return False
        self._call("announce_lost", segments)
        return True
