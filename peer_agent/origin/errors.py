"""Typed errors of the test origin, split by who is at fault."""

from __future__ import annotations


class OriginError(Exception):
    """Base class for every error raised by :mod:`peer_agent.origin`."""


class ConfigError(OriginError, ValueError):
    """Our caller's misuse: an invalid configuration value or shaping change."""


class MediaGenerationError(OriginError):
    """PyAV failed to synthesise, encode or segment the stream (an environment problem)."""


class NotFound(OriginError):
    """A client asked for a stream, rendition or segment the origin does not have."""


class BadQuery(OriginError):
    """A client sent a malformed query parameter (answered with 400)."""


class BadRange(OriginError):
    """A client sent a malformed or unsatisfiable ``Range`` header (answered with 416)."""

    def __init__(self, detail: str, *, size: int) -> None:
        super().__init__(detail)
        self.size = size
