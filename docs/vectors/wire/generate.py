#!/usr/bin/env python3
"""Write valid.json and invalid.json, the wire protocol v1 test vectors.

The bytes are built here by hand with ``struct`` from the tables of ``docs/protocol.md``, not
with ``peer_agent.core.wire``, so the vectors check the codecs instead of copying them.
``tests/core/test_wire_vectors.py`` checks that the committed JSON equals this script's output.

Usage: python docs/vectors/wire/generate.py  (rewrites the two files beside this script)
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024
MAX_SEGMENT_BYTES = 64 * MIB

SWARM = bytes(range(0x10, 0x24))  # 20 bytes
PEER = bytes(range(0xA0, 0xB4))  # 20 bytes


def u8(v: int) -> bytes:
    return struct.pack(">B", v)


def u16(v: int) -> bytes:
    return struct.pack(">H", v)


def u32(v: int) -> bytes:
    return struct.pack(">I", v)


def seg(rendition: int, sequence: int) -> bytes:
    return u16(rendition) + u32(sequence)


def seg_json(rendition: int, sequence: int) -> dict[str, int]:
    return {"rendition": rendition, "sequence": sequence}


def hello(
    version: int = 1,
    flags: int = 0,
    ranges: list[tuple[int, int, int]] | None = None,
    fetching: list[tuple[int, int, int]] | None = None,
    range_count: int | None = None,
    fetching_count: int | None = None,
) -> bytes:
    ranges = ranges or []
    fetching = fetching or []
    out = b"\x01" + u8(version) + SWARM + PEER + u8(flags)
    out += u16(len(ranges) if range_count is None else range_count)
    out += b"".join(u16(r) + u32(f) + u16(c) for r, f, c in ranges)
    out += u16(len(fetching) if fetching_count is None else fetching_count)
    out += b"".join(seg(r, s) + u32(e) for r, s, e in fetching)
    return out


def hello_json(
    version: int = 1,
    flags: int = 0,
    ranges: list[tuple[int, int, int]] | None = None,
    fetching: list[tuple[int, int, int]] | None = None,
) -> dict[str, Any]:
    return {
        "type": "hello",
        "version": version,
        "swarm_id": SWARM.hex(),
        "peer_id": PEER.hex(),
        "flags": flags,
        "have": [{"rendition": r, "first_sequence": f, "count": c} for r, f, c in (ranges or [])],
        "fetching": [
            {"segment": seg_json(r, s), "expected_bytes": e} for r, s, e in (fetching or [])
        ],
    }


def ids(type_byte: int, segments: list[tuple[int, int]], count: int | None = None) -> bytes:
    n = len(segments) if count is None else count
    return u8(type_byte) + u16(n) + b"".join(seg(r, s) for r, s in segments)


def fetching_msg(entries: list[tuple[int, int, int]], count: int | None = None) -> bytes:
    n = len(entries) if count is None else count
    return b"\x03" + u16(n) + b"".join(seg(r, s) + u32(e) for r, s, e in entries)


def request(rid: int, rendition: int, sequence: int, offset: int) -> bytes:
    return b"\x10" + u32(rid) + seg(rendition, sequence) + u32(offset)


def response(rid: int, total: int) -> bytes:
    return b"\x11" + u32(rid) + u32(total)


def data_header(rid: int, offset: int) -> bytes:
    return b"\x12" + u32(rid) + u32(offset)


def close(code: int, reason: bytes, reason_len: int | None = None) -> bytes:
    n = len(reason) if reason_len is None else reason_len
    return b"\x20" + u16(code) + u8(n) + reason


def valid_vectors() -> list[dict[str, Any]]:
    v: list[dict[str, Any]] = []

    def add(name: str, raw: bytes, message: dict[str, Any], **extra: Any) -> None:
        v.append({"name": name, "hex": raw.hex(), **extra, "message": message})

    add("hello_minimal", hello(), hello_json())
    add("hello_leech_only", hello(flags=1), hello_json(flags=1))
    full_ranges = [(0, 0, 1), (3, 100, 20), (0xFFFF, 0xFFFFFFFF - 9, 10), (1, 0xFFFFFFFF, 1)]
    full_fetching = [(0, 120, 0), (3, 121, 1_234_567), (0xFFFF, 0xFFFFFFFF, MAX_SEGMENT_BYTES)]
    add(
        "hello_full",
        hello(ranges=full_ranges, fetching=full_fetching),
        hello_json(ranges=full_ranges, fetching=full_fetching),
    )
    cover = [(0, 0, 16383), (1, 0, 1)]
    add("hello_max_have_segments", hello(ranges=cover), hello_json(ranges=cover))
    add("hello_future_version_decodes", hello(version=2), hello_json(version=2))

    add("have_one", ids(0x02, [(0, 7)]), {"type": "have", "segments": [seg_json(0, 7)]})
    add(
        "have_max_values",
        ids(0x02, [(0xFFFF, 0xFFFFFFFF), (0, 0)]),
        {"type": "have", "segments": [seg_json(0xFFFF, 0xFFFFFFFF), seg_json(0, 0)]},
    )
    many = [(2, s) for s in range(1024)]
    add(
        "have_max_count",
        ids(0x02, many),
        {"type": "have", "segments": [seg_json(r, s) for r, s in many]},
    )
    add(
        "fetching_two",
        fetching_msg([(1, 42, 0), (2, 42, MAX_SEGMENT_BYTES)]),
        {
            "type": "fetching",
            "entries": [
                {"segment": seg_json(1, 42), "expected_bytes": 0},
                {"segment": seg_json(2, 42), "expected_bytes": MAX_SEGMENT_BYTES},
            ],
        },
    )
    add(
        "lost_two",
        ids(0x04, [(1, 1), (1, 2)]),
        {"type": "lost", "segments": [seg_json(1, 1), seg_json(1, 2)]},
    )
    add(
        "request_whole_segment",
        request(1, 2, 3000, 0),
        {"type": "request", "request_id": 1, "segment": seg_json(2, 3000), "offset": 0},
    )
    add(
        "request_max_values",
        request(0xFFFFFFFF, 0xFFFF, 0xFFFFFFFF, MAX_SEGMENT_BYTES - 1),
        {
            "type": "request",
            "request_id": 0xFFFFFFFF,
            "segment": seg_json(0xFFFF, 0xFFFFFFFF),
            "offset": MAX_SEGMENT_BYTES - 1,
        },
    )
    add(
        "response_one_byte",
        response(0, 1),
        {"type": "response", "request_id": 0, "total_bytes": 1},
    )
    add(
        "response_max_total",
        response(7, MAX_SEGMENT_BYTES),
        {"type": "response", "request_id": 7, "total_bytes": MAX_SEGMENT_BYTES},
    )
    add(
        "data_one_byte",
        data_header(5, 0) + b"\x42",
        {"type": "data", "request_id": 5, "offset": 0, "payload": "42"},
    )
    add(
        "data_last_byte_of_max_segment",
        data_header(0xFFFFFFFF, MAX_SEGMENT_BYTES - 1) + b"\xff",
        {
            "type": "data",
            "request_id": 0xFFFFFFFF,
            "offset": MAX_SEGMENT_BYTES - 1,
            "payload": "ff",
        },
    )
    add(
        "data_max_payload",
        data_header(9, 65536),
        {
            "type": "data",
            "request_id": 9,
            "offset": 65536,
            "payload_repeat": {"byte": "ab", "count": 65527},
        },
        hex_repeat={"byte": "ab", "count": 65527},
    )
    add("cancel", b"\x13" + u32(3), {"type": "cancel", "request_id": 3})
    add("absent", b"\x14" + u32(0xFFFFFFFF), {"type": "absent", "request_id": 0xFFFFFFFF})
    add(
        "busy_zero_retry",
        b"\x15" + u32(4) + u16(0),
        {"type": "busy", "request_id": 4, "retry_after_ms": 0},
    )
    add(
        "busy_max_retry",
        b"\x15" + u32(4) + u16(0xFFFF),
        {"type": "busy", "request_id": 4, "retry_after_ms": 0xFFFF},
    )
    for reason in (1, 2, 3, 4):
        add(
            f"abort_reason_{reason}",
            b"\x16" + u32(6) + u8(reason),
            {"type": "abort", "request_id": 6, "reason": reason},
        )
    add("close_normal_empty_reason", close(0, b""), {"type": "close", "code": 0, "reason": ""})
    utf8 = "swarm ≠ 🎬".encode()
    add(
        "close_utf8_reason",
        close(3, utf8),
        {"type": "close", "code": 3, "reason": "swarm ≠ 🎬"},
    )
    add(
        "close_max_reason",
        close(8, b"x" * 123),
        {"type": "close", "code": 8, "reason": "x" * 123},
    )
    add(
        "close_unassigned_code",
        close(0xFFFF, b"?"),
        {"type": "close", "code": 0xFFFF, "reason": "?"},
    )
    return v


def invalid_vectors() -> list[dict[str, Any]]:
    v: list[dict[str, Any]] = []

    def add(name: str, raw: bytes, error: str, **extra: Any) -> None:
        v.append({"name": name, "hex": raw.hex(), **extra, "error": error})

    add("empty", b"", "truncated")
    add("unknown_type_00", b"\x00", "unknown_type")
    add("unknown_type_05", b"\x05\x00\x01", "unknown_type")
    add("unknown_type_ff", b"\xff", "unknown_type")
    add("oversize_data", data_header(1, 0), "oversize", hex_repeat={"byte": "00", "count": 65528})
    add("oversize_unknown_type", b"\xff", "oversize", hex_repeat={"byte": "ff", "count": 65536})

    # truncated: one per type, cut in the middle of a field
    add("truncated_hello_type_only", b"\x01", "truncated")
    add("truncated_hello_in_swarm_id", hello()[:10], "truncated")
    add("truncated_hello_missing_fetching_count", hello()[:-2], "truncated")
    add("truncated_hello_short_range_list", hello(ranges=[(0, 1, 1)], range_count=2), "truncated")
    add("truncated_have", ids(0x02, [(0, 1)])[:-1], "truncated")
    add("truncated_have_count_exceeds_ids", ids(0x02, [(0, 1)], count=2), "truncated")
    add("truncated_fetching", fetching_msg([(0, 1, 5)])[:-2], "truncated")
    add("truncated_lost", b"\x04\x00", "truncated")
    add("truncated_request", request(1, 0, 1, 0)[:-1], "truncated")
    add("truncated_response", response(1, 10)[:-1], "truncated")
    add("truncated_data_header", data_header(1, 0)[:-1], "truncated")
    add("truncated_cancel", b"\x13\x00\x00\x01", "truncated")
    add("truncated_absent", b"\x14", "truncated")
    add("truncated_busy", b"\x15" + u32(1) + b"\x00", "truncated")
    add("truncated_abort", b"\x16" + u32(1), "truncated")
    add("truncated_close_header", b"\x20\x00", "truncated")
    add("truncated_close_reason", close(0, b"bye", reason_len=5), "truncated")

    # trailing bytes
    add("trailing_hello", hello() + b"\x00", "trailing_bytes")
    add("trailing_have", ids(0x02, [(0, 1)]) + b"\x00", "trailing_bytes")
    add("trailing_fetching", fetching_msg([(0, 1, 0)]) + b"\x00", "trailing_bytes")
    add("trailing_lost", ids(0x04, [(0, 1)]) + b"\x00", "trailing_bytes")
    add("trailing_request", request(1, 0, 1, 0) + b"\x00", "trailing_bytes")
    add("trailing_response", response(1, 10) + b"\x00", "trailing_bytes")
    add("trailing_cancel", b"\x13" + u32(1) + b"\x00", "trailing_bytes")
    add("trailing_absent", b"\x14" + u32(1) + b"\x00", "trailing_bytes")
    add("trailing_busy", b"\x15" + u32(1) + u16(5) + b"\x00", "trailing_bytes")
    add("trailing_abort", b"\x16" + u32(1) + u8(1) + b"\x00", "trailing_bytes")
    add("trailing_close", close(0, b"ok") + b"!", "trailing_bytes")

    # zero lengths
    add("zero_length_data", data_header(1, 0), "zero_length")
    add("zero_total_bytes", response(1, 0), "zero_length")

    # out of range
    add("hello_version_0", hello(version=0), "out_of_range")
    add("hello_reserved_flag_bit1", hello(flags=0x02), "out_of_range")
    add("hello_reserved_flag_bit7", hello(flags=0x81), "out_of_range")
    add("hello_range_count_0", hello(ranges=[(0, 5, 0)]), "out_of_range")
    add("hello_range_overflow", hello(ranges=[(0, 0xFFFFFFFF, 2)]), "out_of_range")
    add("hello_too_many_ranges", hello(range_count=1025), "out_of_range")
    add("hello_too_many_fetching", hello(fetching_count=257), "out_of_range")
    add("hello_have_covers_too_much", hello(ranges=[(0, 0, 16384), (1, 0, 1)]), "out_of_range")
    add(
        "hello_fetching_expected_too_big",
        hello(fetching=[(0, 1, MAX_SEGMENT_BYTES + 1)]),
        "out_of_range",
    )
    add("have_count_0", ids(0x02, []), "out_of_range")
    add("have_count_0_with_trailing", ids(0x02, [(0, 1)], count=0), "out_of_range")
    add("have_count_1025", ids(0x02, [], count=1025), "out_of_range")
    add("fetching_count_0", fetching_msg([]), "out_of_range")
    add("fetching_expected_too_big", fetching_msg([(0, 1, MAX_SEGMENT_BYTES + 1)]), "out_of_range")
    add("lost_count_0", ids(0x04, []), "out_of_range")
    add("request_offset_at_max", request(1, 0, 1, MAX_SEGMENT_BYTES), "out_of_range")
    add(
        "request_offset_out_of_range_with_trailing",
        request(1, 0, 1, 0xFFFFFFFF) + b"\x00",
        "out_of_range",
    )
    add("response_total_too_big", response(1, MAX_SEGMENT_BYTES + 1), "out_of_range")
    add(
        "data_past_max_segment", data_header(1, MAX_SEGMENT_BYTES - 1) + b"\x00\x00", "out_of_range"
    )
    add("data_offset_max_u32", data_header(1, 0xFFFFFFFF) + b"\x00", "out_of_range")
    add("abort_reason_0", b"\x16" + u32(1) + u8(0), "out_of_range")
    add("abort_reason_5", b"\x16" + u32(1) + u8(5), "out_of_range")
    add("close_reason_too_long", close(0, b"x" * 124), "out_of_range")

    # bad UTF-8
    add("close_bad_utf8_ff", close(1, b"\xff"), "bad_utf8")
    add("close_bad_utf8_overlong", close(1, b"\xc0\xaf"), "bad_utf8")
    add("close_bad_utf8_surrogate", close(1, b"\xed\xa0\x80"), "bad_utf8")
    add("close_bad_utf8_cut_sequence", close(1, b"ok\xe2\x82"), "bad_utf8")
    return v


def render(vectors: list[dict[str, Any]]) -> str:
    return json.dumps(vectors, indent=1, ensure_ascii=False) + "\n"


def outputs() -> dict[str, str]:
    """File name -> exact file content."""
    return {"valid.json": render(valid_vectors()), "invalid.json": render(invalid_vectors())}


def main() -> None:
    for name, text in outputs().items():
        (HERE / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
