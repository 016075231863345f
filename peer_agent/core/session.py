"""Sans-I/O state machine of one peer wire session (docs/protocol.md §6–§8).

A :class:`PeerSession` never touches a socket, a task or a clock. Inputs are method calls
(``start``, ``receive_data``, ``handle_timer``, ``request``, ``cancel``, the announcements and the
responder calls); outputs are pulled: ``data_to_send(max_bytes)`` (one bytes object per
data-channel message), ``get_timer()`` (when to call ``handle_timer``) and ``next_event()``.

Whatever a peer sends, ``receive_data`` does not raise: bad bytes and broken rules close the
session with the right code and report :class:`~peer_agent.core.events.SessionClosed`.
Calls that are our own mistakes raise :class:`~peer_agent.core.errors.UsageError`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from peer_agent.core import wire
from peer_agent.core.errors import CloseCode, ProtocolViolation, UsageError, WireError
from peer_agent.core.events import (
    DataReceived,
    Event,
    FailureReason,
    HelloReceived,
    PeerFetching,
    PeerHave,
    PeerLost,
    RequestCancelled,
    RequestCompleted,
    RequestFailed,
    ResponseStarted,
    SegmentRequested,
    SessionClosed,
)
from peer_agent.core.ids import MAX_RENDITION, MAX_SEQUENCE, SegmentId

logger = logging.getLogger(__name__)

LEECH_ONLY_RETRY_AFTER_MS = 0xFFFF


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Options of one session; every default is documented in docs/protocol.md §8."""

    hello_timeout_s: float = 10.0  # the remote HELLO must arrive within this, or close TIMEOUT
    # A backstop behind the scheduler's round-trip-aware stall timeout (docs/scheduling.md),
    # which decides first: 2 s cut healthy transfers on 200 ms paths with loss (docs/loadtest.md).
    request_timeout_s: float = 4.0  # REQUEST sent, no RESPONSE/ABSENT/BUSY/ABORT yet
    idle_data_timeout_s: float = 4.0  # RESPONSE received, no DATA for this long
    max_message_bytes: int = wire.MAX_MESSAGE_BYTES  # largest message we send (≤ 65536)
    data_frame_bytes: int = wire.DEFAULT_DATA_FRAME_BYTES  # DATA size incl. its 9-byte header
    max_inbound_requests: int = wire.DEFAULT_MAX_CONCURRENT_REQUESTS  # over: automatic BUSY
    max_outbound_requests: int = wire.DEFAULT_MAX_CONCURRENT_REQUESTS  # over: UsageError
    recently_cancelled_keep: int = 64  # ids whose late frames are dropped silently
    busy_retry_after_ms: int = 500  # hint in the automatic BUSY
    leech_only: bool = False  # HELLO flag bit 0; every REQUEST is answered BUSY

    def __post_init__(self) -> None:
        for name in ("hello_timeout_s", "request_timeout_s", "idle_data_timeout_s"):
            if not getattr(self, name) > 0:
                raise UsageError(f"{name} must be > 0")
        if not wire.DATA_HEADER_BYTES < self.max_message_bytes <= wire.MAX_MESSAGE_BYTES:
            raise UsageError(f"max_message_bytes must be in 10..{wire.MAX_MESSAGE_BYTES}")
        if not wire.DATA_HEADER_BYTES < self.data_frame_bytes <= self.max_message_bytes:
            raise UsageError("data_frame_bytes must be in 10..max_message_bytes")
        for name in ("max_inbound_requests", "max_outbound_requests", "recently_cancelled_keep"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1")
        if not 0 <= self.busy_retry_after_ms <= wire.MAX_U16:
            raise UsageError("busy_retry_after_ms must be a u16")


class SessionState(Enum):
    AWAIT_HELLO = "await_hello"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(slots=True)
class SessionStats:
    """Counters of one session (payload bytes are DATA payloads only)."""

    messages_sent: int = 0
    messages_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    payload_bytes_sent: int = 0
    payload_bytes_received: int = 0
    late_frames_dropped: int = 0
    busy_sent: int = 0
    errors_by_code: dict[str, int] = field(default_factory=dict)  # decode codes, close names

    def count_error(self, code: str) -> None:
        self.errors_by_code[code] = self.errors_by_code.get(code, 0) + 1


@dataclass(slots=True)
class _Outbound:
    """One request we issued."""

    segment: SegmentId
    offset: int
    deadline: float
    total_bytes: int | None = None  # set by RESPONSE
    next_offset: int = 0
    chunks: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class _Inbound:
    """One request the peer issued to us."""

    segment: SegmentId
    offset: int
    total_bytes: int | None = None  # set by respond()
    queued_until: int = 0  # next offset send_data() must supply
    sent_until: int = 0  # next offset data_to_send() will frame
    pending: deque[memoryview] = field(default_factory=deque)


def _fit_reason(reason: str) -> str:
    raw = reason.encode("utf-8")[: wire.MAX_REASON_BYTES]
    return raw.decode("utf-8", errors="ignore")


class PeerSession:
    """One peer wire session over one data channel (docs/protocol.md)."""

    def __init__(
        self,
        config: SessionConfig,
        swarm_id: bytes,
        local_peer_id: bytes,
        now: float,
        expected_peer_id: bytes | None = None,
    ) -> None:
        """``expected_peer_id``: the peer_id signaling paired us with, when known; a HELLO
        carrying another one closes the session with IDENTITY_MISMATCH."""
        if len(swarm_id) != wire.SWARM_ID_BYTES or len(local_peer_id) != wire.PEER_ID_BYTES:
            raise UsageError("swarm_id and local_peer_id must be 20 bytes each")
        if expected_peer_id is not None and len(expected_peer_id) != wire.PEER_ID_BYTES:
            raise UsageError("expected_peer_id must be 20 bytes")
        self.expected_peer_id = None if expected_peer_id is None else bytes(expected_peer_id)
        self.config = config
        self.swarm_id = bytes(swarm_id)
        self.local_peer_id = bytes(local_peer_id)
        self.stats = SessionStats()
        self.remote_peer_id: bytes | None = None
        self.remote_flags = 0
        self._state = SessionState.AWAIT_HELLO
        self._started = False
        self._hello_deadline = now + config.hello_timeout_s
        self._control: deque[bytes] = deque()
        self._events: deque[Event] = deque()
        self._outbound: dict[int, _Outbound] = {}
        self._inbound: dict[int, _Inbound] = {}
        self._round_robin: deque[int] = deque()
        self._cancelled: deque[int] = deque()
        self._cancelled_set: set[int] = set()
        self._next_request_id = 1
        self._frame_payload_bytes = config.data_frame_bytes - wire.DATA_HEADER_BYTES

    # --- state ------------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def is_closed(self) -> bool:
        return self._state is SessionState.CLOSED

    @property
    def remote_leech_only(self) -> bool:
        return bool(self.remote_flags & wire.FLAG_LEECH_ONLY)

    @property
    def outbound_requests(self) -> int:
        return len(self._outbound)

    @property
    def inbound_requests(self) -> int:
        return len(self._inbound)

    @property
    def can_request(self) -> bool:
        return (
            self._state is SessionState.OPEN
            and len(self._outbound) < self.config.max_outbound_requests
        )

    def _require_started(self) -> None:
        if not self._started:
            raise UsageError("call start() first")
        if self._state is SessionState.CLOSED:
            raise UsageError("the session is closed")

    def _queue(self, message: wire.Message) -> None:
        self._control.append(wire.encode(message))

    # --- local inputs -----------------------------------------------------------------------

    def start(
        self,
        *,
        now: float,
        have: Iterable[SegmentId] = (),
        fetching: Iterable[wire.FetchingEntry] = (),
    ) -> None:
        """Queue our HELLO with our full availability. ``have`` is compressed into ranges; it
        must fit the HELLO limits (1024 ranges, 16384 segments, 256 fetching entries), else
        :class:`UsageError`: advertise the most useful subset and announce the rest later."""
        if self._started:
            raise UsageError("start() called twice")
        if self._state is SessionState.CLOSED:
            raise UsageError("the session is closed")
        flags = wire.FLAG_LEECH_ONLY if self.config.leech_only else 0
        hello = wire.Hello(
            self.swarm_id,
            self.local_peer_id,
            flags,
            wire.ranges_from_segments(have),
            tuple(wire.FetchingEntry(SegmentId(*s), e) for s, e in fetching),
        )
        self._queue(hello)
        self._started = True

    def request(self, segment: SegmentId, offset: int, now: float) -> int:
        """Ask the peer for ``segment`` from ``offset``; return the request id."""
        self._require_started()
        if self._state is not SessionState.OPEN:
            raise UsageError("no request before the peer's HELLO")
        if len(self._outbound) >= self.config.max_outbound_requests:
            raise UsageError(f"{len(self._outbound)} requests already in flight")
        if not (0 <= segment[0] <= MAX_RENDITION and 0 <= segment[1] <= MAX_SEQUENCE):
            raise UsageError(f"invalid segment id {segment!r}")
        if not 0 <= offset < wire.MAX_SEGMENT_BYTES:
            raise UsageError(f"offset {offset} out of range")
        request_id = self._allocate_request_id()
        segment = SegmentId(*segment)
        self._outbound[request_id] = _Outbound(
            segment, offset, now + self.config.request_timeout_s, next_offset=offset
        )
        self._queue(wire.Request(request_id, segment, offset))
        return request_id

    def _allocate_request_id(self) -> int:
        while True:
            request_id = self._next_request_id
            self._next_request_id = (request_id + 1) & wire.MAX_U32
            if request_id not in self._outbound and request_id not in self._cancelled_set:
                return request_id

    def cancel(self, request_id: int, now: float) -> bool:
        """Cancel our request; False if it is not in flight (finished, failed or closed)."""
        if self._state is SessionState.CLOSED or self._outbound.pop(request_id, None) is None:
            return False
        self._cancel_outbound(request_id)
        return True

    def _cancel_outbound(self, request_id: int) -> None:
        self._queue(wire.Cancel(request_id))
        if len(self._cancelled) >= self.config.recently_cancelled_keep:
            self._cancelled_set.discard(self._cancelled.popleft())
        self._cancelled.append(request_id)
        self._cancelled_set.add(request_id)

    def announce_have(self, segments: Iterable[SegmentId]) -> None:
        self._announce(wire.Have, [SegmentId(*s) for s in segments])

    def announce_lost(self, segments: Iterable[SegmentId]) -> None:
        self._announce(wire.Lost, [SegmentId(*s) for s in segments])

    def announce_fetching(self, entries: Iterable[wire.FetchingEntry]) -> None:
        items = [wire.FetchingEntry(SegmentId(*s), e) for s, e in entries]
        self._require_started()
        step = wire.MAX_IDS_PER_MESSAGE
        for i in range(0, len(items), step):
            self._queue(wire.Fetching(tuple(items[i : i + step])))

    def _announce(self, kind: type[wire.Have] | type[wire.Lost], items: list[SegmentId]) -> None:
        self._require_started()
        step = wire.MAX_IDS_PER_MESSAGE
        for i in range(0, len(items), step):
            self._queue(kind(tuple(items[i : i + step])))

    # --- responder inputs -------------------------------------------------------------------

    def _upload(self, request_id: int) -> _Inbound | None:
        self._require_started()
        return self._inbound.get(request_id)

    def respond(self, request_id: int, total_bytes: int) -> bool:
        """Accept the peer's request; the segment is ``total_bytes`` long. False if the request
        is no longer active (the peer cancelled it)."""
        up = self._upload(request_id)
        if up is None:
            return False
        if up.total_bytes is not None:
            raise UsageError(f"request {request_id} already answered")
        if not up.offset < total_bytes <= wire.MAX_SEGMENT_BYTES:
            raise UsageError(
                f"total_bytes={total_bytes} must be in ({up.offset}, {wire.MAX_SEGMENT_BYTES}]"
                " (answer ABSENT when there are no bytes at the offset)"
            )
        up.total_bytes = total_bytes
        up.queued_until = up.sent_until = up.offset
        self._queue(wire.Response(request_id, total_bytes))
        return True

    def send_data(self, request_id: int, offset: int, data: bytes | bytearray | memoryview) -> bool:
        """Queue segment bytes ``[offset, offset + len(data))`` for the peer's request; calls
        must be contiguous. Framing happens in ``data_to_send``. False if no longer active."""
        up = self._upload(request_id)
        if up is None:
            return False
        if up.total_bytes is None:
            raise UsageError(f"respond() to request {request_id} before send_data()")
        if offset != up.queued_until:
            raise UsageError(f"send_data at {offset}, expected {up.queued_until}")
        if offset + len(data) > up.total_bytes:
            raise UsageError(f"send_data past total_bytes={up.total_bytes}")
        if len(data):
            up.pending.append(memoryview(bytes(data)))
            up.queued_until += len(data)
            if request_id not in self._round_robin:
                self._round_robin.append(request_id)
        return True

    def _end_upload(self, request_id: int, message: wire.Message | None) -> bool:
        up = self._upload(request_id)
        if up is None:
            return False
        del self._inbound[request_id]
        if request_id in self._round_robin:
            self._round_robin.remove(request_id)
        if message is not None:
            self._queue(message)
        return True

    def reject_absent(self, request_id: int) -> bool:
        self._require_unanswered(request_id)
        return self._end_upload(request_id, wire.Absent(request_id))

    def reject_busy(self, request_id: int, retry_after_ms: int = 0) -> bool:
        self._require_unanswered(request_id)
        if self._inbound.get(request_id) is not None:
            self.stats.busy_sent += 1
        return self._end_upload(request_id, wire.Busy(request_id, retry_after_ms))

    def _require_unanswered(self, request_id: int) -> None:
        up = self._upload(request_id)
        if up is not None and up.total_bytes is not None:
            raise UsageError(f"request {request_id} was answered: use abort()")

    def abort(self, request_id: int, reason: wire.AbortReason = wire.AbortReason.INTERNAL) -> bool:
        """Give up on the peer's request (before or after RESPONSE); unsent data is dropped."""
        return self._end_upload(request_id, wire.Abort(request_id, reason))

    def close(self, code: CloseCode = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the session: queue CLOSE, fail our requests, report SessionClosed."""
        if self._state is not SessionState.CLOSED:
            self._close(code, reason, by_remote=False, send=True)

    def transport_closed(self, reason: str = "transport closed") -> None:
        """The channel or connection died without a CLOSE: report it as the remote's doing
        (GOING_AWAY, ``by_remote=True``), fail our requests, and queue nothing."""
        if self._state is not SessionState.CLOSED:
            self._close(CloseCode.GOING_AWAY, reason, by_remote=True, send=False)

    # --- remote input -----------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Process one data-channel message from the peer. Never raises because of its content."""
        if not self._started:
            raise UsageError("call start() before receive_data()")
        if self._state is SessionState.CLOSED:
            return
        self.stats.messages_received += 1
        self.stats.bytes_received += len(data)
        if isinstance(data, str):  # a text data-channel message: the adapter passed it on
            self.stats.count_error("text_message")
            self._close(CloseCode.PROTOCOL_ERROR, "text message", by_remote=False, send=True)
            return
        try:
            self._receive(data, now)
        except WireError as exc:
            self.stats.count_error(exc.code.value)
            logger.info("peer sent undecodable bytes: %s", exc)
            self._close(exc.close_code, exc.message, by_remote=False, send=True)
        except ProtocolViolation as exc:
            self.stats.count_error(exc.close_code.name)
            logger.info("peer broke the protocol: %s", exc)
            self._close(exc.close_code, exc.message, by_remote=False, send=True)

    def _receive(self, data: bytes | bytearray | memoryview, now: float) -> None:
        if len(data) >= 1 and data[0] == wire.MessageType.HELLO:
            if self._state is SessionState.OPEN:
                raise ProtocolViolation(CloseCode.STATE_VIOLATION, "second HELLO")
            if len(data) >= 2 and data[1] not in (0, wire.PROTOCOL_VERSION):
                raise ProtocolViolation(
                    CloseCode.VERSION_MISMATCH,
                    f"version {data[1]}, expected {wire.PROTOCOL_VERSION}",
                )
        message = wire.decode(data)
        if isinstance(message, wire.Data):
            self._on_data(message, now)
        elif isinstance(message, wire.Close):
            self._close(message.code, message.reason, by_remote=True, send=False)
        elif self._state is SessionState.AWAIT_HELLO:
            if not isinstance(message, wire.Hello):
                name = type(message).__name__.upper()
                raise ProtocolViolation(CloseCode.STATE_VIOLATION, f"{name} before HELLO")
            self._on_hello(message)
        elif isinstance(message, wire.Have):
            self._events.append(PeerHave(message.segments))
        elif isinstance(message, wire.Fetching):
            self._events.append(PeerFetching(message.entries))
        elif isinstance(message, wire.Lost):
            self._events.append(PeerLost(message.segments))
        elif isinstance(message, wire.Request):
            self._on_request(message)
        elif isinstance(message, wire.Cancel):
            if self._inbound.get(message.request_id) is not None:
                self._end_upload(message.request_id, None)
                self._events.append(RequestCancelled(message.request_id))
        elif isinstance(message, wire.Response):
            self._on_response(message, now)
        elif isinstance(message, wire.Absent | wire.Busy | wire.Abort):
            self._on_refusal(message)
        else:  # only HELLO is left, and a second HELLO was rejected above
            raise ProtocolViolation(CloseCode.STATE_VIOLATION, "unexpected HELLO")

    def _on_hello(self, hello: wire.Hello) -> None:
        if hello.swarm_id != self.swarm_id:
            raise ProtocolViolation(CloseCode.SWARM_MISMATCH, "HELLO for another swarm")
        if self.expected_peer_id is not None and hello.peer_id != self.expected_peer_id:
            raise ProtocolViolation(
                CloseCode.IDENTITY_MISMATCH, "HELLO peer_id is not the one signaling paired"
            )
        self._state = SessionState.OPEN
        self.remote_peer_id = hello.peer_id
        self.remote_flags = hello.flags
        have = tuple(s for r in hello.have for s in r.segments())
        self._events.append(
            HelloReceived(hello.peer_id, hello.flags, have, hello.fetching, hello.have)
        )

    def _on_request(self, message: wire.Request) -> None:
        request_id = message.request_id
        if request_id in self._inbound:
            raise ProtocolViolation(
                CloseCode.STATE_VIOLATION, f"request id {request_id} already in flight"
            )
        if self.config.leech_only:
            self._queue(wire.Busy(request_id, LEECH_ONLY_RETRY_AFTER_MS))
            self.stats.busy_sent += 1
        elif len(self._inbound) >= self.config.max_inbound_requests:
            self._queue(wire.Busy(request_id, self.config.busy_retry_after_ms))
            self.stats.busy_sent += 1
        else:
            self._inbound[request_id] = _Inbound(message.segment, message.offset)
            self._events.append(SegmentRequested(request_id, message.segment, message.offset))

    def _outbound_for(self, request_id: int, what: str) -> _Outbound | None:
        """Our request ``request_id``; None for a recently cancelled one (drop the message)."""
        out = self._outbound.get(request_id)
        if out is not None:
            return out
        if request_id in self._cancelled_set:
            self.stats.late_frames_dropped += 1
            return None
        raise ProtocolViolation(
            CloseCode.STATE_VIOLATION, f"{what} for unknown request id {request_id}"
        )

    def _on_response(self, message: wire.Response, now: float) -> None:
        out = self._outbound_for(message.request_id, "RESPONSE")
        if out is None:
            return
        if out.total_bytes is not None:
            raise ProtocolViolation(CloseCode.STATE_VIOLATION, "RESPONSE twice")
        if message.total_bytes <= out.offset:
            raise ProtocolViolation(
                CloseCode.STATE_VIOLATION,
                f"total_bytes={message.total_bytes} not past offset {out.offset}",
            )
        out.total_bytes = message.total_bytes
        out.deadline = now + self.config.idle_data_timeout_s
        self._events.append(
            ResponseStarted(message.request_id, out.segment, message.total_bytes, out.offset)
        )

    def _on_data(self, message: wire.Data, now: float) -> None:
        if self._state is SessionState.AWAIT_HELLO:
            raise ProtocolViolation(CloseCode.STATE_VIOLATION, "DATA before HELLO")
        request_id = message.request_id
        out = self._outbound_for(request_id, "DATA")
        if out is None:
            return
        if out.total_bytes is None:
            raise ProtocolViolation(CloseCode.STATE_VIOLATION, "DATA before RESPONSE")
        if message.offset != out.next_offset:
            raise ProtocolViolation(
                CloseCode.STATE_VIOLATION,
                f"DATA at offset {message.offset}, expected {out.next_offset}",
            )
        payload = message.payload
        end = message.offset + len(payload)
        if end > out.total_bytes:
            raise ProtocolViolation(
                CloseCode.STATE_VIOLATION, f"DATA up to {end} past total {out.total_bytes}"
            )
        out.chunks.append(payload)
        out.next_offset = end
        out.deadline = now + self.config.idle_data_timeout_s
        self.stats.payload_bytes_received += len(payload)
        self._events.append(DataReceived(request_id, out.segment, message.offset, payload))
        if end == out.total_bytes:
            del self._outbound[request_id]
            data = out.chunks[0] if len(out.chunks) == 1 else b"".join(out.chunks)
            out.chunks = []
            self._events.append(
                RequestCompleted(request_id, out.segment, out.offset, out.total_bytes, data)
            )

    def _on_refusal(self, message: wire.Absent | wire.Busy | wire.Abort) -> None:
        name = type(message).__name__.upper()
        out = self._outbound_for(message.request_id, name)
        if out is None:
            return
        retry_after_s = None
        if isinstance(message, wire.Abort):
            reason: FailureReason = "aborted"
        elif out.total_bytes is not None:
            raise ProtocolViolation(CloseCode.STATE_VIOLATION, f"{name} after RESPONSE")
        elif isinstance(message, wire.Busy):
            reason = "busy"
            if message.retry_after_ms:
                retry_after_s = message.retry_after_ms / 1000
        else:
            reason = "absent"
        del self._outbound[message.request_id]
        self._events.append(RequestFailed(message.request_id, out.segment, reason, retry_after_s))

    # --- timers -----------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must be called next (None: no timer armed)."""
        if self._state is SessionState.CLOSED:
            return None
        deadlines = [out.deadline for out in self._outbound.values()]
        if self._state is SessionState.AWAIT_HELLO:
            deadlines.append(self._hello_deadline)
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> None:
        if self._state is SessionState.CLOSED:
            return
        if self._state is SessionState.AWAIT_HELLO and now >= self._hello_deadline:
            timeout_s = self.config.hello_timeout_s
            self._close(
                CloseCode.TIMEOUT, f"no HELLO within {timeout_s:g} s", by_remote=False, send=True
            )
            return
        for request_id, out in list(self._outbound.items()):
            if now >= out.deadline:
                del self._outbound[request_id]
                self._cancel_outbound(request_id)
                self._events.append(RequestFailed(request_id, out.segment, "timeout"))

    # --- outputs ----------------------------------------------------------------------------

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def data_to_send(self, max_bytes: int | None = None) -> list[bytes]:
        """Messages to send now, in order: every queued control message (always, even past the
        budget: they are small and urgent), then DATA frames round-robin across uploads while
        the total stays within ``max_bytes`` (a frame is shortened to fit the budget)."""
        out: list[bytes] = []
        used = 0
        control = self._control
        while control:
            message = control.popleft()
            out.append(message)
            used += len(message)
        budget = max_bytes if max_bytes is not None else 1 << 62
        rr = self._round_robin
        while rr and budget - used > wire.DATA_HEADER_BYTES:
            request_id = rr.popleft()
            up = self._inbound[request_id]
            frame = self._take_frame(
                request_id, up, min(self._frame_payload_bytes, budget - used - 9)
            )
            out.append(frame)
            used += len(frame)
            if up.pending:
                rr.append(request_id)
            elif up.sent_until == up.total_bytes:
                del self._inbound[request_id]  # the upload is complete
        self.stats.messages_sent += len(out)
        self.stats.bytes_sent += used
        return out

    def _take_frame(self, request_id: int, up: _Inbound, limit: int) -> bytes:
        parts: list[bytes | memoryview] = [wire.encode_data_header(request_id, up.sent_until)]
        size = 0
        pending = up.pending
        while pending and size < limit:
            piece = pending[0]
            room = limit - size
            if len(piece) <= room:
                pending.popleft()
            else:
                pending[0] = piece[room:]
                piece = piece[:room]
            parts.append(piece)
            size += len(piece)
        up.sent_until += size
        self.stats.payload_bytes_sent += size
        return b"".join(parts)

    # --- closing ----------------------------------------------------------------------------

    def _close(self, code: int, reason: str, *, by_remote: bool, send: bool) -> None:
        if send:
            self._control.append(wire.encode(wire.Close(int(code), _fit_reason(reason))))
        self._state = SessionState.CLOSED
        for request_id, out in self._outbound.items():
            self._events.append(RequestFailed(request_id, out.segment, "closed"))
        self._outbound.clear()
        self._inbound.clear()
        self._round_robin.clear()
        self._events.append(SessionClosed(int(code), reason, by_remote))
