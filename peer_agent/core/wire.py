"""Codec of the peer wire protocol v1 (``docs/protocol.md``): pure, no state, no I/O.

``encode(message) -> bytes`` and ``decode(data) -> Message``. ``decode`` validates every field
and raises :class:`~peer_agent.core.errors.WireError` (never ``IndexError``, ``struct.error`` or
``UnicodeDecodeError``); ``encode`` validates too and raises
:class:`~peer_agent.core.errors.UsageError` for a message we should never have built.

Decoding reads fields in order and validates each as soon as it is read; the first failure is
reported, and bytes left after the last field are ``trailing_bytes``. Before that, an empty
message is ``truncated``, one over :data:`MAX_MESSAGE_BYTES` is ``oversize`` and an unknown
first byte is ``unknown_type``. ``web_demo/wire.js`` follows the same order, so both codecs report
the same code for every vector in ``docs/vectors/wire/``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from peer_agent.core.errors import UsageError, WireError, WireErrorCode
from peer_agent.core.ids import MAX_RENDITION, MAX_SEQUENCE, SegmentId

# --- Constants and limits (docs/protocol.md, "Limits") -------------------------------------

PROTOCOL_VERSION = 1
CHANNEL_LABEL = "p2p-hls/1"

SWARM_ID_BYTES = 20
PEER_ID_BYTES = 20

MAX_MESSAGE_BYTES = 65536
DATA_HEADER_BYTES = 9  # type u8, request_id u32, offset u32
MAX_DATA_PAYLOAD_BYTES = MAX_MESSAGE_BYTES - DATA_HEADER_BYTES  # 65527
#: Our DATA messages by default (``SessionConfig.data_frame_bytes``): a relay forwards a frame
#: only once it has arrived whole, so small frames let a segment flow through relays.
DEFAULT_DATA_FRAME_BYTES = 16 * 1024
MAX_HELLO_RANGES = 1024
MAX_HELLO_HAVE_SEGMENTS = 16384  # sum of the range counts in one HELLO
MAX_FETCHING_ENTRIES = 256
MAX_IDS_PER_MESSAGE = 1024
MAX_SEGMENT_BYTES = 64 * 1024 * 1024
MAX_REASON_BYTES = 123
DEFAULT_MAX_CONCURRENT_REQUESTS = 8

MAX_U8 = 0xFF
MAX_U16 = 0xFFFF
MAX_U32 = 0xFFFFFFFF

FLAG_LEECH_ONLY = 0x01
KNOWN_FLAGS = FLAG_LEECH_ONLY


class MessageType(IntEnum):
    """The first byte of every message."""

    HELLO = 0x01
    HAVE = 0x02
    FETCHING = 0x03
    LOST = 0x04
    REQUEST = 0x10
    RESPONSE = 0x11
    DATA = 0x12
    CANCEL = 0x13
    ABSENT = 0x14
    BUSY = 0x15
    ABORT = 0x16
    CLOSE = 0x20


class AbortReason(IntEnum):
    """Reasons carried by ABORT (u8)."""

    UPSTREAM_FAILED = 1
    EVICTED = 2
    SHUTTING_DOWN = 3
    INTERNAL = 4


# --- Value types -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentRange:
    """``count`` consecutive sequences of one rendition, starting at ``first_sequence``."""

    rendition: int
    first_sequence: int
    count: int

    @property
    def last_sequence(self) -> int:
        return self.first_sequence + self.count - 1

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        rendition, sequence = item
        return bool(
            rendition == self.rendition
            and self.first_sequence <= sequence < self.first_sequence + self.count
        )

    def segments(self) -> tuple[SegmentId, ...]:
        r = self.rendition
        return tuple(SegmentId(r, s) for s in range(self.first_sequence, self.last_sequence + 1))


class FetchingEntry(NamedTuple):
    """A segment being downloaded and its expected size in bytes (0 = unknown)."""

    segment: SegmentId
    expected_bytes: int


def ranges_from_segments(segments: Iterable[SegmentId]) -> tuple[SegmentRange, ...]:
    """Compress segment ids into the fewest ranges (sorted, duplicates merged)."""
    out: list[SegmentRange] = []
    for rendition, sequence in sorted(set(segments)):
        if out:
            last = out[-1]
            if (
                last.rendition == rendition
                and last.first_sequence + last.count == sequence
                and last.count < MAX_U16
            ):
                out[-1] = SegmentRange(rendition, last.first_sequence, last.count + 1)
                continue
        out.append(SegmentRange(rendition, sequence, 1))
    return tuple(out)


# --- Messages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    swarm_id: bytes
    peer_id: bytes
    flags: int = 0
    have: tuple[SegmentRange, ...] = ()
    fetching: tuple[FetchingEntry, ...] = ()
    version: int = PROTOCOL_VERSION

    @property
    def leech_only(self) -> bool:
        return bool(self.flags & FLAG_LEECH_ONLY)


@dataclass(frozen=True, slots=True)
class Have:
    segments: tuple[SegmentId, ...]


@dataclass(frozen=True, slots=True)
class Fetching:
    entries: tuple[FetchingEntry, ...]


@dataclass(frozen=True, slots=True)
class Lost:
    segments: tuple[SegmentId, ...]


@dataclass(frozen=True, slots=True)
class Request:
    request_id: int
    segment: SegmentId
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Response:
    request_id: int
    total_bytes: int


@dataclass(frozen=True, slots=True)
class Data:
    request_id: int
    offset: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Cancel:
    request_id: int


@dataclass(frozen=True, slots=True)
class Absent:
    request_id: int


@dataclass(frozen=True, slots=True)
class Busy:
    request_id: int
    retry_after_ms: int


@dataclass(frozen=True, slots=True)
class Abort:
    request_id: int
    reason: int


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str = ""


Message = (
    Hello
    | Have
    | Fetching
    | Lost
    | Request
    | Response
    | Data
    | Cancel
    | Absent
    | Busy
    | Abort
    | Close
)

_MESSAGE_CLASSES = (
    Hello,
    Have,
    Fetching,
    Lost,
    Request,
    Response,
    Data,
    Cancel,
    Absent,
    Busy,
    Abort,
    Close,
)

# --- Encoding ---------------------------------------------------------------------------------

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_SEGMENT = struct.Struct(">HI")
_RANGE = struct.Struct(">HIH")
_FETCHING = struct.Struct(">HII")
_TYPE_ID = struct.Struct(">BI")
_DATA_HEADER = struct.Struct(">BII")
_REQUEST = struct.Struct(">BIHII")
_RESPONSE = struct.Struct(">BII")
_BUSY = struct.Struct(">BIH")
_ABORT = struct.Struct(">BIB")
_CLOSE_HEADER = struct.Struct(">BHB")


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or not low <= value <= high:
        raise UsageError(f"{name}={value!r} is outside [{low}, {high}]")


def _check_segment(name: str, segment: SegmentId) -> None:
    _check_int(f"{name}.rendition", segment[0], 0, MAX_RENDITION)
    _check_int(f"{name}.sequence", segment[1], 0, MAX_SEQUENCE)


def _check_count(name: str, count: int, low: int, high: int) -> None:
    if not low <= count <= high:
        raise UsageError(f"{name} has {count} entries, allowed {low}..{high}")


def _encode_segments(type_: MessageType, segments: tuple[SegmentId, ...]) -> bytes:
    _check_count("segments", len(segments), 1, MAX_IDS_PER_MESSAGE)
    parts = [bytes((type_,)), _U16.pack(len(segments))]
    for i, segment in enumerate(segments):
        _check_segment(f"segments[{i}]", segment)
        parts.append(_SEGMENT.pack(segment[0], segment[1]))
    return b"".join(parts)


def _encode_fetching_entries(entries: tuple[FetchingEntry, ...], parts: list[bytes]) -> None:
    parts.append(_U16.pack(len(entries)))
    for i, (segment, expected_bytes) in enumerate(entries):
        _check_segment(f"fetching[{i}].segment", segment)
        _check_int(f"fetching[{i}].expected_bytes", expected_bytes, 0, MAX_SEGMENT_BYTES)
        parts.append(_FETCHING.pack(segment[0], segment[1], expected_bytes))


def _encode_hello(m: Hello) -> bytes:
    _check_int("version", m.version, 1, MAX_U8)
    if not isinstance(m.swarm_id, bytes) or len(m.swarm_id) != SWARM_ID_BYTES:
        raise UsageError(f"swarm_id must be {SWARM_ID_BYTES} bytes")
    if not isinstance(m.peer_id, bytes) or len(m.peer_id) != PEER_ID_BYTES:
        raise UsageError(f"peer_id must be {PEER_ID_BYTES} bytes")
    _check_int("flags", m.flags, 0, KNOWN_FLAGS)
    _check_count("have", len(m.have), 0, MAX_HELLO_RANGES)
    _check_count("fetching", len(m.fetching), 0, MAX_FETCHING_ENTRIES)
    parts = [bytes((MessageType.HELLO, m.version)), m.swarm_id, m.peer_id, bytes((m.flags,))]
    parts.append(_U16.pack(len(m.have)))
    covered = 0
    for i, item in enumerate(m.have):
        rendition, first, count = item.rendition, item.first_sequence, item.count
        _check_int(f"have[{i}].rendition", rendition, 0, MAX_RENDITION)
        _check_int(f"have[{i}].first_sequence", first, 0, MAX_SEQUENCE)
        _check_int(f"have[{i}].count", count, 1, MAX_U16)
        if first + count - 1 > MAX_SEQUENCE:
            raise UsageError(f"have[{i}] runs past sequence {MAX_SEQUENCE}")
        covered += count
        parts.append(_RANGE.pack(rendition, first, count))
    if covered > MAX_HELLO_HAVE_SEGMENTS:
        raise UsageError(f"have covers {covered} segments, max {MAX_HELLO_HAVE_SEGMENTS}")
    _encode_fetching_entries(m.fetching, parts)
    return b"".join(parts)


def encode_data_header(request_id: int, offset: int) -> bytes:
    """The 9 header bytes of a DATA message, unchecked: callers join them with the payload
    pieces themselves (one copy) and guarantee the limits (1..65527 bytes, within 64 MiB)."""
    return _DATA_HEADER.pack(MessageType.DATA, request_id, offset)


def encode_data(request_id: int, offset: int, payload: bytes | bytearray | memoryview) -> bytes:
    """Encode a DATA message without building a :class:`Data` first (the hot path)."""
    size = len(payload)
    if not 1 <= size <= MAX_DATA_PAYLOAD_BYTES:
        raise UsageError(f"DATA payload is {size} bytes, allowed 1..{MAX_DATA_PAYLOAD_BYTES}")
    if not 0 <= request_id <= MAX_U32:
        raise UsageError(f"request_id={request_id} is outside u32")
    if offset < 0 or offset + size > MAX_SEGMENT_BYTES:
        raise UsageError(f"DATA [{offset}, {offset + size}) exceeds {MAX_SEGMENT_BYTES} bytes")
    return b"".join((_DATA_HEADER.pack(MessageType.DATA, request_id, offset), payload))


def encode(message: Message) -> bytes:
    """Encode one message; raise :class:`UsageError` if it breaks a rule of the spec."""
    m = message
    if not isinstance(m, _MESSAGE_CLASSES):
        raise UsageError(f"not a protocol message: {type(m).__name__}")
    if isinstance(m, Data):
        return encode_data(m.request_id, m.offset, m.payload)
    if isinstance(m, Hello):
        return _encode_hello(m)
    if isinstance(m, Have):
        return _encode_segments(MessageType.HAVE, m.segments)
    if isinstance(m, Lost):
        return _encode_segments(MessageType.LOST, m.segments)
    if isinstance(m, Fetching):
        _check_count("entries", len(m.entries), 1, MAX_IDS_PER_MESSAGE)
        parts = [bytes((MessageType.FETCHING,))]
        _encode_fetching_entries(m.entries, parts)
        return b"".join(parts)
    if isinstance(m, Close):
        _check_int("code", m.code, 0, MAX_U16)
        reason = m.reason.encode("utf-8")
        if len(reason) > MAX_REASON_BYTES:
            raise UsageError(f"reason is {len(reason)} bytes in UTF-8, max {MAX_REASON_BYTES}")
        return _CLOSE_HEADER.pack(MessageType.CLOSE, m.code, len(reason)) + reason
    _check_int("request_id", m.request_id, 0, MAX_U32)
    if isinstance(m, Request):
        _check_segment("segment", m.segment)
        _check_int("offset", m.offset, 0, MAX_SEGMENT_BYTES - 1)
        return _REQUEST.pack(
            MessageType.REQUEST, m.request_id, m.segment[0], m.segment[1], m.offset
        )
    if isinstance(m, Response):
        _check_int("total_bytes", m.total_bytes, 1, MAX_SEGMENT_BYTES)
        return _RESPONSE.pack(MessageType.RESPONSE, m.request_id, m.total_bytes)
    if isinstance(m, Cancel):
        return _TYPE_ID.pack(MessageType.CANCEL, m.request_id)
    if isinstance(m, Absent):
        return _TYPE_ID.pack(MessageType.ABSENT, m.request_id)
    if isinstance(m, Busy):
        _check_int("retry_after_ms", m.retry_after_ms, 0, MAX_U16)
        return _BUSY.pack(MessageType.BUSY, m.request_id, m.retry_after_ms)
    if isinstance(m, Abort):
        _check_int("reason", m.reason, min(AbortReason), max(AbortReason))
        return _ABORT.pack(MessageType.ABORT, m.request_id, m.reason)
    raise UsageError(f"not a protocol message: {type(m).__name__}")


# --- Decoding ---------------------------------------------------------------------------------


def _fail(code: WireErrorCode, message: str) -> WireError:
    return WireError(code, message)


class _Reader:
    """Sequential reader over one message; every shortfall is a ``truncated`` WireError."""

    __slots__ = ("data", "pos", "name")

    def __init__(self, data: bytes, name: str) -> None:
        self.data = data
        self.pos = 1  # the type byte is already read
        self.name = name

    def take(self, fmt: struct.Struct, what: str) -> tuple[int, ...]:
        end = self.pos + fmt.size
        if end > len(self.data):
            raise _fail(
                WireErrorCode.TRUNCATED,
                f"{self.name}: {what} needs {fmt.size} bytes at offset {self.pos}, "
                f"{len(self.data) - self.pos} left",
            )
        values = fmt.unpack_from(self.data, self.pos)
        self.pos = end
        return values

    def u8(self, what: str) -> int:
        return self.take(_U8, what)[0]

    def u16(self, what: str) -> int:
        return self.take(_U16, what)[0]

    def u32(self, what: str) -> int:
        return self.take(_U32, what)[0]

    def raw(self, size: int, what: str) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise _fail(
                WireErrorCode.TRUNCATED,
                f"{self.name}: {what} needs {size} bytes at offset {self.pos}, "
                f"{len(self.data) - self.pos} left",
            )
        value = bytes(self.data[self.pos : end])
        self.pos = end
        return value

    def segment(self) -> SegmentId:
        rendition, sequence = self.take(_SEGMENT, "segment id")
        return SegmentId(rendition, sequence)

    def count(self, what: str, low: int, high: int) -> int:
        n = self.u16(what)
        if not low <= n <= high:
            raise _fail(
                WireErrorCode.OUT_OF_RANGE, f"{self.name}: {what}={n}, allowed {low}..{high}"
            )
        return n

    def finish(self) -> None:
        extra = len(self.data) - self.pos
        if extra:
            raise _fail(
                WireErrorCode.TRAILING_BYTES, f"{self.name}: {extra} bytes after the last field"
            )


def _check_expected(r: _Reader, expected_bytes: int) -> None:
    if expected_bytes > MAX_SEGMENT_BYTES:
        raise _fail(
            WireErrorCode.OUT_OF_RANGE,
            f"{r.name}: expected_bytes={expected_bytes} exceeds {MAX_SEGMENT_BYTES}",
        )


def _read_fetching_entries(r: _Reader, n: int) -> tuple[FetchingEntry, ...]:
    entries = []
    for _ in range(n):
        rendition, sequence, expected_bytes = r.take(_FETCHING, "fetching entry")
        _check_expected(r, expected_bytes)
        entries.append(FetchingEntry(SegmentId(rendition, sequence), expected_bytes))
    return tuple(entries)


def _decode_hello(r: _Reader) -> Hello:
    version = r.u8("version")
    if version == 0:
        raise _fail(WireErrorCode.OUT_OF_RANGE, "HELLO: version 0 is reserved")
    swarm_id = r.raw(SWARM_ID_BYTES, "swarm_id")
    peer_id = r.raw(PEER_ID_BYTES, "peer_id")
    flags = r.u8("flags")
    if flags & ~KNOWN_FLAGS:
        raise _fail(WireErrorCode.OUT_OF_RANGE, f"HELLO: reserved flag bits set in {flags:#04x}")
    n = r.count("have_range_count", 0, MAX_HELLO_RANGES)
    have = []
    covered = 0
    for _ in range(n):
        rendition, first, count = r.take(_RANGE, "range")
        if count == 0:
            raise _fail(WireErrorCode.OUT_OF_RANGE, "HELLO: range with count 0")
        if first + count - 1 > MAX_SEQUENCE:
            raise _fail(WireErrorCode.OUT_OF_RANGE, "HELLO: range runs past sequence 0xFFFFFFFF")
        covered += count
        if covered > MAX_HELLO_HAVE_SEGMENTS:
            raise _fail(
                WireErrorCode.OUT_OF_RANGE,
                f"HELLO: ranges cover more than {MAX_HELLO_HAVE_SEGMENTS} segments",
            )
        have.append(SegmentRange(rendition, first, count))
    m = r.count("fetching_count", 0, MAX_FETCHING_ENTRIES)
    fetching = _read_fetching_entries(r, m)
    r.finish()
    return Hello(swarm_id, peer_id, flags, tuple(have), fetching, version)


def _decode_segments(r: _Reader) -> tuple[SegmentId, ...]:
    n = r.count("count", 1, MAX_IDS_PER_MESSAGE)
    segments = tuple(r.segment() for _ in range(n))
    r.finish()
    return segments


def _decode_have(r: _Reader) -> Have:
    return Have(_decode_segments(r))


def _decode_lost(r: _Reader) -> Lost:
    return Lost(_decode_segments(r))


def _decode_fetching(r: _Reader) -> Fetching:
    n = r.count("count", 1, MAX_IDS_PER_MESSAGE)
    entries = _read_fetching_entries(r, n)
    r.finish()
    return Fetching(entries)


def _decode_request(r: _Reader) -> Request:
    request_id = r.u32("request_id")
    segment = r.segment()
    offset = r.u32("offset")
    if offset >= MAX_SEGMENT_BYTES:
        raise _fail(WireErrorCode.OUT_OF_RANGE, f"REQUEST: offset={offset} is past the max size")
    r.finish()
    return Request(request_id, segment, offset)


def _decode_response(r: _Reader) -> Response:
    request_id = r.u32("request_id")
    total_bytes = r.u32("total_bytes")
    if total_bytes == 0:
        raise _fail(WireErrorCode.ZERO_LENGTH, "RESPONSE: total_bytes=0 (zero-length segment)")
    if total_bytes > MAX_SEGMENT_BYTES:
        raise _fail(
            WireErrorCode.OUT_OF_RANGE, f"RESPONSE: total_bytes={total_bytes} exceeds the max"
        )
    r.finish()
    return Response(request_id, total_bytes)


def _decode_cancel(r: _Reader) -> Cancel:
    request_id = r.u32("request_id")
    r.finish()
    return Cancel(request_id)


def _decode_absent(r: _Reader) -> Absent:
    request_id = r.u32("request_id")
    r.finish()
    return Absent(request_id)


def _decode_busy(r: _Reader) -> Busy:
    request_id = r.u32("request_id")
    retry_after_ms = r.u16("retry_after_ms")
    r.finish()
    return Busy(request_id, retry_after_ms)


def _decode_abort(r: _Reader) -> Abort:
    request_id = r.u32("request_id")
    reason = r.u8("reason")
    if not AbortReason.UPSTREAM_FAILED <= reason <= AbortReason.INTERNAL:
        raise _fail(WireErrorCode.OUT_OF_RANGE, f"ABORT: unknown reason {reason}")
    r.finish()
    return Abort(request_id, reason)


def _decode_close(r: _Reader) -> Close:
    code = r.u16("code")
    size = r.u8("reason_len")
    if size > MAX_REASON_BYTES:
        raise _fail(WireErrorCode.OUT_OF_RANGE, f"CLOSE: reason_len={size} > {MAX_REASON_BYTES}")
    raw = r.raw(size, "reason")
    try:
        reason = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(WireErrorCode.BAD_UTF8, f"CLOSE: reason is not UTF-8 ({exc.reason})") from None
    r.finish()
    return Close(code, reason)


_DECODERS: dict[int, tuple[str, Callable[[_Reader], Message]]] = {
    MessageType.HELLO: ("HELLO", _decode_hello),
    MessageType.HAVE: ("HAVE", _decode_have),
    MessageType.FETCHING: ("FETCHING", _decode_fetching),
    MessageType.LOST: ("LOST", _decode_lost),
    MessageType.REQUEST: ("REQUEST", _decode_request),
    MessageType.RESPONSE: ("RESPONSE", _decode_response),
    MessageType.CANCEL: ("CANCEL", _decode_cancel),
    MessageType.ABSENT: ("ABSENT", _decode_absent),
    MessageType.BUSY: ("BUSY", _decode_busy),
    MessageType.ABORT: ("ABORT", _decode_abort),
    MessageType.CLOSE: ("CLOSE", _decode_close),
}


def _decode_data(data: bytes | bytearray | memoryview, size: int) -> Data:
    if size < DATA_HEADER_BYTES:
        raise _fail(WireErrorCode.TRUNCATED, f"DATA: header needs 9 bytes, got {size}")
    payload_bytes = size - DATA_HEADER_BYTES
    if payload_bytes == 0:
        raise _fail(WireErrorCode.ZERO_LENGTH, "DATA: empty payload")
    _, request_id, offset = _DATA_HEADER.unpack_from(data, 0)
    if offset + payload_bytes > MAX_SEGMENT_BYTES:
        raise _fail(
            WireErrorCode.OUT_OF_RANGE,
            f"DATA: [{offset}, {offset + payload_bytes}) is past {MAX_SEGMENT_BYTES} bytes",
        )
    return Data(request_id, offset, bytes(data[DATA_HEADER_BYTES:]))


def decode(data: bytes | bytearray | memoryview) -> Message:
    """Decode one data-channel message; raise :class:`WireError` for anything invalid."""
    size = len(data)
    if size == 0:
        raise _fail(WireErrorCode.TRUNCATED, "empty message")
    if size > MAX_MESSAGE_BYTES:
        raise _fail(WireErrorCode.OVERSIZE, f"message is {size} bytes, max {MAX_MESSAGE_BYTES}")
    type_byte = data[0]
    if type_byte == MessageType.DATA:
        return _decode_data(data, size)
    entry = _DECODERS.get(type_byte)
    if entry is None:
        raise _fail(WireErrorCode.UNKNOWN_TYPE, f"unknown message type {type_byte:#04x}")
    name, decoder = entry
    return decoder(_Reader(bytes(data), name))
