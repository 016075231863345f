"""Identifiers shared by the wire codec, the scheduler and the store."""

from __future__ import annotations

from typing import NamedTuple

MAX_RENDITION = 0xFFFF
MAX_SEQUENCE = 0xFFFFFFFF


class SegmentId(NamedTuple):
    """A media segment: rendition index in the master playlist and its media sequence number."""

    rendition: int
    sequence: int

    def __str__(self) -> str:
        return f"{self.rendition}/{self.sequence}"
