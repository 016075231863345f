"""Byte ranges of HLS media and the canonical manifest key (docs/exchange.md, section 11).

Pure functions shared by the agent's playlist parser; the hash service
(``signaling/hashsvc/playlist.py``, which may not import this package) implements the same
rule, and both pass ``docs/vectors/manifest/keys.json``.
"""

from __future__ import annotations


class ByteRangeError(ValueError):
    """A byte range a playlist gives is malformed or cannot be resolved."""


def parse_byte_range(
    spec: str, previous_end: int | None, *, map_tag: bool = False
) -> tuple[int, int]:
    """``(offset, length)`` of ``<n>[@<o>]`` (EXT-X-BYTERANGE, or EXT-X-MAP's BYTERANGE with
    ``map_tag``). Without ``@<o>`` a segment's range starts at ``previous_end``, the byte after
    the previous segment's range of the same resource; with no such range, or on a map (whose
    offset is required), the range is an error (RFC 8216bis 4.4.4.2, 4.4.4.5)."""
    length_text, at, offset_text = spec.strip().partition("@")
    if not length_text.isdigit() or (at and not offset_text.isdigit()):
        raise ByteRangeError(f"bad byte range {spec!r}")
    length = int(length_text)
    if length < 1:
        raise ByteRangeError(f"byte range {spec!r} is empty")
    if at:
        return int(offset_text), length
    if map_tag:
        raise ByteRangeError(f"EXT-X-MAP byte range {spec!r} has no offset")
    if previous_end is None:
        raise ByteRangeError(f"byte range {spec!r} has no offset and no previous range to follow")
    return previous_end, length


def manifest_key(uri: str, byte_range: tuple[int, int] | None = None) -> str:
    """The manifest key of a resource: its URI exactly as the media playlist writes it, and for
    a byte range ``(offset, length)`` ``#first-last`` (inclusive byte positions, as in HTTP)."""
    if byte_range is None:
        return uri
    offset, length = byte_range
    return f"{uri}#{offset}-{offset + length - 1}"
